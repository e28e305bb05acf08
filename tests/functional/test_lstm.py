"""bptt.functional.lstm: finite differences, PyTorch parity, masks.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cell_checks import WEIGHTS, D, H, make_mask
from cell_checks import make_params as make_cell_params

from bptt.diagnostics import numeric_gradient, relative_error
from bptt.errors import BpttError
from bptt.functional.lstm import lstm_backward, lstm_forward


def make_params(rng: np.random.Generator, dtype=np.float64, bias: bool = True) -> dict:
    return make_cell_params(rng, 4, dtype, bias)  # G = 4: gate rows i, f, g, o


def make_inputs(rng: np.random.Generator, B: int, T: int, dtype=np.float64) -> tuple:
    """x, h_0, C_0 and random upstream gradients for outputs, h_T and C_T."""
    arrays = (
        rng.standard_normal((B, T, D)),  # (B, T, D) x
        rng.standard_normal((B, H)),  # (B, H) h_0
        rng.standard_normal((B, H)),  # (B, H) C_0
        rng.standard_normal((B, T, H)),  # (B, T, H) ∂E/∂outputs
        rng.standard_normal((B, H)),  # (B, H) ∂E/∂h_T
        rng.standard_normal((B, H)),  # (B, H) ∂E/∂C_T
    )
    return tuple(a.astype(dtype) for a in arrays)


def loss_of(x, h0, c0, params, mask, d_out, d_hT, d_cT) -> float:
    """E = Σ outputs·d_out + Σ h_T·d_hT + Σ C_T·d_cT, whose gradient BPTT returns."""
    out, (hT, cT), _ = lstm_forward(x, (h0, c0), mask=mask, **params)
    return float(np.sum(out * d_out) + np.sum(hT * d_hT) + np.sum(cT * d_cT))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T", [1, 2, 7])
def test_gradients_match_finite_differences(T: int, B: int, masked: bool) -> None:
    rng = np.random.default_rng(100 * T + 10 * B + masked)
    params = make_params(rng)
    x, h0, c0, d_out, d_hT, d_cT = make_inputs(rng, B, T)
    mask = make_mask(rng, B, T) if masked else None

    _, _, cache = lstm_forward(x, (h0, c0), mask=mask, **params)
    d_x, (d_h0, d_c0), grads = lstm_backward(d_out, (d_hT, d_cT), cache)
    assert set(grads) == set(WEIGHTS)

    def f() -> float:
        return loss_of(x, h0, c0, params, mask, d_out, d_hT, d_cT)

    checks = {k: (params[k], grads[k]) for k in WEIGHTS}
    checks.update(x=(x, d_x), h0=(h0, d_h0), c0=(c0, d_c0))
    for name, (arr, analytic) in checks.items():
        numeric = numeric_gradient(f, arr)
        err = relative_error(analytic, numeric)
        assert err < 1e-6, f"{name}: relative error {err:.2e} (T={T}, B={B}, masked={masked})"


def torch_lstm(params: dict, dtype: torch.dtype) -> torch.nn.LSTM:
    """A one-layer batch-first torch.nn.LSTM holding the same weights."""
    lstm = torch.nn.LSTM(D, H, batch_first=True, bias="bias_ih" in params, dtype=dtype)
    with torch.no_grad():
        for k, v in params.items():
            getattr(lstm, f"{k}_l0").copy_(torch.from_numpy(v))
    return lstm


def torch_run(lstm, x, h0, c0, d_out, d_hT, d_cT, lengths=None):
    """PyTorch's outputs, final state and every gradient for the same scalar E."""
    xt, h0t, c0t = (torch.tensor(a, requires_grad=True) for a in (x, h0[None], c0[None]))
    if lengths is None:
        out, (hn, cn) = lstm(xt, (h0t, c0t))
    else:  # PyTorch's own padding path: pack, run, unpack (zeros at padding)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        out, (hn, cn) = lstm(packed, (h0t, c0t))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=x.shape[1]
        )
    loss = (
        (out * torch.from_numpy(d_out)).sum()
        + (hn[0] * torch.from_numpy(d_hT)).sum()
        + (cn[0] * torch.from_numpy(d_cT)).sum()
    )
    loss.backward()
    grads = {k: getattr(lstm, f"{k}_l0").grad.numpy() for k in WEIGHTS if hasattr(lstm, k + "_l0")}
    return {
        "outputs": out.detach().numpy(),
        "h_T": hn[0].detach().numpy(),
        "c_T": cn[0].detach().numpy(),
        "d_x": xt.grad.numpy(),
        "d_h0": h0t.grad[0].numpy(),
        "d_c0": c0t.grad[0].numpy(),
        **grads,
    }


