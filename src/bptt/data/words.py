"""Word-level text: a tokenizer and pretrained word vectors in the GloVe text format.

The lecture's "Harry Potter and Hermione Granger invented a new spell." becomes
words, each word an index of a vocabulary capped by frequency
(:meth:`bptt.data.Vocabulary.from_tokens` with ``max_size``); a word outside it
reads as ``<unk>``.

GloVe's format is one word per line followed by its E numbers, separated by
spaces (``the 0.418 0.24968 -0.41242 ...``); word2vec's text format is the same
with a first line "count E", which is skipped.

Shapes: V vocabulary, E embedding width.
"""

from __future__ import annotations

import os
import re

import numpy as np

from bptt.data.vocabulary import Vocabulary
from bptt.errors import DataError

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# a word (letters, digits, inner apostrophes or hyphens), or one other non-space character
_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*|\S", re.UNICODE)


def tokenize(text: str, lower: bool = True) -> list[str]:
    """Words and punctuation marks of ``text``, in order.

    HTML line breaks (IMDB's ``<br />``) count as spaces; a word keeps inner
    apostrophes and hyphens ("don't", "well-made"); every other non-space
    character is a token of its own.

    >>> tokenize("Yesterday, Harry Potter met Hermione Granger.", lower=False)
    ['Yesterday', ',', 'Harry', 'Potter', 'met', 'Hermione', 'Granger', '.']
    """
    text = _HTML_BREAK.sub(" ", text)
    if lower:
        text = text.lower()
    return _TOKEN.findall(text)


def load_word_vectors(
    path: str | os.PathLike[str], vocab: Vocabulary, dtype=np.float32
) -> tuple[dict[int, np.ndarray], int]:
    """The vectors of ``vocab``'s words from a GloVe-format text file.

    Words the vocabulary lacks are skipped without being kept in memory, so a
    large file costs one pass. A word is looked up as it is, then lowercased.

    Returns:
        ({id: vector (E,)} for the words found, E).

    Raises:
        DataError: the file is missing, a line has a different width than the
            first, a number does not parse, or no word of the vocabulary is found.
    """
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read word vectors '{path}': {e.strerror}") from None
    found: dict[int, np.ndarray] = {}
    width = None
    wanted = {t: i for i, t in enumerate(vocab.tokens) if t not in vocab.specials}
    with f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header "count E"
            if len(parts) < 2:
                continue
            if width is None:
                width = len(parts) - 1
            if len(parts) - 1 != width:
                raise DataError(
                    f"{path}:{n}: {len(parts) - 1} numbers after the word, line 1 has {width}"
                )
            word = parts[0]
            i = wanted.get(word, wanted.get(word.lower()))
            if i is None or i in found:
                continue
            try:
                found[i] = np.array(parts[1:], dtype=dtype)  # (E,)
            except ValueError:
                raise DataError(f"{path}:{n}: the vector of {word!r} has a non-number") from None
    if width is None:
        raise DataError(f"word vectors '{path}' hold no vector (expected 'word x1 x2 ...' lines)")
    if not found:
        raise DataError(f"word vectors '{path}' hold none of the {len(wanted)} vocabulary words")
    return found, width
