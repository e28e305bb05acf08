"""The memory sweep (cells × lags × seeds, one parameter budget) and the exploding-gradient demo.

``sweep`` trains one :class:`bptt.tasks.memory.problems.MemoryModel` per (cell, lag, seed)
and ``longest_lags`` reads off, per cell and seed, the longest lag whose
held-out accuracy reached the threshold; the table reports its mean over seeds.

Runs go to worker processes started with one BLAS thread each (small matrix
products on a busy machine are many times slower with a thread pool), ``jobs``
at a time (``jobs=0``: one after the other in this process).

``exploding_runs`` trains a tanh RNN whose recurrent matrix has spectral radius
> 1 twice, with :class:`bptt.train.Trainer`'s update: without clipping (the log
says at which update the loss or gradient stopped being finite, or the loss
ran away), and with global-norm clipping (:func:`bptt.optim.clip_grad_norm`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np

from bptt.errors import BpttError
from bptt.models.memory import MemoryModel
from bptt.tasks.memory.problems import (
    RunResult,
    fresh_trainer,
    make_batch,
    run_config,
    train_run,
)

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _run(kwargs: dict) -> RunResult:
    return train_run(**kwargs)[0]


def sweep(
    task: str,
    cells: list[str],
    lags: list[int],
    seeds: list[int],
    jobs: int = 1,
    progress: Callable[[RunResult], None] | None = None,
    **train_kwargs,
) -> list[RunResult]:
    """Train every (cell, lag, seed); return the results in that order.

    ``train_kwargs`` go to :func:`bptt.tasks.memory.problems.train_run` (budget, steps, lr, ...).
    Longest lags are started first, so the slowest runs do not finish last alone.
    """
    if jobs < 0:
        raise BpttError(f"jobs must be 0 (in this process) or more; got {jobs}")
    plan = [
        {"task": task, "cell": c, "lag": lag, "seed": s, **train_kwargs}
        for c in cells
        for lag in lags
        for s in seeds
    ]
    order = sorted(range(len(plan)), key=lambda i: -plan[i]["lag"])
    results: dict[int, RunResult] = {}
    if jobs == 0:  # in this process, one after the other
        for i in order:
            results[i] = _run(plan[i])
            if progress is not None:
                progress(results[i])
        return [results[i] for i in range(len(plan))]
    with _one_thread_pool(jobs) as pool:
        for i, result in pool.imap_unordered(_indexed, [(i, plan[i]) for i in order]):
            results[i] = result
            if progress is not None:
                progress(result)
    return [results[i] for i in range(len(plan))]


@contextmanager
def _one_thread_pool(jobs: int):
    """A pool of ``jobs`` fresh processes whose NumPy uses one BLAS thread each."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    os.environ.update({v: "1" for v in THREAD_VARS})  # read by the workers' NumPy at import
    try:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            yield pool
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


def single_threaded(fn: Callable, **kwargs):
    """``fn(**kwargs)`` in a fresh one-BLAS-thread process: the same sums in the same order on
    any machine, which matters for chaotic (exploding) dynamics."""
    with _one_thread_pool(1) as pool:
        return pool.apply(fn, (), kwargs)


def _indexed(item: tuple[int, dict]) -> tuple[int, RunResult]:
    return item[0], _run(item[1])


def longest_lags(results: list[RunResult], threshold: float) -> dict[str, dict]:
    """Per cell: the longest lag learned (accuracy >= threshold) by each seed, and their mean.

    A seed that learned no lag counts as 0.
    """
    out: dict[str, dict] = {}
    for cell in dict.fromkeys(r.cell for r in results):
        seeds = sorted({r.seed for r in results if r.cell == cell})
        per_seed = [
            max(
                (
                    r.lag
                    for r in results
                    if r.cell == cell and r.seed == s and r.accuracy >= threshold
                ),
                default=0,
            )
            for s in seeds
        ]
        out[cell] = {"per_seed": per_seed, "mean": float(np.mean(per_seed))}
    return out


