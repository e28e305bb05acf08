"""The GRU's fast route: the equations of :mod:`bptt.functional.gru`, computed for speed.

How (packed products, fused kernels, reused workspaces): :mod:`bptt.functional.fast`.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast import _step
from bptt.functional.fast._fused import real_steps
from bptt.functional.fast._gemm import StepProduct, project, weight_grad
from bptt.functional.fast._gru_rnn_loops import gru_backward_steps, gru_forward_steps
from bptt.functional.fast._workspace import (
    cell_cache,
    inputs_projected,
    outputs_from,
    scratch,
    swap_copy,
    time_major,
)


def gru_forward(x, state, weight_ih, weight_hh, bias_ih, bias_hh, mask, workspace):
    """The fast route of :func:`bptt.functional.gru.gru_forward`: same arguments, same results.

    Its cache holds, time-major, ``"h"`` (T+1, B, H), ``"gates"`` (T, B, 3H) the gate
    values r_t, z_t, n_t after their activations, and ``"hn"`` (T, B, H) c_t^n.
    """
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    if _step.applies(x, mask, weights):  # T = 1, B <= 3 (generation, streaming): one compiled call
        return _step.gru_forward(x, state, weights, workspace)
    (h0,) = state
    B, T, _ = x.shape
    H = weight_hh.shape[1]
    # W_i x_t + b_i for every step in one product, time-major so each step is contiguous.
    x_tm, a = inputs_projected(x, weight_ih, workspace)  # (T, B, D), (T, B, 3H)
    if bias_ih is not None:
        a += bias_ih
    m = None if mask is None else mask.T[:, :, None]  # (T, B, 1)
    real = real_steps(mask, T, B)  # (T, B)

    h = scratch(workspace, "h", (T + 1, B, H), x.dtype)  # (T+1, B, H) h_0 .. h_T
    h[0] = h0
    gates = scratch(workspace, "gates", (T, B, 3 * H), x.dtype)  # (T, B, 3H) r_t, z_t, n_t
    hn = scratch(workspace, "hn", (T, B, H), x.dtype)  # (T, B, H) c_t^n = W_hn h_{t-1} + b_hn
    c = np.empty((B, 3 * H), dtype=x.dtype)  # (B, 3H) c_t = W_h h_{t-1} + b_h, reused
    recurrent = StepProduct(weight_hh, B, T)  # c = h_{t-1} @ weight_hhᵀ
    # r_t, z_t = σ(a + c); n_t = tanh(a^n + r_t c^n); h_t = n_t + z_t (h_{t-1} - n_t)
    gru_forward_steps(recurrent, a, c, bias_hh, h, real, gates, hn)

    outputs = outputs_from(h, m)  # (B, T, H) a new array, zero at padding
    cache = cell_cache(m, real, weights, workspace, x_tm=x_tm, h=h, gates=gates, hn=hn)
    return outputs, (h[T].copy(),), cache


def gru_backward(d_outputs, d_final_state, cache, state_grads=None):
    """The fast route of :func:`bptt.functional.gru.gru_backward` for a fast forward's cache."""
    h, gates, hn, x_tm = cache["h"], cache["gates"], cache["hn"], cache["x_tm"]
    weight_ih, weight_hh = cache["weight_ih"], cache["weight_hh"]
    T, B, D = x_tm.shape
    H = weight_hh.shape[1]

    d_out_tm = time_major(cache["workspace"], "d_out", d_outputs)  # (T, B, H); padding skipped
    real = cache["real"]  # (T, B)
    g_rec = np.zeros((B, H), dtype=h.dtype)  # (B, H) W_h^T ∂E/∂c_{t+1}
    if d_final_state is not None and d_final_state[0] is not None:
        g_rec += d_final_state[0]
    carry = np.zeros((B, H), dtype=h.dtype)  # (B, H) g_{t+1} z_{t+1}, or g through padding
    da = scratch(cache["workspace"], "da", (T, B, 3 * H), h.dtype)  # (T, B, 3H) ∂E/∂a_t
    dc = scratch(cache["workspace"], "dc", (T, B, 3 * H), h.dtype)  # (T, B, 3H) ∂E/∂c_t
    keep = None if state_grads is None else np.empty((T + 1, B, H), dtype=h.dtype)  # (T+1, B, H)
    recurrent_t = StepProduct(weight_hh.T, B, T)  # g_rec = ∂E/∂c_t @ weight_hh
    # ∂E/∂n̂_t, ∂E/∂r̂_t, ∂E/∂ẑ_t, ∂E/∂c_t and the direct path g_t z_t; then to h_{t-1}
    gru_backward_steps(recurrent_t, gates, hn, h, d_out_tm, g_rec, carry, real, da, dc, keep)
    g = g_rec + carry  # (B, H) ∂E/∂h_0
    if keep is not None:
        keep[0] = g
        state_grads["h"] = keep

    da_flat = da.reshape(T * B, 3 * H)  # (T*B, 3H)
    dc_flat = dc.reshape(T * B, 3 * H)  # (T*B, 3H)
    d_x_tm = np.empty((T * B, D), dtype=h.dtype)  # (T*B, D)
    project(da_flat, weight_ih.T, d_x_tm, kind="dx")  # ∂E/∂x_t = W_i^T ∂E/∂a_t, all steps
    d_x = np.empty((B, T, D), dtype=h.dtype)  # (B, T, D) the caller's own
    swap_copy(d_x_tm.reshape(T, B, D), d_x)
    grads = {
        "weight_ih": weight_grad(da_flat, x_tm.reshape(T * B, D)),  # (3H, D)
        "weight_hh": weight_grad(dc_flat, h[:-1].reshape(T * B, H)),  # (3H, H)
    }
    if cache["has_bias_ih"]:
        grads["bias_ih"] = da_flat.sum(axis=0)  # (3H,)
    if cache["has_bias_hh"]:
        grads["bias_hh"] = dc_flat.sum(axis=0)  # (3H,)
    return d_x, (g,), grads
