"""Activations that never overflow, in the input's dtype.

Shapes are whatever the caller passes; softmax works over the last axis.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(x) = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2.

    The tanh form is exact algebra, needs no branch for large |x| (exp would
    overflow) and costs one transcendental per element.
    """
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """softmax over the last axis, shifted by the maximum so exp cannot overflow."""
    z = x - x.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over the last axis: x - max - log Σ exp(x - max)."""
    z = x - x.max(axis=-1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z
