"""Does the LSTM forward gain from projecting its inputs a few steps at a time?

    python benchmarks/chunked_projection.py a c b     # shapes below; one thread

The forward's input projection writes every step's gates, (T, B, 4H), before the time
loop starts (6.5 MiB at lstm-a's shape), and the loop reads them back from memory one
step at a time. Projected in chunks of k steps just before the loop reaches them, the
gates would be read back from the L2 cache instead; the price is k-step products
(smaller, so slower per FLOP) and one more call of each kind a chunk. This times the
forward's compiled pieces (bptt.functional.fast: the projection by its measured route,
or by the packed kernel on weights packed once; then the time loop), whole against
chunked at k = 4, 8 and 16, best and median ms of 25 calls, in two rounds.

Shapes (B batch, T steps, D inputs, H hidden units): a (32, 100, 128, 128), c the
char-LM's second layer (16, 200, 256, 256), b (64, 100, 512, 512).
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads its BLAS

import numpy as np

from _timing import call_times, config_names
from bptt.functional.fast._fused import real_steps
from bptt.functional.fast._gemm import StepProduct, matmul_packed, pack, project
from bptt.functional.fast._time_loops import lstm_forward_steps

SHAPES = {"a": (32, 100, 128, 128), "c": (16, 200, 256, 256), "b": (64, 100, 512, 512)}


def forwards(B: int, T: int, D: int, H: int) -> dict:
    """name -> a call running the forward's projection and time loop at this shape."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T * B, D)).astype(np.float32)  # (T*B, D) time-major rows
    w_ih = (0.1 * rng.standard_normal((4 * H, D))).astype(np.float32)  # (4H, D)
    w_hh = (0.1 * rng.standard_normal((4 * H, H))).astype(np.float32)  # (4H, H)
    gates = np.empty((T, B, 4 * H), np.float32)  # (T, B, 4H)
    rec = np.empty((B, 4 * H), np.float32)  # (B, 4H)
    bias = np.zeros(4 * H, np.float32)  # (4H,)
    h = np.zeros((T + 1, B, H), np.float32)  # (T+1, B, H)
    c = np.zeros((T + 1, B, H), np.float32)  # (T+1, B, H)
    tanh_c = np.empty((T, B, H), np.float32)  # (T, B, H)
    real = real_steps(None, T, B)  # (T, B)

    def whole():
        recurrent = StepProduct(w_hh, B, T, groups=4)
        project(x, w_ih, gates.reshape(T * B, 4 * H))
        lstm_forward_steps(recurrent, gates, rec, bias, h, c, tanh_c, real)

    def chunked(k: int, packed_once: bool):
        def run():
            recurrent = StepProduct(w_hh, B, T, groups=4)
            panels = pack(w_ih) if packed_once else None
            for t0 in range(0, T, k):
                t1 = min(T, t0 + k)
                xs, gs = x[t0 * B : t1 * B], gates[t0:t1].reshape((t1 - t0) * B, 4 * H)
                if packed_once:
                    matmul_packed(xs, panels, gs)
                else:
                    project(xs, w_ih, gs)
                steps = (gates[t0:t1], rec, bias, h[t0 : t1 + 1], c[t0 : t1 + 1], tanh_c[t0:t1])
                lstm_forward_steps(recurrent, *steps, real[t0:t1])

        return run

    runs = {"whole": whole}
    for k in (4, 8, 16):
        runs[f"chunks of {k}"] = chunked(k, False)
        runs[f"chunks of {k}, packed once"] = chunked(k, True)
    whole()
    expected = h.copy()  # (T+1, B, H)
    for label, run in runs.items():  # every variant computes the same h, to float32 rounding
        run()
        if not np.allclose(h, expected, rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{label}: h differs from the whole forward's")
    return runs


def main() -> None:
    for name in config_names(__doc__, SHAPES, ["a", "c"]):
        runs = forwards(*SHAPES[name])
        best: dict[str, tuple[float, float]] = {}
        for _ in range(2):  # two rounds, every variant in each: the best of both kept
            for label, run in runs.items():
                ms = np.array(call_times(run, 25)) * 1e3
                old = best.get(label, (np.inf, np.inf))
                best[label] = (min(old[0], ms.min()), min(old[1], float(np.median(ms))))
        shown = ", ".join(f"{k} {b:.2f}/{m:.2f}" for k, (b, m) in best.items())
        print(f"{name}: best/median ms: {shown}", flush=True)


if __name__ == "__main__":
    main()
