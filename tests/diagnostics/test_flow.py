"""Gradient flow through time: BPTT's per-step gradients against finite differences,
the lag split against the full gradient, Jacobian products against the analytic value."""

import numpy as np
import pytest

from bptt.diagnostics.flow import (
    cell_of,
    gradient_flow,
    lag_split,
    last_step_only,
    state_gradients,
)
from bptt.diagnostics.jacobian import jacobian_products, spectral_norms
from bptt.diagnostics.truncation import truncation_bias, windowed_gradient
from bptt.errors import BpttError
from bptt.nn import GRU, LSTM, RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
B, T, D, H = 2, 6, 3, 4


def _setup(cell, seed=0):
    rng = np.random.default_rng(seed)
    layer = CELLS[cell](D, H, dtype=np.float64, rng=rng)
    for p in layer.params.values():  # larger weights: gradients that differ a lot across k
        p *= 2.0
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    w_out = rng.standard_normal((B, T, H))  # (B, T, H) E = Σ w_out * outputs, so ∂E/∂out = w_out
    return layer, x, w_out


def _loss_with_state_nudged(layer, x, w_out, k, piece, delta):
    """E = Σ w_out * outputs when the state at step k (h_k, or C_k with h_k recomputed) moves by
    delta: the forward runs to k, the state is nudged, and the forward goes on from there."""
    _, forward, _, kwargs = cell_of(layer)
    p = layer.params
    weights = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    state = tuple(np.zeros((B, H)) for _ in layer.state_names)
    outputs = np.zeros((B, T, H))  # (B, T, H)
    if k > 0:
        out, state, cache = forward(x[:, :k], state, *weights, **kwargs)
        outputs[:, :k] = out
    state = list(state)
    if piece == "h":
        state[0] = state[0] + delta
    else:  # C_k moves and h_k = o_k tanh(C_k) follows
        state[1] = state[1] + delta
        if k > 0:
            o = cache["gates"][k - 1][:, 3 * H :]  # (B, H)
            state[0] = o * np.tanh(state[1])
    if k > 0:
        outputs[:, k - 1] = state[0]
    if k < T:
        out, _, _ = forward(x[:, k:], tuple(state), *weights, **kwargs)
        outputs[:, k:] = out
    return float(np.sum(w_out * outputs))


