"""Attention: finite differences, PyTorch parity, masks, and the layer over whole sequences."""

import numpy as np
import pytest

from bptt.diagnostics import gradcheck
from bptt.errors import BpttError
from bptt.functional.attention import attention_backward, attention_forward
from bptt.nn import Attention

B, S, C, Q, A = 3, 5, 4, 6, 7
LENGTHS = np.array([5, 2, 3])  # row 1 has 3 padded positions, row 2 has 2


def _arrays(kind, seed=0):
    rng = np.random.default_rng(seed)
    a = A if kind == "additive" else Q
    arrays = {
        "query": rng.standard_normal((B, Q)),
        "keys": rng.standard_normal((B, S, a)),
        "values": rng.standard_normal((B, S, C)),
    }
    if kind == "additive":
        arrays["weight_query"] = rng.standard_normal((A, Q)) * 0.5
        arrays["v"] = rng.standard_normal(A)
    return arrays


def _mask():
    return np.arange(S)[None, :] < LENGTHS[:, None]  # (B, S)


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_gradients_match_finite_differences_with_padding(kind):
    arrays, mask = _arrays(kind), _mask()
    g = np.random.default_rng(1).standard_normal((B, C))  # upstream ∂E/∂c

    def forward():
        return attention_forward(
            arrays["query"],
            arrays["keys"],
            arrays["values"],
            mask,
            arrays.get("weight_query"),
            arrays.get("v"),
            kind,
        )

    _, _, cache = forward()
    d_q, d_k, d_v, grads = attention_backward(g, cache)
    analytic = {"query": d_q, "keys": d_k, "values": d_v, **grads}
    errors = gradcheck(lambda: float(np.sum(forward()[0] * g)), arrays, analytic)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-7, f"{kind} {worst}: relative error {errors[worst]:.2e}"
    # padded positions: exactly zero gradient
    pad = ~mask
    assert not d_k[pad].any() and not d_v[pad].any()


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_weights_sum_to_one_and_are_zero_at_padding(kind):
    arrays, mask = _arrays(kind), _mask()
    arrays["values"][~mask] = np.nan  # whatever fills padding cannot leak in
    context, alpha, _ = attention_forward(
        arrays["query"],
        arrays["keys"],
        np.nan_to_num(arrays["values"]),
        mask,
        arrays.get("weight_query"),
        arrays.get("v"),
        kind,
    )
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (alpha[~mask] == 0).all()
    assert np.isfinite(context).all()


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_a_padded_batch_gives_what_each_row_gives_alone(kind):
    arrays, mask = _arrays(kind), _mask()
    g = np.random.default_rng(2).standard_normal((B, C))
    args = (arrays.get("weight_query"), arrays.get("v"), kind)
    context, alpha, cache = attention_forward(
        arrays["query"], arrays["keys"], arrays["values"], mask, *args
    )
    d_q, d_k, d_v, _ = attention_backward(g, cache)
    for b, n in enumerate(LENGTHS):
        c1, a1, cache1 = attention_forward(
            arrays["query"][b : b + 1],
            arrays["keys"][b : b + 1, :n],
            arrays["values"][b : b + 1, :n],
            None,
            *args,
        )
        q1, k1, v1, _ = attention_backward(g[b : b + 1], cache1)
        np.testing.assert_allclose(context[b], c1[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(alpha[b, :n], a1[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(d_q[b], q1[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(d_k[b, :n], k1[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(d_v[b, :n], v1[0], rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_layer_forward_and_backward_equal_torch(kind):
    """The Attention layer over T queries, written again in torch, same weights."""
    torch = pytest.importorskip("torch")
    T = 4
    layer = Attention(kind, Q, C, A, dtype=np.float64, rng=np.random.default_rng(3))
    rng = np.random.default_rng(4)
    queries, values = rng.standard_normal((B, T, Q)), rng.standard_normal((B, S, C))
    mask = _mask()
    g = rng.standard_normal((B, T, C))
    contexts, alphas = layer.forward(queries, values, mask)
    d_queries, d_values = layer.backward(g)

    tq = torch.tensor(queries, requires_grad=True)
    tv = torch.tensor(values, requires_grad=True)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
    keys = tv @ tp["weight_key"].T  # (B, S, A)
    if kind == "additive":
        u = keys[:, None] + (tq @ tp["weight_query"].T)[:, :, None]  # (B, T, S, A)
        e = torch.tanh(u) @ tp["v"]  # (B, T, S)
    else:
        e = tq @ keys.transpose(1, 2)  # (B, T, S)
    e = e.masked_fill(~torch.tensor(mask)[:, None, :], float("-inf"))
    a = torch.softmax(e, dim=-1)
    ctx = a @ tv  # (B, T, C)
    (ctx * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(contexts, ctx.detach().numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(alphas, a.detach().numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(d_queries, tq.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d_values, tv.grad.numpy(), rtol=0, atol=1e-12)
    for k, p in tp.items():
        np.testing.assert_allclose(layer.grads[k], p.grad.numpy(), rtol=0, atol=1e-12, err_msg=k)


def test_layer_errors_name_what_was_expected():
    layer = Attention("additive", Q, C, A, dtype=np.float64, rng=np.random.default_rng(0))
    with pytest.raises(BpttError, match="queries must be"):
        layer.forward(np.zeros((B, 2, Q + 1)), np.zeros((B, S, C)))
    with pytest.raises(BpttError, match="no real position"):
        layer.forward(np.zeros((B, 2, Q)), np.zeros((B, S, C)), np.zeros((B, S), dtype=bool))
    with pytest.raises(BpttError, match="attention kind"):
        Attention("cosine", Q, C)
    with pytest.raises(BpttError, match="before forward"):
        Attention("dot", Q, C).backward(np.zeros((B, 2, C)))
