"""The RNN's fast route: the time loop over packed products and fused kernels.

The same equations as the reference in :mod:`bptt.functional.rnn` (read them there),
computed for speed: one product over all steps for the input side, a packed
per-step product, fused (and, with numba, compiled) gate kernels, reused
workspaces. :mod:`bptt.functional.rnn` validates the arguments and dispatches here
unless the reference is forced on; tests check both give the same numbers.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast._fused import real_steps, rnn_step_backward, rnn_step_forward
from bptt.functional.fast._gemm import StepProduct, project, weight_grad
from bptt.functional.fast._jit import tell_slow_path
from bptt.functional.fast._threads import step_threads
from bptt.functional.fast._workspace import outputs_from, scratch


def rnn_forward(
    x: np.ndarray,
    state: tuple[np.ndarray],
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray | None = None,
    bias_hh: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    nonlinearity: str = "tanh",
    workspace: dict | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray], dict]:
    """Run s_t = tanh(U x_t + W s_{t-1} + b) over all T steps.

    Args:
        x: inputs (B, T, D).
        state: ``(s_0,)`` with s_0 of shape (B, H).
        weight_ih, weight_hh: U (H, D) and W (H, H).
        bias_ih, bias_hh: (H,) each, or None for no bias.
        mask: (B, T) booleans, True at real steps; None means all real.
        nonlinearity: "tanh" (the lecture's) or "relu".
        workspace: a dict whose arrays the cache may reuse from the last call
            (see :mod:`bptt.functional.fast._workspace`); None: all new.

    Returns:
        outputs (B, T, H) (zero at padded steps), ``(s_T,)`` the final state
        (the state after each sequence's last real step), and the cache for
        :func:`rnn_backward`.
    """
    (h0,) = state
    tell_slow_path()  # once, and only without numba
    B, T, D = x.shape
    H = weight_hh.shape[0]

    # U x_t + b for every step in one product, time-major so each step is contiguous.
    x_tm = scratch(workspace, "x_tm", (T, B, D), x.dtype)  # (T, B, D)
    np.copyto(x_tm, x.transpose(1, 0, 2))
    a = scratch(workspace, "a", (T, B, H), x.dtype)  # (T, B, H)
    project(x_tm.reshape(T * B, D), weight_ih, a.reshape(T * B, H))
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
    with step_threads(recurrent.route):  # BLAS at one thread unless the route is blas_mt
        for t in range(T):
            recurrent(s[t], rec)  # W s_{t-1}
            rnn_step_forward(
                a[t], rec, s[t], real[t], relu, s[t + 1]
            )  # s_t = tanh(a_t), padding carries

    outputs = outputs_from(s, m)  # (B, T, H) a new array, zero at padding
    cache = {
        "x_tm": x_tm,
        "h": s,
        "m": m,
        "real": real,
        "weight_ih": weight_ih,
        "weight_hh": weight_hh,
        "has_bias_ih": bias_ih is not None,
        "has_bias_hh": bias_hh is not None,
        "nonlinearity": nonlinearity,
        "workspace": workspace,
    }
    return outputs, (s[T].copy(),), cache


def rnn_backward(
    d_outputs: np.ndarray,
    d_final_state: tuple[np.ndarray | None] | None,
    cache: dict,
    state_grads: dict | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray], dict[str, np.ndarray]]:
    """BPTT for :func:`rnn_forward`.

    Args:
        d_outputs: ∂E/∂outputs (B, T, H).
        d_final_state: ``(∂E/∂s_T,)`` or None (zero).
        cache: from :func:`rnn_forward`.
        state_grads: if a dict, BPTT's per-step gradients are kept in it:
            ``"h"`` (T+1, B, H), ∂E/∂s_t for t = 0..T (what flows back through
            time; the vanishing-gradient diagnostics read it).

    Returns:
        ∂E/∂x (B, T, D), ``(∂E/∂s_0,)``, and the weight gradients
        {"weight_ih", "weight_hh", "bias_ih", "bias_hh"} (biases only if used).
    """
    s, x_tm = cache["h"], cache["x_tm"]
    weight_ih, weight_hh = cache["weight_ih"], cache["weight_hh"]
    T, B, D = x_tm.shape
    H = weight_hh.shape[0]

    d_out_tm = d_outputs.transpose(1, 0, 2)  # (T, B, H) a view; padded steps are skipped
    real, relu = cache["real"], cache["nonlinearity"] == "relu"
    g_rec = np.zeros((B, H), dtype=s.dtype)  # (B, H) W^T ∂E/∂a_{t+1}
    if d_final_state is not None and d_final_state[0] is not None:
        g_rec += d_final_state[0]
    carry = np.zeros((B, H), dtype=s.dtype)  # (B, H) ∂E/∂s_t passed through padding
    da = scratch(cache["workspace"], "da", (T, B, H), s.dtype)  # (T, B, H) ∂E/∂a_t
    keep = None if state_grads is None else np.empty((T + 1, B, H), dtype=s.dtype)  # (T+1, B, H)
    recurrent_t = StepProduct(weight_hh.T, B, T)  # g_rec = ∂E/∂a_t @ W
    with step_threads(recurrent_t.route):  # BLAS at one thread unless the route is blas_mt
        for t in range(T - 1, -1, -1):
            # ∂E/∂a_t = g_t * (1 - s_t²) with g_t = ∂E/∂s_t from the output and from s_{t+1}
            rnn_step_backward(
                s[t + 1], d_out_tm[t], g_rec, carry, real[t], relu, da[t],
                None if keep is None else keep[t + 1],
            )  # fmt: skip
            recurrent_t(da[t], g_rec)  # g_{t-1} = W^T ∂E/∂a_t
    g = g_rec + carry  # (B, H) ∂E/∂s_0

    if keep is not None:
        keep[0] = g
        state_grads["h"] = keep

    da_flat = da.reshape(T * B, H)  # (T*B, H)
    d_x_tm = np.empty((T * B, D), dtype=s.dtype)  # (T*B, D)
    project(da_flat, weight_ih.T, d_x_tm, kind="dx")  # ∂E/∂x_t = U^T ∂E/∂a_t, all steps
    d_x = d_x_tm.reshape(T, B, D).transpose(1, 0, 2)  # (B, T, D) a view
    grads = {
        "weight_ih": weight_grad(da_flat, x_tm.reshape(T * B, D)),  # (H, D)
        "weight_hh": weight_grad(da_flat, s[:-1].reshape(T * B, H)),  # (H, H)
    }
    if cache["has_bias_ih"]:
        grads["bias_ih"] = da_flat.sum(axis=0)  # (H,)
    if cache["has_bias_hh"]:
        grads["bias_hh"] = da_flat.sum(axis=0)  # (H,)
    return np.ascontiguousarray(d_x), (g,), grads
