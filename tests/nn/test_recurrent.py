"""bptt.nn.recurrent: PyTorch parity, finite differences, masks, dropout, errors.

Shapes: B batch, T time steps, D input features, H hidden units, L layers,
K directions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bptt.errors import BpttError
from bptt.functional.linear import dropout_mask
from bptt.nn import GRU, LSTM, RNN

D, H = 3, 4

# name -> (bptt class, torch class, keyword arguments for both)
KINDS = {
    "rnn_tanh": (RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, torch.nn.LSTM, {}),
    "gru": (GRU, torch.nn.GRU, {}),
}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: torch's thread pool only adds overhead (and contention)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_layer(
    kind: str, L: int = 1, bi: bool = False, dtype=np.float64, seed: int = 0, hidden: int = H, **kw
):
    cls, _, extra = KINDS[kind]
    rng = np.random.default_rng(seed)
    return cls(D, hidden, num_layers=L, bidirectional=bi, dtype=dtype, rng=rng, **extra, **kw)


def torch_twin(layer, kind: str) -> torch.nn.Module:
    """The same layer in torch, weights moved by state_dict with no renaming."""
    _, tcls, extra = KINDS[kind]
    twin = tcls(
        layer.input_size,
        layer.hidden_size,
        num_layers=layer.num_layers,
        bidirectional=layer.bidirectional,
        batch_first=True,
        dtype=TORCH_DTYPE[layer.dtype.type],
        **extra,
    )
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return twin


def prefix_mask(rng: np.random.Generator, B: int, T: int) -> np.ndarray:
    """Right-padded (B, T) mask with random lengths in 1..T (the first sequence padded if T > 1)."""
    lengths = rng.integers(1, T + 1, size=B)  # (B,)
    lengths[0] = max(1, T - 1)
    return np.arange(T)[None, :] < lengths[:, None]  # (B, T)


def random_inputs(layer, rng, B: int, T: int):
    """x, initial state, ∂E/∂outputs and ∂E/∂(final state) in the layer's dtype."""
    dt, LK, H = layer.dtype, layer.num_layers * layer.num_directions, layer.hidden_size
    x = rng.standard_normal((B, T, layer.input_size)).astype(dt)  # (B, T, D)
    pieces = [rng.standard_normal((LK, B, H)).astype(dt) for _ in layer.state_names]  # (L*K, B, H)
    d_out = rng.standard_normal((B, T, layer.num_directions * H)).astype(dt)  # (B, T, K*H)
    d_pieces = [
        rng.standard_normal((LK, B, H)).astype(dt) for _ in layer.state_names
    ]  # (L*K, B, H)
    pack = (lambda p: p[0]) if layer.state_arity == 1 else tuple
    return x, pack(pieces), d_out, pack(d_pieces)


def pieces_of(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def torch_run(twin, x, state, mask, d_out, d_state):
    """Torch outputs, final state and all gradients; masks go through pack_padded_sequence."""
    xt = torch.from_numpy(x.copy()).requires_grad_()
    st = [torch.from_numpy(p.copy()).requires_grad_() for p in pieces_of(state)]
    hx = st[0] if len(st) == 1 else tuple(st)
    T = x.shape[1]
    if mask is None:
        out, fin = twin(xt, hx)
    else:
        lengths = torch.from_numpy(mask.sum(axis=1))
        packed = pack_padded_sequence(xt, lengths, batch_first=True, enforce_sorted=False)
        out_p, fin = twin(packed, hx)
        out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    fin = pieces_of(fin)
    loss = (out * torch.from_numpy(d_out)).sum()
    for f, d in zip(fin, pieces_of(d_state), strict=True):
        loss = loss + (f * torch.from_numpy(d)).sum()
    twin.zero_grad()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in twin.named_parameters()}
    return (
        out.detach().numpy(),
        [f.detach().numpy() for f in fin],
        xt.grad.numpy(),
        [s.grad.numpy() for s in st],
        grads,
    )


def assert_close(ours, theirs, tol, what):
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=what)


# -- PyTorch parity --------------------------------------------------------------------

# kind, L, bi, T, B, masked: every combination in float64, the T = 7 ones in float32 too.
SWEEP = list(itertools.product(KINDS, (1, 2), (False, True), (1, 2, 7), (1, 3), (False, True)))
CASES = [(*c, np.float64, 1e-10) for c in SWEEP] + [
    (*c, np.float32, 1e-5) for c in SWEEP if c[3] == 7
]


