"""Truncation bias: how far truncated BPTT's gradient is from full BPTT's, as a function of k.

Two truncations, both exact (no sampling), for a model's recurrent layer and a batch:

- **windowed** (what ``bptt train`` does with ``--window k``): the sequence is
  cut into windows of k steps; each window starts from the state the previous
  one ended in, but no gradient crosses a window's start. The gradient is the
  sum of the windows' backward passes (the cells' own backward);
- **sliding** (the textbook TBPTT(k)): every loss E_t reaches back at most k
  steps, so the gradient is Σ_{ℓ<k} G_ℓ, the first k terms of the lag split of
  :func:`bptt.diagnostics.flow.lag_split`.

For each k the report gives the relative error ‖g_k - g‖/‖g‖ and the cosine
between g_k and the full gradient g, over all the layer's parameters together.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bptt.diagnostics.flow import cell_of, lag_split, start_state
from bptt.errors import BpttError


@dataclass
class TruncationBias:
    windows: list[int]
    windowed_error: list[float]  # ‖g_k - g‖ / ‖g‖, windows of k steps
    windowed_cosine: list[float]
    sliding_error: list[float]  # ‖g_k - g‖ / ‖g‖, each loss k steps back
    sliding_cosine: list[float]

    def rows(self) -> list[dict]:
        return [
            {
                "k": k,
                "windowed_error": self.windowed_error[i],
                "windowed_cosine": self.windowed_cosine[i],
                "sliding_error": self.sliding_error[i],
                "sliding_cosine": self.sliding_cosine[i],
            }
            for i, k in enumerate(self.windows)
        ]


def _flat(grads: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([grads[n].ravel() for n in names]).astype(np.float64)  # (P,)


def _compare(g_k: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    norm = np.linalg.norm(g)
    if norm == 0:
        return 0.0, 1.0
    cos = float(g_k @ g / (np.linalg.norm(g_k) * norm)) if np.linalg.norm(g_k) > 0 else 0.0
    return float(np.linalg.norm(g_k - g) / norm), cos


def windowed_gradient(
    layer: Any, x: np.ndarray, d_outputs: np.ndarray, window: int, state: Any = None
) -> dict[str, np.ndarray]:
    """The layer's parameter gradients from BPTT in windows of ``window`` steps (state carried)."""
    if window < 1:
        raise BpttError(f"window must be at least 1; got {window}")
    _, forward, backward, kwargs = cell_of(layer)
    weights = layer.cell_weights()
    s = start_state(layer, x, state)
    total: dict[str, np.ndarray] = {}
    for start in range(0, x.shape[1], window):
        stop = min(start + window, x.shape[1])
        _, s, cache = forward(np.ascontiguousarray(x[:, start:stop]), s, *weights, **kwargs)
        d_win = np.ascontiguousarray(d_outputs[:, start:stop])  # (B, k, H)
        _, _, grads = backward(d_win, None, cache)  # no gradient into the carried state
        for name, g in grads.items():
            total[name] = total[name] + g if name in total else g.copy()
    return total


def truncation_bias(
    layer: Any, x: np.ndarray, d_outputs: np.ndarray, windows: list[int], state: Any = None
) -> TruncationBias:
    """Relative error and cosine of windowed and sliding TBPTT(k) against full BPTT, per k."""
    T = x.shape[1]
    bad = [k for k in windows if not 1 <= k]
    if bad:
        raise BpttError(f"windows must be at least 1; got {bad}")
    split = lag_split(layer, x, d_outputs, state)  # {name: (T, ...)}
    names = sorted(split)
    full = {n: split[n].sum(axis=0) for n in names}
    g = _flat(full, names)
    cumulative = {n: np.cumsum(split[n], axis=0) for n in names}  # [k-1] = Σ_{ℓ<k} G_ℓ
    report = TruncationBias(list(windows), [], [], [], [])
    for k in windows:
        err, cos = _compare(_flat(windowed_gradient(layer, x, d_outputs, k, state), names), g)
        report.windowed_error.append(err)
        report.windowed_cosine.append(cos)
        sliding = {n: cumulative[n][min(k, T) - 1] for n in names}
        err, cos = _compare(_flat(sliding, names), g)
        report.sliding_error.append(err)
        report.sliding_cosine.append(cos)
    return report
