"""The main job, trained twice: bptt against PyTorch, quality and speed side by side.

Both libraries train the same character language model (``bptt train``'s
defaults, :class:`bptt.config.Config`: embedding 64, 1-layer LSTM of 256 hidden
units, a linear head) on the same data (the built-in corpus, the same
train/validation split) with the same recipe:

    the same initial weights      bptt's model drawn with seed 0, saved to an .npz,
                                  loaded by both workers (torch: load_state_dict)
    the same windows, in order    ``bptt.tasks.text.lm.LMBatches``: B = 32 streams,
                                  window 64, state carried across windows (no
                                  gradient crosses), reset to zero at each epoch
    the same updates              Adam lr 3e-3, lr = schedule(n, base_lr) before
                                  update n (``bptt.train.build_optimizer``: cosine
                                  to lr/10), global-norm clipping at 5.0
                                  (torch: ``clip_grad_norm_``), mean cross-entropy
    the same evaluation           ``bptt.tasks.text.lm.evaluate_ids``: B = 16 streams,
                                  window 256, state carried; torch re-implements it
                                  on the same windows

bptt trains through :meth:`bptt.train.Trainer.update`, the main job's own code
path; torch with nn.Embedding + nn.LSTM(batch_first=True) + nn.Linear and
F.cross_entropy. Each library runs in its own subprocess, one after the other,
with the same thread count (``torch.set_num_threads(n)``;
``OPENBLAS/OMP/MKL_NUM_THREADS=n`` in the environment before NumPy loads).
Training speed is the training loop only (no evaluation): tokens (targets) per
second. A unigram (add-one) and a bigram (add-k) model of the training ids say
what the networks learned beyond symbol counts.

Usage (from the repository root):

    python benchmarks/lm_quality.py                 # 800 updates each, ~10+ min on 2 cores
    python benchmarks/lm_quality.py --quick         # smoke run: tiny model and data, seconds
    python benchmarks/lm_quality.py --steps 200 --threads 1 --json out.json

Shapes: B streams (batch), T window, E embedding, H hidden, V vocabulary.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rnn_speed import THREAD_VARS, blas_info, worker_env  # the sibling speed benchmark

HERE = Path(__file__).resolve().parent
LIBS = ("bptt", "torch")
BAR_PERCENT = 2.0  # the quality bar: validation bpc within this of each other
# --quick: a smoke run in seconds. Smaller network, a slice of the data.
QUICK = {"steps": 20, "hidden_size": 32, "embed_size": 16, "train_ids": 20_000, "val_ids": 4_000}
BIGRAM_KS = (1.0, 0.3, 0.1, 0.03, 0.01)  # add-k candidates, chosen on a training tail


# --------------------------------------------------------------------------- shared


def load_job(workdir: Path) -> tuple[Any, Any, Any, dict]:
    """The job the parent wrote: config, train ids (N,), val ids (M,), initial weights."""
    import numpy as np

    from bptt.config import Config

    config = Config.from_dict(json.loads((workdir / "config.json").read_text()))
    with np.load(workdir / "data.npz") as data:
        train_ids, val_ids = data["train_ids"], data["val_ids"]  # (N,), (M,)
    with np.load(workdir / "init.npz") as init:
        weights = {k: init[k] for k in init.files}
    return config, train_ids, val_ids, weights


def eval_windows(ids):
    """The windows ``bptt.tasks.text.lm.evaluate_ids`` reads, with its default B = 16, T = 256."""
    from bptt.data import TBPTTBatches

    B = max(1, min(16, (len(ids) - 1) // 2))
    return TBPTTBatches(ids, B, min(256, len(ids) // B - 1))


def _log(lib: str, step: int, steps: int, loss: float, tokens: int, elapsed: float) -> None:
    print(
        f"  {lib:5s} update {step:>5d}/{steps}  loss {loss:.4f}  "
        f"bpc {loss / math.log(2):.4f}  {tokens / elapsed:,.0f} tok/s",
        file=sys.stderr,
        flush=True,
    )


def _every(steps: int) -> int:
    return max(1, steps // 8)


# --------------------------------------------------------------------------- workers


def run_bptt(workdir: Path, threads: int) -> dict[str, Any]:
    """Train with the main job's loop (Trainer.update), evaluate with evaluate_ids."""
    import numpy as np

    from bptt.tasks.text.lm import LMBatches, build_model, evaluate_ids
    from bptt.train import Trainer, build_optimizer

    config, train_ids, val_ids, weights = load_job(workdir)
    rng = np.random.default_rng(config.seed)
    model = build_model(config, len(weights["head.bias"]), rng)
    model.load_state_dict(weights)
    optimizer, schedule = build_optimizer(config)
    trainer = Trainer(
        model, optimizer, schedule, LMBatches(train_ids, config.batch_size, config.window),
        evaluate=lambda m: {}, steps=config.steps, out_dir=workdir / "bptt-run", rng=rng,
        clip=config.clip, progress_bar=False,
    )  # fmt: skip

    losses, norms, times, tokens = [], [], [], 0
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        t0 = time.perf_counter()
        loss, norm, n = trainer.update()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
        norms.append(float(norm))
        tokens += n
        if step % _every(config.steps) == 0:
            _log("bptt", step, config.steps, loss, tokens, time.perf_counter() - start)
    train_s = time.perf_counter() - start

    t0 = time.perf_counter()
    metrics = evaluate_ids(model, val_ids)
    eval_s = time.perf_counter() - t0
    np.savez(workdir / "bptt-final.npz", **model.state_dict())
    return {
        "version": _bptt_version(),
        "val_loss": metrics["loss"],
        "val_bpc": metrics["bits_per_symbol"],
        "eval_s": eval_s,
        **_train_record(losses, norms, times, tokens, train_s, threads),
        **blas_info(),
    }


