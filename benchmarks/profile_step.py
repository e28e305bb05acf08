"""Where one bptt training step spends its time: cProfile, and the matrix products alone.

    python benchmarks/profile_step.py --config lstm-b --threads 2

Prints (1) the step's median time, (2) cProfile's top functions by own time,
(3) the "GEMM floor": the same matrix products as the step, timed alone with the
same shapes, threads and routes as the LSTM runs them, so step - floor is what
elementwise work, copies and Python cost: one input projection over all steps
and one recurrent product per step (each by the route bptt's probe chose for
this machine, functional/fast/_routes.py), and in the backward one per step plus two
over all steps (d_x, and both weight gradients in one product over
[x_t | h_{t-1}], timed in both orientations too). Then the routes bptt took.

Shapes: B batch, T time steps, D input features, H hidden units, G gates.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
from pathlib import Path

from _timing import call_times

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def timed(fn, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` calls after one warm-up call."""
    return statistics.median(call_times(fn, reps))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="lstm-b")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bptt
    from bptt.functional.fast import _routes
    from bptt.functional.fast._gemm import StepProduct, project, weight_grad
    from rnn_speed import CONFIG_BY_NAME, _bptt_setup

    bptt.set_num_threads(args.threads)

    cfg = CONFIG_BY_NAME[args.config]
    step, _ = _bptt_setup(cfg, "train", seed=0)
    total = timed(step, args.reps)
    print(f"{cfg}\nthreads={args.threads}  train step median {total * 1e3:.1f} ms\n")

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.reps):
        step()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.top)
    print(f"cProfile over {args.reps} steps, by own time:")
    print("\n".join(buf.getvalue().splitlines()[3:]))

    B, T, D, H = cfg.B, cfg.T, cfg.D, cfg.H
    GH = GATES[cfg.cell] * H
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32)  # shape

    x, dz, w_ih, w_hh = rand(T * B, D), rand(T * B, GH), rand(GH, D), rand(GH, H)
    xh = rand(T * B, D + H)  # (T*B, D+H) [x_t | h_{t-1}]
    h_t, dz_t = rand(B, H), rand(B, GH)  # (B, H), (B, G*H)
    z, d_x = np.empty((T * B, GH), np.float32), np.empty((T * B, D), np.float32)
    rec, dh = np.empty((B, GH), np.float32), np.empty((B, H), np.float32)
    fwd_rec, bwd_rec = StepProduct(w_hh, B, T), StepProduct(w_hh.T, B, T)  # packed if it applies
    reps = args.reps
    parts = {
        "fwd input projection (T*B, D) @ (D, G*H)": timed(lambda: project(x, w_ih, z), reps),
        "fwd recurrent (B, H) @ (H, G*H), x T": T * timed(lambda: fwd_rec(h_t, rec), reps * 10),
        "bwd recurrent (B, G*H) @ (G*H, H), x T": T * timed(lambda: bwd_rec(dz_t, dh), reps * 10),
        "bwd d_x (T*B, G*H) @ (G*H, D)": timed(lambda: project(dz, w_ih.T, d_x, "dx"), reps),
        "bwd d_weights (G*H, T*B) @ (T*B, D+H)": timed(lambda: weight_grad(dz, xh, False), reps),
        "  the same, orientation gx: dz.T @ xh": timed(lambda: dz.T @ xh, reps),
        "  the same, orientation xg: (xh.T @ dz).T": timed(lambda: (xh.T @ dz).T, reps),
    }
    orientations = {k: parts.pop(k) for k in list(parts) if k.startswith("  ")}
    floor = sum(parts.values())
    flops = 2 * T * B * GH * (D + H) * 3  # forward 1x, backward 2x
    print(f"GEMM floor (the step's matrix products alone, median of {args.reps}):")
    for name, sec in parts.items():
        print(f"  {name:42s} {sec * 1e3:9.1f} ms")
    print(
        f"  {'sum':42s} {floor * 1e3:9.1f} ms = {floor / total:.0%} of the step; "
        f"{flops / floor / 1e9:.0f} GFLOP/s\n"
        f"  everything else (elementwise, copies, Python): {(total - floor) * 1e3:.1f} ms"
    )
    for name, sec in orientations.items():
        print(f"{name:44s} {sec * 1e3:9.1f} ms")
    print("\nroutes bptt took (kind|dtype|MxKxN|threads: route, probe times in µs):")
    for entry, record in _routes.used().items():
        print(f"  {entry:40s} {record['route']:10s} {record.get('times_us', 'from the cache')}")


if __name__ == "__main__":
    main()
