"""Small float64 trainers of each task family, built through the families' own shared
builders, for the data-parallel tests (imported by the ``mpirun`` jobs too)."""

from __future__ import annotations

import os
import types
from dataclasses import replace
from pathlib import Path

import numpy as np

from bptt.config import Config
from bptt.tasks import _examples
from bptt.tasks.seq2seq import translation
from bptt.tasks.seq2seq.translation import PairData, make_vocabularies, split_pairs
from bptt.tasks.speech import ctc_digits
from bptt.tasks.text import lm

STEPS = 20
FAMILIES = ("text", "classify", "seq2seq", "speech")
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def config(family: str, batch_size: int, accumulate: int = 1, **overrides) -> Config:
    base = dict(
        dtype="float64",
        batch_size=batch_size,
        accumulate=accumulate,
        embed_size=6,
        hidden_size=8,
        num_layers=1,
        cell="lstm",
        dropout=0.0,
        clip=0.5,
        optimizer="adam",
        lr=0.01,
        steps=STEPS,
        eval_every=1000,
        seed=3,
        watchdog=60.0,
    )
    if family == "text":
        base |= {"task": "lm", "window": 8}
    elif family == "classify":
        base |= {"task": "sentiment", "bidirectional": True, "pooling": "mean"}
    elif family == "seq2seq":
        base |= {"task": "dates", "bidirectional": True, "attention": "additive"}
    else:
        base |= {"task": "ctc-digits", "bidirectional": True}
    return Config(**(base | overrides))


def trainer(family: str, batch_size: int, out, accumulate: int = 1, **overrides):
    """The family's trainer on fixed synthetic data (the same on every rank)."""
    c = config(family, batch_size, accumulate, **overrides)
    out = Path(out)
    if family == "text":
        out.mkdir(parents=True, exist_ok=True)
        # Every rank writes the same text: each to a file of its own, then an atomic rename,
        # so a rank never reads the file while another has it truncated (seen as "empty").
        part = out / f"text.txt.{os.getpid()}"
        part.write_text(TEXT, encoding="utf-8")
        os.replace(part, out / "text.txt")
        return lm.build_trainer(replace(c, text=str(out / "text.txt")), out, False)[0]
    rng = np.random.default_rng(11)
    if family == "classify":  # token sequences of 3..14 words, 3 classes: bucketed, padded
        inputs = [rng.integers(1, 20, size=rng.integers(3, 15)) for _ in range(60)]
        split = _examples.Split(inputs, [int(x.sum() % 3) for x in inputs])
        data = _examples.TaskData(
            split,
            split.subset(range(8)),
            split.subset(range(8)),
            ["a", "b", "c"],
            "class",
            vocab=_vocab(20),
        )
        return _examples.make_trainer(c, out, False, data, _examples.class_metrics)[0]
    if family == "speech":  # 8 features per frame, 1..3 labels of 10, enough frames for CTC
        labels = [rng.integers(1, 11, size=rng.integers(1, 4)) for _ in range(60)]
        feats = [rng.normal(size=(2 * len(y) + rng.integers(2, 9), 8)) for y in labels]
        split = _examples.Split(feats, labels)
        data = _examples.TaskData(
            split,
            split.subset(range(8)),
            split.subset(range(8)),
            [str(d) for d in range(10)],
            "ctc",
            input_size=8,
        )
        model = ctc_digits.build_model(c, 8, np.random.default_rng(c.seed))
        return _examples.example_trainer(
            c, model, data, ctc_digits.metrics, out, False, np.random.default_rng(c.seed)
        )
    words = ["".join(rng.choice(list("abcdef"), size=rng.integers(2, 7))) for _ in range(80)]
    pairs = [(list(w), list(w[::-1])) for w in dict.fromkeys(words)]  # reverse the letters
    train, val, test = split_pairs(pairs, 5, 5, np.random.default_rng(0))
    sv, tv = make_vocabularies(train, "char")
    task = types.SimpleNamespace(
        NAME="dates",
        prepare_data=lambda _: PairData(sv, tv, train, val, test, "reversed words"),
        metrics=lambda hyps, refs: {"exact": float(hyps == refs)},  # not used: no evaluation
        join_source="".join,
        join_target="".join,
    )
    return translation.build_trainer(task, c, out, progress_bar=False)[0]


def _vocab(n: int):
    from bptt.data import Vocabulary

    return Vocabulary.from_tokens([str(i) for i in range(1, n)], level="word")
