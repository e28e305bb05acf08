"""Gate statistics of the LSTM and the GRU: saturation, mean forget gate, retention.

A sigmoid gate near 0 or 1 is saturated: its slope σ(1-σ) is near 0, so it
passes (almost) no gradient to its own weights, but a forget gate saturated
near 1 is exactly what lets the cell state carry information (and gradient)
far: along the belt, ∂C_T/∂C_k = ∏_{j=k+1}^{T} f_j.

The **retention curve** is that product measured on the batch: for n = 0..T-1,

    retention(n) = mean over examples b, units h and start steps k of ∏_{j=k+1}^{k+n} f_j

the share of a cell's content still there n steps later (with nothing added).
For the GRU the carry gate is the update gate z (h_t = z_t h_{t-1} + (1 - z_t) n_t).
The half-life is the first n with retention(n) < 1/2.

Shapes: B batch, T time steps, H hidden units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bptt.diagnostics.flow import cell_of, start_state
from bptt.errors import BpttError
from bptt.nn import CELLS
from bptt.nn.cells import sigmoid_gates


@dataclass
class GateStats:
    cell: str
    saturated_low: dict[str, float]  # share of values < eps, per sigmoid gate
    saturated_high: dict[str, float]  # share of values > 1 - eps
    mean: dict[str, float]  # mean value per gate
    retention: np.ndarray  # (T,) retention(n), n = 0..T-1, of the carry gate
    half_life: int | None  # first n with retention(n) < 1/2; None if never within T

    def to_dict(self) -> dict:
        return {
            "cell": self.cell,
            "carry_gate": CELLS[self.cell].carry_gate,
            "saturated_low": self.saturated_low,
            "saturated_high": self.saturated_high,
            "mean": self.mean,
            "half_life": self.half_life,
            "retention": [float(v) for v in self.retention],
        }


def retention_curve(carry: np.ndarray) -> np.ndarray:
    """retention(n) for n = 0..T-1 from the carry gate's values (T, B, H), all in (0, 1]."""
    T = carry.shape[0]
    with np.errstate(divide="ignore"):
        logs = np.log(carry.astype(np.float64))  # (T, B, H)
    cum = np.concatenate([np.zeros((1, *carry.shape[1:])), np.cumsum(logs, axis=0)])  # (T+1, B, H)
    out = np.ones(T)  # (T,)
    for n in range(1, T):
        with np.errstate(invalid="ignore"):
            prod = np.exp(cum[n:] - cum[:-n])  # (T+1-n, B, H) ∏ over n steps from every start
        out[n] = np.nan_to_num(prod, nan=0.0).mean()
    return out


def gate_stats(layer: Any, x: np.ndarray, state: Any = None, eps: float = 0.05) -> GateStats:
    """Saturation, means and retention of an LSTM's or GRU's gates on inputs x (B, T, D)."""
    cell, forward, _, kwargs = cell_of(layer)
    if layer.carry_gate is None:
        raise BpttError(f"gate statistics need an LSTM or a GRU; got {type(layer).__name__}")
    if not 0 < eps < 0.5:
        raise BpttError(f"eps must be in (0, 0.5); got {eps}")
    _, _, cache = forward(x, start_state(layer, x, state), *layer.cell_weights(), **kwargs)
    H = layer.hidden_size
    gates = cache["gates"]  # (T, B, G*H) after their activations
    values = {n: gates[:, :, i * H : (i + 1) * H] for i, n in enumerate(layer.gate_names)}
    low = {n: float((values[n] < eps).mean()) for n in sigmoid_gates(layer)}
    high = {n: float((values[n] > 1 - eps).mean()) for n in sigmoid_gates(layer)}
    retention = retention_curve(values[layer.carry_gate])
    below = np.flatnonzero(retention < 0.5)
    return GateStats(
        cell=cell,
        saturated_low=low,
        saturated_high=high,
        mean={n: float(v.mean()) for n, v in values.items()},
        retention=retention,
        half_life=int(below[0]) if below.size else None,
    )
