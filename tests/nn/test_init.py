"""bptt.nn.init: shapes, distributions, orthogonality, seeds, layer helpers."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.nn import (
    GRU,
    LSTM,
    RNN,
    forget_bias_,
    orthogonal,
    orthogonal_recurrent_,
    uniform_default,
    xavier_uniform,
)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_orthogonal_is_orthogonal(shape):
    q = orthogonal(shape, np.random.default_rng(0), dtype=np.float64)
    assert q.shape == shape and q.dtype == np.float64
    rows, cols = shape
    gram = q @ q.T if rows <= cols else q.T @ q  # (min, min)
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-12)


def test_orthogonal_gain_seeds_and_sign_fix():
    a = orthogonal((5, 5), np.random.default_rng(1), gain=2.0, dtype=np.float64)
    np.testing.assert_allclose(a @ a.T, 4 * np.eye(5), atol=1e-12)
    b = orthogonal((5, 5), np.random.default_rng(1), gain=2.0, dtype=np.float64)
    np.testing.assert_array_equal(a, b)
    c = orthogonal((5, 5), np.random.default_rng(2), gain=2.0, dtype=np.float64)
    assert not np.allclose(a, c)
    # Sign-corrected Haar: over many draws the diagonal averages to about 0, not > 0.
    rng = np.random.default_rng(3)
    diag = np.mean([np.diag(orthogonal((3, 3), rng, dtype=np.float64)) for _ in range(2000)])
    assert abs(diag) < 0.05


def test_uniform_default_and_xavier():
    rng = np.random.default_rng(4)
    u = uniform_default((200, 50), 25, rng)
    assert u.shape == (200, 50) and u.dtype == np.float32
    assert np.abs(u).max() <= 0.2 and np.abs(u).max() > 0.19
    x = xavier_uniform((30, 70), rng, dtype=np.float64)
    a = np.sqrt(6 / 100)
    assert x.dtype == np.float64 and np.abs(x).max() <= a and np.abs(x).max() > 0.95 * a
    np.testing.assert_array_equal(
        uniform_default((3, 4), 5, np.random.default_rng(9)),
        uniform_default((3, 4), 5, np.random.default_rng(9)),
    )
    with pytest.raises(BpttError, match=r"2-D shape \(fan_out, fan_in\), got \(3, 4, 5\)"):
        xavier_uniform((3, 4, 5), rng)


@pytest.mark.parametrize("cls,G", [(RNN, 1), (LSTM, 4), (GRU, 3)])
def test_orthogonal_recurrent_per_gate_block(cls, G):
    H = 5
    layer = cls(
        3, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=np.random.default_rng(5)
    )
    before = layer.params["weight_ih_l0"].copy()
    orthogonal_recurrent_(layer, np.random.default_rng(6))
    for key, w in layer.params.items():
        if key.startswith("weight_hh"):
            assert w.shape == (G * H, H)
            for g in range(G):
                block = w[g * H : (g + 1) * H]  # (H, H)
                np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12, err_msg=key)
    np.testing.assert_array_equal(layer.params["weight_ih_l0"], before)  # untouched


def test_forget_bias():
    H = 3
    layer = LSTM(2, H, num_layers=2, rng=np.random.default_rng(7))
    forget_bias_(layer, 1.0)
    for l in range(2):
        b_ih, b_hh = layer.params[f"bias_ih_l{l}"], layer.params[f"bias_hh_l{l}"]
        assert np.all(b_ih[H : 2 * H] == 1.0) and np.all(b_hh[H : 2 * H] == 0.0)
        assert np.all(b_ih[:H] != 1.0)  # the other gates are left alone
    with pytest.raises(BpttError, match=r"needs an LSTM \(4 gates\), got GRU with 3 gate"):
        forget_bias_(GRU(2, H, rng=np.random.default_rng(0)))
    with pytest.raises(BpttError, match="bias=False"):
        forget_bias_(LSTM(2, H, bias=False, rng=np.random.default_rng(0)))
