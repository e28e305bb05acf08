"""What the LSTM's gate kernels cost once their histories stream from memory.

    python benchmarks/gate_stream.py                 # lstm-a's shape: B 32, H 128, T 100
    python benchmarks/gate_stream.py --batch 16 --hidden 256 --steps 200   # lstm-c's layer

A time loop's step is a matrix product and a gate kernel. Timed alone, a kernel called
T times on the same slices finds them in the caches; in the loop, step t reads and
writes row t of (T, B, ·) histories that the forward wrote long before (the backward)
or that the input projection wrote (the forward), megabytes more than the caches hold.
This times both kernels of bptt's LSTM (``functional/fast/_fused.py``), one thread, T
calls in a row: on the same slices ("hot"), and walking the histories after 64 MiB
of other reads ("streamed"), the time loop's order (forward t = 0..T-1, backward
t = T-1..0). The difference is the memory traffic's cost, which no product's speed
changes; the bytes each step moves are printed beside it.

Shapes: B batch, H hidden units, T steps; gates (T, B, 4H); states (T+1, B, H).
"""

from __future__ import annotations

import argparse
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from _timing import call_times  # noqa: E402
from bptt.functional.fast import _fused  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--reps", type=int, default=15)
    a = p.parse_args()
    B, H, T = a.batch, a.hidden, a.steps
    rng = np.random.default_rng(0)
    f32 = np.float32

    def rand(*shape):
        return rng.random(shape, dtype=f32)

    gates, rec, bias = rand(T, B, 4 * H), rand(B, 4 * H), rand(4 * H)  # (T, B, 4H), (B, 4H)
    c, h, tanh_c = rand(T + 1, B, H), rand(T + 1, B, H), rand(T, B, H)  # states, (T, B, H)
    d_out, dz = rand(T, B, H), np.zeros((T, B, 4 * H), f32)  # (T, B, H), (T, B, 4H)
    dh, carry, dc = rand(B, H), np.zeros((B, H), f32), rand(B, H)  # (B, H) each
    real, none = np.ones(B, bool), np.zeros((1, 1), f32)  # every row real; nothing kept
    other = np.ones(64 * 2**20 // 4, f32)  # 64 MiB read between runs: caches emptied, clean

    def forward(streamed: bool):
        for t in range(T):
            s = t if streamed else 0
            z = gates[s]  # in place, as the loop does (gates stay in (-1, 1) when rerun)
            _fused._lstm_forward_jit(z, rec, bias, c[s], h[s], real, c[s + 1], tanh_c[s], h[s + 1])

    def backward(streamed: bool):
        for t in range(T - 1, -1, -1):
            s = t if streamed else 0
            args = (gates[s], c[s], tanh_c[s], d_out[s], dh, carry, dc, real, dz[s])
            _fused._lstm_backward_jit(*args, none, none, False)

    moved = {  # bytes a step reads and writes of its histories
        "forward": 4 * B * (4 * H + 4 * H + 3 * H),  # gates read and written; c, tanh C, h
        "backward": 4 * B * (4 * H + 3 * H + 4 * H),  # gates, C, tanh C, ∂E/∂h; ∂E/∂z
    }
    print(f"B {B}, H {H}, T {T}, one thread; median of {a.reps} runs of T calls")
    for name, fn in (("forward", forward), ("backward", backward)):
        hot = np.median(call_times(lambda fn=fn: fn(False), a.reps))
        cold = np.median(call_times(lambda fn=fn: (other.sum(), fn(True)), a.reps)) - np.median(
            call_times(other.sum, a.reps)
        )
        rate = moved[name] * T / max(cold - hot, 1e-9) / 1e9
        print(
            f"  {name:8s} gate kernel: hot {hot * 1e3:.3f} ms, streamed {cold * 1e3:.3f} ms "
            f"(+{(cold - hot) * 1e3:.3f} ms; {moved[name] * T / 2**20:.1f} MiB moved, "
            f"{rate:.1f} GB/s over the difference)"
        )


if __name__ == "__main__":
    main()
