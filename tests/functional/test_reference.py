"""The reference cells (step pairs in a plain loop) and the fast route: both right, and equal.

The reference path of every cell passes the float64 finite-difference checks
(every weight, the inputs, every initial state; T = 1 and B = 1 included);
the fast route gives the reference's numbers to 1e-12 in float64, with masks,
through the functional cells and through stacked bidirectional layers.

Shapes: B batch, T time steps, D = 2 input features, H = 3 hidden units.
"""

from __future__ import annotations

import numpy as np
import pytest

import bptt.functional
from bptt.diagnostics import numeric_gradient, relative_error
from bptt.errors import BpttError
from bptt.functional import gru, lstm, reference, rnn
from bptt.functional.reference import forced
from bptt.nn import GRU, LSTM, RNN

D, H = 2, 3
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# name: (module, gates G, number of state arrays, forward's extra keyword arguments)
CELLS = {
    "rnn": (rnn, 1, 1, {}),
    "rnn-relu": (rnn, 1, 1, {"nonlinearity": "relu"}),
    "lstm": (lstm, 4, 2, {}),
    "gru": (gru, 3, 1, {}),
}
BIASES = {"both": ("bias_ih", "bias_hh"), "ih only": ("bias_ih",), "none": ()}


def functions(cell: str):
    module, _, _, kwargs = CELLS[cell]
    name = module.__name__.rsplit(".", 1)[1]
    return getattr(module, f"{name}_forward"), getattr(module, f"{name}_backward"), kwargs


def make_case(cell: str, B: int, T: int, seed: int, biases=BIASES["both"], masked=True):
    """Parameters, inputs, initial state, upstream gradients and a mask (float64)."""
    _, G, S, _ = CELLS[cell]
    rng = np.random.default_rng(seed)
    params = {
        "weight_ih": rng.uniform(-0.8, 0.8, (G * H, D)),  # (GH, D)
        "weight_hh": rng.uniform(-0.8, 0.8, (G * H, H)),  # (GH, H)
        "bias_ih": rng.uniform(-0.5, 0.5, G * H) if "bias_ih" in biases else None,  # (GH,)
        "bias_hh": rng.uniform(-0.5, 0.5, G * H) if "bias_hh" in biases else None,  # (GH,)
    }
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    state = tuple(rng.uniform(-0.5, 0.5, (B, H)) for _ in range(S))  # (B, H) each
    d_out = rng.standard_normal((B, T, H))  # (B, T, H)
    d_final = tuple(rng.standard_normal((B, H)) for _ in range(S))  # (B, H) each
    mask = None
    if masked:
        mask = np.ones((B, T), dtype=bool)  # (B, T)
        mask[0, -1] = False  # a padded tail
        if T > 2:
            mask[-1, 1] = False  # a hole in the middle
    return params, x, state, d_out, d_final, mask


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("B", "T"), [(1, 1), (1, 4), (3, 1), (3, 4)])
@pytest.mark.parametrize("cell", list(CELLS))
def test_reference_gradients_match_finite_differences(cell, B, T, masked) -> None:
    forward, backward, kwargs = functions(cell)
    params, x, state, d_out, d_final, mask = make_case(cell, B, T, 7 * B + T, masked=masked)
    state = tuple(s.copy() for s in state)

    def f() -> float:
        out, final, _ = forward(x, state, **params, mask=mask, **kwargs)
        return float(
            np.sum(out * d_out) + sum(np.sum(s * d) for s, d in zip(final, d_final, strict=True))
        )

    with forced(True):
        _, _, cache = forward(x, state, **params, mask=mask, **kwargs)
        assert cache["reference"]  # the loop over the step pair ran, not the fast route
        d_x, d_state, grads = backward(d_out, d_final, cache)
        checks = {k: (params[k], grads[k]) for k in WEIGHTS}
        checks["x"] = (x, d_x)
        checks.update(
            {f"state{k}": (s, d) for k, (s, d) in enumerate(zip(state, d_state, strict=True))}
        )
        for name, (arr, analytic) in checks.items():
            err = relative_error(analytic, numeric_gradient(f, arr))
            assert err < 1e-6, f"{cell} {name}: relative error {err:.2e} (T={T}, B={B})"