def run_torch(workdir: Path, threads: int) -> dict[str, Any]:
    """The same training in PyTorch: same weights, windows, schedule, clipping, evaluation."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    from bptt.tasks.text.lm import LMBatches
    from bptt.train import build_optimizer

    torch.set_num_threads(threads)
    config, train_ids, val_ids, weights = load_job(workdir)
    if config.dtype != "float32" or config.dropout != 0.0:
        raise SystemExit("the torch worker mirrors float32 without dropout only")
    cells = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    class TorchLM(nn.Module):
        """e = E[x], s = cell(e), logits = V s + c; attribute names match bptt's params."""

        def __init__(self, V: int, E: int, H: int, L: int):
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.rnn = cells[config.cell](E, H, L, batch_first=True)
            self.head = nn.Linear(H, V)

        def forward(self, ids, state=None):
            s, state = self.rnn(self.embedding(ids), state)  # (B, T, H)
            return self.head(s), state  # (B, T, V)

    V, E = weights["embedding.weight"].shape
    model = TorchLM(V, E, config.hidden_size, config.num_layers)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)  # betas, eps: bptt's defaults
    _, schedule = build_optimizer(config)
    batches = LMBatches(train_ids, config.batch_size, config.window)

    def detach(state):
        if state is None:
            return None
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    model.train()
    losses, norms, times, tokens, state = [], [], [], 0, None
    start = time.perf_counter()
    for step in range(config.steps):
        t0 = time.perf_counter()
        batch = batches.next_batch()
        if not batch.carry_state:
            state = None  # an epoch starts: the streams start over from zeros
        x = torch.from_numpy(np.ascontiguousarray(batch.inputs))  # (B, T)
        y = torch.from_numpy(np.ascontiguousarray(batch.targets))  # (B, T)
        logits, state = model(x, state)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip > 0:
            norm = nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()])
            )
        for group in optimizer.param_groups:
            group["lr"] = schedule(step, config.lr)
        optimizer.step()
        state = detach(state)  # truncated BPTT: carry the state, not its gradient
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
        norms.append(float(norm))
        tokens += batch.num_tokens
        if (step + 1) % _every(config.steps) == 0:
            _log("torch", step + 1, config.steps, losses[-1], tokens, time.perf_counter() - start)
    train_s = time.perf_counter() - start

    # evaluate_ids, in torch: summed nats over the same windows, state carried.
    model.eval()
    t0 = time.perf_counter()
    total, count, state = 0.0, 0, None
    with torch.inference_mode():
        for inputs, targets in eval_windows(val_ids):
            logits, state = model(torch.from_numpy(np.ascontiguousarray(inputs)), state)
            y = torch.from_numpy(np.ascontiguousarray(targets))  # (B, T)
            total += F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="sum").item()
            count += targets.size
    eval_s = time.perf_counter() - t0
    final = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(workdir / "torch-final.npz", **final)
    return {
        "version": torch.__version__,
        "val_loss": total / count,
        "val_bpc": total / count / math.log(2),
        "eval_s": eval_s,
        "torch_threads": torch.get_num_threads(),
        **_train_record(losses, norms, times, tokens, train_s, threads),
    }