def ours_run(params, x, h0, c0, d_out, d_hT, d_cT, mask=None) -> dict:
    """Our outputs, final state and every gradient, keyed like :func:`torch_run`."""
    out, (hT, cT), cache = lstm_forward(x, (h0, c0), mask=mask, **params)
    d_x, (d_h0, d_c0), grads = lstm_backward(d_out, (d_hT, d_cT), cache)
    return {"outputs": out, "h_T": hT, "c_T": cT, "d_x": d_x, "d_h0": d_h0, "d_c0": d_c0, **grads}


def assert_all_close(ours: dict, theirs: dict, tol: float, dtype) -> None:
    assert set(ours) == set(theirs)
    for k in theirs:
        assert ours[k].dtype == dtype, f"{k}: dtype {ours[k].dtype}, expected {dtype}"
        np.testing.assert_allclose(ours[k], theirs[k], rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("dtype", "tdtype", "tol"),
    [(np.float64, torch.float64, 1e-10), (np.float32, torch.float32, 1e-5)],
    ids=["float64", "float32"],
)
def test_matches_torch(dtype, tdtype, tol: float, bias: bool) -> None:
    rng = np.random.default_rng(7)
    B, T = 3, 6
    params = make_params(rng, dtype, bias=bias)
    inputs = make_inputs(rng, B, T, dtype)
    ours = ours_run(params, *inputs)
    theirs = torch_run(torch_lstm(params, tdtype), *inputs)
    assert_all_close(ours, theirs, tol, dtype)


def test_masked_matches_torch_packed_sequence() -> None:
    """Our mask against PyTorch's pack_padded_sequence, unsorted lengths."""
    rng = np.random.default_rng(8)
    B, T = 4, 7
    lengths = [3, 7, 1, 5]
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]  # (B, T)
    params = make_params(rng)
    x, h0, c0, d_out, d_hT, d_cT = make_inputs(rng, B, T)
    d_out = d_out * mask[:, :, None]  # (B, T, H) PyTorch's padded outputs are constants
    ours = ours_run(params, x, h0, c0, d_out, d_hT, d_cT, mask=mask)
    theirs = torch_run(torch_lstm(params, torch.float64), x, h0, c0, d_out, d_hT, d_cT, lengths)
    assert_all_close(ours, theirs, 1e-10, np.float64)


@pytest.mark.parametrize("padding", ["right", "left", "holes"])
def test_masked_batch_equals_each_sequence_alone(padding: str) -> None:
    rng = np.random.default_rng(9)
    B, T = 4, 7
    lengths = np.array([7, 1, 4, 2])
    steps = np.arange(T)[None, :]  # (1, T)
    if padding == "right":
        mask = steps < lengths[:, None]  # (B, T)
    elif padding == "left":
        mask = steps >= T - lengths[:, None]  # (B, T)
    else:
        mask = rng.random((B, T)) < 0.5  # (B, T)
        mask[:, 3] = True  # at least one real step per sequence
    params = make_params(rng)
    x, h0, c0, d_out, d_hT, d_cT = make_inputs(rng, B, T)
    x[~mask] = np.nan  # whatever fills the padding must not matter
    d_out[~mask] = 1e3  # nor the upstream gradient of an output that is a constant zero

    batch = ours_run(params, x, h0, c0, d_out, d_hT, d_cT, mask=mask)
    summed = dict.fromkeys(WEIGHTS, 0.0)
    for b in range(B):
        real = mask[b]  # (T,)
        alone = ours_run(
            params,
            x[b : b + 1, real],
            h0[b : b + 1],
            c0[b : b + 1],
            d_out[b : b + 1, real],
            d_hT[b : b + 1],
            d_cT[b : b + 1],
        )
        np.testing.assert_allclose(batch["outputs"][b, real], alone["outputs"][0], atol=1e-12)
        assert np.all(batch["outputs"][b, ~real] == 0.0)
        for k in ("h_T", "c_T", "d_h0", "d_c0"):
            np.testing.assert_allclose(batch[k][b], alone[k][0], atol=1e-12, err_msg=k)
        np.testing.assert_allclose(batch["d_x"][b, real], alone["d_x"][0], atol=1e-12)
        for k in WEIGHTS:
            summed[k] = summed[k] + alone[k]
    for k in WEIGHTS:
        np.testing.assert_allclose(batch[k], summed[k], atol=1e-12, err_msg=k)
    assert np.all(batch["d_x"][~mask] == 0.0), "padded steps must get exactly zero gradient"


