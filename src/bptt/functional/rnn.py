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

Masks: where mask[b, t] is False the step is padding: the state is carried
unchanged (s_t = s_{t-1}), the output is zero, and nothing there receives
gradient. So a padded batch gives what each sequence gives alone.

One step of each is :func:`rnn_step_forward` and :func:`rnn_step_backward`,
written line for line from these equations; :func:`rnn_forward` and
:func:`rnn_backward` run them over time (the reference loop in
:mod:`bptt.functional.reference`) or, by default, take the fast route
(:mod:`bptt.functional.fast.rnn`), which gives the same numbers.

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
        workspace: a dict whose arrays the fast route's cache may reuse from
            the last call (see :mod:`bptt.functional.fast._workspace`); None: all new.

    Returns:
        outputs (B, T, H) (zero at padded steps), ``(s_T,)`` the final state
        (the state after each sequence's last real step), and the cache for
        :func:`rnn_backward`; its ``"h"`` (T+1, B, H) holds s_0 .. s_T.
    """
    if nonlinearity not in NONLINEARITIES:
        raise BpttError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    return ROUTE.forward(x, state, weights, mask, workspace, nonlinearity=nonlinearity)


def rnn_backward(
    d_outputs: np.ndarray,
    d_final_state: tuple[np.ndarray | None] | None,
    cache: dict,
    state_grads: dict | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray], dict[str, np.ndarray]]:
    """BPTT for :func:`rnn_forward`, on the route its forward took.

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
    return ROUTE.backward(d_outputs, d_final_state, cache, state_grads)


# The plain loop over the step pair above, or the fast route (bptt.functional.fast.rnn).
_STEPS, _FAST = (rnn_step_forward, rnn_step_backward), (fast.rnn_forward, fast.rnn_backward)
ROUTE = reference.Route("rnn", 1, STATE, *_STEPS, *_FAST)
