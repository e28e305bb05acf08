"""A vocabulary: symbols (characters or words) and their indices.

The lecture's dictionary: every symbol gets one index ("And = 367"), and a
symbol x_t enters the network as the one-hot vector of its index,

    x_t = one_hot(index(x_t))        (V,), 1 at the symbol's index, 0 elsewhere

Ids are stable and reproducible, so a vocabulary saved with a model means the
same thing when it is loaded:

    - special tokens come first, in the order given (``<pad>`` is 0 when present);
    - a character vocabulary built from text lists its characters sorted by
      code point (the same text always gives the same ids);
    - a vocabulary built from tokens lists them by falling frequency, ties
      broken by the token itself, so ``max_size`` keeps the most frequent.

Special tokens ``<pad>`` ``<unk>`` ``<bos>`` ``<eos>`` are optional. Word
vocabularies include all four by default; a character language model needs
none (its vocabulary is exactly the characters of its corpus) and includes
none by default. A symbol the vocabulary lacks maps to ``<unk>`` when the
vocabulary has one, and otherwise is an error that lists the unknown symbols.

Shapes: V vocabulary size; ``...`` any leading shape of ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from bptt.errors import BpttError, DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
LEVELS = ("char", "word")
_FORMAT = "bptt.Vocabulary"
_VERSION = 1
_MAX_LISTED = 10  # unknown symbols named in an error message


class Vocabulary:
    """Symbols and their indices, for characters (``level='char'``) or words.

    Build one with :meth:`from_text` or :meth:`from_tokens`; the constructor
    takes the final id order as it is (``tokens[i]`` has id i).

    Args:
        tokens: every symbol in id order, specials included.
        level: "char" (text is a sequence of characters; decode joins with "")
            or "word" (text is split on whitespace; decode joins with " ").
        specials: which of ``tokens`` are special tokens (a subset of
            ``<pad> <unk> <bos> <eos>``); they are never counted as text.
    """

    def __init__(
        self, tokens: Sequence[str], level: str = "char", specials: Sequence[str] = ()
    ) -> None:
        if level not in LEVELS:
            raise BpttError(f"level must be one of {LEVELS}, got {level!r}")
        tokens = tuple(tokens)
        specials = tuple(specials)
        if not tokens:
            raise BpttError("a vocabulary needs at least one token, got none")
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise BpttError(f"tokens must be non-empty strings, got {t!r}")
        duplicates = sorted(t for t, c in Counter(tokens).items() if c > 1)
        if duplicates:
            raise BpttError(f"tokens must be unique, these repeat: {_listing(duplicates)}")
        for s in specials:
            if s not in SPECIALS:
                raise BpttError(f"special tokens must be among {SPECIALS}, got {s!r}")
            if s not in tokens:
                raise BpttError(f"special token {s!r} is not among the tokens")
        if level == "char":
            long = [t for t in tokens if len(t) != 1 and t not in specials]
            if long:
                raise BpttError(f"a char vocabulary holds single characters, got {_listing(long)}")
        self._tokens = tokens
        self._level = level
        self._specials = specials
        self._index = {t: i for i, t in enumerate(tokens)}

    # -- construction -------------------------------------------------------

    @classmethod
    def from_text(
        cls, text: str, level: str = "char", specials: Sequence[str] | None = None
    ) -> Vocabulary:
        """Every distinct character (or whitespace-separated word) of ``text``.

        Characters are sorted by code point; words follow :meth:`from_tokens`.
        ``specials=None`` means none for "char" and all four for "word".
        """
        if level not in LEVELS:
            raise BpttError(f"level must be one of {LEVELS}, got {level!r}")
        if not isinstance(text, str):
            raise BpttError(f"text must be a str, got {type(text).__name__}")
        if level == "word":
            return cls.from_tokens(
                text.split(), specials=SPECIALS if specials is None else specials
            )
        specials = () if specials is None else tuple(specials)
        chars = sorted(set(text) - set(specials))
        if not chars:
            raise BpttError("text is empty, a vocabulary needs at least one character")
        return cls([*specials, *chars], level="char", specials=specials)

    @classmethod
    def from_tokens(
        cls,
        tokens: Iterable[str],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = SPECIALS,
        level: str = "word",
    ) -> Vocabulary:
        """A vocabulary of the tokens seen at least ``min_freq`` times.

        Order: ``specials`` first, then tokens by falling count, ties broken by
        the token (reproducible). ``max_size`` caps the total size, specials
        included, keeping the most frequent tokens.
        """
        if min_freq < 1:
            raise BpttError(f"min_freq must be at least 1, got {min_freq}")
        specials = tuple(specials)
        if max_size is not None and max_size < max(len(specials), 1):
            raise BpttError(
                f"max_size {max_size} leaves no room: there are {len(specials)} special tokens"
            )
        counts = Counter(tokens)
        for s in specials:
            counts.pop(s, None)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max_size - len(specials)]
        if not kept and not specials:
            raise BpttError(f"no token occurs at least min_freq={min_freq} times")
        return cls([*specials, *kept], level=level, specials=specials)

    # -- lookups --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self._tokens, self._level, self._specials) == (
            other._tokens,
            other._level,
            other._specials,
        )

    def __hash__(self) -> int:
        return hash((self._tokens, self._level, self._specials))

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, level={self._level!r}, specials={self._specials})"

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every symbol, in id order."""
        return self._tokens

    @property
    def level(self) -> str:
        return self._level

    @property
    def specials(self) -> tuple[str, ...]:
        return self._specials

    @property
    def pad_id(self) -> int | None:
        return self._special_id(PAD)

    @property
    def unk_id(self) -> int | None:
        return self._special_id(UNK)

    @property
    def bos_id(self) -> int | None:
        return self._special_id(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._special_id(EOS)

    def _special_id(self, s: str) -> int | None:
        return self._index[s] if s in self._specials else None

    def index(self, token: str) -> int:
        """The id of ``token`` (the lecture's "And = 367"); ``<unk>``'s id if unknown."""
        i = self._index.get(token)
        if i is None:
            if self.unk_id is None:
                raise BpttError(f"{token!r} is not in the vocabulary (size {len(self)})")
            return self.unk_id
        return i

    def token(self, i: int) -> str:
        """The symbol with id ``i``."""
        if not 0 <= i < len(self):
            raise BpttError(f"id {i} is out of range, the vocabulary has ids 0..{len(self) - 1}")
        return self._tokens[int(i)]

    # -- encoding -------------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """Text as symbols: its characters ("char") or its whitespace-separated words."""
        return list(text) if self._level == "char" else text.split()

    def encode(self, text: str | Sequence[str], name: str = "text") -> np.ndarray:
        """Ids of the symbols of ``text`` (a str, split by :meth:`split`, or tokens).

        Unknown symbols become ``<unk>``; without one they raise a BpttError
        naming them ("``name`` has characters not in the vocabulary: 'é', '€'").

        Returns:
            ids (N,) int64.
        """
        symbols = self.split(text) if isinstance(text, str) else list(text)
        get = self._index.get
        ids = np.fromiter((get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))  # (N,)
        unknown = ids < 0  # (N,)
        if unknown.any():
            if self.unk_id is not None:
                ids[unknown] = self.unk_id
            else:
                missing = list(dict.fromkeys(s for s in symbols if s not in self._index))
                kind = "characters" if self._level == "char" else "tokens"
                raise BpttError(f"{name} has {kind} not in the vocabulary: {_listing(missing)}")
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray, skip_specials: bool = False) -> str:
        """The text of ``ids`` (N,): characters joined by "", words by " "."""
        ids = self._check_ids(ids)
        if ids.ndim != 1:
            raise BpttError(f"decode takes ids of shape (N,), got shape {ids.shape}")
        symbols = [self._tokens[i] for i in ids.tolist()]
        if skip_specials:
            symbols = [s for s in symbols if s not in self._specials]
        return ("" if self._level == "char" else " ").join(symbols)

    def one_hot(self, ids: Iterable[int] | np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """The lecture's x_t: one-hot rows for ``ids`` (...) -> (..., V)."""
        ids = self._check_ids(ids)
        out = np.zeros((*ids.shape, len(self)), dtype=dtype)  # (..., V)
        np.put_along_axis(out, ids[..., None], 1, axis=-1)
        return out

    def _check_ids(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))  # (...)
        if ids.size == 0:
            return ids.astype(np.int64)
        if not np.issubdtype(ids.dtype, np.integer):
            raise BpttError(f"ids must be integers, got dtype {ids.dtype}")
        bad = ids[(ids < 0) | (ids >= len(self))]
        if bad.size:
            raise BpttError(
                f"ids must be in 0..{len(self) - 1} (vocabulary size {len(self)}), "
                f"got {_listing(np.unique(bad).tolist())}"
            )
        return ids

    # -- saving ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (saved inside checkpoints); :meth:`from_dict` reverses it."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "level": self._level,
            "specials": list(self._specials),
            "tokens": list(self._tokens),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Vocabulary:
        """The vocabulary :meth:`to_dict` saved; a DataError names what is wrong."""
        if not isinstance(d, dict):
            raise DataError(f"a vocabulary dict must be a dict, got {type(d).__name__}")
        missing = [k for k in ("format", "version", "level", "specials", "tokens") if k not in d]
        if missing:
            raise DataError(f"vocabulary dict lacks the keys {missing}, has {sorted(d)}")
        if d["format"] != _FORMAT:
            raise DataError(f"vocabulary dict has format {d['format']!r}, expected {_FORMAT!r}")
        if d["version"] != _VERSION:
            raise DataError(
                f"vocabulary dict has version {d['version']!r}, this bptt reads {_VERSION}"
            )
        for key in ("tokens", "specials"):
            if not isinstance(d[key], list) or not all(isinstance(t, str) for t in d[key]):
                raise DataError(f"vocabulary dict's {key!r} must be a list of str")
        try:
            return cls(d["tokens"], level=d["level"], specials=d["specials"])
        except DataError:
            raise
        except BpttError as e:
            raise DataError(f"vocabulary dict is invalid: {e}") from None


def _listing(items: Sequence[Any]) -> str:
    """'a', 'b', 'c' (and 4 more): a short list for an error message."""
    shown = ", ".join(repr(x) for x in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")
