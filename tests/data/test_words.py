"""Word tokenizer and GloVe-format word vectors."""

import numpy as np
import pytest

from bptt.data import Vocabulary
from bptt.data.words import load_word_vectors, tokenize
from bptt.errors import DataError


def test_tokenize_words_punctuation_and_html_breaks():
    text = "I didn't like it.<br /><br />A well-made film!"
    assert tokenize(text) == ["i", "didn't", "like", "it", ".", "a", "well-made", "film", "!"]
    words = tokenize("Yesterday, Harry Potter met Hermione Granger.", lower=False)
    assert words == "Yesterday , Harry Potter met Hermione Granger .".split()
    assert tokenize("  ") == []


def test_vectors_load_for_vocabulary_words_only(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\nFilm 1 2 3\nzebra 9 9 9\n", encoding="utf-8")
    vocab = Vocabulary.from_tokens(["the", "film", "good"])
    found, width = load_word_vectors(path, vocab, np.float64)
    assert width == 3 and set(found) == {vocab.index("the"), vocab.index("film")}
    np.testing.assert_array_equal(found[vocab.index("film")], [1.0, 2.0, 3.0])
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("2 3\nthe 0.1 0.2 0.3\ngood 1 1 1\n")  # word2vec's header line is skipped
    assert len(load_word_vectors(w2v, vocab)[0]) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("the 1 2 3\nfilm 1 2\n", r"glove.txt:2: 2 numbers after the word, line 1 has 3"),
        ("the 1 x 3\n", r"glove.txt:1: the vector of 'the' has a non-number"),
        ("zebra 1 2 3\n", "hold none of the"),
        ("", "hold no vector"),
    ],
)
def test_bad_vector_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "glove.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_word_vectors(path, Vocabulary.from_tokens(["the", "film"]))
    with pytest.raises(DataError, match="cannot read word vectors"):
        load_word_vectors(tmp_path / "missing.txt", Vocabulary.from_tokens(["the"]))
