"""``bptt gradients`` and ``bptt memory``: the vanishing gradient, measured and shown.

bptt gradients [CHECKPOINT] --cells rnn,lstm,gru --lag 50 [--train]   gradient flow report + PNGs
bptt memory --cells rnn,lstm,gru --lags 5,10,20,50,100 --seeds 0,1,2  the long-range memory sweep

Parses and calls; the reports are :mod:`bptt.tasks.memory.report`'s.
"""

from __future__ import annotations

import argparse

from bptt.nn import CELLS
from bptt.tasks.memory.report import SWEEP_DEFAULTS


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _cells(text: str) -> list[str]:
    cells = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise argparse.ArgumentTypeError(f"cells must be among {', '.join(CELLS)}; got {text!r}")
    return cells


def _training_flags(p: argparse.ArgumentParser) -> None:
    d = SWEEP_DEFAULTS
    p.add_argument(
        "--task",
        default="first",
        choices=("first", "adding", "copy"),
        help="memory task (default: first, 'remember the first symbol')",
    )
    for flag, kind, what in (
        ("--budget", int, "parameters per model, all cells"),
        ("--steps", int, "most updates per run"),
        ("--batch-size", int, "sequences per update"),
        ("--lr", float, "Adam learning rate"),
        ("--clip", float, "global-norm clipping (0: off)"),
    ):
        value = d[flag[2:].replace("-", "_")]
        p.add_argument(flag, type=kind, default=value, help=f"{what} (default: {value})")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.95,
        help="held-out accuracy that counts as learned (default: 0.95)",
    )


def add_parsers(sub) -> None:
    """Add ``gradients`` and ``memory`` to the ``bptt`` command's subparsers."""
    p = sub.add_parser("gradients", help="gradient flow through time: JSON/CSV numbers and PNGs")
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="a language-model checkpoint (default: fresh models of --cells on the memory task)",
    )
    p.add_argument(
        "--cells",
        type=_cells,
        default=["rnn", "lstm", "gru"],
        help="comma-separated cells to measure (default: rnn,lstm,gru)",
    )
    p.add_argument(
        "--lag",
        type=int,
        default=50,
        help="lag of the memory task (T = lag + 1); "
        "with a CHECKPOINT, the steps T measured (default: 50)",
    )
    p.add_argument("--train", action="store_true", help="train each model on the task first")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the models, the training and the measured batch (default: 0)",
    )
    p.add_argument(
        "--examples", type=int, default=16, help="batch B the flow is measured on (default: 16)"
    )
    p.add_argument(
        "--method",
        choices=("auto", "exact", "power"),
        default="auto",
        help="spectral norm of the Jacobian products: auto is subspace iteration to a "
        "certified 1e-10 (the SVD where that is cheaper or it does not converge), "
        "equal to exact; power is 30 steps, an estimate (default: auto)",
    )
    p.add_argument(
        "--windows",
        type=_ints,
        default=[1, 2, 5, 10, 20],
        help="truncation windows k for the truncation bias (default: 1,2,5,10,20)",
    )
    p.add_argument(
        "--exploding",
        type=float,
        default=0.0,
        metavar="RADIUS",
        help="also run the exploding case: a tanh RNN with this spectral radius, "
        "trained with and without clipping",
    )
    p.add_argument(
        "--exploding-lag", type=int, default=20, help="lag of the exploding runs (default: 20)"
    )
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="the per-step numbers as flow.json or flow.csv (default: json)",
    )
    p.add_argument(
        "--out",
        default="runs/gradients",
        help="folder for the report and PNGs (default: runs/gradients)",
    )
    _training_flags(p)

    p = sub.add_parser("memory", help="long-range memory sweep: longest lag learned per cell")
    p.add_argument(
        "--cells",
        type=_cells,
        default=["rnn", "lstm", "gru"],
        help="comma-separated cells to train (default: rnn,lstm,gru)",
    )
    p.add_argument(
        "--lags",
        type=_ints,
        default=[5, 10, 20, 50, 100],
        help="comma-separated lags to train at (default: 5,10,20,50,100)",
    )
    p.add_argument(
        "--seeds",
        type=_ints,
        default=[0, 1, 2],
        help="comma-separated seeds, a run each (default: 0,1,2)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, a process each (0: one by one in this process)",
    )
    p.add_argument("--out", default="runs/memory", help="folder for results.json, table.md, PNG")
    _training_flags(p)


def gradients(args: argparse.Namespace) -> int:
    from bptt.tasks.memory import report as memory_report

    return memory_report.gradients(args)


def memory(args: argparse.Namespace) -> int:
    from bptt.tasks.memory import report as memory_report

    return memory_report.memory(args)