def test_cache_holds_states_and_gates() -> None:
    """The cache a diagnostics reader uses: h, c (T+1, B, H), gates (T, B, 4H) post-activation."""
    rng = np.random.default_rng(10)
    B, T = 2, 3
    params = make_params(rng)
    x, h0, c0, *_ = make_inputs(rng, B, T)
    out, (hT, cT), cache = lstm_forward(x, (h0, c0), **params)
    h, c, gates = cache["h"], cache["c"], cache["gates"]
    assert h.shape == c.shape == (T + 1, B, H)
    assert gates.shape == (T, B, 4 * H)
    np.testing.assert_array_equal(h[0], h0)
    np.testing.assert_array_equal(c[0], c0)
    np.testing.assert_array_equal(h[1:].transpose(1, 0, 2), out)
    np.testing.assert_array_equal(h[T], hT)
    np.testing.assert_array_equal(c[T], cT)
    i, f, g, o = np.split(gates, 4, axis=-1)  # (T, B, H) each
    np.testing.assert_allclose(c[1:], f * c[:-1] + i * g, atol=1e-14)
    np.testing.assert_allclose(h[1:], o * np.tanh(c[1:]), atol=1e-14)
    assert np.all((i > 0) & (i < 1) & (f > 0) & (f < 1) & (o > 0) & (o < 1))
    assert np.all(np.abs(g) < 1)


def test_final_state_gradients_may_be_none() -> None:
    rng = np.random.default_rng(11)
    params = make_params(rng)
    x, h0, c0, d_out, *_ = make_inputs(rng, 2, 3)
    _, _, cache = lstm_forward(x, (h0, c0), **params)
    zeros = np.zeros((2, H))  # (B, H)
    expected = lstm_backward(d_out, (zeros, zeros), cache)
    for d_final in (None, (None, None), (zeros, None), (None, zeros)):
        d_x, (d_h0, d_c0), grads = lstm_backward(d_out, d_final, cache)
        np.testing.assert_array_equal(d_x, expected[0])
        np.testing.assert_array_equal(d_h0, expected[1][0])
        np.testing.assert_array_equal(d_c0, expected[1][1])
        for k in WEIGHTS:
            np.testing.assert_array_equal(grads[k], expected[2][k])


def test_shape_errors_name_expected_and_received() -> None:
    rng = np.random.default_rng(12)
    params = make_params(rng)
    x, h0, c0, *_ = make_inputs(rng, 2, 3)
    with pytest.raises(BpttError, match="input has 5 features, the layer expects 4"):
        lstm_forward(np.zeros((2, 3, 5)), (h0, c0), **params)
    with pytest.raises(BpttError, match=r"c0 must be \(B, H\) = \(2, 5\), got \(3, 5\)"):
        lstm_forward(x, (h0, np.zeros((3, H))), **params)
    with pytest.raises(BpttError, match=r"mask must be \(B, T\) = \(2, 3\), got \(2, 4\)"):
        lstm_forward(x, (h0, c0), mask=np.ones((2, 4), dtype=bool), **params)
