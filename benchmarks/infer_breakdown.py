"""Where an LSTM layer's inference time goes: the whole forward beside its parts, timed alone.

    python benchmarks/infer_breakdown.py a c e      # configs of rnn_speed.py: a, b, c, e

Prints, per config, the best time of ``layer.forward(x, training=False)`` and of
its parts with the same shapes, one BLAS thread: the input projections
(T*B, D) @ (D, 4H) of every layer, the T per-step recurrent products
(B, H) @ (H, 4H) (packed, as the layer runs them, when they qualify), and the T
fused gate kernels, each called from Python. "rest" is the forward minus the
parts: copies, allocation and Python (negative when the layer's compiled time
loop saves more than the rest costs).

Shapes: B batch, T time steps, D input features, H hidden units, L layers.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads its BLAS

import numpy as np

import bptt.nn
from _timing import call_times, config_names
from bptt.functional.fast._fused import lstm_step_forward
from bptt.functional.fast._gemm import StepProduct, project

CONFIGS = {
    "a": (32, 100, 128, 128, 1),
    "b": (64, 100, 512, 512, 1),
    "c": (16, 200, 64, 256, 2),
    "e": (1, 50, 256, 256, 1),
}


def best_ms(fn, reps: int) -> float:
    """Fastest of ``reps`` calls after one warm-up call, in ms."""
    return min(call_times(fn, reps)) * 1e3


def layer_parts(B, T, d_in, H, w_ih, w_hh, reps, rng) -> dict[str, float]:
    """ms of one layer's input projection, its T recurrent products and its T gate kernels."""
    xs = rng.standard_normal((T * B, d_in)).astype(np.float32)  # (T*B, D_in)
    z = np.empty((T * B, 4 * H), np.float32)  # (T*B, 4H)
    h = 0.5 * rng.standard_normal((T + 1, B, H)).astype(np.float32)  # (T+1, B, H)
    rec = np.empty((B, 4 * H), np.float32)  # (B, 4H)
    gates = rng.standard_normal((T, B, 4 * H)).astype(np.float32)  # (T, B, 4H)
    c = np.zeros((T + 1, B, H), np.float32)  # (T+1, B, H)
    tanh_c = np.zeros((T, B, H), np.float32)  # (T, B, H)
    real = np.ones((T, B), bool)  # (T, B)
    bias = np.zeros(4 * H, np.float32)  # (4H,)

    recurrent = StepProduct(w_hh, B, T)  # packed, as the layer does, when it applies

    def products():
        for t in range(T):
            recurrent(h[t], rec)

    def kernels():
        for t in range(T):
            lstm_step_forward(
                gates[t], rec, bias, c[t], h[t], real[t], c[t + 1], tanh_c[t], h[t + 1]
            )  # fmt: skip

    return {
        "input projections": best_ms(lambda: project(xs, w_ih, z), reps),
        "per-step products": best_ms(products, reps),
        "gate kernels": best_ms(kernels, reps),
    }


def breakdown(name: str) -> str:
    B, T, D, H, L = CONFIGS[name]
    reps = 5 if name == "b" else 15
    rng = np.random.default_rng(0)
    layer = bptt.nn.LSTM(D, H, num_layers=L, dtype=np.float32, rng=rng)
    x = rng.standard_normal((B, T, D)).astype(np.float32)  # (B, T, D)
    whole = best_ms(lambda: layer.forward(x, training=False), reps)
    parts: dict[str, float] = {}
    for l in range(L):
        w_ih, w_hh = layer.params[f"weight_ih_l{l}"], layer.params[f"weight_hh_l{l}"]
        for k, v in layer_parts(B, T, D if l == 0 else H, H, w_ih, w_hh, reps, rng).items():
            parts[k] = parts.get(k, 0.0) + v
    shown = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
    rest = whole - sum(parts.values())
    return f"lstm-{name} inference: forward {whole:.2f} ms = {shown}, rest {rest:.2f}"


if __name__ == "__main__":
    for config in config_names(__doc__, CONFIGS, ["a", "c"]):
        print(breakdown(config), flush=True)
