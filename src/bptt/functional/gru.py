"""The gated recurrent unit (GRU) over a whole sequence, and its BPTT.

Forward, for t = 1..T, in PyTorch's convention (gate order r, z, n):

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))   candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    weight_ih = [W_ir; W_iz; W_in] (3H, D)     the lecture's U, fused
    weight_hh = [W_hr; W_hz; W_hn] (3H, H)     the lecture's W, fused
    bias_ih = [b_ir; b_iz; b_in], bias_hh = [b_hr; b_hz; b_hn] (3H,) each
    h_t ≡ the lecture's s_t

The reset gate multiplies the hidden product *after* it is taken,
r_t * (W_hn h_{t-1} + b_hn), as PyTorch (and cuDNN) do. Cho et al. (2014)
apply it before the product, W_hn (r_t * h_{t-1}); the two are different
functions, and only this one loads PyTorch's weights. It is also why b_hn
cannot be folded into b_in: b_hn sits inside the r_t product.

Backward (BPTT). Write the pre-activations

    a_t = W_i x_t + b_i        (3H,)  the input part of all three gates
    c_t = W_h h_{t-1} + b_h    (3H,)  the hidden part; c_t^n ≡ W_hn h_{t-1} + b_hn

and g_t = ∂E/∂h_t, the gradient arriving at h_t (from the output at t and
from h_{t+1}). Then, line for line in :func:`gru_backward`:

    ∂E/∂n̂_t    = g_t * (1 - z_t) * (1 - n_t²)        n̂_t: n_t's pre-activation
    ∂E/∂r̂_t    = ∂E/∂n̂_t * c_t^n * r_t (1 - r_t)
    ∂E/∂ẑ_t    = g_t * (h_{t-1} - n_t) * z_t (1 - z_t)
    ∂E/∂a_t     = [∂E/∂r̂_t; ∂E/∂ẑ_t; ∂E/∂n̂_t]
    ∂E/∂c_t     = [∂E/∂r̂_t; ∂E/∂ẑ_t; ∂E/∂n̂_t * r_t]   r_t scales the hidden n part
    g_{t-1}     = W_h^T ∂E/∂c_t + g_t * z_t            through the gates, and directly
    ∂E/∂W_i     = Σ_t ∂E/∂a_t x_t^T                     one product over all steps
    ∂E/∂W_h     = Σ_t ∂E/∂c_t h_{t-1}^T                 one product over all steps
    ∂E/∂b_i     = Σ_t ∂E/∂a_t,   ∂E/∂b_h = Σ_t ∂E/∂c_t (they differ in the n part)
    ∂E/∂x_t     = W_i^T ∂E/∂a_t

The step pair :func:`gru_step_forward` / :func:`gru_step_backward` follows these
equations line for line; :func:`gru_forward` and :func:`gru_backward` run it over time,
on the reference loop (:mod:`bptt.functional.reference`, which also says what a mask
does) or, by default, the fast route (:mod:`bptt.functional.fast.gru`): same numbers.

Shapes: B batch, T time steps, D input features, H hidden units, 3H the
three gates r, z, n stacked in that order.
"""

from __future__ import annotations

import numpy as np

from bptt.functional import reference
from bptt.functional.activations import sigmoid
from bptt.functional.fast import gru as fast

STATE = ("h",)  # the cache's state history: "h" (T+1, B, H), as in every cell


def gru_step_forward(
    x_t: np.ndarray, state: tuple[np.ndarray], weights: dict
) -> tuple[tuple[np.ndarray], dict]:
    """One GRU step: x_t (B, D), state ``(h_{t-1},)`` (B, H) -> ``(h_t,)`` and the step's cache.

    ``weights`` holds ``weight_ih`` (3H, D), ``weight_hh`` (3H, H), ``bias_ih``
    and ``bias_hh`` (3H,) or None.
    """
    (h_prev,) = state
    H = h_prev.shape[1]
    a = x_t @ weights["weight_ih"].T  # (B, 3H) a_t = W_i x_t + b_i
    c = h_prev @ weights["weight_hh"].T  # (B, 3H) c_t = W_h h_{t-1} + b_h
    if weights.get("bias_ih") is not None:
        a = a + weights["bias_ih"]
    if weights.get("bias_hh") is not None:
        c = c + weights["bias_hh"]
    r_t = sigmoid(a[:, :H] + c[:, :H])  # (B, H) reset gate
    z_t = sigmoid(a[:, H : 2 * H] + c[:, H : 2 * H])  # (B, H) update gate
    n_t = np.tanh(a[:, 2 * H :] + r_t * c[:, 2 * H :])  # (B, H) candidate, reset after the product
    h_t = (1 - z_t) * n_t + z_t * h_prev  # (B, H) h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    cache = {
        "x": x_t,
        "h_prev": h_prev,
        "gates": np.concatenate([r_t, z_t, n_t], axis=1),  # (B, 3H)
        "hn": c[:, 2 * H :],  # (B, H) c_t^n = W_hn h_{t-1} + b_hn
        "weights": weights,
    }
    return (h_t,), cache


