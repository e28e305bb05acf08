"""Exact resume: stop anywhere (mid-epoch, at an epoch boundary, by Ctrl-C), resume, and
get bit for bit what an uninterrupted run gets; non-finite updates never reach a checkpoint."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint
from bptt.cli import main
from bptt.config import Config
from bptt.errors import BpttError, CheckpointError, TrainingInterrupted
from bptt.tasks.text import lm
from bptt.train import LATEST

TEXT = "the clouds are in the sky. i grew up in india, i speak fluent hindi. " * 8
PER_EPOCH = 8  # windows per epoch for the config below (asserted)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _config(corpus, **overrides):
    base = dict(
        text=str(corpus),
        hidden_size=8,
        embed_size=4,
        batch_size=4,
        window=16,
        steps=20,
        eval_every=6,
        dtype="float64",
        dropout=0.2,
        num_layers=2,
        cell="lstm",
    )
    return Config(**{**base, **overrides})


def _trainer(config, out, resume=None, steps=None):
    trainer, _ = lm.build_trainer(config, out, progress_bar=False)
    if resume:
        trainer.resume(resume)
    if steps is not None:
        trainer.steps = steps  # as if stopped there: the schedule still spans config.steps
    return trainer


def assert_same_run(a, b):
    """Parameters, optimizer moments and counters, schedule position, RNG, data, carry."""
    for name, value in a.model.params.items():
        assert np.array_equal(value, b.model.params[name]), name
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    assert a.optimizer.lr == b.optimizer.lr  # the schedule's position
    assert a.progress.step == b.progress.step
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.batches.state_dict() == b.batches.state_dict()
    carry_a = a.carry if isinstance(a.carry, tuple) else (a.carry,)
    carry_b = b.carry if isinstance(b.carry, tuple) else (b.carry,)
    assert len(carry_a) == len(carry_b)
    for x, y in zip(carry_a, carry_b, strict=True):
        assert (x is None and y is None) or np.array_equal(x, y)


@pytest.mark.parametrize(
    "cell, stop_at",
    [
        ("lstm", 3),  # mid-epoch, before any evaluation
        ("gru", PER_EPOCH),  # at the epoch boundary: the next window starts from zeros
        ("rnn", PER_EPOCH + 1),  # just after it
        ("lstm", 2 * PER_EPOCH - 1),  # mid second epoch, after evaluations
    ],
)
def test_stop_anywhere_and_resume_gives_the_uninterrupted_run(corpus, tmp_path, cell, stop_at):
    config = _config(corpus, cell=cell)
    straight = _trainer(config, tmp_path / "a")
    assert len(straight.batches.windows) == PER_EPOCH
    straight.run()

    first = _trainer(config, tmp_path / "b", steps=stop_at)
    first.run()
    _, meta = load_checkpoint(tmp_path / "b" / LATEST)
    assert meta["progress"]["step"] == stop_at
    assert meta["data_position"]["epoch"] == stop_at // PER_EPOCH
    assert meta["data_position"]["window"] == stop_at % PER_EPOCH

    resumed = _trainer(config, tmp_path / "b", resume=tmp_path / "b" / LATEST)
    resumed.run()
    assert_same_run(straight, resumed)


def test_resume_twice_in_a_row(corpus, tmp_path):
    """Stop, resume, stop again, resume: still the uninterrupted run."""
    config = _config(corpus, dropout=0.0, cell="gru")
    straight = _trainer(config, tmp_path / "a")
    straight.run()
    _trainer(config, tmp_path / "b", steps=5).run()
    _trainer(config, tmp_path / "b", resume=tmp_path / "b" / LATEST, steps=13).run()
    resumed = _trainer(config, tmp_path / "b", resume=tmp_path / "b" / LATEST)
    resumed.run()
    assert_same_run(straight, resumed)


def test_ctrl_c_saves_a_whole_update_and_resumes_exactly(corpus, tmp_path):
    """`bptt train` sent SIGINT at a random moment: exit 130, one line, latest = the updates
    logged, and resuming it gives the parameters of a run never interrupted."""
    out = tmp_path / "run"
    flags = ["--text", str(corpus), "--out", str(out), "--hidden-size", "8", "--embed-size", "4"]
    flags += ["--batch-size", "4", "--window", "16", "--steps", "100000", "--eval-every", "1000"]
    flags += ["--num-layers", "2", "--dropout", "0.2", "--dtype", "float64"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bptt", "train", "--quiet", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "metrics.jsonl"
    wanted = int(np.random.default_rng(6).integers(3, 12))  # updates to wait for
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= wanted:
                break
            time.sleep(0.005)
        time.sleep(float(np.random.default_rng(7).uniform(0, 0.01)))  # land mid-update, maybe
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    logged = len(log.read_text().splitlines())
    _, meta = load_checkpoint(out / LATEST)
    stopped = meta["progress"]["step"]
    assert stopped == logged >= wanted  # the update in progress finished, then it saved
    assert err.strip().splitlines()[-1] == (
        f"bptt: interrupted; saved {out / LATEST} (update {stopped}); "
        f"continue with: bptt train --resume {out / LATEST}"
    )

    config = Config.from_dict(meta["config"])
    straight = _trainer(config, tmp_path / "a", steps=stopped + 3)
    straight.run()
    resumed = _trainer(config, out, resume=out / LATEST, steps=stopped + 3)
    resumed.run()
    assert_same_run(straight, resumed)


def test_ctrl_c_in_process_raises_after_saving(corpus, tmp_path, monkeypatch):
    """KeyboardInterrupt between updates: latest is saved with that step, then it re-raises;
    the CLI turns it into exit code 130."""
    trainer = _trainer(_config(corpus), tmp_path)
    real = trainer.update
    calls = []

    def update():
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while update 5 runs
        return real()

    monkeypatch.setattr(trainer, "update", update)
    # Python's own handler, as an interactive run has; CI may start with SIGINT ignored.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
        assert load_checkpoint(tmp_path / LATEST)[1]["progress"]["step"] == 5
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_second_ctrl_c_stops_at_once_and_saves_nothing_half_done(corpus, tmp_path):
    """Two SIGINTs inside update 5: it stops there; latest stays the whole save of update 3."""
    trainer = _trainer(_config(corpus, eval_every=3), tmp_path)
    real = trainer.model.loss_and_grads
    calls = []

    def loss_and_grads(batch, state, rng):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # the first: finish the update, then stop
            os.kill(os.getpid(), signal.SIGINT)  # the second: stop now, mid-update
        return real(batch, state, rng)

    trainer.model.loss_and_grads = loss_and_grads
    with pytest.raises(TrainingInterrupted) as e:
        trainer.run()
    _, meta = load_checkpoint(tmp_path / LATEST)
    assert meta["progress"]["step"] == 3 and meta["data_position"]["window"] == 3
    assert str(e.value) == (
        f"update 5 was cut short by a second Ctrl-C: not saved; the last checkpoint is "
        f"{tmp_path / LATEST} (update 3); continue with: bptt train --resume {tmp_path / LATEST}"
    )
    assert (e.value.saved, e.value.step) == (tmp_path / LATEST, 3)


def test_a_second_ctrl_c_before_any_save_says_none_was_saved(corpus, tmp_path, capsys):
    """Two SIGINTs in update 2, before the first checkpoint (update 6): the CLI says so."""
    real = lm.TASK.build_trainer
    calls = []

    def build_trainer(config, out, progress_bar=True):
        trainer, summary = real(config, out, progress_bar=progress_bar)
        step = trainer.model.loss_and_grads

        def loss_and_grads(batch, state, rng):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            return step(batch, state, rng)

        trainer.model.loss_and_grads = loss_and_grads
        return trainer, summary

    flags = ["--text", str(corpus), "--out", str(tmp_path / "run"), "--hidden-size", "8"]
    flags += ["--batch-size", "4", "--window", "16", "--steps", "20", "--eval-every", "6"]
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(lm, "TASK", dataclasses.replace(lm.TASK, build_trainer=build_trainer))
            assert main(["train", "--quiet", *flags]) == 130
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err
    assert err.endswith(
        "bptt: interrupted; update 2 was cut short by a second Ctrl-C: not saved; "
        "no checkpoint was saved (the first is written at update 6)\n"
    ), err
    assert not (tmp_path / "run" / LATEST).exists()


def test_a_ctrl_c_during_the_last_save_waits_for_it(corpus, tmp_path, monkeypatch):
    """A Ctrl-C that lands while the interrupted run saves does not cut the save short:
    the checkpoint is whole and holds the update the message names."""
    trainer = _trainer(_config(corpus), tmp_path)
    real_update, real_save = trainer.update, trainer.save
    calls = []

    def update():
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)  # stop after update 4
        return real_update()

    def save(name):
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)  # and again while it saves
        return real_save(name)

    monkeypatch.setattr(trainer, "update", update)
    monkeypatch.setattr(trainer, "save", save)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as e:
            trainer.run()
    finally:
        signal.signal(signal.SIGINT, before)
    assert e.value.step == 4 and "saved" in str(e.value)
    assert load_checkpoint(tmp_path / LATEST)[1]["progress"]["step"] == 4
    assert not list(tmp_path.glob(".*tmp-*"))  # no temporary file left behind


def _make_nan(trainer, at_updates):
    real = trainer.model.loss_and_grads
    count = []

    def loss_and_grads(batch, state, rng):
        count.append(1)
        loss, grads, final = real(batch, state, rng)
        if len(count) in at_updates:
            grads["rnn.weight_hh_l1"][0, 0] = np.nan
        return loss, grads, final

    trainer.model.loss_and_grads = loss_and_grads


def test_a_non_finite_gradient_stops_naming_step_and_parameter(corpus, tmp_path):
    trainer = _trainer(_config(corpus, clip=0.0), tmp_path)
    _make_nan(trainer, {8})
    with pytest.raises(BpttError, match=r"update 8: .*\['rnn.weight_hh_l1'\]") as e:
        trainer.run()
    assert "last good checkpoint is kept" in str(e.value)
    _, meta = load_checkpoint(tmp_path / LATEST)  # loads: finite, from update 6
    assert meta["progress"]["step"] == 6
    assert all(np.isfinite(v).all() for v in trainer.model.params.values())


def test_skip_non_finite_skips_then_stops_after_too_many(corpus, tmp_path):
    trainer = _trainer(_config(corpus, skip_non_finite=2), tmp_path)
    _make_nan(trainer, {3, 4, 9, 10, 11})
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    trainer.steps = 2
    trainer.run()
    trainer.steps = 4
    at_2 = {k: v.copy() for k, v in trainer.model.params.items()}
    trainer.run()  # updates 3 and 4 are skipped: nothing moves
    for k in before:
        assert np.array_equal(trainer.model.params[k], at_2[k]), k
        assert not np.array_equal(at_2[k], before[k]), k
    assert trainer.carry is None  # the streams start over after a skipped update
    trainer.steps = 20
    with pytest.raises(BpttError, match="update 11"):  # the third in a row
        trainer.run()


def test_non_finite_weights_are_never_saved(corpus, tmp_path):
    trainer = _trainer(_config(corpus, steps=6), tmp_path)
    trainer.run()
    before = (tmp_path / LATEST).read_bytes()
    trainer.model.params["head.bias"][3] = np.inf
    with pytest.raises(CheckpointError, match=r"'model.head.bias' has 1 non-finite"):
        trainer.save(LATEST)
    assert (tmp_path / LATEST).read_bytes() == before


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("rng"), "lacks the metadata field 'rng'"),
        (lambda m: m.update(progress=[]), "field 'progress' must be an object, got a list"),
        (lambda m: m["progress"].update(step="7"), "'step' must be an integer, got a string"),
        (lambda m: m["progress"].update(extra=1), r"unknown progress fields \['extra'\]"),
        (lambda m: m["rng"].update(bit_generator="MT19937"), "field 'rng' does not fit"),
        (lambda m: m["rng"]["state"].update(state="x"), "field 'rng' does not fit"),
        (lambda m: m["data_position"].update(window=999), "field 'data_position'"),
        (lambda m: m["data_position"].update(data_crc32=1), "data_crc32"),
        (lambda m: m["optimizer"].update(optimizer="sgd"), "field 'optimizer' does not fit"),
        (lambda m: m["optimizer"].update(lr="fast"), "field 'optimizer' does not fit"),
    ],
)
def test_resume_checks_every_field(corpus, tmp_path, change, message):
    from bptt.checkpoint import save_checkpoint

    trainer = _trainer(_config(corpus, steps=6), tmp_path)
    trainer.run()
    tensors, meta = load_checkpoint(tmp_path / LATEST)
    change(meta)
    bad = tmp_path / "edited.safetensors"
    save_checkpoint(bad, tensors, json.loads(json.dumps(meta)))
    with pytest.raises(CheckpointError, match=message) as e:
        _trainer(_config(corpus, steps=6), tmp_path / "new", resume=bad)
    assert "edited.safetensors" in str(e.value)


def test_resume_with_weights_of_another_shape_names_the_weight(corpus, tmp_path):
    _trainer(_config(corpus, steps=6), tmp_path).run()
    main_args = ["train", "--quiet", "--resume", str(tmp_path / LATEST), "--hidden-size", "9"]
    assert main(main_args) == 2  # the CLI refuses to change the architecture on resume
    with pytest.raises(CheckpointError, match="field 'model weights' does not fit"):
        _trainer(_config(corpus, hidden_size=9), tmp_path / "x", resume=tmp_path / LATEST)
