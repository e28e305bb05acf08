"""bptt.nn.linear and bptt.functional.linear: PyTorch parity, finite differences, errors.

Shapes: B batch, T time steps, D input features, O output features, V vocabulary,
E embedding width.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bptt.diagnostics import numeric_gradient, relative_error
from bptt.errors import BpttError
from bptt.functional.linear import (
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
    one_hot,
)
from bptt.nn import Dropout, Embedding, Linear

B, T, D, O, V, E = 3, 4, 5, 6, 7, 2


# -- Linear ----------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
def test_linear_matches_torch(bias, dtype, tol):
    rng = np.random.default_rng(0)
    layer = Linear(D, O, bias=bias, dtype=dtype, rng=rng)
    twin = torch.nn.Linear(D, O, bias=bias, dtype=torch.float64 if dtype == np.float64 else None)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((B, T, D)).astype(dtype)  # (B, T, D)
    d_y = rng.standard_normal((B, T, O)).astype(dtype)  # (B, T, O)
    y = layer.forward(x)
    d_x = layer.backward(d_y)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = twin(xt)
    (yt * torch.from_numpy(d_y)).sum().backward()
    assert y.dtype == dtype and y.shape == (B, T, O)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(d_x, xt.grad.numpy(), rtol=tol, atol=tol)
    for k, p in twin.named_parameters():
        np.testing.assert_allclose(layer.grads[k], p.grad.numpy(), rtol=tol, atol=tol, err_msg=k)


def test_linear_gradients_finite_differences():
    rng = np.random.default_rng(1)
    layer = Linear(D, O, dtype=np.float64, rng=rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    d_y = rng.standard_normal((B, T, O))  # (B, T, O)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * d_y))

    layer.forward(x)
    d_x = layer.backward(d_y)
    grads = dict(layer.grads)
    for k in layer.params:
        assert relative_error(grads[k], numeric_gradient(loss, layer.params[k])) < 1e-8, k
    assert relative_error(d_x, numeric_gradient(loss, x)) < 1e-8


def test_linear_time_distributed_equals_per_step():
    rng = np.random.default_rng(2)
    layer = Linear(D, O, dtype=np.float64, rng=rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    y = layer.forward(x)
    for t in range(T):
        np.testing.assert_allclose(y[:, t], layer.forward(x[:, t]), atol=1e-14)


def test_linear_init_like_torch():
    layer = Linear(400, 300, rng=np.random.default_rng(3))
    bound = 1 / np.sqrt(400)
    for k, v in layer.params.items():
        assert v.dtype == np.float32
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.95 * bound, k
    assert layer.params["weight"].shape == (300, 400) and layer.params["bias"].shape == (300,)
    assert layer.num_parameters() == 300 * 400 + 300
    again = Linear(400, 300, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(layer.params["weight"], again.params["weight"])


def test_linear_errors():
    layer = Linear(D, O, rng=np.random.default_rng(0))
    with pytest.raises(BpttError, match="input has 4 features, the layer expects 5"):
        layer.forward(np.zeros((B, T, 4), dtype=np.float32))
    with pytest.raises(BpttError, match="input has dtype float64, the layer's dtype is float32"):
        layer.forward(np.zeros((B, T, D)))
    with pytest.raises(BpttError, match="backward called before forward"):
        layer.backward(np.zeros((B, T, O), dtype=np.float32))
    layer.forward(np.zeros((B, T, D), dtype=np.float32))
    with pytest.raises(BpttError, match=r"d_y has shape \(3, 4, 5\), expected \(3, 4, 6\)"):
        layer.backward(np.zeros((B, T, D), dtype=np.float32))
    with pytest.raises(BpttError, match="out_features must be an integer >= 1, got 0"):
        Linear(D, 0)
    with pytest.raises(BpttError, match=r"missing keys \['bias'\]"):
        layer.load_state_dict({"weight": np.zeros((O, D))})


# -- Embedding -------------------------------------------------------------------------


def test_embedding_matches_torch_with_repeated_indices():
    rng = np.random.default_rng(4)
    layer = Embedding(V, E, dtype=np.float64, rng=rng)
    twin = torch.nn.Embedding(V, E, dtype=torch.float64)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    idx = rng.integers(0, V, size=(B, T))  # (B, T)
    idx[0, :2] = 3  # a repeated index must accumulate
    d_y = rng.standard_normal((B, T, E))  # (B, T, E)
    y = layer.forward(idx)
    assert layer.backward(d_y) is None
    yt = twin(torch.from_numpy(idx))
    (yt * torch.from_numpy(d_y)).sum().backward()
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(layer.grads["weight"], twin.weight.grad.numpy(), atol=1e-14)


def test_embedding_one_hot_equals_indices_and_has_input_gradient():
    rng = np.random.default_rng(5)
    layer = Embedding(V, E, dtype=np.float64, rng=rng)
    idx = rng.integers(0, V, size=(B, T))  # (B, T)
    d_y = rng.standard_normal((B, T, E))  # (B, T, E)
    y_idx = layer.forward(idx)
    layer.backward(d_y)
    g_idx = layer.grads["weight"].copy()
    x = one_hot(idx, V, np.float64)  # (B, T, V)
    y_hot = layer.forward(x)
    d_x = layer.backward(d_y)
    np.testing.assert_allclose(y_hot, y_idx, atol=1e-14)
    np.testing.assert_allclose(layer.grads["weight"], g_idx, atol=1e-14)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * d_y))

    assert relative_error(d_x, numeric_gradient(loss, x)) < 1e-8
    layer.forward(x)
    layer.backward(d_y)
    assert (
        relative_error(layer.grads["weight"], numeric_gradient(loss, layer.params["weight"])) < 1e-8
    )


def test_embedding_init_and_padding_idx():
    layer = Embedding(1000, 50, rng=np.random.default_rng(6))
    w = layer.params["weight"]  # (V, E)
    assert w.shape == (1000, 50) and w.dtype == np.float32
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02  # N(0, 1), as torch
    pad = Embedding(V, E, dtype=np.float64, rng=np.random.default_rng(7), padding_idx=0)
    assert np.all(pad.params["weight"][0] == 0)
    pad.forward(np.array([[0, 1, 0]]))
    pad.backward(np.ones((1, 3, E)))
    assert np.all(pad.grads["weight"][0] == 0) and np.all(pad.grads["weight"][1] == 1)


def test_embedding_errors():
    layer = Embedding(V, E, rng=np.random.default_rng(0))
    expected = r"index 7 is out of range for an embedding of 7 rows \(valid 0..6\)"
    with pytest.raises(BpttError, match=expected):
        layer.forward(np.array([[1, 7]]))
    with pytest.raises(BpttError, match="index -1 is out of range"):
        layer.forward(np.array([[-1, 2]]))
    with pytest.raises(BpttError, match="one-hot input has 5 columns, the embedding has 7 rows"):
        layer.forward(np.zeros((B, T, 5), dtype=np.float32))
    with pytest.raises(BpttError, match="integer indices or one-hot floats, got dtype <U1"):
        layer.forward(np.array(["a"]))


# -- Dropout ---------------------------------------------------------------------------


def test_dropout_layer():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 40))  # (B, D)
    drop = Dropout(0.25)
    assert drop.forward(x) is x  # evaluation: the identity
    np.testing.assert_array_equal(drop.backward(x), x)
    y = drop.forward(x, training=True, rng=np.random.default_rng(9))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75)
    assert abs(kept.mean() - 0.75) < 0.03
    np.testing.assert_array_equal(y, drop.forward(x, training=True, rng=np.random.default_rng(9)))
    d_y = rng.standard_normal(x.shape)  # (B, D)
    np.testing.assert_allclose(drop.backward(d_y), d_y * kept / 0.75)
    with pytest.raises(BpttError, match="needs rng"):
        drop.forward(x, training=True)
    with pytest.raises(BpttError, match=r"p must be in \[0, 1\), got 1"):
        Dropout(1)


# -- functional ------------------------------------------------------------------------


def test_functional_linear_any_leading_axes():
    rng = np.random.default_rng(10)
    w = rng.standard_normal((O, D))  # (O, D)
    x = rng.standard_normal((2, 3, 4, D))  # (..., D)
    y, cache = linear_forward(x, w)
    np.testing.assert_allclose(y, np.einsum("abcd,od->abco", x, w), atol=1e-12)
    d_x, grads = linear_backward(np.ones_like(y), cache)
    assert d_x.shape == x.shape and set(grads) == {"weight"}


def test_functional_embedding_scatter_adds():
    w = np.arange(6.0).reshape(3, 2)  # (V, E)
    idx = np.array([[2, 2, 0]])  # (B, T)
    y, cache = embedding_forward(idx, w)
    np.testing.assert_array_equal(y[0, 0], w[2])
    grads = embedding_backward(np.ones((1, 3, 2)), cache)
    np.testing.assert_array_equal(grads["weight"], [[1, 1], [0, 0], [2, 2]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("jit", [True, False])
def test_embedding_scatter_is_np_add_at_bit_for_bit(dtype, jit, monkeypatch):
    """The backward's scatter (compiled, or np.add.at without numba) adds each looked-up
    row's gradient to its table row in order: np.add.at's sums, bit for bit, for many
    repeats of few rows, int32 indices and a strided gradient."""
    from bptt.functional.fast import _scatter

    monkeypatch.setattr(_scatter, "JIT", jit and _scatter.JIT)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 7, size=(40, 30)).astype(np.int32)  # (B, T) about 170 repeats a row
    d_y = rng.standard_normal((40, 30, 2 * E)).astype(dtype)[:, :, ::2]  # (B, T, E) strided
    _, cache = embedding_forward(idx, np.zeros((7, E), dtype))
    want = np.zeros((7, E), dtype)  # (V, E)
    np.add.at(want, idx.reshape(-1), d_y.reshape(-1, E))
    got = embedding_backward(d_y, cache)["weight"]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_one_hot():
    out = one_hot(np.array([[0, 2], [1, 1]]), 3)  # (B, T, V)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.argmax(-1), [[0, 2], [1, 1]])
    assert out.sum() == 4
