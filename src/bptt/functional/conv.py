"""1-D and 2-D convolution, channels last, forward and backward.

Convolution (cross-correlation, as PyTorch's Conv2d), stride s, zero padding p,
square kernels k, written as one matrix product over every output pixel (im2col):

    X̂[n, y, x, :] = the (C, k, k) window of the padded x at (s y, s x), flattened
    Y = X̂ K^T + b                    K ≡ weight (O, C, k, k) as (O, C*k*k)

    ∂E/∂K = Σ ∂E/∂Y^T X̂              one product over all N*H*W pixels
    ∂E/∂b = Σ ∂E/∂Y
    ∂E/∂X̂ = ∂E/∂Y K, then each window's share added back where it was read (col2im)

The 1-D form (a word's letters, a sequence's steps) is the same with one axis:
X̂[n, t, :] is the (C, k) window of the padded x at t, K ≡ weight (O, C, k).

Shapes: N images (or sequences), H x W pixels (or W steps), C input channels,
O output channels, k kernel size.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv2d_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, padding: int, stride: int = 1
):
    """x (N, H, W, C), weight (O, C, k, k), bias (O,) -> y (N, H', W', O), cache;
    H' = ⌊(H + 2p - k)/s⌋ + 1 (H' = H/s when k = 2p + 1 and s divides H)."""
    O, C, k, _ = weight.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))  # (N, H+2p, W+2p, C)
    windows = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # (N, H', W',
    # C, k, k)
    N, Ho, Wo = windows.shape[:3]
    cols = windows.reshape(N * Ho * Wo, C * k * k)  # (N*H'*W', C*k*k) a copy
    y = cols @ weight.reshape(O, -1).T + bias  # (N*H'*W', O)
    cache = {
        "cols": cols,
        "weight": weight,
        "x_shape": x.shape,
        "padding": padding,
        "stride": stride,
    }
    return y.reshape(N, Ho, Wo, O), cache


def conv2d_backward(d_y: np.ndarray, cache: dict, need_dx: bool = True):
    """∂E/∂y (N, H', W', O) -> (∂E/∂x (N, H, W, C) or None, {"weight": (O, C, k, k),
    "bias": (O,)})."""
    weight, cols, p, s = cache["weight"], cache["cols"], cache["padding"], cache["stride"]
    O, C, k, _ = weight.shape
    N, Ho, Wo, _ = d_y.shape
    dy = d_y.reshape(-1, O)  # (N*H'*W', O)
    # cols^T dy, not dy^T cols: the same product, steadier in OpenBLAS on a busy machine.
    grads = {"weight": (cols.T @ dy).T.reshape(weight.shape), "bias": dy.sum(axis=0)}
    if not need_dx:
        return None, grads
    d_cols = (dy @ weight.reshape(O, -1)).reshape(N, Ho, Wo, C, k, k)  # (N, H', W', C, k, k)
    H, W = cache["x_shape"][1:3]
    d_xp = np.zeros((N, H + 2 * p, W + 2 * p, C), dtype=d_y.dtype)  # (N, H+2p, W+2p, C)
    for i in range(k):
        for j in range(k):
            d_xp[:, i : i + s * Ho : s, j : j + s * Wo : s, :] += d_cols[..., i, j]
    return d_xp[:, p : p + H, p : p + W, :], grads


def conv1d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, padding: int):
    """x (N, W, C), weight (O, C, k), bias (O,) -> y (N, W + 2p - k + 1, O), cache
    (stride 1; W' = W when k = 2p + 1)."""
    O, C, k = weight.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (0, 0)))  # (N, W+2p, C)
    windows = sliding_window_view(xp, k, axis=1)  # (N, W', C, k)
    N, Wo = windows.shape[:2]
    cols = windows.reshape(N * Wo, C * k)  # (N*W', C*k) a copy
    y = cols @ weight.reshape(O, -1).T + bias  # (N*W', O)
    cache = {"cols": cols, "weight": weight, "x_shape": x.shape, "padding": padding}
    return y.reshape(N, Wo, O), cache


def conv1d_backward(d_y: np.ndarray, cache: dict, need_dx: bool = True):
    """∂E/∂y (N, W', O) -> (∂E/∂x (N, W, C) or None, {"weight": (O, C, k), "bias": (O,)})."""
    weight, cols, p = cache["weight"], cache["cols"], cache["padding"]
    O, C, k = weight.shape
    N, Wo, _ = d_y.shape
    dy = d_y.reshape(-1, O)  # (N*W', O)
    grads = {"weight": (cols.T @ dy).T.reshape(weight.shape), "bias": dy.sum(axis=0)}
    if not need_dx:
        return None, grads
    d_cols = (dy @ weight.reshape(O, -1)).reshape(N, Wo, C, k)  # (N, W', C, k)
    W = cache["x_shape"][1]
    d_xp = np.zeros((N, W + 2 * p, C), dtype=d_y.dtype)  # (N, W+2p, C)
    for i in range(k):
        d_xp[:, i : i + Wo, :] += d_cols[..., i]
    return d_xp[:, p : p + W, :], grads
