"""The lecture's LSTM over a whole sequence, and its BPTT.

The lecture writes each gate with its own matrix over the joined vector
[h_{t-1}, x_t]:

    f_t  = σ(W_f · [h_{t-1}, x_t] + b_f)        forget gate
    i_t  = σ(W_i · [h_{t-1}, x_t] + b_i)        input gate
    C~_t = tanh(W_C · [h_{t-1}, x_t] + b_C)     candidate values
    C_t  = f_t * C_{t-1} + i_t * C~_t           update the old cell state
    o_t  = σ(W_o · [h_{t-1}, x_t] + b_o)        output gate
    h_t  = o_t * tanh(C_t)

Splitting each W_k (H, H+D) by columns into its h part and its x part and
stacking the four gates by rows, in PyTorch's order i, f, g (≡ C~), o, gives
the two fused matrices used here:

    weight_ih (4H, D) = [W_i[:, H:]; W_f[:, H:]; W_C[:, H:]; W_o[:, H:]]   U in the lecture's RNN
    weight_hh (4H, H) = [W_i[:, :H]; W_f[:, :H]; W_C[:, :H]; W_o[:, :H]]   W in the lecture's RNN
    bias_ih + bias_hh (4H,) = [b_i; b_f; b_C; b_o]

so one step is, for t = 1..T:

    z_t  = weight_ih x_t + bias_ih + weight_hh h_{t-1} + bias_hh     (B, 4H)
    i_t, f_t, g_t, o_t = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)          z_t split in 4
    C_t  = f_t * C_{t-1} + i_t * g_t
    h_t  = o_t * tanh(C_t)

Backward (BPTT). With dh = ∂E/∂h_t (from the output at t and from step t+1)
and dC = ∂E/∂C_t (from step t+1, the cell state's conveyor belt):

    ∂E/∂o_t     = dh * tanh(C_t)
    dC         += dh * o_t * (1 - tanh²(C_t))
    ∂E/∂i_t     = dC * g_t
    ∂E/∂f_t     = dC * C_{t-1}
    ∂E/∂g_t     = dC * i_t
    ∂E/∂C_{t-1} = dC * f_t                         the belt: only a gate in the way
    ∂E/∂z_t     = [∂E/∂i_t i_t(1-i_t); ∂E/∂f_t f_t(1-f_t);
                   ∂E/∂g_t (1-g_t²);   ∂E/∂o_t o_t(1-o_t)]           (B, 4H)
    ∂E/∂h_{t-1} = weight_hh^T ∂E/∂z_t
    ∂E/∂x_t     = weight_ih^T ∂E/∂z_t
    ∂E/∂weight_ih = Σ_t ∂E/∂z_t x_t^T             one product over all steps
    ∂E/∂weight_hh = Σ_t ∂E/∂z_t h_{t-1}^T         one product over all steps
    ∂E/∂bias_ih   = ∂E/∂bias_hh = Σ_t ∂E/∂z_t

The step pair :func:`lstm_step_forward` / :func:`lstm_step_backward` follows these
equations line for line; :func:`lstm_forward` and :func:`lstm_backward` run it over time,
on the reference loop (:mod:`bptt.functional.reference`, which also says what a mask
does) or, by default, the fast route (:mod:`bptt.functional.fast.lstm`): same numbers.
A padded step carries h and C both (h_t = h_{t-1}, C_t = C_{t-1}).

Shapes: B batch, T time steps, D input features, H hidden units; 4H is the
four gates i, f, g, o stacked in that order.
"""

from __future__ import annotations

import numpy as np

from bptt.functional import reference
from bptt.functional.activations import sigmoid
from bptt.functional.fast import lstm as fast

STATE = ("h", "c")  # the cache's state histories, (T+1, B, H) each


def lstm_step_forward(
    x_t: np.ndarray, state: tuple[np.ndarray, np.ndarray], weights: dict
) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """One LSTM step: x_t (B, D), state ``(h_{t-1}, C_{t-1})`` (B, H) each -> ``(h_t, C_t)``.

    ``weights`` holds ``weight_ih`` (4H, D), ``weight_hh`` (4H, H), ``bias_ih``
    and ``bias_hh`` (4H,) or None. Returns the new state and the step's cache.
    """
    h_prev, c_prev = state
    H = h_prev.shape[1]
    z = (
        x_t @ weights["weight_ih"].T + h_prev @ weights["weight_hh"].T + reference.bias_sum(weights)
    )  # (B, 4H) z_t = weight_ih x_t + weight_hh h_{t-1} + b
    i_t = sigmoid(z[:, :H])  # (B, H) input gate
    f_t = sigmoid(z[:, H : 2 * H])  # (B, H) forget gate
    g_t = np.tanh(z[:, 2 * H : 3 * H])  # (B, H) candidate C~_t
    o_t = sigmoid(z[:, 3 * H :])  # (B, H) output gate
    C_t = f_t * c_prev + i_t * g_t  # (B, H) C_t = f_t * C_{t-1} + i_t * g_t
    tanh_C_t = np.tanh(C_t)  # (B, H)
    h_t = o_t * tanh_C_t  # (B, H) h_t = o_t * tanh(C_t)
    cache = {
        "x": x_t,
        "h_prev": h_prev,
        "c_prev": c_prev,
        "gates": np.concatenate([i_t, f_t, g_t, o_t], axis=1),  # (B, 4H)
        "tanh_c": tanh_C_t,
        "weights": weights,
    }
    return (h_t, C_t), cache


