"""German -> English phrases from Debian's ``trans-de-en`` dictionary (Ding's de-en).

Each dictionary line holds aligned senses, ``German | German :: English |
English``, each with alternatives separated by ``;``. A pair is the first
alternative of a German sense and of its English sense, with the
annotations ({f}, [techn.], (...), /AHU/) removed, lowercased and cut into
words and punctuation:

    "etw. in gang bringen"  ->  "to get sth. under way"

Kept: pairs of 2 to 8 tokens on each side whose every token occurs at least
``min_freq`` times in all the pairs (so a reference never needs ``<unk>``), one
per German phrase. Split at random into train/validation/test. The metric is
corpus BLEU from ``sacrebleu`` (and chrF beside it).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from bptt.config import Config
from bptt.errors import BpttError, DataError
from bptt.tasks.seq2seq import translation
from bptt.tasks.seq2seq.translation import Pair, PairData

NAME = "de-en"
MAIN = "bleu"
DICTIONARY = Path("/usr/share/trans/de-en")  # Debian package trans-de-en
N_VAL, N_TEST = 1000, 2000
MIN_TOKENS, MAX_TOKENS = 2, 8
_NOTES = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\([^)]*\)|<[^>]*>|/[^/\s]*/")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Annotations removed, lowercased, words and punctuation marks as tokens."""
    return _TOKEN.findall(_NOTES.sub(" ", text).lower())


def read_pairs(path: Path | None = None, min_freq: int = 5) -> list[Pair]:
    """Aligned phrase pairs of a Ding-format dictionary (default: Debian's; see above)."""
    path = DICTIONARY if path is None else path
    if not Path(path).exists():
        raise DataError(
            f"the de-en task reads {path}, which is missing: apt-get install trans-de-en"
        )
    pairs: dict[tuple, tuple] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            de_senses, en_senses = german.split(" | "), english.split(" | ")
            if len(de_senses) != len(en_senses):
                continue  # not aligned sense by sense
            for de, en in zip(de_senses, en_senses, strict=True):
                d, e = tokenize(de.split("; ")[0]), tokenize(en.split("; ")[0])
                if MIN_TOKENS <= len(d) <= MAX_TOKENS and MIN_TOKENS <= len(e) <= MAX_TOKENS:
                    pairs.setdefault(tuple(d), tuple(e))
    de_count = Counter(w for d in pairs for w in d)
    en_count = Counter(w for e in pairs.values() for w in e)
    return [
        (list(d), list(e))
        for d, e in pairs.items()
        if all(de_count[w] >= min_freq for w in d) and all(en_count[w] >= min_freq for w in e)
    ]


def prepare_data(config: Config, path: Path | None = None) -> PairData:
    """Phrase pairs split into train/validation/test, and word vocabularies."""
    pairs = read_pairs(path, config.min_freq)
    n_val, n_test = min(N_VAL, len(pairs) // 10), min(N_TEST, len(pairs) // 10)
    train, val, test = translation.split_pairs(pairs, n_val, n_test, np.random.default_rng(0))
    if config.max_examples:
        train = train[: config.max_examples]
    sv, tv = translation.make_vocabularies(train, "word")
    where = f"{path or DICTIONARY}: {len(pairs):,} phrase pairs"
    where += f" (every token seen >= {config.min_freq} times)"
    return PairData(sv, tv, train, val, test, where)


def source_tokens(text: str) -> list[str]:
    return tokenize(text)


def join_source(tokens: list[str]) -> str:
    return " ".join(tokens)


def join_target(tokens: list[str]) -> str:
    return " ".join(tokens)


def metrics(hyps: list[list[str]], refs: list[list[str]]) -> dict:
    """Corpus BLEU and chrF (sacrebleu) of the outputs against the references."""
    try:
        import sacrebleu
    except ImportError:
        raise BpttError("the de-en metric needs sacrebleu: pip install sacrebleu") from None
    h = [" ".join(x) for x in hyps]
    r = [[" ".join(x) for x in refs]]
    # Both sides are already cut into tokens the same way (force: sacrebleu's 13a
    # tokenisation then changes nothing, and it need not warn about it).
    bleu = sacrebleu.corpus_bleu(h, r, force=True).score
    return {MAIN: bleu, "chrf": sacrebleu.corpus_chrf(h, r).score}


PRESET = {
    "out": "runs/de-en",
    "level": "word",  # phrase pairs read word by word
    "cell": "lstm",
    "bidirectional": True,  # the encoder reads the source both ways (bridged to the decoder)
    "min_freq": 5,  # pairs whose every word occurs 5+ times: ~22,000, ~7,000 words a side
    "embed_size": 128,  # a few thousand words on each side
    "hidden_size": 128,
    "batch_size": 64,
    "lr": 3e-3,
    "steps": 2000,  # ~7 epochs of 18,786 phrases; validation loss is lowest near 1000
    "eval_every": 500,
    "max_length": 20,  # phrases are at most 8 words
}

TASK = translation.seq2seq_task(
    sys.modules[__name__],
    PRESET,
    ("level", "min_freq"),
)
