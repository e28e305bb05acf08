"""Text for the character language model: read a file, the built-in corpus, a split.

``read_text`` takes any UTF-8 text file and says clearly why a file will not do
(missing, a directory, empty, binary, not UTF-8). ``builtin_corpus`` is English
prose and code that ships with every Python, so the language model trains
offline with nothing to download. ``split_text`` holds out the tail.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

from bptt.errors import DataError


def read_text(path: str | os.PathLike[str]) -> str:
    """The contents of a UTF-8 text file.

    Newlines are normalized to "\\n" (as Python's text mode does) and a leading
    UTF-8 byte-order mark is dropped; nothing else is changed.

    Raises:
        DataError: the file does not exist, is a directory, cannot be read,
            holds a NUL byte (binary), is not valid UTF-8 (names the byte and
            its offset), or is empty or whitespace only.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"text file '{p}' does not exist")
    if p.is_dir():
        raise DataError(f"'{p}' is a directory, expected a UTF-8 text file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read text file '{p}': {e.strerror or e}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        # UTF-8 text never holds NUL; a NUL means a binary (or UTF-16) file.
        raise DataError(f"'{p}' is a binary file, not UTF-8 text (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"'{p}' is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        raise DataError(f"text file '{p}' is empty")
    if not text.strip():
        raise DataError(f"text file '{p}' holds only whitespace ({len(text)} characters)")
    return text


@functools.cache
def builtin_corpus() -> str:
    """The English text of Python's documentation topics (``pydoc_data.topics``).

    The topics (the "assert" statement, assignment, ... about 80 pages of the
    language reference) are joined in sorted-key order, one blank line apart
    (each topic already ends with "\\n"). With Python 3.11 that is 464,970 +
    78 = 465,048 characters and 103 distinct characters; the exact size
    depends on the Python version, so a model records its vocabulary.
    """
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split ``text`` into (train, val): the last ``ceil(val_fraction * N)`` characters are val.

    A contiguous tail split is deterministic (no randomness to seed) and keeps
    both parts running text, which a language model reads as streams; no
    character is in both parts.

    Raises:
        DataError: ``val_fraction`` is not in (0, 1), or either part would be empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(text)
    n_val = math.ceil(val_fraction * n)
    n_train = n - n_val
    if n_train < 1 or n_val < 1:
        raise DataError(
            f"text of {n} characters is too short to split with val_fraction={val_fraction} "
            f"(train would have {n_train}, val {n_val}; each needs at least 1)"
        )
    return text[:n_train], text[n_train:]