def _train_record(losses, norms, times, tokens, train_s, threads) -> dict[str, Any]:
    return {
        "threads": threads,
        "train_s": train_s,
        "update_median_s": statistics.median(times),  # robust to a busy moment or a slow first
        "update_times_s": times,
        "train_tokens": tokens,
        "tokens_per_s": tokens / train_s,
        "losses": losses,
        "grad_norms": norms,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "env": {k: os.environ.get(k) for k in THREAD_VARS},
        "loadavg_1min": os.getloadavg()[0],  # other work on the machine skews the times
    }


def _bptt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bptt")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- baselines


def ngram_bits(train_ids, val_ids, V: int) -> dict[str, float]:
    """Bits per symbol of count models of ``train_ids`` on ``val_ids``, vocabulary V.

        unigram (add-one)   p(c)     = (n(c) + 1) / (N + V)
        bigram  (add-k)     p(c | a) = (n(a, c) + k) / (n(a, ·) + k V)

    The bigram's k is chosen from :data:`BIGRAM_KS` on the last 10% of the
    training ids (counted from the first 90%), then the counts are taken from
    all of them; the validation ids are only scored. The bigram scores val[1:]
    given val[:-1], the unigram all of val.
    """
    import numpy as np

    train_ids, val_ids = np.asarray(train_ids), np.asarray(val_ids)
    uni = np.bincount(train_ids, minlength=V).astype(np.float64) + 1.0  # (V,)
    unigram = -np.mean(np.log2(uni[val_ids] / uni.sum()))

    def pair_counts(ids):
        counts = np.zeros((V, V))  # (V, V) n(a, c): a then c
        np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
        return counts

    def bigram_bits(counts, ids, k):
        p = (counts[ids[:-1], ids[1:]] + k) / (counts.sum(axis=1)[ids[:-1]] + k * V)  # (M-1,)
        return float(-np.mean(np.log2(p)))

    cut = int(len(train_ids) * 0.9)
    head, tail = train_ids[:cut], train_ids[cut:]
    k = min(BIGRAM_KS, key=lambda k: bigram_bits(pair_counts(head), tail, k))
    return {
        "unigram_bpc": float(unigram),
        "bigram_bpc": bigram_bits(pair_counts(train_ids), val_ids, k),
        "bigram_k": k,
    }


# --------------------------------------------------------------------------- parent


def make_config(args: argparse.Namespace):
    """bptt train's defaults; --quick shrinks the network; --steps sets the updates."""
    from bptt.config import Config

    config = Config()
    if args.quick:
        config = dataclasses.replace(
            config, steps=QUICK["steps"], hidden_size=QUICK["hidden_size"],
            embed_size=QUICK["embed_size"],
        )  # fmt: skip
    if args.steps is not None:
        config = dataclasses.replace(config, steps=args.steps)
    return config