def gru_step_backward(
    d_state: tuple[np.ndarray], cache: dict
) -> tuple[np.ndarray, tuple[np.ndarray], dict[str, np.ndarray]]:
    """BPTT through one step: ``(g_t,)`` = ``(∂E/∂h_t,)`` -> ∂E/∂x_t, ``(g_{t-1},)``, ∂E/∂W."""
    (g,) = d_state
    gates, c_n, h_prev, weights = cache["gates"], cache["hn"], cache["h_prev"], cache["weights"]
    H = g.shape[1]
    r_t, z_t, n_t = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    d_n = g * (1 - z_t) * (1 - n_t**2)  # (B, H) ∂E/∂n̂_t
    d_r = d_n * c_n * r_t * (1 - r_t)  # (B, H) ∂E/∂r̂_t
    d_z = g * (h_prev - n_t) * z_t * (1 - z_t)  # (B, H) ∂E/∂ẑ_t
    d_a = np.concatenate([d_r, d_z, d_n], axis=1)  # (B, 3H) ∂E/∂a_t
    d_c = np.concatenate([d_r, d_z, d_n * r_t], axis=1)  # (B, 3H) ∂E/∂c_t
    g_prev = d_c @ weights["weight_hh"] + g * z_t  # (B, H) through the gates, and directly
    d_x = d_a @ weights["weight_ih"]  # (B, D) ∂E/∂x_t = W_i^T ∂E/∂a_t
    d_weights = {
        "weight_ih": d_a.T @ cache["x"],  # (3H, D) ∂E/∂a_t x_t^T
        "weight_hh": d_c.T @ h_prev,  # (3H, H) ∂E/∂c_t h_{t-1}^T
    }
    if weights.get("bias_ih") is not None:
        d_weights["bias_ih"] = d_a.sum(axis=0)  # (3H,)
    if weights.get("bias_hh") is not None:
        d_weights["bias_hh"] = d_c.sum(axis=0)  # (3H,)
    return d_x, (g_prev,), d_weights


def gru_forward(
    x, state, weight_ih, weight_hh, bias_ih=None, bias_hh=None, mask=None, workspace=None
):
    """Run the GRU (r, z, n gates; reset after the hidden product) over all T steps.

    x (B, T, D), state ``(h_0,)`` (B, H), ``weight_ih`` W_i = [W_ir; W_iz; W_in] (3H, D),
    ``weight_hh`` W_h = [W_hr; W_hz; W_hn] (3H, H), biases (3H,) or None; ``mask`` and
    ``workspace`` as in :meth:`bptt.functional.reference.Route.forward`. Returns outputs
    (B, T, H), ``(h_T,)`` and the cache for :func:`gru_backward`, which holds, time-major,
    ``"h"`` (T+1, B, H) the states h_0 .. h_T, ``"gates"`` (T, B, 3H) the gate values
    r_t, z_t, n_t after their activations and ``"hn"`` (T, B, H) c_t^n.
    """
    return ROUTE.forward(x, state, (weight_ih, weight_hh, bias_ih, bias_hh), mask, workspace)


def gru_backward(d_outputs, d_final_state, cache, state_grads=None):
    """BPTT for :func:`gru_forward` (equations in the module docstring).

    ``d_final_state`` is ``(∂E/∂h_T,)`` or None. Returns ∂E/∂x (B, T, D), ``(∂E/∂h_0,)``
    and {"weight_ih" (3H, D), "weight_hh" (3H, H), "bias_ih" (3H,), "bias_hh" (3H,)}
    (each bias only if it was used); ``state_grads`` as in
    :meth:`bptt.functional.reference.Route.backward`.
    """
    return ROUTE.backward(d_outputs, d_final_state, cache, state_grads)


# The plain loop over the step pair above, or the fast route (bptt.functional.fast.gru); then
# what the cache keeps time-major.
_STEPS, _FAST = (gru_step_forward, gru_step_backward), (fast.gru_forward, fast.gru_backward)
ROUTE = reference.Route("gru", 3, STATE, *_STEPS, *_FAST, ("gates", "hn"))
