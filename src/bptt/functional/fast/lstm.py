"""The LSTM's fast route: the equations of :mod:`bptt.functional.lstm`, computed for speed.

How (packed products, fused kernels, reused workspaces): :mod:`bptt.functional.fast`.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError
from bptt.functional.fast import _step
from bptt.functional.fast._fused import real_steps
from bptt.functional.fast._gemm import StepProduct, project, weight_grad
from bptt.functional.fast._jit import tell_slow_path
from bptt.functional.fast._time_loops import (
    lstm_backward_steps,
    lstm_forward_steps,
    team_projects,
)
from bptt.functional.fast._workspace import (
    cell_cache,
    outputs_from,
    scratch,
    swap_copy,
    time_major,
)


def lstm_forward(x, state, weight_ih, weight_hh, bias_ih, bias_hh, mask, workspace):
    """The fast route of :func:`bptt.functional.lstm.lstm_forward`: same arguments, same results.

    Its cache holds, time-major, ``"h"`` and ``"c"`` (T+1, B, H), ``"gates"`` (T, B, 4H)
    the post-activation i, f, g, o and ``"tanh_c"`` (T, B, H); at padded steps (``"m"``
    (T, B, 1) False) h and c hold the carried state while gates and tanh_c hold values
    nothing reads: zero where the step left the row out (its rows after the last real
    one: ``_fused._rows_running``), else computed and unused.
    """
    h0, c0 = state
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    if _step.applies(x, mask, weights):  # T = 1, B <= 3 (generation, streaming): one compiled call
        return _step.lstm_forward(x, state, weights, workspace)
    tell_slow_path()  # once, and only without numba
    B, T, D = x.shape
    H = weight_hh.shape[1]

    # weight_ih x_t for every step in one product, time-major so each step is contiguous.
    # x_t sits beside h_{t-1} in one (T, B, D+H) buffer (the backward fills in h), so the
    # backward gets both weight gradients from one product: fewer, larger products run faster.
    xh = scratch(workspace, "xh", (T, B, D + H), x.dtype)  # (T, B, D+H) [x_t | h_{t-1}]
    x_tm = xh[:, :, :D]  # (T, B, D) a view
    swap_copy(x, x_tm)
    m = None if mask is None else np.asarray(mask, dtype=bool).T[:, :, None]  # (T, B, 1)
    real = real_steps(mask, T, B)  # (T, B)
    if m is not None:
        np.copyto(x_tm, 0, where=~m)  # padding must not reach the sums over steps
    gates = scratch(workspace, "gates", (T, B, 4 * H), x.dtype)  # (T, B, 4H) z, then gates
    # rec = h_{t-1} @ weight_hhᵀ, the per-step product; its columns: the 4 gates' H units
    recurrent = StepProduct(weight_hh, B, T, groups=4)
    if not team_projects(recurrent, x, 4 * H):  # else the time loop's team makes it
        project(x_tm.reshape(T * B, D), weight_ih, gates.reshape(T * B, 4 * H))
    bias = np.zeros(4 * H, dtype=x.dtype)  # (4H,) both biases, added inside the step kernel
    for b in (bias_ih, bias_hh):
        if b is not None:
            bias += b

    h = scratch(workspace, "h", (T + 1, B, H), x.dtype)  # (T+1, B, H) h_0 .. h_T
    c = scratch(workspace, "c", (T + 1, B, H), x.dtype)  # (T+1, B, H) C_0 .. C_T
    tanh_c = scratch(workspace, "tanh_c", (T, B, H), x.dtype)  # (T, B, H) reused by backward
    rec = np.empty((B, 4 * H), dtype=x.dtype)  # (B, 4H) weight_hh h_{t-1}, reused
    h[0] = h0
    c[0] = c0
    # z_t = gates[t] + rec + bias; i, f, g, o = σ, σ, tanh, σ; C_t, tanh(C_t), h_t: one pass a step
    inputs = (x_tm.reshape(T * B, D), weight_ih)  # (T*B, D) a view, (4H, D)
    lstm_forward_steps(recurrent, gates, rec, bias, h, c, tanh_c, real, *inputs)

    outputs = outputs_from(h, m)  # (B, T, H) a new array, zero at padding
    cache = cell_cache(m, real, weights, workspace, xh=xh, h=h, c=c, gates=gates, tanh_c=tanh_c)
    return outputs, (h[T].copy(), c[T].copy()), cache


def lstm_backward(d_outputs, d_final_state, cache, state_grads=None):
    """The fast route of :func:`bptt.functional.lstm.lstm_backward` for a fast forward's cache."""
    h, c, gates, tanh_c = cache["h"], cache["c"], cache["gates"], cache["tanh_c"]
    xh = cache["xh"]  # (T, B, D+H), x_t filled in by the forward
    weight_ih, weight_hh = cache["weight_ih"], cache["weight_hh"]
    H = weight_hh.shape[1]
    T, B, D = xh.shape[0], xh.shape[1], xh.shape[2] - H
    if d_outputs.shape != (B, T, H):
        raise BpttError(f"d_outputs must be (B, T, H) = {(B, T, H)}, got {d_outputs.shape}")

    d_out_tm = time_major(cache["workspace"], "d_out", d_outputs)  # (T, B, H); padding skipped
    real = cache["real"]  # (T, B)
    dh_rec = np.zeros((B, H), dtype=h.dtype)  # (B, H) weight_hh^T ∂E/∂z_{t+1}
    carry = np.zeros((B, H), dtype=h.dtype)  # (B, H) ∂E/∂h_t passed through padding
    dc = np.zeros((B, H), dtype=h.dtype)  # (B, H) ∂E/∂C_t, the belt
    if d_final_state is not None:
        if d_final_state[0] is not None:
            dh_rec += d_final_state[0]
        if d_final_state[1] is not None:
            dc += d_final_state[1]
    dz = scratch(cache["workspace"], "dz", (T, B, 4 * H), h.dtype)  # (T, B, 4H) ∂E/∂z_t
    keep_h = keep_c = None
    if state_grads is not None:
        keep_h = np.empty((T + 1, B, H), dtype=h.dtype)  # (T+1, B, H) ∂E/∂h_t
        keep_c = np.empty((T + 1, B, H), dtype=h.dtype)  # (T+1, B, H) ∂E/∂C_t
    recurrent_t = StepProduct(weight_hh.T, B, T)  # dh_rec = ∂E/∂z_t @ weight_hh, per step
    # ∂E/∂o_t, ∂E/∂C_t, ∂E/∂i_t, ∂E/∂f_t, ∂E/∂C~_t through their slopes, the belt; then ∂E/∂h_{t-1}
    lstm_backward_steps(
        recurrent_t, gates, c, tanh_c, d_out_tm, dh_rec, carry, dc, real, dz, keep_h, keep_c
    )
    dh = dh_rec + carry  # (B, H) ∂E/∂h_0

    if state_grads is not None:
        keep_h[0], keep_c[0] = dh, dc
        state_grads["h"], state_grads["c"] = keep_h, keep_c

    dz_flat = dz.reshape(T * B, 4 * H)  # (T*B, 4H)
    d_x_tm = scratch(cache["workspace"], "d_x", (T * B, D), h.dtype)  # (T*B, D)
    project(dz_flat, weight_ih.T, d_x_tm, kind="dx")  # ∂E/∂x_t = weight_ih^T ∂E/∂z_t, all steps
    d_x = np.empty((B, T, D), dtype=h.dtype)  # (B, T, D) the caller's own
    swap_copy(d_x_tm.reshape(T, B, D), d_x)
    np.copyto(xh[:, :, D:], h[:-1])  # h_{t-1} beside x_t: [x_t | h_{t-1}]
    d_w = weight_grad(dz_flat, xh.reshape(T * B, D + H), contiguous=False)  # (4H, D+H)
    grads = {  # d_w = [∂E/∂weight_ih | ∂E/∂weight_hh]
        "weight_ih": np.ascontiguousarray(d_w[:, :D]),  # (4H, D)
        "weight_hh": np.ascontiguousarray(d_w[:, D:]),  # (4H, H)
    }
    if cache["has_bias_ih"] or cache["has_bias_hh"]:
        d_bias = dz_flat.sum(axis=0)  # (4H,)
        if cache["has_bias_ih"]:
            grads["bias_ih"] = d_bias
        if cache["has_bias_hh"]:
            grads["bias_hh"] = d_bias.copy()  # (4H,)
    return d_x, (dh, dc), grads