def write_job(workdir: Path, config, quick: bool) -> dict[str, Any]:
    """Data and the seed-0 initial weights, written once and read by both workers."""
    import numpy as np

    from bptt.tasks.text.lm import build_model, prepare_data

    data = prepare_data(config)
    train_ids, val_ids = data.train_ids, data.val_ids  # (N,), (M,)
    if quick:
        train_ids, val_ids = train_ids[: QUICK["train_ids"]], val_ids[: QUICK["val_ids"]]
    model = build_model(config, len(data.vocab), np.random.default_rng(config.seed))
    (workdir / "config.json").write_text(json.dumps(config.to_dict()))
    np.savez(workdir / "data.npz", train_ids=train_ids, val_ids=val_ids)
    np.savez(workdir / "init.npz", **model.state_dict())
    return {
        "source": data.source,
        "vocab_size": len(data.vocab),
        "train_symbols": len(train_ids),
        "val_symbols": len(val_ids),
        "parameters": model.num_parameters(),
        "train_ids": train_ids,
        "val_ids": val_ids,
    }


def spawn(lib: str, workdir: Path, threads: int) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its progress goes to stderr, its JSON to stdout."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", lib]
    cmd += ["--workdir", str(workdir), "--threads", str(threads)]
    env = worker_env(threads, unset_coretype=False)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the {lib} worker failed (exit {proc.returncode}); see its stderr above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cross_check(workdir: Path, val_ids, config) -> float:
    """torch's final weights scored by bptt's evaluate_ids: rules out an evaluation mismatch."""
    import numpy as np

    from bptt.tasks.text.lm import build_model, evaluate_ids

    with np.load(workdir / "torch-final.npz") as final:
        weights = {k: final[k] for k in final.files}
    model = build_model(config, len(weights["head.bias"]), np.random.default_rng(0))
    model.load_state_dict(weights)
    return evaluate_ids(model, val_ids)["bits_per_symbol"]


