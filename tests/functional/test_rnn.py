"""bptt.functional.rnn: finite differences, PyTorch parity, masks (tanh and relu).

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from cell_checks import WEIGHTS, D, H, check_padded_batch_equals_each_alone, make_mask
from cell_checks import make_params as make_cell_params

from bptt.diagnostics import numeric_gradient, relative_error
from bptt.functional.rnn import rnn_backward, rnn_forward

NONLINEARITIES = ("tanh", "relu")


def make_params(rng: np.random.Generator, dtype=np.float64, bias: bool = True) -> dict:
    return make_cell_params(rng, 1, dtype, bias)  # G = 1


def run(x, h0, params, mask, d_out, d_hT, nonlinearity):
    """Forward, the scalar E = Σ outputs·d_out + Σ s_T·d_hT, and its BPTT gradients."""
    out, (hT,), cache = rnn_forward(x, (h0,), mask=mask, nonlinearity=nonlinearity, **params)
    loss = float(np.sum(out * d_out) + np.sum(hT * d_hT))
    d_x, (d_h0,), grads = rnn_backward(d_out, (d_hT,), cache)
    return loss, out, hT, d_x, d_h0, grads


def pre_activations(x, h0, params, mask, nonlinearity) -> np.ndarray:
    """a_t = U x_t + W s_{t-1} + b at the real steps, recomputed from the cached states."""
    _, _, cache = rnn_forward(x, (h0,), mask=mask, nonlinearity=nonlinearity, **params)
    s = cache["h"]  # (T+1, B, H)
    a = x.transpose(1, 0, 2) @ params["weight_ih"].T + s[:-1] @ params["weight_hh"].T  # (T, B, H)
    if "bias_ih" in params:
        a += params["bias_ih"] + params["bias_hh"]
    return a if mask is None else a[mask.T]


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T", [1, 2, 7])
def test_gradients_match_finite_differences(T: int, B: int, masked: bool, nonlinearity) -> None:
    rng = np.random.default_rng(100 * T + 10 * B + masked + (1000 if nonlinearity == "relu" else 0))
    params = make_params(rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    h0 = rng.standard_normal((B, H))  # (B, H)
    mask = make_mask(rng, B, T) if masked else None
    d_out = rng.standard_normal((B, T, H))  # (B, T, H)
    d_hT = rng.standard_normal((B, H))  # (B, H)
    if nonlinearity == "relu":
        # relu has a kink at 0 where a finite difference straddling it is wrong.
        # The relu seeds (offset 1000) keep every real pre-activation at least 1e-4
        # from 0, far beyond the ε = 1e-6 step (which moves a by ~1e-6), and leave
        # some unit active so the check is not vacuous; checked here, not assumed.
        a = pre_activations(x, h0, params, mask, nonlinearity)  # (real steps, H)
        assert np.abs(a).min() > 1e-4, (
            f"seed puts a relu pre-activation {np.abs(a).min():.1e} from 0"
        )
        assert (a > 0).any(), "seed leaves every relu unit dead"

    _, _, _, d_x, d_h0, grads = run(x, h0, params, mask, d_out, d_hT, nonlinearity)
    assert set(grads) == set(WEIGHTS)

    def loss() -> float:
        return run(x, h0, params, mask, d_out, d_hT, nonlinearity)[0]

    analytic = {"x": d_x, "h0": d_h0, **grads}
    arrays = {"x": x, "h0": h0, **params}
    for name, arr in arrays.items():
        err = relative_error(analytic[name], numeric_gradient(loss, arr))
        assert err < 1e-6, (
            f"{name}: relative error {err:.2e} (T={T}, B={B}, mask={masked}, {nonlinearity})"
        )


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_gradients_without_bias_match_finite_differences(nonlinearity: str) -> None:
    rng = np.random.default_rng(7)
    params = make_params(rng, bias=False)
    x = rng.standard_normal((2, 3, D))  # (B, T, D)
    h0 = rng.standard_normal((2, H))  # (B, H)
    d_out = rng.standard_normal((2, 3, H))  # (B, T, H)
    d_hT = rng.standard_normal((2, H))  # (B, H)
    if nonlinearity == "relu":  # see the kink note above
        a = pre_activations(x, h0, params, None, nonlinearity)  # (T, B, H)
        assert np.abs(a).min() > 1e-4 and (a > 0).any()
    _, _, _, d_x, d_h0, grads = run(x, h0, params, None, d_out, d_hT, nonlinearity)
    assert set(grads) == {"weight_ih", "weight_hh"}

    def loss() -> float:
        return run(x, h0, params, None, d_out, d_hT, nonlinearity)[0]

    analytic = {"x": d_x, "h0": d_h0, **grads}
    for name, arr in {"x": x, "h0": h0, **params}.items():
        err = relative_error(analytic[name], numeric_gradient(loss, arr))
        assert err < 1e-6, f"{name}: relative error {err:.2e} ({nonlinearity})"


def torch_rnn(x, h0, params, d_out, d_hT, dtype, nonlinearity):
    """The same computation through torch.nn.RNN; returns outputs, h_n and every gradient."""
    bias = "bias_ih" in params
    rnn = torch.nn.RNN(
        D, H, num_layers=1, nonlinearity=nonlinearity, bias=bias, batch_first=True
    ).to(dtype)
    with torch.no_grad():
        for name in params:
            getattr(rnn, name + "_l0").copy_(torch.from_numpy(params[name]))
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h0[None], requires_grad=True)  # (1, B, H)
    out, hn = rnn(xt, ht)
    loss = (out * torch.from_numpy(d_out)).sum() + (hn[0] * torch.from_numpy(d_hT)).sum()
    loss.backward()
    grads = {name: getattr(rnn, name + "_l0").grad.numpy() for name in params}
    return out.detach().numpy(), hn[0].detach().numpy(), xt.grad.numpy(), ht.grad[0].numpy(), grads


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("dtype", "tol"), [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["float64", "float32"]
)
def test_matches_torch_rnn(dtype, tol: float, bias: bool, nonlinearity: str) -> None:
    rng = np.random.default_rng(2024)
    B, T = 3, 7
    params = make_params(rng, dtype, bias=bias)
    x = rng.standard_normal((B, T, D)).astype(dtype)  # (B, T, D)
    h0 = rng.standard_normal((B, H)).astype(dtype)  # (B, H)
    d_out = rng.standard_normal((B, T, H)).astype(dtype)  # (B, T, H)
    d_hT = rng.standard_normal((B, H)).astype(dtype)  # (B, H)

    _, out, hT, d_x, d_h0, grads = run(x, h0, params, None, d_out, d_hT, nonlinearity)
    t_out, t_hT, t_dx, t_dh0, t_grads = torch_rnn(
        x,
        h0,
        params,
        d_out,
        d_hT,
        torch.float64 if dtype == np.float64 else torch.float32,
        nonlinearity,
    )
    ours = {"outputs": out, "h_n": hT, "x": d_x, "h0": d_h0, **grads}
    theirs = {"outputs": t_out, "h_n": t_hT, "x": t_dx, "h0": t_dh0, **t_grads}
    assert set(grads) == set(t_grads)
    for name, value in ours.items():
        assert value.dtype == dtype, f"{name} is {value.dtype}, expected {np.dtype(dtype)}"
        np.testing.assert_allclose(value, theirs[name], rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_masked_batch_equals_each_sequence_alone(nonlinearity: str) -> None:
    rng = np.random.default_rng(11)
    run_with = partial(run, nonlinearity=nonlinearity)
    check_padded_batch_equals_each_alone(run_with, make_params(rng), rng)


def test_padded_step_carries_the_state_in_the_cache() -> None:
    rng = np.random.default_rng(3)
    params = make_params(rng)
    mask = np.array([[1, 0, 1, 0]], dtype=bool)  # (B, T)
    x = rng.standard_normal((1, 4, D))  # (B, T, D)
    h0 = rng.standard_normal((1, H))  # (B, H)
    _, (hT,), cache = rnn_forward(x, (h0,), mask=mask, **params)
    s = cache["h"]  # (T+1, B, H)
    np.testing.assert_array_equal(s[2], s[1])  # step 1 is padding
    np.testing.assert_array_equal(s[4], s[3])  # step 3 is padding
    np.testing.assert_array_equal(hT, s[3])  # final state: after the last real step


def test_unknown_nonlinearity_is_rejected() -> None:
    params = make_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match="sigmoid"):
        rnn_forward(np.zeros((1, 2, D)), (np.zeros((1, H)),), nonlinearity="sigmoid", **params)