def lstm_step_backward(
    d_state: tuple[np.ndarray, np.ndarray], cache: dict
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """BPTT through one step: (∂E/∂h_t, ∂E/∂C_t) -> ∂E/∂x_t, (∂E/∂h_{t-1}, ∂E/∂C_{t-1}), ∂E/∂W.

    ∂E/∂C_t arrives from step t+1 only; the path through h_t is added here.
    """
    dh, dC = d_state
    gates, tanh_C_t, weights = cache["gates"], cache["tanh_c"], cache["weights"]
    H = dh.shape[1]
    i_t, f_t, g_t, o_t = (
        gates[:, :H],
        gates[:, H : 2 * H],
        gates[:, 2 * H : 3 * H],
        gates[:, 3 * H :],
    )
    d_o = dh * tanh_C_t  # (B, H) ∂E/∂o_t = dh * tanh(C_t)
    dC = dC + dh * o_t * (1 - tanh_C_t**2)  # (B, H) dC += dh * o_t * (1 - tanh²(C_t))
    d_i = dC * g_t  # (B, H) ∂E/∂i_t = dC * g_t
    d_f = dC * cache["c_prev"]  # (B, H) ∂E/∂f_t = dC * C_{t-1}
    d_g = dC * i_t  # (B, H) ∂E/∂g_t = dC * i_t
    dC_prev = dC * f_t  # (B, H) ∂E/∂C_{t-1} = dC * f_t, the belt
    dz = np.concatenate(
        [d_i * i_t * (1 - i_t), d_f * f_t * (1 - f_t), d_g * (1 - g_t**2), d_o * o_t * (1 - o_t)],
        axis=1,
    )  # (B, 4H) ∂E/∂z_t through each gate's slope
    dh_prev = dz @ weights["weight_hh"]  # (B, H) ∂E/∂h_{t-1} = weight_hh^T ∂E/∂z_t
    d_x = dz @ weights["weight_ih"]  # (B, D) ∂E/∂x_t = weight_ih^T ∂E/∂z_t
    d_weights = {
        "weight_ih": dz.T @ cache["x"],  # (4H, D) ∂E/∂z_t x_t^T
        "weight_hh": dz.T @ cache["h_prev"],  # (4H, H) ∂E/∂z_t h_{t-1}^T
    }
    for name in ("bias_ih", "bias_hh"):
        if weights.get(name) is not None:
            d_weights[name] = dz.sum(axis=0)  # (4H,)
    return d_x, (dh_prev, dC_prev), d_weights


def _total_dc(d_state: list, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """(∂E/∂h_t, ∂E/∂C_t) with C_t's path through h_t added, as the fast route keeps them."""
    dh, dC = d_state
    H = dh.shape[1]
    o_t = cache["gates"][:, 3 * H :]  # (B, H)
    return dh, dC + dh * o_t * (1 - cache["tanh_c"] ** 2)


def lstm_forward(
    x, state, weight_ih, weight_hh, bias_ih=None, bias_hh=None, mask=None, workspace=None
):
    """Run the LSTM step (i, f, g, o gates; C_t = f_t * C_{t-1} + i_t * g_t) over all T steps.

    x (B, T, D), state ``(h_0, C_0)`` (B, H) each, ``weight_ih`` (4H, D) and ``weight_hh``
    (4H, H) with gate rows in order i, f, g, o, biases (4H,) or None; ``mask`` and
    ``workspace`` as in :meth:`bptt.functional.reference.Route.forward`. Returns outputs
    (B, T, H), ``(h_T, C_T)`` and the cache for :func:`lstm_backward`, which holds,
    time-major, ``"h"`` and ``"c"`` (T+1, B, H) with h_0 and C_0 at index 0, ``"gates"``
    (T, B, 4H) the post-activation i, f, g, o, and ``"tanh_c"`` (T, B, H).
    """
    return ROUTE.forward(x, state, (weight_ih, weight_hh, bias_ih, bias_hh), mask, workspace)


def lstm_backward(d_outputs, d_final_state, cache, state_grads=None):
    """BPTT for :func:`lstm_forward` (the backward equations in the module docstring).

    ``d_final_state`` is ``(∂E/∂h_T, ∂E/∂C_T)``, either may be None (zero), or None.
    Returns ∂E/∂x (B, T, D), ``(∂E/∂h_0, ∂E/∂C_0)`` and the weight gradients (biases only
    if used); ``state_grads`` as in :meth:`bptt.functional.reference.Route.backward`,
    with ``"h"`` and ``"c"``: ∂E/∂h_t and ∂E/∂C_t for t = 0..T.
    """
    return ROUTE.backward(d_outputs, d_final_state, cache, state_grads)


# The plain loop over the step pair above, or the fast route (bptt.functional.fast.lstm); then
# what the cache keeps time-major, the total gradient of C_t and the states' names in errors.
_STEPS, _FAST = (lstm_step_forward, lstm_step_backward), (fast.lstm_forward, fast.lstm_backward)
ROUTE = reference.Route(
    "lstm", 4, STATE, *_STEPS, *_FAST, ("gates", "tanh_c"), _total_dc, ("h0", "c0")
)