def summarize(config, job: dict, results: dict, baselines: dict, cross_bpc: float) -> dict:
    b, t = results["bptt"], results["torch"]
    tail = max(1, min(50, config.steps // 4))  # the last updates' mean training loss

    def tail_bpc(r):
        return sum(r["losses"][-tail:]) / tail / math.log(2)

    first = [r["losses"][0] for r in (b, t)]
    return {
        "val_bpc": {"bptt": b["val_bpc"], "torch": t["val_bpc"]},
        "rel_diff_percent": (b["val_bpc"] - t["val_bpc"]) / t["val_bpc"] * 100.0,
        "within_bar": abs(b["val_bpc"] - t["val_bpc"]) / t["val_bpc"] * 100.0 <= BAR_PERCENT,
        "tokens_per_s": {"bptt": b["tokens_per_s"], "torch": t["tokens_per_s"]},
        "time_ratio_torch_over_bptt": t["train_s"] / b["train_s"],
        "median_update_ratio_torch_over_bptt": t["update_median_s"] / b["update_median_s"],
        "train_tail_bpc": {"bptt": tail_bpc(b), "torch": tail_bpc(t), "updates": tail},
        "first_update_loss": {"bptt": first[0], "torch": first[1]},
        "torch_weights_bptt_eval_bpc": cross_bpc,
        **baselines,
    }


def format_report(config, job: dict, results: dict, s: dict, threads: int, wall: float) -> str:
    b, t = results["bptt"], results["torch"]
    tail = s["train_tail_bpc"]["updates"]
    lines = [
        f"lm_quality  {datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.machine()}, "
        f"{os.cpu_count()} cpus, python {platform.python_version()}, threads={threads}",
        f"data: {job['source']}: {job['vocab_size']} symbols, train {job['train_symbols']:,}, "
        f"validation {job['val_symbols']:,}",
        f"model: {config.cell.upper()} {config.num_layers}x{config.hidden_size}, embedding "
        f"{config.embed_size}, {job['parameters']:,} parameters, {config.dtype}, same initial "
        f"weights (seed {config.seed})",
        f"training: {config.steps} updates of {config.batch_size} streams x {config.window} "
        f"steps (TBPTT), {config.optimizer} lr {config.lr} {config.schedule}, clip {config.clip}",
        "",
        f"{'':22s} {'val bits/char':>13s} {'train tok/s':>11s} {'train s':>8s} "
        f"{'ms/update':>9s} {f'train bpc (last {tail})':>21s} {'eval s':>7s}",
        f"{'unigram (add-one)':22s} {s['unigram_bpc']:13.4f}",
        f"{'bigram (add-k ' + format(s['bigram_k'], 'g') + ')':22s} {s['bigram_bpc']:13.4f}",
    ]
    for name, r in ((f"bptt {b['version']}", b), (f"torch {t['version']}", t)):
        lines.append(
            f"{name:22s} {r['val_bpc']:13.4f} {r['tokens_per_s']:11,.0f} {r['train_s']:8.1f} "
            f"{r['update_median_s'] * 1e3:9.1f} {s['train_tail_bpc'][name.split()[0]]:21.4f} "
            f"{r['eval_s']:7.1f}"
        )
    verdict = "PASS" if s["within_bar"] else "FAIL"
    fb, ft = s["first_update_loss"]["bptt"], s["first_update_loss"]["torch"]
    lines += [
        "",
        f"validation bpc, bptt vs torch: {s['rel_diff_percent']:+.2f}% "
        f"(bar: within {BAR_PERCENT:g}%: {verdict})",
        f"training time torch/bptt: {s['time_ratio_torch_over_bptt']:.2f} (median update: "
        f"{s['median_update_ratio_torch_over_bptt']:.2f}; > 1: bptt is faster)",
        f"same start: first-update loss bptt {fb:.6f}, torch {ft:.6f} (|diff| {abs(fb - ft):.1e})",
        f"cross-check: torch's final weights scored by bptt's evaluate_ids: "
        f"{s['torch_weights_bptt_eval_bpc']:.4f} bits/char",
        f"load average (1 min) at the end of each worker: bptt {b['loadavg_1min']:.2f}, "
        f"torch {t['loadavg_1min']:.2f}; wall {wall:.0f} s",
    ]
    return "\n".join(lines)


def run_parent(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    config = make_config(args)
    with tempfile.TemporaryDirectory(prefix="lm_quality-") as tmp:
        workdir = Path(tmp)
        job = write_job(workdir, config, args.quick)
        print(
            f"lm_quality: {config.steps} updates per library, {args.threads} threads, "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        results = {lib: spawn(lib, workdir, args.threads) for lib in LIBS}
        cross_bpc = cross_check(workdir, job["val_ids"], config)
    baselines = ngram_bits(job["train_ids"], job["val_ids"], job["vocab_size"])
    summary = summarize(config, job, results, baselines, cross_bpc)
    wall = time.perf_counter() - t_start
    report = format_report(config, job, results, summary, args.threads, wall)
    print("\n" + report)

    path = Path(args.json) if args.json else (
        HERE / "results" / f"lm_quality-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in job.items() if k not in ("train_ids", "val_ids")}
    record = {
        "args": vars(args),
        "config": config.to_dict(),
        "data": data,
        "summary": summary,
        "results": results,
        "report": report,
    }
    path.write_text(json.dumps(record, indent=1))
    print(f"results: {path}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=None, help="updates per library (default: 800)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per worker")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 20 updates, LSTM 1x32, a data slice"
    )
    p.add_argument("--json", help="where to write results (default benchmarks/results/...)")
    p.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be at least 1; got {args.steps}")
    if args.threads < 1:
        p.error(f"--threads must be at least 1; got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        # Thread counts must be in the environment before NumPy loads its BLAS.
        for var in THREAD_VARS:
            os.environ[var] = str(args.threads)
        run = run_bptt if args.worker == "bptt" else run_torch
        print(json.dumps(run(Path(args.workdir), args.threads)))
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
