"""The lecture's recurrent network over a whole sequence, and its BPTT.

Forward, for t = 1..T (the lecture's equations, with biases):

    s_t = tanh(U x_t + W s_{t-1} + b)        U ≡ weight_ih (H, D)
                                             W ≡ weight_hh (H, H)
                                             b ≡ bias_ih + bias_hh (H,)
                                             s_t ≡ h_t, the hidden state

The output layer ŷ_t = softmax(V s_t + c) is a separate Linear plus a loss.

Backward (BPTT). With a_t = U x_t + W s_{t-1} + b the pre-activation and
g_t = ∂E/∂s_t the gradient arriving at s_t (from the output at t and from s_{t+1}):

    ∂E/∂a_t     = g_t * (1 - s_t²)                tanh' (relu: [a_t > 0])
    g_{t-1}    += W^T ∂E/∂a_t                      the lecture's ∂s_t/∂s_{t-1} chain
    ∂E/∂U       = Σ_t ∂E/∂a_t x_t^T                one product over all steps
    ∂E/∂W       = Σ_t ∂E/∂a_t s_{t-1}^T            one product over all steps
    ∂E/∂b       = Σ_t ∂E/∂a_t
    ∂E/∂x_t     = U^T ∂E/∂a_t

The step pair :func:`rnn_step_forward` / :func:`rnn_step_backward` follows these
equations line for line; :func:`rnn_forward` and :func:`rnn_backward` run it over time,
on the reference loop (:mod:`bptt.functional.reference`, which also says what a mask
does) or, by default, the fast route (:mod:`bptt.functional.fast.rnn`): same numbers.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError
from bptt.functional import reference
from bptt.functional.fast import rnn as fast

NONLINEARITIES = ("tanh", "relu")
STATE = ("h",)  # the cache's state history: "h" (T+1, B, H), as in every cell


def rnn_step_forward(
    x_t: np.ndarray, state: tuple[np.ndarray], weights: dict, nonlinearity: str = "tanh"
) -> tuple[tuple[np.ndarray], dict]:
    """s_t = tanh(U x_t + W s_{t-1} + b) for one step: x_t (B, D), state ``(s_{t-1},)`` (B, H).

    ``weights`` holds ``weight_ih`` (H, D), ``weight_hh`` (H, H), ``bias_ih``
    and ``bias_hh`` (H,) or None. Returns ``(s_t,)`` and the step's cache.
    """
    (s_prev,) = state
    U, W = weights["weight_ih"], weights["weight_hh"]
    a = x_t @ U.T + s_prev @ W.T + reference.bias_sum(weights)  # (B, H) a_t = U x_t + W s_{t-1} + b
    s = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)  # (B, H) s_t
    cache = {"x": x_t, "s_prev": s_prev, "s": s, "weights": weights, "nonlinearity": nonlinearity}
    return (s,), cache


def rnn_step_backward(
    d_state: tuple[np.ndarray], cache: dict
) -> tuple[np.ndarray, tuple[np.ndarray], dict[str, np.ndarray]]:
    """BPTT through one step: ``(g_t,)`` = ``(∂E/∂s_t,)`` -> ∂E/∂x_t, ``(g_{t-1},)``, ∂E/∂W."""
    (g,) = d_state
    s, weights = cache["s"], cache["weights"]
    slope = 1 - s * s if cache["nonlinearity"] == "tanh" else (s > 0).astype(s.dtype)  # (B, H)
    da = g * slope  # (B, H) ∂E/∂a_t = g_t * (1 - s_t²)
    g_prev = da @ weights["weight_hh"]  # (B, H) W^T ∂E/∂a_t
    d_x = da @ weights["weight_ih"]  # (B, D) U^T ∂E/∂a_t
    d_weights = {
        "weight_ih": da.T @ cache["x"],  # (H, D) ∂E/∂a_t x_t^T
        "weight_hh": da.T @ cache["s_prev"],  # (H, H) ∂E/∂a_t s_{t-1}^T
    }
    for name in ("bias_ih", "bias_hh"):
        if weights.get(name) is not None:
            d_weights[name] = da.sum(axis=0)  # (H,)
    return d_x, (g_prev,), d_weights


def rnn_forward(
    x,
    state,
    weight_ih,
    weight_hh,
    bias_ih=None,
    bias_hh=None,
    mask=None,
    nonlinearity="tanh",
    workspace=None,
):
    """Run s_t = tanh(U x_t + W s_{t-1} + b) over all T steps.

    x (B, T, D), state ``(s_0,)`` (B, H), U = ``weight_ih`` (H, D), W = ``weight_hh``
    (H, H), biases (H,) or None; ``nonlinearity`` "tanh" (the lecture's) or "relu";
    ``mask`` and ``workspace`` as in :meth:`bptt.functional.reference.Route.forward`.
    Returns outputs (B, T, H), ``(s_T,)`` and the cache for :func:`rnn_backward`,
    whose ``"h"`` (T+1, B, H) holds s_0 .. s_T.
    """
    if nonlinearity not in NONLINEARITIES:
        raise BpttError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    return ROUTE.forward(x, state, weights, mask, workspace, nonlinearity=nonlinearity)


def rnn_backward(d_outputs, d_final_state, cache, state_grads=None):
    """BPTT for :func:`rnn_forward`: ∂E/∂x (B, T, D), ``(∂E/∂s_0,)`` and ∂E/∂weights.

    ``d_final_state`` is ``(∂E/∂s_T,)`` or None; ``state_grads`` as in
    :meth:`bptt.functional.reference.Route.backward`: its ``"h"`` is ∂E/∂s_t for
    t = 0..T, what flows back through time (the vanishing-gradient diagnostics read it).
    """
    return ROUTE.backward(d_outputs, d_final_state, cache, state_grads)


# The plain loop over the step pair above, or the fast route (bptt.functional.fast.rnn).
_STEPS, _FAST = (rnn_step_forward, rnn_step_backward), (fast.rnn_forward, fast.rnn_backward)
ROUTE = reference.Route("rnn", 1, STATE, *_STEPS, *_FAST)
