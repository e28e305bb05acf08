"""Text: reading files (and the clear errors), the built-in corpus, the split."""

import pytest

from bptt.data import builtin_corpus, read_text, split_text
from bptt.errors import DataError


def test_read_text_returns_the_file_text(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("héllo\r\nwörld €\rend\n".encode())
    assert read_text(p) == "héllo\nwörld €\nend\n"
    p.write_bytes(b"\xef\xbb\xbfbom")  # a UTF-8 byte-order mark is not text
    assert read_text(str(p)) == "bom"


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"text file '.*nope\.txt' does not exist"):
        read_text(tmp_path / "nope.txt")


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory, expected a UTF-8 text file"):
        read_text(tmp_path)


@pytest.mark.parametrize("content, what", [(b"", "is empty"), (b" \n\t\n", "only whitespace")])
def test_empty_or_whitespace_file(tmp_path, content, what):
    p = tmp_path / "e.txt"
    p.write_bytes(content)
    with pytest.raises(DataError, match=what):
        read_text(p)


def test_binary_file(tmp_path):
    p = tmp_path / "b.bin"
    p.write_bytes(b"PK\x03\x04\x00\x00abc")
    with pytest.raises(
        DataError, match=r"is a binary file, not UTF-8 text \(NUL byte at offset 4\)"
    ):
        read_text(p)


def test_not_utf8_names_byte_and_offset(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("naïve".encode("latin-1"))
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte 0xef at offset 2\)"):
        read_text(p)


def test_builtin_corpus_is_substantial_english_text():
    text = builtin_corpus()
    assert isinstance(text, str)
    assert len(text) > 100_000
    assert text.startswith('The "assert" statement')
    assert "assignment" in text and "\x00" not in text
    assert builtin_corpus() == text


def test_split_is_a_reproducible_contiguous_tail():
    text = builtin_corpus()
    train, val = split_text(text, 0.1)
    assert train + val == text
    assert len(val) == -(-len(text) // 10)  # ceil(N / 10)
    assert split_text(text, 0.1) == (train, val)
    assert split_text("abcdefghij", 0.25) == ("abcdefg", "hij")


def test_split_errors():
    with pytest.raises(DataError, match="val_fraction must be in"):
        split_text("abcdef", 0.0)
    with pytest.raises(DataError, match="val_fraction must be in"):
        split_text("abcdef", 1.0)
    with pytest.raises(DataError, match=r"text of 1 characters is too short .*train would have 0"):
        split_text("a", 0.5)
    with pytest.raises(DataError, match="text of 0 characters"):
        split_text("", 0.5)
