"""Vocabulary: ids stable and reproducible, round trips, unknown symbols, one-hot."""

import json

import numpy as np
import pytest

from bptt.data import PAD, SPECIALS, UNK, Vocabulary
from bptt.errors import BpttError, DataError

TEXT = "hello world, hello recurrent networks\n"


def test_char_vocabulary_is_sorted_distinct_characters_without_specials():
    v = Vocabulary.from_text(TEXT)
    assert v.tokens == tuple(sorted(set(TEXT)))
    assert v.specials == ()
    assert v.unk_id is None and v.pad_id is None
    assert len(v) == len(set(TEXT))
    # The same text always gives the same ids, whatever the order of first appearance.
    assert Vocabulary.from_text(TEXT[::-1]) == v


def test_encode_decode_round_trip_char():
    v = Vocabulary.from_text(TEXT)
    ids = v.encode(TEXT)
    assert ids.dtype == np.int64 and ids.shape == (len(TEXT),)
    assert v.decode(ids) == TEXT
    assert v.token(int(ids[0])) == "h" and v.index("h") == ids[0]
    assert "h" in v and "Q" not in v


def test_word_vocabulary_has_specials_first_then_frequency_order():
    text = "the cat sat on the mat the end"
    v = Vocabulary.from_text(text, level="word")
    assert v.tokens[:4] == SPECIALS
    assert v.pad_id == 0 and v.unk_id == 1 and v.bos_id == 2 and v.eos_id == 3
    assert v.tokens[4] == "the"  # most frequent
    assert v.tokens[5:] == ("cat", "end", "mat", "on", "sat")  # ties by token
    assert v.decode(v.encode(text)) == text


def test_from_tokens_min_freq_and_max_size():
    tokens = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"]
    v = Vocabulary.from_tokens(tokens, min_freq=2)
    assert v.tokens == (*SPECIALS, "a", "b", "c")
    v = Vocabulary.from_tokens(tokens, max_size=6)  # specials count toward the size
    assert v.tokens == (*SPECIALS, "a", "b")
    v = Vocabulary.from_tokens(tokens, specials=())
    assert v.tokens == ("a", "b", "c", "d")
    with pytest.raises(BpttError, match="max_size 3 leaves no room: there are 4"):
        Vocabulary.from_tokens(tokens, max_size=3)
    with pytest.raises(BpttError, match="min_freq must be at least 1, got 0"):
        Vocabulary.from_tokens(tokens, min_freq=0)


def test_unknown_symbols_map_to_unk_when_present():
    v = Vocabulary.from_tokens(["a", "b"])
    ids = v.encode(["a", "zzz", "b"])
    assert ids.tolist() == [v.index("a"), v.unk_id, v.index("b")]
    assert v.index("zzz") == v.unk_id
    assert v.decode(ids) == f"a {UNK} b"
    assert v.decode(ids, skip_specials=True) == "a b"


def test_unknown_characters_are_an_error_naming_them():
    v = Vocabulary.from_text("abc")
    with pytest.raises(BpttError, match=r"prompt has characters not in the vocabulary: 'é', '€'$"):
        v.encode("abé€cé", name="prompt")
    with pytest.raises(BpttError, match=r"\(and 2 more\)"):
        v.encode("0123456789xy")
    with pytest.raises(BpttError, match="'z' is not in the vocabulary"):
        v.index("z")


def test_char_vocabulary_with_specials_keeps_them_first():
    v = Vocabulary.from_text("ba", specials=(PAD, UNK))
    assert v.tokens == (PAD, UNK, "a", "b")
    assert v.encode("abx").tolist() == [2, 3, 1]
    assert v.decode([0, 2, 3], skip_specials=True) == "ab"


def test_one_hot_is_the_identity_row_of_each_id():
    v = Vocabulary.from_text(TEXT)
    ids = v.encode(TEXT[:6]).reshape(2, 3)  # (2, 3)
    x = v.one_hot(ids)  # (2, 3, V)
    assert x.shape == (2, 3, len(v)) and x.dtype == np.float32
    np.testing.assert_array_equal(x, np.eye(len(v), dtype=np.float32)[ids])
    assert v.one_hot([1], dtype=np.float64).dtype == np.float64


def test_bad_ids_name_the_range():
    v = Vocabulary.from_text("abc")
    with pytest.raises(BpttError, match=r"ids must be in 0..2 \(vocabulary size 3\), got 3, 7"):
        v.decode([0, 3, 7, 3])
    with pytest.raises(BpttError, match="got -1"):
        v.one_hot([-1])
    with pytest.raises(BpttError, match="dtype float64"):
        v.decode(np.array([0.0]))
    with pytest.raises(BpttError, match="id 5 is out of range"):
        v.token(5)


@pytest.mark.parametrize(
    "v",
    [
        Vocabulary.from_text(TEXT),
        Vocabulary.from_text(TEXT, level="word"),
        Vocabulary.from_text("<pad>é€\n\t ", specials=(UNK,)),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(v):
    d = json.loads(json.dumps(v.to_dict()))
    w = Vocabulary.from_dict(d)
    assert w == v
    assert w.tokens == v.tokens and w.level == v.level and w.specials == v.specials


def test_from_dict_validates():
    good = Vocabulary.from_text("abc").to_dict()
    with pytest.raises(DataError, match="must be a dict, got list"):
        Vocabulary.from_dict([])
    with pytest.raises(DataError, match=r"lacks the keys \['tokens'\]"):
        Vocabulary.from_dict({k: x for k, x in good.items() if k != "tokens"})
    with pytest.raises(DataError, match="format 'other'"):
        Vocabulary.from_dict({**good, "format": "other"})
    with pytest.raises(DataError, match="version 99"):
        Vocabulary.from_dict({**good, "version": 99})
    with pytest.raises(DataError, match="list of str"):
        Vocabulary.from_dict({**good, "tokens": ["a", 1]})
    with pytest.raises(DataError, match="these repeat: 'a'"):
        Vocabulary.from_dict({**good, "tokens": ["a", "b", "a"]})
    with pytest.raises(DataError, match="single characters, got 'ab'"):
        Vocabulary.from_dict({**good, "tokens": ["ab", "c"]})
    with pytest.raises(DataError, match="level must be one of"):
        Vocabulary.from_dict({**good, "level": "byte"})
    with pytest.raises(DataError, match="special token '<unk>' is not among the tokens"):
        Vocabulary.from_dict({**good, "specials": [UNK]})


def test_empty_text_is_an_error():
    with pytest.raises(BpttError, match="text is empty"):
        Vocabulary.from_text("")
