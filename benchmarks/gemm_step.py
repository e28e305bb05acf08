"""The per-step recurrent product: BLAS (np.matmul) against bptt's packed kernel, one thread.

    python benchmarks/gemm_step.py

For the shapes of rnn_speed.py's LSTM configs, forward (B, H) @ (H, 4H) and
backward (B, 4H) @ (4H, H), prints the fastest of many calls of each, in µs
and GFLOP/s, and the largest difference between the two results (float32
rounding: the sums run in another order). Packing the weight is timed too:
it happens once per sequence, against T products.

Shapes: B batch, H hidden units.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads its BLAS

import numpy as np

from _timing import call_times
from bptt.functional.fast import _gemm

CONFIGS = {"lstm-a": (32, 128), "lstm-b": (64, 512), "lstm-c": (16, 256), "lstm-d": (1, 512)}


def best_us(fn, reps: int = 200) -> float:
    """Fastest of ``reps`` calls after a warm-up, in µs."""
    return min(call_times(fn, reps)) * 1e6


def compare(name: str, a: np.ndarray, w: np.ndarray) -> str:
    """One row: a (M, K) @ wᵀ with w (N, K) by both routes."""
    (M, K), N = a.shape, w.shape[0]
    out_blas, out_packed = np.empty((M, N), np.float32), np.empty((M, N), np.float32)
    w_t = w.T  # (K, N) a view, as the layers pass it
    t_blas = best_us(lambda: np.matmul(a, w_t, out=out_blas))
    panels = _gemm.pack(w)
    t_pack = best_us(lambda: _gemm.pack(w), reps=20)
    t_packed = best_us(lambda: _gemm.matmul_packed(a, panels, out_packed))
    flop = 2 * M * K * N
    diff = np.abs(out_blas - out_packed).max() / np.abs(out_blas).max()
    return (
        f"{name:16s} ({M:3d},{K:4d})@({K:4d},{N:4d})  BLAS {t_blas:7.1f} µs "
        f"{flop / t_blas / 1e3:5.1f} GF/s   packed {t_packed:7.1f} µs {flop / t_packed / 1e3:5.1f} "
        f"GF/s   x{t_blas / t_packed:4.2f}   pack {t_pack:6.0f} µs   max rel diff {diff:.1e}"
    )


def main() -> None:
    if not _gemm.JIT:
        raise SystemExit("numba is absent or BPTT_NO_JIT is set: there is no packed kernel to time")
    rng = np.random.default_rng(0)
    for config, (B, H) in CONFIGS.items():
        w_hh = rng.standard_normal((4 * H, H)).astype(np.float32)  # (4H, H)
        h = rng.standard_normal((B, H)).astype(np.float32)  # (B, H)
        dz = rng.standard_normal((B, 4 * H)).astype(np.float32)  # (B, 4H)
        print(compare(f"{config} fwd", h, w_hh), flush=True)
        print(compare(f"{config} bwd", dz, w_hh.T), flush=True)  # dz @ w_hh = dz @ (w_hhᵀ)ᵀ


if __name__ == "__main__":
    main()
