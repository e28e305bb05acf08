"""de-en: phrase pairs read from a dictionary in Ding's format, and the BLEU metric."""

import pytest

from bptt.errors import DataError
from bptt.tasks.seq2seq import de_en

DING = """# Version :: 1.9
Guten Morgen! :: Good morning!
Haus {n} | Häuser {pl} | ein großes Haus :: house | houses | a big house
etw. in Gang bringen [übtr.] | in Gang gebracht :: to get sth. under way | got under way
Weg {m}; Pfad {m} | auf dem Weg :: way; path | on the way
ein Haus bauen :: to build a house
ein Haus | zwei Häuser | drei Häuser :: a house | two houses
Gang {m} (im Haus) :: corridor /CRD/ in the house
"""


def test_pairs_are_aligned_senses_without_annotations(tmp_path):
    path = tmp_path / "de-en"
    path.write_text(DING, encoding="utf-8")
    pairs = de_en.read_pairs(path, min_freq=1)
    assert (["guten", "morgen", "!"], ["good", "morning", "!"]) in pairs
    assert (["ein", "großes", "haus"], ["a", "big", "house"]) in pairs
    assert (
        ["etw", ".", "in", "gang", "bringen"],
        ["to", "get", "sth", ".", "under", "way"],
    ) in pairs
    assert (["auf", "dem", "weg"], ["on", "the", "way"]) in pairs
    assert (["gang"], ["corridor", "in", "the", "house"]) not in pairs  # one German token
    # senses that do not align one to one (3 German, 2 English) are skipped
    assert not any(d[0] in ("zwei", "drei") for d, _ in pairs)
    # with min_freq 2 only pairs whose every token occurs twice remain
    assert all(p in pairs for p in de_en.read_pairs(path, min_freq=2))
    assert (["ein", "haus", "bauen"], ["to", "build", "a", "house"]) not in de_en.read_pairs(
        path, min_freq=2
    )


def test_a_missing_dictionary_says_how_to_install_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install trans-de-en"):
        de_en.read_pairs(tmp_path / "nothing")


def test_bleu_of_perfect_and_wrong_outputs():
    pytest.importorskip("sacrebleu")
    refs = [["to", "get", "sth", ".", "under", "way"], ["a", "big", "house", "indeed"]]
    assert de_en.metrics(refs, refs)["bleu"] == pytest.approx(100.0)
    assert de_en.metrics([["x"], ["y"]], refs)["bleu"] < 1.0
