"""Long-range memory benchmarks: generated tasks whose lag you choose.

The lecture's "I grew up in India ... I speak fluent Hindi" in miniature: the
answer depends on something seen ``lag`` steps earlier, with distractors in
between. Three tasks, each a fresh random batch per call (``rng`` passed in):

- ``first``: "remember the first symbol". Step 1 shows one of K symbols, then
  ``lag`` distractors follow, random symbols of the same alphabet (the words
  between "India" and "Hindi" are words too); at the last step (T = lag + 1)
  the model must name the first symbol. Chance accuracy is 1/K.
- ``adding``: the adding problem (Hochreiter & Schmidhuber 1997). Two input
  channels: a value in [0, 1) and a marker; the markers sit at step 1 and at a
  random later step; at step T = lag + 1 the model outputs the sum of the two
  marked values (squared error). An answer counts as correct within 0.04.
- ``copy``: N symbols, then ``lag`` blanks, then a go marker; during the last N
  steps the model writes the N symbols back in order (T = 2N + lag).
  Accuracy is per written symbol.

:class:`~bptt.models.memory.MemoryModel` is the many-to-one / many-to-many
network for them: a recurrent layer (RNN, LSTM or GRU, one layer) and a Linear
head at every step, scored only at the steps the task marks. :func:`train_run`
trains one model with the Trainer every task builds (:func:`bptt.tasks.base.make_trainer`:
clipping, optimizer, divergence check), its settings a :class:`~bptt.config.Config`.

Shapes: B batch, T time steps, D input features, H hidden units, O outputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bptt.config import Config
from bptt.errors import BpttError
from bptt.models.memory import (  # the network and the problems' sizes
    ADDING_TOLERANCE,
    N_COPY,
    N_SYMBOLS,
    TASKS,
    MemoryBatch,
    MemoryModel,
    task_sizes,
)
from bptt.nn import cell_layer
from bptt.tasks.base import make_trainer
from bptt.train import Trainer

# A run's training settings unless told otherwise, as Config fields: a constant rate.
RUN_DEFAULTS = {
    "steps": 1000,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 1e-2,
    "momentum": 0.9,  # for SGD only
    "schedule": "constant",
    "clip": 1.0,
    "eval_every": 50,  # updates between the held-out checks
}


def _one_hot(ids: np.ndarray, D: int, dtype) -> np.ndarray:
    return np.eye(D, dtype=dtype)[ids]  # (B, T, D)


def make_batch(
    task: str, lag: int, batch_size: int, rng: np.random.Generator, dtype=np.float32
) -> MemoryBatch:
    """A fresh batch of ``task`` with the given lag (see the module docstring)."""
    D, _ = task_sizes(task)
    if lag < 1 or batch_size < 1:
        raise BpttError(f"lag and batch size must be at least 1; got lag {lag}, B {batch_size}")
    B = batch_size
    if task == "first":
        T = lag + 1
        first = rng.integers(0, N_SYMBOLS, B)  # (B,)
        ids = np.concatenate([first[:, None], rng.integers(0, N_SYMBOLS, (B, lag))], axis=1)
        targets = np.zeros((B, T), dtype=np.int64)  # (B, T)
        targets[:, -1] = first
    elif task == "adding":
        T = lag + 1
        x = np.zeros((B, T, 2), dtype=dtype)  # (B, T, 2) value, marker
        x[:, :, 0] = rng.random((B, T))
        second = rng.integers(1, T, B)  # (B,) the second marker, after step 1
        x[:, 0, 1] = 1.0
        x[np.arange(B), second, 1] = 1.0
        targets = np.zeros((B, T), dtype=dtype)  # (B, T)
        targets[:, -1] = x[:, 0, 0] + x[np.arange(B), second, 0]
        mask = np.zeros((B, T), dtype=bool)  # (B, T)
        mask[:, -1] = True
        return MemoryBatch(x, targets, mask)
    else:  # copy: symbols, lag blanks, go, N-1 blanks while writing
        blank, go = N_SYMBOLS, N_SYMBOLS + 1
        T = 2 * N_COPY + lag
        symbols = rng.integers(0, N_SYMBOLS, (B, N_COPY))  # (B, N)
        ids = np.full((B, T), blank)  # (B, T)
        ids[:, :N_COPY] = symbols
        ids[:, N_COPY + lag] = go
        targets = np.zeros((B, T), dtype=np.int64)  # (B, T)
        targets[:, -N_COPY:] = symbols
    mask = np.zeros((B, T), dtype=bool)  # (B, T)
    mask[:, -(N_COPY if task == "copy" else 1) :] = True
    return MemoryBatch(_one_hot(ids, D, dtype), targets, mask)


def num_parameters(cell: str, D: int, H: int, O: int) -> int:
    """Parameters of :class:`MemoryModel`: G H (D + H + 2) in the cell, O (H + 1) in the head."""
    return cell_layer(cell).gates * H * (D + H + 2) + O * (H + 1)


def hidden_for_budget(cell: str, task: str, budget: int) -> int:
    """The largest H whose :class:`MemoryModel` has at most ``budget`` parameters."""
    D, O = task_sizes(task)
    H = 1
    while num_parameters(cell, D, H + 1, O) <= budget:
        H += 1
    return H


@dataclass
class _Fresh:
    """An endless source of fresh batches, in the shape :class:`bptt.train.Trainer` reads."""

    task: str
    lag: int
    batch_size: int
    rng: np.random.Generator
    dtype: type

    def next_batch(self) -> MemoryBatch:
        return make_batch(self.task, self.lag, self.batch_size, self.rng, self.dtype)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def run_config(cell: str = "lstm", **settings) -> Config:
    """The :class:`~bptt.config.Config` of one memory run: :data:`RUN_DEFAULTS`, then
    ``settings`` (Config fields; ``dtype`` may be a NumPy type). Its ``task`` is unused:
    a memory run writes no checkpoint."""
    if "dtype" in settings:
        settings["dtype"] = np.dtype(settings["dtype"]).name
    return Config(cell=cell, **{**RUN_DEFAULTS, **settings})


def fresh_trainer(model, config: Config, task: str, lag: int, rng) -> Trainer:
    """The :class:`~bptt.train.Trainer` (:func:`bptt.tasks.base.make_trainer`'s) of ``model``
    on endless fresh batches of ``task`` at ``lag``, with ``config``'s optimizer, steps,
    clipping and batch size; it validates nothing (the caller scores)."""
    batches = _Fresh(task, lag, config.batch_size, rng, np.dtype(config.dtype))
    no_validation = lambda m: {"loss": 0.0}  # noqa: E731
    return make_trainer(config, model, batches, no_validation, ".", False, rng, {}, None)


@dataclass
class RunResult:
    task: str
    cell: str
    lag: int
    seed: int
    hidden_size: int
    parameters: int
    accuracy: float  # on a held-out batch at the end
    updates: int  # updates run (fewer than asked when solved early)
    seconds: float
    diverged_at: int | None = None  # the update where loss or gradient became non-finite


def train_run(
    task: str,
    cell: str,
    lag: int,
    seed: int = 0,
    budget: int = 2500,
    chrono: float | None = 200.0,
    threshold: float = 0.95,
    eval_size: int = 256,
    **settings,
) -> tuple[RunResult, MemoryModel]:
    """Train one model on one task and lag; stop early once held-out accuracy >= threshold.

    ``settings`` are the run's Config fields (steps, batch_size, optimizer, lr, momentum,
    clip, eval_every, dtype) over :data:`RUN_DEFAULTS`. The held-out batch is drawn from
    its own generator (seed + 1,000,003), the same for every cell, so cells are compared
    on the same sequences.
    """
    config = run_config(cell, seed=seed, **settings)
    dtype = np.dtype(config.dtype)
    H = hidden_for_budget(cell, task, budget)
    rng = np.random.default_rng(seed)
    model = MemoryModel(task, cell, H, dtype=dtype, rng=rng, chrono=chrono)
    held_out = make_batch(task, lag, eval_size, np.random.default_rng(seed + 1_000_003), dtype)
    trainer = fresh_trainer(model, config, task, lag, rng)
    started, acc, diverged = time.perf_counter(), 0.0, None
    while trainer.progress.step < config.steps:
        try:
            trainer.update()
        except BpttError:
            diverged = trainer.progress.step + 1
            break
        if trainer.progress.step % config.eval_every == 0:
            acc = model.accuracy(held_out)
            if acc >= threshold:
                break
    acc = 0.0 if diverged else model.accuracy(held_out)
    updates, seconds = trainer.progress.step, time.perf_counter() - started
    parameters = model.num_parameters()
    result = RunResult(task, cell, lag, seed, H, parameters, acc, updates, seconds, diverged)
    return result, model


def chance_accuracy(task: str) -> float:
    """Accuracy of guessing: 1/K for ``first`` and ``copy``; for ``adding``, always saying 1.0."""
    if task == "adding":  # P(|U1 + U2 - 1| < tol) for the triangular density: 2 tol - tol²
        return 2 * ADDING_TOLERANCE - ADDING_TOLERANCE**2
    task_sizes(task)
    return 1.0 / N_SYMBOLS


__all__ = [
    "TASKS",
    "MemoryBatch",
    "MemoryModel",
    "RunResult",
    "chance_accuracy",
    "hidden_for_budget",
    "make_batch",
    "num_parameters",
    "train_run",
]
