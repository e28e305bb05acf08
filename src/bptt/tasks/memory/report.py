"""The reports of ``bptt gradients`` and ``bptt memory``: the vanishing gradient, measured.

:func:`gradients` measures the gradient flow through time of fresh (or trained)
models on the memory task, or of a language model's checkpoint, and writes the
numbers (JSON or CSV) and PNGs; :func:`memory` runs the long-range memory sweep
and writes its table. Both take the parsed command line (:mod:`bptt.cli.memory`);
the measurements are :mod:`bptt.diagnostics`', the models and runs
:mod:`bptt.tasks.memory.problems`'s.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from bptt.errors import BpttError

SWEEP_DEFAULTS = {"budget": 2500, "steps": 1000, "batch_size": 32, "lr": 1e-2, "clip": 1.0}


def _train_kwargs(args) -> dict:
    return {k: getattr(args, k) for k in ("budget", "steps", "batch_size", "lr", "clip")} | {
        "threshold": args.threshold
    }


def memory(args: argparse.Namespace) -> int:
    from bptt.diagnostics.plots import plot_memory_sweep
    from bptt.tasks.memory.problems import chance_accuracy
    from bptt.tasks.memory.sweep import markdown_table, results_to_json, sweep

    if any(lag < 1 for lag in args.lags):
        raise BpttError(f"lags must be at least 1; got {args.lags}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = _train_kwargs(args)
    n = len(args.cells) * len(args.lags) * len(args.seeds)
    print(
        f"memory sweep: task {args.task}, {n} runs ({', '.join(args.cells)} x lags "
        f"{args.lags} x seeds {args.seeds}), {args.jobs} at a time; {kwargs}"
    )
    started, done = time.perf_counter(), []

    def report(r):
        done.append(r)
        print(
            f"[{len(done)}/{n}] {r.cell:4s} lag {r.lag:4d} seed {r.seed}: accuracy "
            f"{r.accuracy:.3f} after {r.updates} updates ({r.seconds:.1f} s)",
            flush=True,
        )

    results = sweep(
        args.task, args.cells, args.lags, args.seeds, jobs=args.jobs, progress=report, **kwargs
    )
    elapsed = time.perf_counter() - started
    settings = {"task": args.task, **kwargs, "seeds": args.seeds, "seconds": round(elapsed, 1)}
    (out / "results.json").write_text(
        json.dumps(results_to_json(results, args.threshold, settings), indent=1)
    )
    table = markdown_table(results, args.threshold)
    (out / "table.md").write_text(table + "\n")
    png = plot_memory_sweep(results, args.threshold, chance_accuracy(args.task), out / "memory.png")
    print(
        f"\n{table}\n\nwall time {elapsed:.0f} s; wrote {out / 'results.json'}, "
        f"{out / 'table.md'}" + (f", {png}" if png else "")
    )
    return 0


def _flows_for_models(models: dict, batch, args) -> tuple[dict, dict, dict]:
    from tqdm import tqdm

    from bptt.diagnostics.flow import gradient_flow, recurrent_io
    from bptt.diagnostics.gates import gate_stats
    from bptt.diagnostics.truncation import truncation_bias

    flows, gates, trunc = {}, {}, {}
    for i, (label, model) in enumerate(models.items(), 1):
        started = time.perf_counter()
        layer, x, d, state = recurrent_io(model, batch)
        T, S = x.shape[1], layer.hidden_size * (2 if type(layer).__name__ == "LSTM" else 1)
        _progress(
            f"[{i}/{len(models)}] {label}: T = {T} steps, state size {S}, "
            f"batch {x.shape[0]}, method {args.method}"
        )
        bar = partial(tqdm, leave=False, file=sys.stderr, disable=None, unit="step")  # TTY only
        flows[label] = gradient_flow(layer, x, d, state, method=args.method, progress=bar)
        if flows[label].cell != "rnn":
            gates[label] = gate_stats(layer, x, state)
        windows = [k for k in args.windows if k <= x.shape[1]]
        trunc[label] = truncation_bias(layer, x, d, windows, state)
        _progress(f"[{i}/{len(models)}] {label}: done in {time.perf_counter() - started:.1f} s")
    return flows, gates, trunc


def _progress(line: str) -> None:
    """A progress line on stderr (stdout keeps the report)."""
    print(line, file=sys.stderr, flush=True)


def _fresh_models(args) -> tuple[dict, object]:
    """Models of --cells on the memory task; with --train each is also kept as it started.

    The trained model and its starting point share the seed, so the plot shows what
    training did to the flow beside what the architecture gives at initialisation.
    """
    from bptt.models.memory import MemoryModel
    from bptt.tasks.memory.problems import hidden_for_budget, make_batch, train_run

    models = {}
    for cell in args.cells:
        H = hidden_for_budget(cell, args.task, args.budget)
        # The draw train_run starts from, in float64 so that tiny norms stay above zero.
        fresh = partial(MemoryModel, args.task, cell, H, dtype=np.float64)
        models[f"{cell.upper()} at init"] = fresh(rng=np.random.default_rng(args.seed))
        if args.train:
            result, trained = train_run(args.task, cell, args.lag, args.seed, **_train_kwargs(args))
            label = f"{cell.upper()} trained (acc {result.accuracy:.2f})"
            models[label] = fresh(rng=np.random.default_rng(args.seed))
            models[label].load_state_dict(trained.state_dict())  # trained in float32
            print(
                f"{cell}: trained {result.updates} updates, held-out accuracy {result.accuracy:.3f}"
            )
    batch = make_batch(
        args.task, args.lag, args.examples, np.random.default_rng(args.seed + 7), dtype=np.float64
    )
    return models, batch


def _lm_model(args) -> tuple[dict, object]:
    from bptt.data import TBPTTBatches, builtin_corpus, read_text, split_text
    from bptt.models.language_model import LMBatch
    from bptt.tasks.text.lm import load_model

    model, vocab, config, _ = load_model(args.checkpoint)
    corpus = builtin_corpus() if config.text is None else read_text(config.text)
    ids = vocab.encode(split_text(corpus, config.val_fraction)[1])
    inputs, targets = next(iter(TBPTTBatches(ids, args.examples, args.lag)))
    return {f"{config.cell.upper()} {Path(args.checkpoint).name}": model}, LMBatch(inputs, targets)


def gradients(args: argparse.Namespace) -> int:
    from bptt.diagnostics.plots import plot_gradient_flow, plot_truncation

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models, batch = _lm_model(args) if args.checkpoint else _fresh_models(args)
    flows, gates, trunc = _flows_for_models(models, batch, args)
    report = {
        label: {
            **flows[label].to_dict(),
            "gates": gates[label].to_dict() if label in gates else None,
            "truncation": trunc[label].rows(),
        }
        for label in flows
    }
    written = [_write_report(report, out, args.format)]
    written.append(plot_gradient_flow(flows, out / "gradient_flow.png"))
    written.append(plot_truncation(trunc, out / "truncation.png"))
    print(summary(flows, gates))
    if args.exploding:
        written.append(_exploding(args, out))
    print("wrote " + ", ".join(str(p) for p in written if p))
    return 0


def _relative_range(norms) -> str:
    """'ratio [min, max]': the norm at lag T, and its extremes over all lags, over lag 0's."""
    v = np.asarray(norms, dtype=np.float64)  # (T+1,) indexed by k; lag 0 is k = T
    if not v[-1]:
        return "nan"
    r = v / v[-1]
    return f"{r[0]:.3g} [{r.min():.3g}, {r.max():.3g}]"


