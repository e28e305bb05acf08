"""The gradient checker: it passes correct gradients, catches wrong ones, and restores."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.diagnostics import (
    format_report,
    gradcheck,
    gradcheck_directions,
    gradcheck_layer,
    gradcheck_model,
)
from bptt.errors import BpttError
from bptt.functional.rnn import rnn_backward, rnn_forward
from bptt.losses import cross_entropy

TOL = 1e-6


def _quadratic(rng, n=5):
    """E(θ) = ½ θᵀ A θ + bᵀ θ with ∂E/∂θ = A θ + b (A symmetric)."""
    M = rng.standard_normal((n, n))  # (n, n)
    A = M + M.T  # (n, n)
    b = rng.standard_normal(n)  # (n,)
    theta = rng.standard_normal(n)  # (n,)
    W = rng.standard_normal((2, 3))  # (2, 3) a second parameter: E += Σ W³
    params = {"theta": theta, "W": W}

    def f():
        return float(0.5 * theta @ A @ theta + b @ theta + np.sum(W**3))

    return f, params, {"theta": A @ theta + b, "W": 3 * W**2}


def test_passes_on_correct_quadratic_and_restores_exactly():
    f, params, analytic = _quadratic(np.random.default_rng(0))
    before = {k: v.copy() for k, v in params.items()}
    errors = gradcheck(f, params, analytic)
    assert set(errors) == {"theta", "W"}
    assert max(errors.values()) < 1e-8, errors
    for k in params:
        assert np.array_equal(params[k], before[k])


def test_detects_a_wrong_gradient():
    f, params, analytic = _quadratic(np.random.default_rng(1))
    analytic["W"] = analytic["W"].copy()
    analytic["W"][1, 2] *= 1.01  # one element off by 1%
    analytic["theta"] = analytic["theta"][::-1].copy()  # a transposition-style bug
    errors = gradcheck(f, params, analytic)
    assert errors["W"] == pytest.approx(0.01 / 2.01, rel=1e-4)
    assert errors["theta"] > 1e-2


def test_perturbs_non_contiguous_arrays_in_place():
    base = np.random.default_rng(2).standard_normal((4, 6))  # (4, 6)
    view = base[:, ::2]  # (4, 3) a strided view: reshaping it would copy
    errors = gradcheck(lambda: float(np.sum(view**2)), {"v": view}, {"v": 2 * view})
    assert errors["v"] < 1e-8


def test_sampling_checks_at_most_n_elements_deterministically():
    calls = []
    p = np.arange(100, dtype=np.float64)  # (100,)

    def f():
        calls.append(1)
        return float(np.sum(p**2))

    analytic = {"p": 2 * p}
    analytic["p"][::2] += 1.0  # half the elements are wrong
    e1 = gradcheck(f, {"p": p}, analytic, max_checks_per_param=10)
    assert len(calls) == 4 * 10  # four loss evaluations per element
    e2 = gradcheck(f, {"p": p}, analytic, max_checks_per_param=10)
    assert e1 == e2  # the same elements every run without an rng
    e3 = gradcheck(f, {"p": p}, analytic, max_checks_per_param=10, rng=np.random.default_rng(5))
    assert e3["p"] > 1e-3


def test_refuses_float32_and_mismatched_gradients():
    p = np.ones(3, dtype=np.float32)  # (3,)
    with pytest.raises(BpttError, match=r"float64.*'w' is dtype float32"):
        gradcheck(lambda: 0.0, {"w": p}, {"w": p})
    q = np.ones(3)  # (3,)
    with pytest.raises(BpttError, match=r"shape \(4,\), the array has \(3,\)"):
        gradcheck(lambda: 0.0, {"w": q}, {"w": np.ones(4)})
    with pytest.raises(BpttError, match="keys"):
        gradcheck(lambda: 0.0, {"w": q}, {"u": q})


def test_tiny_elements_beside_large_ones_pass():
    """A gradient element of 1e-9 next to one of 1: the differences cannot resolve it alone."""
    theta = np.array([0.3, -1.2, 0.7])  # (3,)
    c = np.array([1.0, 1e-9, 1e-5])  # (3,)

    def f():
        return float(np.sum(c * np.sin(theta)) + 2.0)

    errors = gradcheck(f, {"theta": theta}, {"theta": c * np.cos(theta)})
    assert errors["theta"] < 1e-8
    wrong = c * np.cos(theta)  # (3,)
    wrong[2] *= 2.0  # an error of 1e-5 on the small element is still caught
    assert gradcheck(f, {"theta": theta}, {"theta": wrong})["theta"] > 1e-4


def test_directions_pass_and_catch():
    f, params, analytic = _quadratic(np.random.default_rng(3))
    before = {k: v.copy() for k, v in params.items()}
    errors = gradcheck_directions(f, params, analytic, num_directions=4)
    assert max(errors.values()) < 1e-9, errors
    for k in params:
        assert np.array_equal(params[k], before[k])
    analytic["W"] = 1.1 * analytic["W"]
    assert gradcheck_directions(f, params, analytic)["W"] > 1e-2


def test_zero_gradients_give_zero_error():
    p = np.ones(3)  # (3,)
    assert gradcheck(lambda: 1.0, {"p": p}, {"p": np.zeros(3)}) == {"p": 0.0}


def test_format_report():
    text = format_report({"weight_hh_l0": 3.2e-10, "bias": 4.1e-3, "x": float("nan")})
    lines = text.splitlines()
    assert lines[0].split() == ["weight_hh_l0", "3.2e-10", "ok"]
    assert lines[1].split() == ["bias", "4.1e-03", "FAIL"]
    assert lines[2].split() == ["x", "nan", "FAIL"]
    assert lines[0].index("3.2e-10") == lines[1].index("4.1e-03")  # aligned columns
    assert format_report({"a": 1e-5}, tol=1e-4).endswith("ok")


# ---------------------------------------------------------------------------
# Layers: a test-only wrapper over functional.rnn, then the real bptt.nn layers
# ---------------------------------------------------------------------------


class TinyRNN:
    """One-layer RNN over ``functional.rnn`` with the nn layer contract (state (1, B, H))."""

    def __init__(self, D, H, rng, broken=None):
        self.params = {
            "weight_ih_l0": rng.uniform(-0.5, 0.5, (H, D)),  # (H, D)
            "weight_hh_l0": rng.uniform(-0.5, 0.5, (H, H)),  # (H, H)
            "bias_ih_l0": rng.uniform(-0.5, 0.5, H),  # (H,)
            "bias_hh_l0": rng.uniform(-0.5, 0.5, H),  # (H,)
        }
        self.grads = {}
        self.d_initial_state = None
        self.broken = broken
        self.H = H

    def forward(self, x, state=None, mask=None, training=False, rng=None):
        B = x.shape[0]
        h0 = np.zeros((B, self.H)) if state is None else state[0]  # (B, H)
        p = self.params
        out, (h_n,), self._cache = rnn_forward(
            x, (h0,), p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"], mask
        )
        return out, h_n[None]  # (B, T, H), (1, B, H)

    def backward(self, d_outputs, d_final_state=None):
        d_h = None if d_final_state is None else (d_final_state[0],)
        d_x, (d_h0,), grads = rnn_backward(d_outputs, d_h, self._cache)
        self.grads = {f"{k}_l0": g for k, g in grads.items()}  # functional names -> layer names
        if self.broken == "weight_hh_l0":
            self.grads["weight_hh_l0"] = self.grads["weight_hh_l0"].T  # a classic bug
        if self.broken == "state":
            d_h0 = 0 * d_h0  # forgets the chain to s_0
        self.d_initial_state = d_h0[None]  # (1, B, H)
        return d_x


@pytest.mark.parametrize(("B", "T"), [(3, 4), (1, 1), (2, 1), (1, 5)])
def test_layer_check_passes_on_functional_rnn(B, T):
    rng = np.random.default_rng(10 + B * 10 + T)
    D, H = 3, 4
    layer = TinyRNN(D, H, rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    h0 = rng.standard_normal((1, B, H))  # (1, B, H)
    x_before, h0_before = x.copy(), h0.copy()
    errors = gradcheck_layer(layer, x, state=h0, rng=rng)
    assert set(errors) == {*layer.params, "input", "initial_state"}
    assert max(errors.values()) < TOL, format_report(errors)
    assert np.array_equal(x, x_before) and np.array_equal(h0, h0_before)  # caller's untouched


def test_layer_check_with_mask():
    rng = np.random.default_rng(20)
    B, T, D, H = 3, 5, 2, 3
    layer = TinyRNN(D, H, rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    mask = np.ones((B, T), dtype=bool)  # (B, T)
    mask[0, 3:] = False
    mask[2, 1:] = False
    errors = gradcheck_layer(layer, x, state=rng.standard_normal((1, B, H)), mask=mask, rng=rng)
    assert max(errors.values()) < TOL, format_report(errors)


@pytest.mark.parametrize(("broken", "key"), [("weight_hh_l0", "weight_hh_l0"), ("state", None)])
def test_layer_check_catches_broken_backward(broken, key):
    rng = np.random.default_rng(30)
    B, T, D, H = 2, 3, 3, 4
    layer = TinyRNN(D, H, rng, broken=broken)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    errors = gradcheck_layer(layer, x, state=rng.standard_normal((1, B, H)), rng=rng)
    key = key or "initial_state"
    assert errors[key] > 1e-2, format_report(errors)
    assert "FAIL" in format_report(errors)
    others = {k: v for k, v in errors.items() if k != key}
    assert max(others.values()) < TOL


def test_layer_check_refuses_float32():
    nn = pytest.importorskip("bptt.nn")
    layer = nn.RNN(2, 3, rng=np.random.default_rng(0))  # float32 by default
    x = np.zeros((1, 2, 2), dtype=np.float32)  # (B, T, D)
    with pytest.raises(BpttError, match="float64"):
        gradcheck_layer(layer, x)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
def test_layer_check_passes_on_nn_layers(kind, num_layers, bidirectional):
    nn = pytest.importorskip("bptt.nn")
    rng = np.random.default_rng(40)
    B, T, D, H = 2, 3, 3, 2
    layer = getattr(nn, kind)(
        D, H, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, rng=rng
    )
    LK = num_layers * (2 if bidirectional else 1)
    h0 = rng.standard_normal((LK, B, H))  # (L*K, B, H)
    state = (h0, rng.standard_normal((LK, B, H))) if kind == "LSTM" else h0
    mask = np.array([[True, True, True], [True, True, False]])  # (B, T)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    errors = gradcheck_layer(layer, x, state, mask, rng=rng, max_checks_per_param=10)
    expected_state = (
        {"initial_state/h0", "initial_state/c0"} if kind == "LSTM" else {"initial_state"}
    )
    assert set(errors) == {*layer.params, "input", *expected_state}
    assert max(errors.values()) < TOL, format_report(errors)


def test_layer_check_stateless_linear_and_embedding():
    nn = pytest.importorskip("bptt.nn")
    rng = np.random.default_rng(50)
    lin = nn.Linear(3, 4, dtype=np.float64, rng=rng)
    errors = gradcheck_layer(lin, rng.standard_normal((2, 5, 3)), rng=rng)
    assert set(errors) == {*lin.params, "input"}
    assert max(errors.values()) < TOL, format_report(errors)

    emb = nn.Embedding(6, 3, dtype=np.float64, rng=rng)
    errors = gradcheck_layer(emb, np.array([[0, 5, 2], [2, 2, 1]]), rng=rng)
    assert set(errors) == {"weight"}  # integer indices have no gradient to check
    assert errors["weight"] < TOL


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class TinyTagger:
    """Many-to-many aligned: RNN then Linear then masked cross-entropy (test-only)."""

    def __init__(self, D, H, V, rng, broken=False):
        self.rnn = TinyRNN(D, H, rng)
        self.W = rng.standard_normal((V, H)) * 0.5  # (V, H) the lecture's V
        self.c = rng.standard_normal(V) * 0.1  # (V,)
        self.broken = broken

    @property
    def params(self):
        return {**{f"rnn.{k}": v for k, v in self.rnn.params.items()}, "out.weight": self.W}

    def loss_and_grads(self, batch):
        x, y, mask = batch
        s, _ = self.rnn.forward(x, mask=mask)  # (B, T, H)
        logits = s @ self.W.T + self.c  # (B, T, V)
        loss, d_logits = cross_entropy(logits, y, mask, reduction="mean")
        grads = {"out.weight": np.einsum("btv,bth->vh", d_logits, s)}  # (V, H)
        d_s = d_logits @ self.W  # (B, T, H)
        if self.broken:
            d_s = d_s * 1.1
        self.rnn.backward(d_s)
        grads.update({f"rnn.{k}": v for k, v in self.rnn.grads.items()})
        return loss, grads


@pytest.mark.parametrize("broken", [False, True])
def test_model_check(broken):
    rng = np.random.default_rng(60)
    B, T, D, H, V = 2, 4, 3, 3, 5
    model = TinyTagger(D, H, V, rng, broken=broken)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    y = rng.integers(0, V, size=(B, T))  # (B, T)
    mask = np.array([[True] * 4, [True, True, False, False]])  # (B, T)
    errors = gradcheck_model(model, (x, y, mask))
    assert set(errors) == set(model.params)
    if broken:
        assert errors["rnn.weight_ih_l0"] > 1e-2
        assert errors["out.weight"] < TOL
    else:
        assert max(errors.values()) < TOL, format_report(errors)