@pytest.mark.parametrize("kind,L,bi,T,B,masked,dtype,tol", CASES)
def test_parity_with_torch(kind, L, bi, T, B, masked, dtype, tol):
    check_parity(kind, L, bi, T, B, masked, dtype, tol, SWEEP.index((kind, L, bi, T, B, masked)))


# float32 at sizes where the per-step products take the packed kernel (functional/fast/_gemm.py:
# H*G a multiple of 16, at least 4 rows, at least 8 steps); B = 7 runs a 6-row and a 1-row tile.
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_parity_with_torch_float32_packed_products(kind, masked):
    check_parity(kind, 2, True, 12, 7, masked, np.float32, 2e-5, seed=3, hidden=16)


def check_parity(kind, L, bi, T, B, masked, dtype, tol, seed, hidden=H):
    """Outputs, final state and every gradient against torch's, to ``tol``."""
    rng = np.random.default_rng(seed)
    layer = make_layer(kind, L, bi, dtype, seed, hidden=hidden)
    twin = torch_twin(layer, kind)
    x, state, d_out, d_state = random_inputs(layer, rng, B, T)
    mask = prefix_mask(rng, B, T) if masked else None

    out, fin = layer.forward(x, state, mask=mask)
    d_x = layer.backward(d_out, d_state)
    t_out, t_fin, t_dx, t_dstate, t_grads = torch_run(twin, x, state, mask, d_out, d_state)

    assert out.dtype == dtype and d_x.dtype == dtype
    assert_close(out, t_out, tol, "outputs")
    for name, ours, theirs in zip(layer.state_names, pieces_of(fin), t_fin, strict=True):
        assert_close(ours, theirs, tol, f"final {name}")
    assert_close(d_x, t_dx, tol, "d_x")
    for name, ours, theirs in zip(
        layer.state_names, pieces_of(layer.d_initial_state), t_dstate, strict=True
    ):
        assert_close(ours, theirs, tol, f"d_{name}")
    assert set(layer.grads) == set(t_grads)
    for key in t_grads:
        assert_close(layer.grads[key], t_grads[key], tol, key)