def markdown_table(results: list[RunResult], threshold: float) -> str:
    """Accuracy per cell and lag (mean over seeds, and how many seeds learned it),
    and the longest lag learned, as a Markdown table."""
    lags = sorted({r.lag for r in results})
    longest = longest_lags(results, threshold)
    head = ["cell", "hidden", "params", *[f"lag {lag}" for lag in lags], "longest lag learned"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, info in longest.items():
        mine = [r for r in results if r.cell == cell]
        cols = [cell.upper(), str(mine[0].hidden_size), f"{mine[0].parameters:,}"]
        for lag in lags:
            accs = [r.accuracy for r in mine if r.lag == lag]
            learned = sum(a >= threshold for a in accs)
            cols.append(f"{np.mean(accs):.2f} ({learned}/{len(accs)})" if accs else "")
        per_seed = ", ".join(str(v) for v in info["per_seed"])
        cols.append(f"**{info['mean']:.1f}** ({per_seed})")
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines)


def results_to_json(results: list[RunResult], threshold: float, settings: dict) -> dict:
    return {
        "settings": settings,
        "threshold": threshold,
        "longest_lag": longest_lags(results, threshold),
        "runs": [asdict(r) for r in results],
    }


def set_spectral_radius(model: MemoryModel, radius: float, rng: np.random.Generator) -> None:
    """Replace the RNN's W by a random Gaussian matrix scaled to spectral radius ``radius``."""
    W = model.rnn.params["weight_hh_l0"]  # (H, H)
    M = rng.standard_normal(W.shape)  # (H, H)
    W[...] = M * (radius / np.max(np.abs(np.linalg.eigvals(M))))


def exploding_runs(
    radius: float = 2.0,
    lag: int = 20,
    steps: int = 400,
    lr: float = 0.5,
    clip: float = 1.0,
    blowup: float = 5.0,
    seed: int = 0,
    hidden_size: int = 32,
    nonlinearity: str = "tanh",
) -> dict[str, dict]:
    """Train the same exploding tanh RNN (task ``first``) without and with clipping.

    Returns, per run ("no clipping", "clipping"): ``loss`` and ``grad_norm``
    (before clipping) per update, ``clipped`` (whether clipping fired),
    ``diverged_at`` (the update at which the loss or the gradient became
    non-finite, or the loss exceeded ``blowup`` times its first value; None if
    never) with ``reason``, and ``accuracy`` on a held-out batch at the end.
    """
    logs: dict[str, dict] = {}
    for label, max_norm in (("no clipping", 0.0), ("clipping", clip)):
        rng = np.random.default_rng(seed)
        model = MemoryModel("first", "rnn", hidden_size, rng=rng, nonlinearity=nonlinearity)
        set_spectral_radius(model, radius, rng)
        held_out = make_batch("first", lag, 256, np.random.default_rng(seed + 1_000_003))
        settings = {"steps": steps, "lr": lr, "clip": float(max_norm)}
        config = run_config("rnn", seed=seed, optimizer="sgd", momentum=0.0, **settings)
        trainer = fresh_trainer(model, config, "first", lag, rng)
        log: dict = {"loss": [], "grad_norm": [], "clipped": [], "diverged_at": None, "reason": ""}
        for _ in range(steps):
            try:
                loss, norm, _ = trainer.update()
            except BpttError as e:  # the trainer's own check: non-finite loss or gradient
                log["diverged_at"], log["reason"] = trainer.progress.step + 1, str(e)
                log["loss"].append(math.nan)
                log["grad_norm"].append(math.nan)
                log["clipped"].append(False)
                break
            log["loss"].append(loss)
            log["grad_norm"].append(norm)
            log["clipped"].append(bool(max_norm and norm > max_norm))
            if loss > blowup * log["loss"][0]:
                log["diverged_at"] = trainer.progress.step
                log["reason"] = (
                    f"loss {loss:.4g} at update {trainer.progress.step} is over {blowup:g} times "
                    f"the first update's {log['loss'][0]:.4g}"
                )
                break
        log["accuracy"] = None if log["diverged_at"] else model.accuracy(held_out)
        log["updates"] = trainer.progress.step
        logs[label] = log
    return logs
