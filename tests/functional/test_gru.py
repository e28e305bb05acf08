"""bptt.functional.gru: finite differences, PyTorch parity, masks.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cell_checks import WEIGHTS, D, H, check_padded_batch_equals_each_alone, make_mask
from cell_checks import make_params as make_cell_params

from bptt.diagnostics import numeric_gradient, relative_error
from bptt.functional.gru import gru_backward, gru_forward


def make_params(rng: np.random.Generator, dtype=np.float64, bias: bool = True) -> dict:
    return make_cell_params(rng, 3, dtype, bias)  # G = 3


def run(x, h0, params, mask, d_out, d_hT):
    """Forward, the scalar E = Σ outputs·d_out + Σ h_T·d_hT, and its BPTT gradients."""
    out, (hT,), cache = gru_forward(x, (h0,), mask=mask, **params)
    loss = float(np.sum(out * d_out) + np.sum(hT * d_hT))
    d_x, (d_h0,), grads = gru_backward(d_out, (d_hT,), cache)
    return loss, out, hT, d_x, d_h0, grads


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T", [1, 2, 7])
def test_gradients_match_finite_differences(T: int, B: int, masked: bool) -> None:
    rng = np.random.default_rng(100 * T + 10 * B + masked)
    params = make_params(rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    h0 = rng.standard_normal((B, H))  # (B, H)
    mask = make_mask(rng, B, T) if masked else None
    d_out = rng.standard_normal((B, T, H))  # (B, T, H)
    d_hT = rng.standard_normal((B, H))  # (B, H)

    _, _, _, d_x, d_h0, grads = run(x, h0, params, mask, d_out, d_hT)
    assert set(grads) == set(WEIGHTS)

    def loss() -> float:
        return run(x, h0, params, mask, d_out, d_hT)[0]

    analytic = {"x": d_x, "h0": d_h0, **grads}
    arrays = {"x": x, "h0": h0, **params}
    for name, arr in arrays.items():
        err = relative_error(analytic[name], numeric_gradient(loss, arr))
        assert err < 1e-6, f"{name}: relative error {err:.2e} (T={T}, B={B}, mask={masked})"


def test_gradients_without_bias_match_finite_differences() -> None:
    rng = np.random.default_rng(7)
    params = make_params(rng, bias=False)
    x = rng.standard_normal((2, 3, D))  # (B, T, D)
    h0 = rng.standard_normal((2, H))  # (B, H)
    d_out = rng.standard_normal((2, 3, H))  # (B, T, H)
    d_hT = rng.standard_normal((2, H))  # (B, H)
    _, _, _, d_x, d_h0, grads = run(x, h0, params, None, d_out, d_hT)
    assert set(grads) == {"weight_ih", "weight_hh"}

    def loss() -> float:
        return run(x, h0, params, None, d_out, d_hT)[0]

    analytic = {"x": d_x, "h0": d_h0, **grads}
    for name, arr in {"x": x, "h0": h0, **params}.items():
        err = relative_error(analytic[name], numeric_gradient(loss, arr))
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


def torch_gru(x, h0, params, d_out, d_hT, dtype):
    """The same computation through torch.nn.GRU; returns outputs, h_n and every gradient."""
    bias = "bias_ih" in params
    gru = torch.nn.GRU(D, H, num_layers=1, bias=bias, batch_first=True).to(dtype)
    with torch.no_grad():
        for name in params:
            getattr(gru, name + "_l0").copy_(torch.from_numpy(params[name]))
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h0[None], requires_grad=True)  # (1, B, H)
    out, hn = gru(xt, ht)
    loss = (out * torch.from_numpy(d_out)).sum() + (hn[0] * torch.from_numpy(d_hT)).sum()
    loss.backward()
    grads = {name: getattr(gru, name + "_l0").grad.numpy() for name in params}
    return out.detach().numpy(), hn[0].detach().numpy(), xt.grad.numpy(), ht.grad[0].numpy(), grads


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("dtype", "tol"), [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["float64", "float32"]
)
def test_matches_torch_gru(dtype, tol: float, bias: bool) -> None:
    rng = np.random.default_rng(2024)
    B, T = 3, 7
    params = make_params(rng, dtype, bias=bias)
    x = rng.standard_normal((B, T, D)).astype(dtype)  # (B, T, D)
    h0 = rng.standard_normal((B, H)).astype(dtype)  # (B, H)
    d_out = rng.standard_normal((B, T, H)).astype(dtype)  # (B, T, H)
    d_hT = rng.standard_normal((B, H)).astype(dtype)  # (B, H)

    _, out, hT, d_x, d_h0, grads = run(x, h0, params, None, d_out, d_hT)
    t_out, t_hT, t_dx, t_dh0, t_grads = torch_gru(
        x, h0, params, d_out, d_hT, torch.float64 if dtype == np.float64 else torch.float32
    )
    ours = {"outputs": out, "h_n": hT, "x": d_x, "h0": d_h0, **grads}
    theirs = {"outputs": t_out, "h_n": t_hT, "x": t_dx, "h0": t_dh0, **t_grads}
    assert set(grads) == set(t_grads)
    for name, value in ours.items():
        assert value.dtype == dtype, f"{name} is {value.dtype}, expected {np.dtype(dtype)}"
        np.testing.assert_allclose(value, theirs[name], rtol=tol, atol=tol, err_msg=name)


def test_masked_batch_equals_each_sequence_alone() -> None:
    rng = np.random.default_rng(11)
    check_padded_batch_equals_each_alone(run, make_params(rng), rng)


def test_padded_step_carries_the_state_in_the_cache() -> None:
    rng = np.random.default_rng(3)
    params = make_params(rng)
    mask = np.array([[1, 0, 1, 0]], dtype=bool)  # (B, T)
    x = rng.standard_normal((1, 4, D))  # (B, T, D)
    h0 = rng.standard_normal((1, H))  # (B, H)
    _, (hT,), cache = gru_forward(x, (h0,), mask=mask, **params)
    h = cache["h"]  # (T+1, B, H)
    assert h.shape == (5, 1, H) and cache["gates"].shape == (4, 1, 3 * H)
    np.testing.assert_array_equal(h[2], h[1])  # step 1 is padding
    np.testing.assert_array_equal(h[4], h[3])  # step 3 is padding
    np.testing.assert_array_equal(hT, h[3])  # final state: after the last real step


def test_cache_gates_follow_the_equations() -> None:
    rng = np.random.default_rng(5)
    params = make_params(rng)
    x = rng.standard_normal((2, 3, D))  # (B, T, D)
    h0 = rng.standard_normal((2, H))  # (B, H)
    out, _, cache = gru_forward(x, (h0,), **params)
    W_i, W_h, b_i, b_h = (params[k] for k in WEIGHTS)
    h = h0
    for t in range(3):
        a = x[:, t] @ W_i.T + b_i  # (B, 3H)
        c = h @ W_h.T + b_h  # (B, 3H)
        r = 1 / (1 + np.exp(-(a[:, :H] + c[:, :H])))  # (B, H)
        z = 1 / (1 + np.exp(-(a[:, H : 2 * H] + c[:, H : 2 * H])))  # (B, H)
        n = np.tanh(a[:, 2 * H :] + r * c[:, 2 * H :])  # (B, H)
        h = (1 - z) * n + z * h  # (B, H)
        np.testing.assert_allclose(cache["gates"][t], np.hstack([r, z, n]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(cache["h"][t + 1], h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out[:, t], h, rtol=1e-12, atol=1e-14)


def test_wrong_weight_shape_names_expected_and_received() -> None:
    rng = np.random.default_rng(0)
    params = make_params(rng)
    params["weight_ih"] = np.zeros((4 * H, D))  # LSTM-sized by mistake
    with pytest.raises(ValueError, match=r"\(15, 4\).*\(20, 4\)"):
        gru_forward(np.zeros((1, 2, D)), (np.zeros((1, H)),), **params)


@pytest.mark.parametrize("d_final_state", [None, (None,)])
def test_missing_final_state_gradient_means_zero(d_final_state) -> None:
    rng = np.random.default_rng(9)
    params = make_params(rng)
    x = rng.standard_normal((2, 3, D))  # (B, T, D)
    h0 = rng.standard_normal((2, H))  # (B, H)
    d_out = rng.standard_normal((2, 3, H))  # (B, T, H)
    _, _, _, d_x, d_h0, grads = run(x, h0, params, None, d_out, np.zeros((2, H)))
    _, _, cache = gru_forward(x, (h0,), **params)
    d_x_none, (d_h0_none,), grads_none = gru_backward(d_out, d_final_state, cache)
    np.testing.assert_array_equal(d_x_none, d_x)
    np.testing.assert_array_equal(d_h0_none, d_h0)
    for name in grads:
        np.testing.assert_array_equal(grads_none[name], grads[name], err_msg=name)