@pytest.mark.parametrize("upstream", ["full", "last"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_gradients_equal_finite_differences_of_a_nudged_state(cell, upstream):
    layer, x, w_out = _setup(cell)
    if upstream == "last":
        w_out = last_step_only(w_out)  # E_T alone
    kept = state_gradients(layer, x, w_out)
    pieces = ["h", "c"] if cell == "lstm" else ["h"]
    eps = 1e-6
    for piece in pieces:
        numeric = np.zeros((T + 1, B, H))  # (T+1, B, H)
        for k in range(T + 1):
            for b in range(B):
                for j in range(H):
                    delta = np.zeros((B, H))  # (B, H)
                    delta[b, j] = eps
                    up = _loss_with_state_nudged(layer, x, w_out, k, piece, delta)
                    down = _loss_with_state_nudged(layer, x, w_out, k, piece, -delta)
                    numeric[k, b, j] = (up - down) / (2 * eps)
        err = np.abs(kept[piece] - numeric).max() / np.abs(numeric).max()
        assert err < 1e-7, f"{cell} {piece}: relative error {err:.2e}"
    # the test has teeth: the gradient really changes with k
    norms = np.linalg.norm(kept["h"].reshape(T + 1, -1), axis=1)
    assert np.ptp(norms) > 0.1 * norms.max()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_lag_split_sums_to_the_full_weight_gradient(cell):
    layer, x, d = _setup(cell, seed=1)
    layer.forward(x)
    layer.backward(d)
    split = lag_split(layer, x, d)
    assert set(split) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    for name, parts in split.items():
        full = layer.grads[f"{name}_l0"]
        assert parts.shape == (T, *full.shape)
        np.testing.assert_allclose(parts.sum(axis=0), full, rtol=1e-12, atol=1e-13)
        assert np.abs(parts[1:]).max() > 1e-3  # later lags really contribute
    # lag 0 alone is one-step BPTT: every loss reaches only its own step
    one_step = windowed_gradient(layer, x, d, window=1)
    np.testing.assert_allclose(split["weight_hh"][0], one_step["weight_hh"], rtol=1e-12)


def _linear_rnn(a, b, seed=2):
    """A relu RNN whose states stay positive, so it is linear: s_j = W s_{j-1} + U x_j + c,
    with W = a I + (b/H) 1 1^T (eigenvalues a + b and a)."""
    rng = np.random.default_rng(seed)
    layer = RNN(D, H, nonlinearity="relu", dtype=np.float64, rng=rng)
    layer.params["weight_hh_l0"][...] = a * np.eye(H) + b / H * np.ones((H, H))
    layer.params["weight_ih_l0"][...] = np.abs(layer.params["weight_ih_l0"])
    layer.params["bias_ih_l0"][...] = 1.0
    layer.params["bias_hh_l0"][...] = 0.0
    x = np.abs(rng.standard_normal((B, T, D)))  # positive inputs: every unit stays active
    return layer, x


@pytest.mark.parametrize("method", ["auto", "exact", "power"])
@pytest.mark.parametrize(("a", "b"), [(0.5, 0.3), (0.9, 0.4)])
def test_jacobian_product_norm_of_a_linear_rnn_is_the_analytic_value(a, b, method):
    layer, x = _linear_rnn(a, b)
    _, forward, _, kwargs = cell_of(layer)
    p = layer.params
    weights = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    _, _, cache = forward(x, (np.zeros((B, H)),), *weights, **kwargs)
    assert (cache["h"][1:] > 0).all()  # linear indeed
    norms = spectral_norms("rnn", cache, method=method)  # (T+1, B)
    expected = (a + b) ** (T - np.arange(T + 1))  # ‖W^(T-k)‖_2 = ρ(W)^(T-k) for symmetric W
    np.testing.assert_allclose(norms, np.repeat(expected[:, None], B, axis=1), rtol=1e-9)


@pytest.mark.parametrize(("cell", "hidden"), [("rnn", 136), ("lstm", 72), ("gru", 136)])
@pytest.mark.parametrize("scale", [0.5, 3.0])  # products that vanish, and that grow
def test_auto_norms_equal_the_svd_on_large_states(cell, hidden, scale):
    """The default method, subspace iteration to a certified tolerance on states above
    EXACT_BELOW (where it does not just take the SVD), gives the SVD's numbers."""
    from bptt.diagnostics.jacobian import EXACT_BELOW

    rng = np.random.default_rng(11)
    layer = CELLS[cell](D, hidden, dtype=np.float64, rng=rng)
    layer.params["weight_hh_l0"] *= scale
    x = rng.standard_normal((3, 8, D))  # (B, T, D)
    name, forward, _, kwargs = cell_of(layer)
    p = layer.params
    zeros = tuple(np.zeros((3, hidden)) for _ in layer.state_names)
    weights = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    _, _, cache = forward(x, zeros, *weights, **kwargs)
    assert hidden * (2 if cell == "lstm" else 1) > EXACT_BELOW  # the power route runs
    exact = spectral_norms(name, cache, method="exact")  # (T+1, B)
    auto = spectral_norms(name, cache)  # (T+1, B)
    np.testing.assert_allclose(auto, exact, rtol=1e-8, atol=0)
    power = spectral_norms(name, cache, method="power")  # 30 fixed steps: only an estimate
    assert np.all(power <= exact * (1 + 1e-12))  # a Rayleigh quotient never overshoots


def test_auto_norms_fall_back_to_the_svd_where_power_iteration_is_slow():
    """Nearly equal top singular values converge slowly: after max_iterations the
    examples not yet certified take the SVD, so the answer is still exact."""
    from bptt.diagnostics.jacobian import _certified_norms

    rng = np.random.default_rng(2)
    U, _ = np.linalg.qr(rng.standard_normal((2, 150, 150)))  # (B, S, S) orthogonal
    V, _ = np.linalg.qr(rng.standard_normal((2, 150, 150)))  # (B, S, S)
    sigma = np.linspace(1.0, 0.1, 150)
    sigma[1] = 1.0 - 1e-7  # a gap of 1e-7
    P = U * sigma[None, None, :] @ V.transpose(0, 2, 1)  # (B, S, S)
    norms, _ = _certified_norms(P, None, None, max_iterations=5)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_jacobian_products_carry_the_last_loss_back_as_bptt_does(cell):
    """∂E_T/∂s_k = P_k^T ∂E_T/∂s_T: the cache-built Jacobians agree with the backward code."""
    layer, x, d = _setup(cell, seed=3)
    d_last = last_step_only(d)
    kept = state_gradients(layer, x, d_last)
    name, forward, _, kwargs = cell_of(layer)
    p = layer.params
    zeros = tuple(np.zeros((B, H)) for _ in layer.state_names)
    weights = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    _, _, cache = forward(x, zeros, *weights, **kwargs)
    top = d_last[:, -1]  # (B, H) ∂E_T/∂h_T
    if cell == "lstm":
        top = np.concatenate([top, np.zeros((B, H))], axis=1)  # (B, 2H) E_T reads h_T only
    for k, P in jacobian_products(name, cache):
        g = np.einsum("bij,bi->bj", P, top)  # (B, S)
        want = kept["h"][k]
        if cell == "lstm":
            f_next = cache["gates"][k][:, H : 2 * H] if k < T else 0.0  # (B, H)
            c_hold_h = kept["c"][k + 1] * f_next if k < T else np.zeros((B, H))
            want = np.concatenate([want, c_hold_h], axis=1)  # ∂E_T/∂(h_k, C_k), each other held
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12, err_msg=f"k={k}")


def test_gradient_flow_report_for_an_lstm():
    layer, x, d = _setup("lstm", seed=4)
    flow = gradient_flow(layer, x, d)
    assert flow.T == T and flow.cell == "lstm"
    for arr in (flow.last_h, flow.full_h, flow.last_c, flow.full_c, flow.jacobian, flow.gate_path):
        assert arr.shape == (T + 1,) and np.isfinite(arr).all()
    assert flow.jacobian[T] == pytest.approx(1.0) and flow.gate_path[T] == 1.0
    # the forget-gate path is a product of numbers in (0, 1): it only falls going back
    assert (np.diff(flow.gate_path) > 0).all()
    rows = flow.rows()
    assert rows[0]["lag"] == T and rows[-1]["lag"] == 0 and rows[0]["lag_grad_weight_hh"] is None
    assert flow.lag_norms.shape == (T,)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_truncation_bias_vanishes_at_the_full_length_and_is_shared_at_one(cell):
    layer, x, d = _setup(cell, seed=5)
    tb = truncation_bias(layer, x, d, [1, 2, 3, T])
    assert tb.windowed_error[0] == pytest.approx(tb.sliding_error[0], rel=1e-10)
    assert tb.windowed_error[-1] < 1e-12 and tb.sliding_error[-1] < 1e-12
    assert tb.windowed_cosine[-1] == pytest.approx(1.0)
    assert tb.sliding_error[0] > 0.01  # truncation to one step really loses something
    assert tb.sliding_error[0] > tb.sliding_error[2]


def test_flow_refuses_stacked_or_bidirectional_layers():
    rng = np.random.default_rng(0)
    x = np.zeros((1, 2, D))
    with pytest.raises(BpttError, match="num_layers=2"):
        state_gradients(LSTM(D, H, num_layers=2, rng=rng), x, np.zeros((1, 2, H)))
    with pytest.raises(BpttError, match="d_outputs must be"):
        state_gradients(LSTM(D, H, rng=rng), x, np.zeros((1, 2, H + 1)))
