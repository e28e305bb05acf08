"""The RNN's fast route: the equations of :mod:`bptt.functional.rnn`, computed for speed.

How (packed products, fused kernels, reused workspaces): :mod:`bptt.functional.fast`.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast import _step
from bptt.functional.fast._fused import real_steps
from bptt.functional.fast._gemm import StepProduct, project, weight_grad
from bptt.functional.fast._gru_rnn_loops import rnn_backward_steps, rnn_forward_steps
from bptt.functional.fast._workspace import (
    cell_cache,
    inputs_projected,
    outputs_from,
    scratch,
    swap_copy,
    time_major,
)


def rnn_forward(x, state, weight_ih, weight_hh, bias_ih, bias_hh, mask, nonlinearity, workspace):
    """The fast route of :func:`bptt.functional.rnn.rnn_forward`: same arguments, same results.

    Its cache holds, time-major, ``"h"`` (T+1, B, H) the states s_0 .. s_T.
    """
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    if _step.applies(x, mask, weights):  # T = 1, B <= 3 (generation, streaming): one compiled call
        return _step.rnn_forward(x, state, weights, workspace, nonlinearity)
    (h0,) = state
    B, T, _ = x.shape
    H = weight_hh.shape[0]
    # U x_t + b for every step in one product, time-major so each step is contiguous.
    x_tm, a = inputs_projected(x, weight_ih, workspace)  # (T, B, D), (T, B, H)
    for b in (bias_ih, bias_hh):
        if b is not None:
            a += b
    m = None if mask is None else mask.T[:, :, None]  # (T, B, 1)
    real = real_steps(mask, T, B)  # (T, B)
    relu = nonlinearity == "relu"

    s = scratch(workspace, "h", (T + 1, B, H), x.dtype)  # (T+1, B, H) s_0 .. s_T
    s[0] = h0
    rec = np.empty((B, H), dtype=x.dtype)  # (B, H) W s_{t-1}, reused
    recurrent = StepProduct(weight_hh, B, T)  # rec = s_{t-1} @ Wᵀ
    rnn_forward_steps(recurrent, a, rec, s, real, relu)  # s_t = tanh(a_t), padding carries

    outputs = outputs_from(s, m)  # (B, T, H) a new array, zero at padding
    cache = cell_cache(m, real, weights, workspace, x_tm=x_tm, h=s, nonlinearity=nonlinearity)
    return outputs, (s[T].copy(),), cache


def rnn_backward(d_outputs, d_final_state, cache, state_grads=None):
    """The fast route of :func:`bptt.functional.rnn.rnn_backward` for a fast forward's cache."""
    s, x_tm = cache["h"], cache["x_tm"]
    weight_ih, weight_hh = cache["weight_ih"], cache["weight_hh"]
    T, B, D = x_tm.shape
    H = weight_hh.shape[0]

    d_out_tm = time_major(cache["workspace"], "d_out", d_outputs)  # (T, B, H); padding skipped
    real, relu = cache["real"], cache["nonlinearity"] == "relu"
    g_rec = np.zeros((B, H), dtype=s.dtype)  # (B, H) W^T ∂E/∂a_{t+1}
    if d_final_state is not None and d_final_state[0] is not None:
        g_rec += d_final_state[0]
    carry = np.zeros((B, H), dtype=s.dtype)  # (B, H) ∂E/∂s_t passed through padding
    da = scratch(cache["workspace"], "da", (T, B, H), s.dtype)  # (T, B, H) ∂E/∂a_t
    keep = None if state_grads is None else np.empty((T + 1, B, H), dtype=s.dtype)  # (T+1, B, H)
    recurrent_t = StepProduct(weight_hh.T, B, T)  # g_rec = ∂E/∂a_t @ W
    # ∂E/∂a_t = g_t * (1 - s_t²) with g_t = ∂E/∂s_t from the output and from s_{t+1}
    rnn_backward_steps(recurrent_t, s, d_out_tm, g_rec, carry, real, relu, da, keep)
    g = g_rec + carry  # (B, H) ∂E/∂s_0

    if keep is not None:
        keep[0] = g
        state_grads["h"] = keep

    da_flat = da.reshape(T * B, H)  # (T*B, H)
    d_x_tm = np.empty((T * B, D), dtype=s.dtype)  # (T*B, D)
    project(da_flat, weight_ih.T, d_x_tm, kind="dx")  # ∂E/∂x_t = U^T ∂E/∂a_t, all steps
    d_x = np.empty((B, T, D), dtype=s.dtype)  # (B, T, D) the caller's own
    swap_copy(d_x_tm.reshape(T, B, D), d_x)
    grads = {
        "weight_ih": weight_grad(da_flat, x_tm.reshape(T * B, D)),  # (H, D)
        "weight_hh": weight_grad(da_flat, s[:-1].reshape(T * B, H)),  # (H, H)
    }
    if cache["has_bias_ih"]:
        grads["bias_ih"] = da_flat.sum(axis=0)  # (H,)
    if cache["has_bias_hh"]:
        grads["bias_hh"] = da_flat.sum(axis=0)  # (H,)
    return d_x, (g,), grads
