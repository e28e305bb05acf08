"""The training loop: exact resume, checkpoints, divergence, early stopping."""

import json

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint
from bptt.config import Config
from bptt.errors import BpttError
from bptt.tasks.text import lm
from bptt.train import BEST, LATEST

TEXT = "the clouds are in the sky. i grew up in india, i speak fluent hindi. " * 40


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _config(corpus, out, **overrides):
    base = dict(
        text=str(corpus),
        hidden_size=12,
        embed_size=6,
        batch_size=4,
        window=7,
        steps=12,
        eval_every=4,
        out=str(out),
        dtype="float64",
        dropout=0.2,
        num_layers=2,
    )
    return Config(**{**base, **overrides})


def _run(config, out, resume=None, stop_at=None):
    trainer, _ = lm.build_trainer(config, out, progress_bar=False)
    if resume:
        trainer.resume(resume)
    if stop_at:
        trainer.steps = stop_at  # as if interrupted there: the schedule still spans config.steps
    trainer.run()
    return trainer


@pytest.mark.parametrize("stop_at", [4, 8])
def test_resume_gives_identical_parameters(corpus, tmp_path, stop_at):
    """N updates straight == k updates, stop, resume for N - k (params, moments, rng, carry)."""
    straight = _run(_config(corpus, tmp_path / "a"), tmp_path / "a")

    first = _run(_config(corpus, tmp_path / "b"), tmp_path / "b", stop_at=stop_at)
    assert first.progress.step == stop_at
    resumed = _run(_config(corpus, tmp_path / "b"), tmp_path / "b", resume=tmp_path / "b" / LATEST)

    for name, value in straight.model.params.items():
        assert np.array_equal(value, resumed.model.params[name]), name
    a, b = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert straight.rng.bit_generator.state == resumed.rng.bit_generator.state
    for x, y in zip(straight.carry, resumed.carry, strict=True):
        assert np.array_equal(x, y)


def test_windows_cross_epochs_and_state_resets(corpus, tmp_path):
    config = _config(corpus, tmp_path, batch_size=8, window=30, steps=3)
    trainer, _ = lm.build_trainer(config, tmp_path, progress_bar=False)
    per_epoch = len(trainer.batches.windows)
    carries = [trainer.batches.next_batch().carry_state for _ in range(2 * per_epoch)]
    assert carries == ([False] + [True] * (per_epoch - 1)) * 2


def test_checkpoints_and_metrics_are_written(corpus, tmp_path):
    trainer = _run(_config(corpus, tmp_path), tmp_path)
    tensors, meta = load_checkpoint(tmp_path / LATEST)
    assert meta["task"] == "lm" and meta["progress"]["step"] == 12
    assert "model.rnn.weight_ih_l0" in tensors and "carry.0" in tensors and "carry.1" in tensors
    assert (tmp_path / BEST).exists()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert [r["step"] for r in rows if "val_loss" in r] == [4, 8, 12]
    best = min(r["val_loss"] for r in rows if "val_loss" in r)
    assert trainer.progress.best_loss == best


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN on purpose
def test_divergence_stops_with_a_named_step_and_keeps_the_last_checkpoint(corpus, tmp_path):
    trainer, _ = lm.build_trainer(_config(corpus, tmp_path, clip=0.0), tmp_path, progress_bar=False)
    trainer.run()
    before = (tmp_path / LATEST).read_bytes()
    trainer.steps = 20
    trainer.model.params["head.weight"][...] = np.inf
    with pytest.raises(BpttError, match="diverged at update 13"):
        trainer.run()
    assert (tmp_path / LATEST).read_bytes() == before


def test_loss_falls_on_a_repetitive_text(corpus, tmp_path):
    config = _config(
        corpus,
        tmp_path,
        steps=100,
        eval_every=50,
        dropout=0.0,
        num_layers=1,
        hidden_size=32,
        window=16,
        lr=0.01,
    )
    trainer = _run(config, tmp_path)
    history = [h["val_loss"] for h in trainer.progress.history]
    assert history[-1] < 0.5 * np.log(len(set(TEXT))), history