@pytest.mark.parametrize("biases", ["ih only", "none"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_reference_with_fewer_biases_matches_finite_differences(cell, biases) -> None:
    forward, backward, kwargs = functions(cell)
    params, x, state, d_out, d_final, mask = make_case(cell, 2, 3, 4, BIASES[biases])

    def f() -> float:
        out, final, _ = forward(x, state, **params, mask=mask, **kwargs)
        return float(
            np.sum(out * d_out) + sum(np.sum(s * d) for s, d in zip(final, d_final, strict=True))
        )

    with forced(True):
        d_x, _, grads = backward(
            d_out, d_final, forward(x, state, **params, mask=mask, **kwargs)[2]
        )
        assert set(grads) == {"weight_ih", "weight_hh", *BIASES[biases]}
        for name in grads:
            err = relative_error(grads[name], numeric_gradient(f, params[name]))
            assert err < 1e-6, f"{cell} {name}: relative error {err:.2e} ({biases})"
        assert relative_error(d_x, numeric_gradient(f, x)) < 1e-6


@pytest.mark.parametrize("biases", list(BIASES))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fast_route_equals_the_reference(cell, masked, biases) -> None:
    forward, backward, kwargs = functions(cell)
    params, x, state, d_out, d_final, mask = make_case(cell, 4, 6, 3, BIASES[biases], masked=masked)
    runs = {}
    for on in (True, False):
        with forced(on):
            out, final, cache = forward(x, state, **params, mask=mask, **kwargs)
            kept: dict = {}
            d_x, d_state, grads = backward(d_out, d_final, cache, state_grads=kept)
        assert bool(cache.get("reference")) == on
        runs[on] = {
            "out": out,
            "d_x": d_x,
            "h": cache["h"],
            **grads,
            **{f"d{k}": v for k, v in kept.items()},
        }
        runs[on].update({f"final{k}": s for k, s in enumerate(final)})
        runs[on].update({f"d_state{k}": s for k, s in enumerate(d_state)})
        if "gates" in cache:  # (T, B, GH); at padded steps a value computed and thrown away
            real = np.ones((6, 4, 1), dtype=bool) if mask is None else mask.T[:, :, None]
            runs[on]["gates"] = np.where(real, cache["gates"], 0)
    ref, fast = runs[True], runs[False]
    assert set(ref) == set(fast)
    assert {k for k in WEIGHTS if k in ref} == {"weight_ih", "weight_hh", *BIASES[biases]}
    for name in ref:
        np.testing.assert_allclose(fast[name], ref[name], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("Layer", [RNN, LSTM, GRU])
def test_stacked_bidirectional_layers_equal_on_both_routes(Layer) -> None:
    rng = np.random.default_rng(5)
    layer = Layer(D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)
    x = rng.standard_normal((3, 5, D))  # (B, T, D)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=bool)  # (B, T)
    d_out = rng.standard_normal((3, 5, 2 * H))  # (B, T, 2H)
    runs = {}
    for on in (True, False):
        with forced(on):
            out, _ = layer.forward(x, mask=mask)
            d_x = layer.backward(d_out)
        runs[on] = {"out": out, "d_x": d_x, **layer.grads}
    assert set(runs[True]) == set(runs[False])
    assert len(runs[True]) == 2 + len(layer.params)  # every parameter has its gradient
    for name in runs[True]:
        np.testing.assert_allclose(
            runs[False][name], runs[True][name], rtol=0, atol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("cell", list(CELLS))
def test_padded_steps_carry_the_state_and_get_no_gradient(cell) -> None:
    forward, backward, kwargs = functions(cell)
    params, x, state, d_out, d_final, mask = make_case(cell, 3, 4, 11)
    x[~mask] = np.nan  # whatever fills the padding cannot leak in
    with forced(True):
        out, _, cache = forward(x, state, **params, mask=mask, **kwargs)
        d_x, _, grads = backward(d_out, d_final, cache)
    np.testing.assert_array_equal(cache["h"][4, 0], cache["h"][3, 0])  # step 3 of row 0 is padding
    np.testing.assert_array_equal(cache["h"][2, 2], cache["h"][1, 2])  # step 1 of row 2 is padding
    assert (out[~mask] == 0).all()
    assert (d_x[~mask] == 0).all()
    assert all(np.isfinite(g).all() for g in grads.values())


def test_lstm_step_is_the_lectures_equations() -> None:
    params, x, (h0, c0), *_ = make_case("lstm", 2, 1, 0, masked=False)
    (h1, c1), cache = lstm.lstm_step_forward(x[:, 0], (h0, c0), params)
    i, f, g, o = np.split(cache["gates"], 4, axis=1)  # (B, H) each
    z = x[:, 0] @ params["weight_ih"].T + h0 @ params["weight_hh"].T
    z += params["bias_ih"] + params["bias_hh"]  # (B, 4H)
    np.testing.assert_allclose(f, 1 / (1 + np.exp(-z[:, H : 2 * H])), rtol=1e-14)
    np.testing.assert_allclose(c1, f * c0 + i * g, rtol=1e-14)  # C_t = f_t * C_{t-1} + i_t * g_t
    np.testing.assert_allclose(h1, o * np.tanh(c1), rtol=1e-14)  # h_t = o_t * tanh(C_t)


def test_use_reference_and_the_environment_pick_the_route(monkeypatch) -> None:
    params, x, state, *_ = make_case("gru", 2, 3, 1, masked=False)
    try:
        bptt.functional.use_reference(True)
        assert gru.gru_forward(x, state, **params)[2].get("reference")
        bptt.functional.use_reference(False)
        assert not gru.gru_forward(x, state, **params)[2].get("reference")
        bptt.functional.use_reference(None)  # back to the environment
        monkeypatch.setenv("BPTT_REFERENCE", "1")
        assert bptt.functional.reference_on()
        assert gru.gru_forward(x, state, **params)[2].get("reference")
        monkeypatch.setenv("BPTT_REFERENCE", "0")
        assert not bptt.functional.reference_on()
    finally:
        reference.use_reference(None)


@pytest.mark.parametrize("cell", list(CELLS))
def test_one_validation_names_expected_and_received(cell) -> None:
    forward, _, kwargs = functions(cell)
    params, x, state, *_ = make_case(cell, 2, 3, 2, masked=False)
    name = cell.split("-")[0]
    with pytest.raises(BpttError, match=rf"^{name} input must be \(B, T, D\), got shape \(2, 3\)$"):
        forward(x[:, :, 0], state, **params, **kwargs)
    with pytest.raises(BpttError, match=rf"^{name} h0 must be \(B, H\) = \(2, 3\), got \(2, 4\)$"):
        forward(x, (np.zeros((2, 4)), *state[1:]), **params, **kwargs)
    bad = {**params, "bias_hh": np.zeros(7)}
    with pytest.raises(BpttError, match=rf"^{name} bias_hh must be .*got \(7,\)$"):
        forward(x, state, **bad, **kwargs)
    with pytest.raises(BpttError, match=r"input has 5 features, the layer expects 2$"):
        forward(np.zeros((2, 3, 5)), state, **params, **kwargs)
    with pytest.raises(BpttError, match=r"mask must be \(B, T\) = \(2, 3\), got \(3, 2\)$"):
        forward(x, state, **params, mask=np.ones((3, 2), dtype=bool), **kwargs)