def test_zero_state_is_default():
    rng = np.random.default_rng(1)
    layer = make_layer("lstm", 2, True)
    x = rng.standard_normal((2, 5, D))  # (B, T, D)
    out, fin = layer.forward(x)
    out0, fin0 = layer.forward(x, layer.initial_state(2))
    np.testing.assert_array_equal(out, out0)
    for a, b in zip(fin, fin0, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bias_false_matches_torch():
    rng = np.random.default_rng(2)
    layer = make_layer("gru", 2, True, bias=False)
    assert not any(k.startswith("bias") for k in layer.params)
    twin = torch.nn.GRU(D, H, 2, bias=False, batch_first=True, bidirectional=True).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x, state, d_out, d_state = random_inputs(layer, rng, 3, 4)
    out, _ = layer.forward(x, state)
    layer.backward(d_out, d_state)
    t_out, _, _, _, t_grads = torch_run(twin, x, state, None, d_out, d_state)
    assert_close(out, t_out, 1e-10, "outputs")
    for key in t_grads:
        assert_close(layer.grads[key], t_grads[key], 1e-10, key)


# -- finite differences ----------------------------------------------------------------


def numeric_grad(f, arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Centered differences (f(a + ε) - f(a - ε)) / 2ε, one entry at a time, in place."""
    grad = np.zeros_like(arr)  # same shape as arr
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        plus = f()
        arr[i] = old - eps
        minus = f()
        arr[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


def holey_mask(B: int, T: int) -> np.ndarray:
    """A mask with trailing padding and, in one row, a hole in the middle."""
    mask = np.ones((B, T), dtype=bool)  # (B, T)
    mask[0, T - 2 :] = False
    mask[1, 1] = False
    return mask


def check_all_gradients(layer, x, state, mask, d_out, d_state, forward_kw=None):
    """Every parameter, the input and the initial state against centered differences."""
    forward_kw = forward_kw or dict

    def loss() -> float:
        out, fin = layer.forward(x, state, mask=mask, **forward_kw())
        total = np.sum(out * d_out)
        for f, d in zip(pieces_of(fin), pieces_of(d_state), strict=True):
            total += np.sum(f * d)
        return float(total)

    layer.forward(x, state, mask=mask, **forward_kw())
    d_x = layer.backward(d_out, d_state)
    d_init = pieces_of(layer.d_initial_state)
    analytic = dict(layer.grads)
    for key in layer.params:
        err = rel_err(analytic[key], numeric_grad(loss, layer.params[key]))
        assert err < 1e-6, f"{key}: relative error {err:.2e}"
    err = rel_err(d_x, numeric_grad(loss, x))
    assert err < 1e-6, f"d_x: relative error {err:.2e}"
    for name, piece, d_piece in zip(layer.state_names, pieces_of(state), d_init, strict=True):
        err = rel_err(d_piece, numeric_grad(loss, piece))
        assert err < 1e-6, f"d_{name}: relative error {err:.2e}"
    return d_x


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_gradients_stacked_bidirectional(kind, masked):
    rng = np.random.default_rng(3)
    layer = make_layer(kind, L=2, bi=True, seed=4, hidden=2)  # small: ~200 scalars to perturb
    x, state, d_out, d_state = random_inputs(layer, rng, 2, 3)
    mask = holey_mask(2, 3) if masked else None
    d_x = check_all_gradients(layer, x, state, mask, d_out, d_state)
    if masked:
        assert np.all(d_x[~mask] == 0)


def test_gradients_with_dropout_and_fixed_mask():
    rng = np.random.default_rng(5)
    layer = make_layer("lstm", L=2, bi=True, seed=6, hidden=2, dropout=0.4)
    x, state, d_out, d_state = random_inputs(layer, rng, 2, 3)
    # The same seed every evaluation holds the dropout masks fixed.
    check_all_gradients(
        layer,
        x,
        state,
        holey_mask(2, 3),
        d_out,
        d_state,
        lambda: {"training": True, "rng": np.random.default_rng(7)},
    )


def test_d_final_state_none_pieces():
    """None, or an LSTM tuple with a None piece, means a zero gradient there."""
    rng = np.random.default_rng(8)
    layer = make_layer("lstm", L=2, bi=True)
    x, state, d_out, (d_h, d_c) = random_inputs(layer, rng, 2, 3)
    layer.forward(x, state)
    d_x_none = layer.backward(d_out, None)
    d_x_zero = layer.backward(d_out, (np.zeros_like(d_h), np.zeros_like(d_c)))
    np.testing.assert_array_equal(d_x_none, d_x_zero)
    d_x_half = layer.backward(d_out, (d_h, None))
    d_x_full = layer.backward(d_out, (d_h, np.zeros_like(d_c)))
    np.testing.assert_array_equal(d_x_half, d_x_full)


# -- masks -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_masked_batch_equals_per_sequence_runs(kind):
    rng = np.random.default_rng(9)
    B, T = 3, 6
    layer = make_layer(kind, L=2, bi=True, seed=10)
    x, state, d_out, d_state = random_inputs(layer, rng, B, T)
    lengths = np.array([6, 2, 4])
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    out, fin = layer.forward(x, state, mask=mask)
    d_x = layer.backward(d_out, d_state)
    grads = dict(layer.grads)
    d_init = pieces_of(layer.d_initial_state)

    summed = {k: np.zeros_like(v) for k, v in grads.items()}
    for b, n in enumerate(lengths):
        one = lambda s, b=b: s[:, b : b + 1]  # noqa: E731  (L*K, 1, H) slice of a state
        st = tuple(one(p).copy() for p in pieces_of(state))
        st = st[0] if layer.state_arity == 1 else st
        d_st = tuple(one(p).copy() for p in pieces_of(d_state))
        d_st = d_st[0] if layer.state_arity == 1 else d_st
        out_b, fin_b = layer.forward(x[b : b + 1, :n], st)
        d_x_b = layer.backward(d_out[b : b + 1, :n], d_st)
        np.testing.assert_allclose(out[b : b + 1, :n], out_b, atol=1e-12)
        np.testing.assert_array_equal(out[b, n:], 0)
        for f, f_b in zip(pieces_of(fin), pieces_of(fin_b), strict=True):
            np.testing.assert_allclose(one(f), f_b, atol=1e-12)
        np.testing.assert_allclose(d_x[b : b + 1, :n], d_x_b, atol=1e-12)
        for di, di_b in zip(d_init, pieces_of(layer.d_initial_state), strict=True):
            np.testing.assert_allclose(one(di), di_b, atol=1e-12)
        for k in summed:
            summed[k] += layer.grads[k]
    for k in grads:
        np.testing.assert_allclose(grads[k], summed[k], atol=1e-12, err_msg=k)
    # padded steps: exactly zero gradient, and their values change nothing
    assert np.all(d_x[~mask] == 0)
    x2 = x.copy()
    x2[~mask] = 1e3
    out2, fin2 = layer.forward(x2, state, mask=mask)
    np.testing.assert_array_equal(out, out2)
    for f, f2 in zip(pieces_of(fin), pieces_of(fin2), strict=True):
        np.testing.assert_array_equal(f, f2)


# -- dropout ---------------------------------------------------------------------------


def test_dropout_eval_is_identity():
    rng = np.random.default_rng(11)
    layer = make_layer("gru", L=3, bi=True, dropout=0.5)
    plain = make_layer("gru", L=3, bi=True)
    plain.load_state_dict(layer.state_dict())
    x, state, _, _ = random_inputs(layer, rng, 2, 5)
    out, fin = layer.forward(x, state, training=False)
    out_p, fin_p = plain.forward(x, state, training=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, out_p)
    np.testing.assert_array_equal(fin, fin_p)


def test_dropout_training_reproducible_and_placed_between_layers():
    rng = np.random.default_rng(12)
    p = 0.3
    layer = make_layer("rnn_tanh", L=2, bi=True, dropout=p)
    x, state, _, _ = random_inputs(layer, rng, 3, 5)
    a, _ = layer.forward(x, state, training=True, rng=np.random.default_rng(13))
    b, _ = layer.forward(x, state, training=True, rng=np.random.default_rng(13))
    c, _ = layer.forward(x, state, training=True, rng=np.random.default_rng(14))
    e, _ = layer.forward(x, state, training=False)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, e)

    # The same thing built by hand: layer 0, inverted dropout, layer 1; none after layer 1.
    bottom = RNN(D, H, bidirectional=True, dtype=np.float64, rng=np.random.default_rng(0))
    top = RNN(2 * H, H, bidirectional=True, dtype=np.float64, rng=np.random.default_rng(0))
    sd = layer.state_dict()
    bottom.load_state_dict({k: v for k, v in sd.items() if "_l0" in k})
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k})
    y0, _ = bottom.forward(x, state[:2])
    m = dropout_mask(y0.shape, p, np.random.default_rng(13), np.float64)  # (B, T, 2H)
    assert set(np.unique(m)) <= {0.0, 1 / (1 - p)}
    y1, _ = top.forward(y0 * m, state[2:])
    np.testing.assert_allclose(a, y1, atol=1e-12)


def test_dropout_without_rng_raises():
    layer = make_layer("lstm", L=2, dropout=0.2)
    with pytest.raises(BpttError, match="needs rng"):
        layer.forward(np.zeros((1, 2, D)), training=True)


# -- state dicts and initialisation ----------------------------------------------------


def test_state_dict_round_trip_with_torch_lstm():
    layer = make_layer("lstm", L=2, bi=True, dtype=np.float32)
    twin = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True, batch_first=True)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    other = make_layer("lstm", L=2, bi=True, dtype=np.float32, seed=99)
    other.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    for k, v in layer.params.items():
        np.testing.assert_array_equal(other.params[k], v)
        assert other.params[k].dtype == np.float32


def test_state_dict_is_a_copy_and_load_casts():
    layer = make_layer("gru", dtype=np.float32)
    sd = layer.state_dict()
    sd["weight_hh_l0"][:] = 7
    assert not np.any(layer.params["weight_hh_l0"] == 7)
    held = layer.params["weight_hh_l0"]  # as a model or an optimizer would hold it
    layer.load_state_dict({k: v.astype(np.float64) for k, v in sd.items()})
    assert layer.params["weight_hh_l0"] is held  # loaded in place
    assert held.dtype == np.float32 and np.all(held == 7)
    sd["weight_hh_l0"][:] = 8
    assert np.all(held == 7)  # a copy, not a view of the dict


def test_load_state_dict_errors():
    layer = make_layer("lstm", L=2)
    sd = layer.state_dict()
    del sd["bias_hh_l1"]
    sd["weight_ih_l2"] = np.zeros(1)
    expected = r"missing keys \['bias_hh_l1'\], unexpected keys \['weight_ih_l2'\]"
    with pytest.raises(BpttError, match=expected):
        layer.load_state_dict(sd)
    sd = {k: v + 1 for k, v in layer.state_dict().items()}
    sd["weight_hh_l0"] = np.zeros((4 * H, H + 1))
    before = layer.state_dict()
    with pytest.raises(BpttError, match=r"weight_hh_l0 has shape \(16, 5\), expected \(16, 4\)"):
        layer.load_state_dict(sd)
    for k, v in before.items():  # all or nothing
        np.testing.assert_array_equal(layer.params[k], v)


@pytest.mark.parametrize("kind", list(KINDS))
def test_params_shapes_and_init_like_torch(kind):
    layer = make_layer(kind, L=2, bi=True, dtype=np.float32)
    twin = KINDS[kind][1](D, H, num_layers=2, bidirectional=True, **KINDS[kind][2])
    theirs = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    assert list(layer.params) == list(theirs)  # same names, same order
    assert {k: v.shape for k, v in layer.params.items()} == theirs
    assert layer.num_parameters() == sum(p.numel() for p in twin.parameters())
    bound = 1 / np.sqrt(H)
    assert all(v.dtype == np.float32 for v in layer.params.values())
    values = np.concatenate([v.ravel() for v in layer.params.values()])
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.95 * bound  # spread over the whole range
    assert abs(values.std() - bound / np.sqrt(3)) < 0.1 * bound  # std of U(-a, a) is a/√3
    again = make_layer(kind, L=2, bi=True, dtype=np.float32)
    for k in layer.params:
        np.testing.assert_array_equal(layer.params[k], again.params[k])


def test_grads_are_fresh_each_backward():
    rng = np.random.default_rng(15)
    layer = make_layer("rnn_tanh")
    x, state, d_out, _ = random_inputs(layer, rng, 2, 3)
    layer.forward(x, state)
    layer.backward(d_out)
    first = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(d_out)
    for k in first:
        np.testing.assert_array_equal(layer.grads[k], first[k])


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"hidden_size": 0}, "hidden_size must be an integer >= 1, got 0"),
        ({"num_layers": 0}, "num_layers must be an integer >= 1, got 0"),
        ({"input_size": 2.5}, "input_size must be an integer >= 1, got 2.5"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        ({"dtype": np.int32}, "dtype must be float32 or float64, got int32"),
        ({"dtype": "float16"}, "dtype must be float32 or float64, got float16"),
        ({"rng": 3}, "rng must be a numpy.random.Generator, got int"),
    ],
)
def test_constructor_errors(kwargs, message):
    args = {"input_size": D, "hidden_size": H, **kwargs}
    with pytest.raises(BpttError, match=message):
        LSTM(**args)


def test_bad_nonlinearity():
    with pytest.raises(BpttError, match=r"nonlinearity must be one of .* got 'sigmoid'"):
        RNN(D, H, nonlinearity="sigmoid")


def test_input_errors():
    layer = make_layer("rnn_tanh")
    with pytest.raises(BpttError, match=r"input must be 3-D \(B, T, D\), got shape \(2, 3\)"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(BpttError, match="input has 11 features, the layer expects 3"):
        layer.forward(np.zeros((2, 5, 11)))
    with pytest.raises(BpttError, match=r"empty batch: input has shape \(0, 5, 3\)"):
        layer.forward(np.zeros((0, 5, D)))
    with pytest.raises(BpttError, match=r"empty batch: input has shape \(0, 1, 3\)"):
        layer.forward(np.zeros((0, 1, D)))  # one step (generation's shape) is checked too
    with pytest.raises(BpttError, match=r"zero-length sequences: input has shape \(2, 0, 3\)"):
        layer.forward(np.zeros((2, 0, D)))
    with pytest.raises(BpttError, match="input has dtype float32, the layer's dtype is float64"):
        layer.forward(np.zeros((2, 5, D), dtype=np.float32))
    f32 = make_layer("rnn_tanh", dtype=np.float32)
    with pytest.raises(BpttError, match="input has dtype float64, the layer's dtype is float32"):
        f32.forward(np.zeros((2, 5, D)))
    out, _ = f32.forward(np.ones((2, 5, D), dtype=np.int64))  # integers are cast
    assert out.dtype == np.float32


def test_state_errors():
    lstm = make_layer("lstm", L=1)
    gru = make_layer("gru", L=1)
    x = np.zeros((3, 4, D))  # (B, T, D)
    with pytest.raises(BpttError, match=r"h0 has shape \(2, 3, 4\), expected \(1, 3, 4\)"):
        gru.forward(x, np.zeros((2, 3, H)))
    with pytest.raises(BpttError, match=r"c0 has shape \(1, 2, 4\), expected \(1, 3, 4\)"):
        lstm.forward(x, (np.zeros((1, 3, H)), np.zeros((1, 2, H))))
    with pytest.raises(BpttError, match=r"LSTM takes state as a tuple \(h0, c0\), got ndarray"):
        lstm.forward(x, np.zeros((1, 3, H)))
    with pytest.raises(BpttError, match=r"GRU takes state as one array \(1, 3, 4\), got a tuple"):
        gru.forward(x, (np.zeros((1, 3, H)),))
    with pytest.raises(BpttError, match="h0 has dtype float32, the layer's dtype is float64"):
        gru.forward(x, np.zeros((1, 3, H), dtype=np.float32))


def test_mask_errors():
    layer = make_layer("gru")
    x = np.zeros((3, 4, D))  # (B, T, D)
    with pytest.raises(BpttError, match=r"mask has shape \(3, 5\), expected \(B, T\) = \(3, 4\)"):
        layer.forward(x, mask=np.ones((3, 5), dtype=bool))
    with pytest.raises(BpttError, match=r"mask must be boolean .* got dtype int64"):
        layer.forward(x, mask=np.ones((3, 4), dtype=np.int64))
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    with pytest.raises(BpttError, match=r"sequence\(s\) \[1\] have no real step"):
        layer.forward(x, mask=mask)


def test_backward_errors():
    layer = make_layer("lstm", bi=True)
    with pytest.raises(BpttError, match="backward called before forward"):
        layer.backward(np.zeros((3, 4, 2 * H)))
    layer.forward(np.zeros((3, 4, D)))
    with pytest.raises(
        BpttError, match=r"d_outputs has shape \(3, 4, 4\), expected .* \(3, 4, 8\)"
    ):
        layer.backward(np.zeros((3, 4, H)))
    with pytest.raises(BpttError, match=r"d_cn has shape \(1, 3, 4\), expected \(2, 3, 4\)"):
        layer.backward(np.zeros((3, 4, 2 * H)), (None, np.zeros((1, 3, H))))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_masked_batch_runs_longest_first_and_comes_back_in_the_callers_order(
    threads, monkeypatch
):
    """The layer sorts a masked batch longest first (dealt to the loop's thread shares),
    and every result returns in the caller's rows: outputs, final states, ∂E/∂x,
    ∂E/∂(initial state) and weight gradients equal those of the reference loop run on
    the rows as given, unsorted."""
    import bptt
    import bptt.nn.recurrent as recurrent
    from bptt.functional.reference import forced

    B, T, D, H = 9, 8, 3, 4
    rng = np.random.default_rng(11)
    lengths = np.array([3, 8, 1, 5, 8, 2, 6, 4, 7])  # (B,) unsorted
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    x = rng.standard_normal((B, T, D))
    state = tuple(rng.standard_normal((4, B, H)) for _ in range(2))  # (L*K, B, H) each
    d_out = rng.standard_normal((B, T, 2 * H))
    d_final = tuple(rng.standard_normal((4, B, H)) for _ in range(2))
    layer = LSTM(D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)

    def run(reference: bool) -> list:
        with forced(reference):
            out, final = layer.forward(x, state, mask=mask)
            d_x = layer.backward(d_out, d_final)
        return [out, *final, d_x, *layer.d_initial_state, *layer.grads.values()]

    before = bptt.get_num_threads()
    bptt.set_num_threads(threads)
    try:
        fast = run(False)
        order = layer._cache["order"]  # (B,) the rows as the cells ran them
        monkeypatch.setattr(recurrent, "longest_first", lambda x, m, s: (None, x, m, s))
        ref = run(True)  # the caller's order throughout
    finally:
        bptt.set_num_threads(before)
    assert sorted(order.tolist()) == list(range(B)) and order.tolist() != list(range(B))
    for a, b in zip(fast, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
