"""What checkpointing through time costs and saves: one LSTM training step, plain vs chunked.

    python benchmarks/checkpoint_cost.py                    # T=1000, B=32, D=H=128
    python benchmarks/checkpoint_cost.py --T 2000 --chunks 20,50,200

For each setting (``checkpoint_steps`` None, then each chunk k) it prints the
median step time (forward + backward, alternating the settings round by round),
the time relative to the plain step, and the peak of NumPy memory traced during
the step (tracemalloc), which is the activations the backward pass keeps.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=1000)
    p.add_argument("--B", type=int, default=32)
    p.add_argument("--H", type=int, default=128)
    p.add_argument("--chunks", default="25,100")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS

    import numpy as np

    import bptt.nn

    rng = np.random.default_rng(0)
    layer = bptt.nn.LSTM(args.H, args.H, rng=rng)
    x = rng.standard_normal((args.B, args.T, args.H)).astype(np.float32)  # (B, T, D)
    G = rng.standard_normal((args.B, args.T, args.H)).astype(np.float32)  # (B, T, H)
    settings = [None, *(int(k) for k in args.chunks.split(","))]

    def step(k):
        layer.checkpoint_steps = k
        layer.forward(x)
        layer.backward(G)

    peaks = {}
    for k in settings:
        step(k)  # warm up (and compile the JIT kernels)
        layer._cache = None
        tracemalloc.start()
        step(k)
        peaks[k] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    times: dict = {k: [] for k in settings}
    for r in range(args.rounds):
        for k in settings if r % 2 == 0 else settings[::-1]:
            t0 = time.perf_counter()
            step(k)
            times[k].append(time.perf_counter() - t0)

    base = statistics.median(times[None])
    load = os.getloadavg()[0]
    print(f"LSTM T={args.T} B={args.B} D=H={args.H}, threads={args.threads}, load {load:.1f}")
    print(f"{'checkpoint_steps':>16s} {'step ms':>9s} {'x plain':>8s} {'peak MB':>8s}")
    rows = []
    for k in settings:
        med = statistics.median(times[k])
        rows.append({"chunk": k, "median_s": med, "rel": med / base, "peak_mb": peaks[k]})
        print(f"{k!s:>16s} {med * 1e3:9.1f} {med / base:8.2f} {peaks[k]:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
