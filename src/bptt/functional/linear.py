"""Affine maps, embeddings and dropout, applied at every time step at once.

Affine (the lecture's output layer before the softmax, V ≡ weight, c ≡ bias):

    y = x V^T + c                       x (..., D), V (O, D), c (O,) -> y (..., O)

    ∂E/∂x = ∂E/∂y V                     (..., D)
    ∂E/∂V = Σ ∂E/∂y^T x                 (O, D)  one product over all leading axes
    ∂E/∂c = Σ ∂E/∂y                     (O,)

The leading axes (batch, time, ...) are flattened to one, so a whole sequence
costs one matrix product ("time-distributed").

Embedding (a lookup, equal to a one-hot row times the table):

    y = E[i]                            i (...) ints in [0, V), E (V, E_dim) -> (..., E_dim)
    ∂E/∂E[v] = Σ_{positions with i = v} ∂E/∂y

Dropout (inverted: the kept units are scaled at training time, so evaluation
is the identity):

    y = x * m,  m = [u >= p] / (1 - p),  u ~ Uniform[0, 1)
    ∂E/∂x = ∂E/∂y * m

Shapes: B batch, T time, D input features, O output features, V vocabulary
(rows of the table), E embedding width. "..." is any number of leading axes.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast._gemm import weight_grad
from bptt.functional.fast._scatter import add_rows


def linear_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """y = x V^T + c over the last axis of x, for every leading position at once.

    Args:
        x: inputs (..., D).
        weight: V (O, D).
        bias: c (O,) or None.

    Returns:
        y (..., O) and the cache for :func:`linear_backward`.
    """
    lead = x.shape[:-1]
    D = x.shape[-1]
    O = weight.shape[0]
    x2 = x.reshape(-1, D)  # (N, D) N = product of the leading axes
    y = x2 @ weight.T  # (N, O)
    if bias is not None:
        y += bias
    cache = {"x2": x2, "weight": weight, "has_bias": bias is not None, "x_shape": x.shape}
    return y.reshape(*lead, O), cache  # (..., O)


def linear_backward(d_y: np.ndarray, cache: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gradients of :func:`linear_forward`.

    Args:
        d_y: ∂E/∂y (..., O).
        cache: from :func:`linear_forward`.

    Returns:
        ∂E/∂x (..., D) and {"weight": (O, D), "bias": (O,)} (bias only if used).
    """
    x2, weight = cache["x2"], cache["weight"]
    O = weight.shape[0]
    d_y2 = d_y.reshape(-1, O)  # (N, O)
    d_x = (d_y2 @ weight).reshape(cache["x_shape"])  # (..., D)
    grads = {"weight": weight_grad(d_y2, x2)}  # (O, D) Σ ∂E/∂y^T x, the measured orientation
    if cache["has_bias"]:
        grads["bias"] = d_y2.sum(axis=0)  # (O,)
    return d_x, grads


def embedding_forward(indices: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, dict]:
    """y = E[i]: gather one row of the table per index.

    The caller checks that every index lies in [0, V) (negative indices would
    silently wrap around in NumPy).

    Args:
        indices: integer array (...).
        weight: the table E (V, E_dim).

    Returns:
        y (..., E_dim) and the cache for :func:`embedding_backward`.
    """
    y = weight[indices]  # (..., E_dim) fancy indexing copies
    cache = {"indices": indices, "num_embeddings": weight.shape[0], "dtype": weight.dtype}
    return y, cache


def embedding_backward(d_y: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
    """Scatter-add ∂E/∂y back into the rows that were looked up.

    A row used several times receives the sum of its gradients, added in order
    (:func:`bptt.functional.fast._scatter.add_rows`, as ``np.add.at`` does; plain
    ``+=`` would keep only one).

    Args:
        d_y: ∂E/∂y (..., E_dim).
        cache: from :func:`embedding_forward`.

    Returns:
        {"weight": (V, E_dim)}; integer indices get no gradient.
    """
    E_dim = d_y.shape[-1]
    d_weight = np.zeros((cache["num_embeddings"], E_dim), dtype=d_y.dtype)  # (V, E_dim)
    add_rows(d_weight, cache["indices"].reshape(-1), d_y.reshape(-1, E_dim))
    return {"weight": d_weight}


def one_hot(indices: np.ndarray, num_classes: int, dtype: np.dtype = np.float32) -> np.ndarray:
    """One-hot rows: out[..., v] = 1 where indices[...] == v, else 0.

    Args:
        indices: integer array (...) with values in [0, num_classes).
        num_classes: V.
        dtype: of the result.

    Returns:
        (..., V) array of zeros and ones.
    """
    indices = np.asarray(indices)
    out = np.zeros((*indices.shape, num_classes), dtype=dtype)  # (..., V)
    np.put_along_axis(out, indices[..., None], 1, axis=-1)
    return out


def dropout_mask(
    shape: tuple[int, ...], p: float, rng: np.random.Generator, dtype: np.dtype = np.float32
) -> np.ndarray:
    """The inverted-dropout multiplier m = [u >= p] / (1 - p), u ~ Uniform[0, 1).

    Each unit is kept with probability 1 - p; kept units are scaled by
    1 / (1 - p) so the expectation of x * m is x.
    """
    keep = rng.random(shape) >= p  # (...) booleans
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)  # (...)


def dropout_forward(
    x: np.ndarray, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """y = x * m with a fresh mask from ``rng``; returns (y, m), m being the cache."""
    m = dropout_mask(x.shape, p, rng, x.dtype)  # same shape as x
    return x * m, m


def dropout_backward(d_y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """∂E/∂x = ∂E/∂y * m, with m the mask :func:`dropout_forward` returned."""
    return d_y * m