def summary(flows: dict, gates: dict) -> str:
    """The table ``bptt gradients`` prints (the README's copy is checked against flow.json)."""
    lines = [
        f"{'model':24s} {'lag':>4s} {'|dE_T/dh_k| at lag T [min, max]':>32s} "
        f"{'|dE_T/dC_k| at lag T [min, max]':>32s} {'|Jacobian prod|':>15s} "
        f"{'half-life':>9s}"
    ]
    for label, f in flows.items():
        ratio_c = "" if f.last_c is None else _relative_range(f.last_c)
        half = "" if label not in gates else str(gates[label].half_life or f"> {f.T}")
        lines.append(
            f"{label:24s} {f.T:4d} {_relative_range(f.last_h):>32s} {ratio_c:>32s} "
            f"{f.jacobian[0]:15.3g} {half:>9s}"
        )
    lines.append(
        "each norm over its value at lag 0 (1: nothing lost), at lag T and its least and "
        "greatest over all lags"
    )
    return "\n".join(lines)


def _write_report(report: dict, out: Path, fmt: str) -> Path:
    if fmt == "json":
        path = out / "flow.json"
        path.write_text(json.dumps(report, indent=1))
        return path
    path = out / "flow.csv"
    rows = [{"model": label, **row} for label, r in report.items() for row in r["steps"]]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def exploding_lines(logs: dict, radius: float) -> list[str]:
    """What ``bptt gradients --exploding`` prints: how each run (no clipping, clipping) ended."""
    lines = []
    for label, log in logs.items():
        if log["diverged_at"]:
            end = f"diverged at update {log['diverged_at']}: {log['reason']}"
        else:
            end = f"trained {log['updates']} updates, held-out accuracy {log['accuracy']:.3f}"
        lines.append(f"exploding RNN (radius {radius}), {label}: {end}")
    return lines


def _exploding(args, out: Path) -> Path | None:
    from bptt.diagnostics.flow import gradient_flow, recurrent_io
    from bptt.diagnostics.plots import plot_exploding
    from bptt.models.memory import MemoryModel
    from bptt.tasks.memory.problems import make_batch
    from bptt.tasks.memory.sweep import exploding_runs, set_spectral_radius, single_threaded

    clip = args.clip or 1.0
    lag = args.exploding_lag
    batch = make_batch(
        "first", lag, args.examples, np.random.default_rng(args.seed + 7), dtype=np.float64
    )
    flows = {}
    for radius in (0.5, args.exploding):
        rng = np.random.default_rng(args.seed)
        model = MemoryModel("first", "rnn", 32, dtype=np.float64, rng=rng)
        set_spectral_radius(model, radius, rng)
        flows[radius] = gradient_flow(*recurrent_io(model, batch)[:3], lags=False)
    logs = single_threaded(
        exploding_runs, radius=args.exploding, lag=lag, seed=args.seed, clip=clip
    )
    print("\n".join(exploding_lines(logs, args.exploding)))
    for log in logs.values():  # JSON has no NaN: a non-finite value is written as null
        for key in ("loss", "grad_norm"):
            log[key] = [v if np.isfinite(v) else None for v in log[key]]
    (out / "exploding.json").write_text(json.dumps(logs, indent=1))
    return plot_exploding(
        {"RNN radius 0.5": flows[0.5]},
        {f"RNN radius {args.exploding}": flows[args.exploding]},
        logs,
        out / "exploding.png",
        clip=clip,
    )
