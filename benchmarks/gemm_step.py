"""The per-step recurrent product: BLAS (np.matmul) against bptt's compiled kernels.

    python benchmarks/gemm_step.py                # one thread
    python benchmarks/gemm_step.py --threads 2    # BLAS, packed and dot on two threads

For the shapes of rnn_speed.py's LSTM configs, forward (B, H) @ (H, 4H) and
backward (B, 4H) @ (4H, H), times the routes interleaved (one call of each in
turn, many rounds, so a busy machine slows all of them alike) and prints each
one's median and fastest call in µs, the median in GFLOP/s, and the largest
difference from BLAS's result (float32 rounding: the sums run in another order).
The packed kernel runs from B = 4, the dot kernel (w's rows in place) below.
Packing the weight is timed too: it happens once per sequence, against T products.

Shapes: B batch, H hidden units.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if __name__ == "__main__":  # the thread count, before NumPy loads its BLAS
    _ask = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _ask.add_argument("--threads", type=int, default=1)
    _ask.add_argument("--rounds", type=int, default=300)
    ARGS = _ask.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)

import numpy as np

from _timing import call_times
from bptt.functional.fast import _gemm

CONFIGS = {
    "lstm-a": (32, 128),
    "lstm-b": (64, 512),
    "lstm-c": (16, 256),
    "lstm-d": (1, 512),
    "lstm-e": (1, 256),
}


def best_us(fn, reps: int = 200) -> float:
    """Fastest of ``reps`` calls after a warm-up, in µs."""
    return min(call_times(fn, reps)) * 1e6


def interleaved(runs: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of each call, one call of every route per round, after a warm-up of each."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def compare(name: str, a: np.ndarray, w: np.ndarray, threads: int, rounds: int) -> str:
    """One row: a (M, K) @ wᵀ with w (N, K) by every route that applies."""
    (M, K), N = a.shape, w.shape[0]
    w_t = w.T  # (K, N) a view, as the layers pass it
    outs = {}

    def out(route):
        return outs.setdefault(route, np.empty((M, N), np.float32))  # (M, N)

    runs = {"BLAS": lambda: np.matmul(a, w_t, out=out("BLAS"))}
    extra = ""
    if _gemm.usable(w.dtype, N, M):
        panels = _gemm.pack(w)
        extra = f"   pack {best_us(lambda: _gemm.pack(w), reps=20):6.0f} µs"
        runs["packed"] = lambda: _gemm.matmul_packed(a, panels, out("packed"), threads > 1)
    elif _gemm.dot_usable(w.dtype, M):
        rows = np.ascontiguousarray(w)  # (N, K)
        runs["dot"] = lambda: _gemm.matmul_dot(a, rows, out("dot"), threads > 1)
    times = interleaved(runs, rounds)
    flop = 2 * M * K * N
    cells = []
    for route, ts in times.items():
        med = statistics.median(ts) * 1e6
        diff = np.abs(out(route) - out("BLAS")).max() / np.abs(out("BLAS")).max()
        cells.append(
            f"{route} {med:7.1f} µs (min {min(ts) * 1e6:6.1f}) {flop / med / 1e3:5.1f} GF/s"
            + ("" if route == "BLAS" else f" diff {diff:.0e}")
        )
    return f"{name:11s} ({M:2d},{K:4d})@({K:4d},{N:4d})  " + "   ".join(cells) + extra


def main() -> None:
    if not _gemm.JIT:
        raise SystemExit("numba is absent or BPTT_NO_JIT is set: there are no kernels to time")
    import bptt

    bptt.set_num_threads(ARGS.threads)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"threads {ARGS.threads}, {ARGS.rounds} rounds; load average {load}", file=sys.stderr)
    rng = np.random.default_rng(0)
    for config, (B, H) in CONFIGS.items():
        w_hh = rng.standard_normal((4 * H, H)).astype(np.float32)  # (4H, H)
        h = rng.standard_normal((B, H)).astype(np.float32)  # (B, H)
        dz = rng.standard_normal((B, 4 * H)).astype(np.float32)  # (B, 4H)
        for side, a, w in (("fwd", h, w_hh), ("bwd", dz, w_hh.T)):  # dz @ w_hh = dz @ (w_hhᵀ)ᵀ
            print(compare(f"{config} {side}", a, w, ARGS.threads, ARGS.rounds), flush=True)


if __name__ == "__main__":
    main()
