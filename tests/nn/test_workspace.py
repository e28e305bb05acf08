"""Layers reuse their cache's memory from call to call: results must not notice."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.nn import GRU, LSTM, RNN


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_a_second_forward_changes_neither_results_nor_gradients(cls):
    rng = np.random.default_rng(0)
    D, H = 3, 4
    kw = dict(num_layers=2, bidirectional=True, dtype=np.float64)
    layer = cls(D, H, rng=np.random.default_rng(1), **kw)
    fresh = cls(D, H, rng=np.random.default_rng(1), **kw)  # same weights, empty workspaces
    x1 = rng.standard_normal((2, 5, D))  # (B, T, D)
    x2 = rng.standard_normal((3, 7, D))  # larger: the workspace grows
    x3 = rng.standard_normal((2, 4, D))  # smaller: a view of what is kept
    mask = np.ones((2, 4), dtype=bool)
    mask[1, 3:] = False
    out1, state1 = layer.forward(x1)
    kept = (out1.copy(), [s.copy() for s in np.atleast_1d(state1)])
    layer.forward(x2)
    layer.forward(x3, mask=mask)  # the last forward before backward is the one that counts
    np.testing.assert_array_equal(out1, kept[0])  # handed-out arrays are never reused
    for s, s_kept in zip(np.atleast_1d(state1), kept[1], strict=True):
        np.testing.assert_array_equal(s, s_kept)

    g = rng.standard_normal((2, 4, 2 * H))  # (B, T, K*H)
    layer.backward(g)  # a full forward/backward cycle, then one more on the same memory
    ref_out, _ = fresh.forward(x3, mask=mask)
    np.testing.assert_array_equal(layer.forward(x3, mask=mask)[0], ref_out)
    d_x = layer.backward(g)
    np.testing.assert_array_equal(d_x, fresh.backward(g))
    for name, grad in fresh.grads.items():
        np.testing.assert_array_equal(layer.grads[name], grad, err_msg=name)


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
@pytest.mark.parametrize("B", [1, 2])
def test_one_step_at_a_time_outputs_stay_as_they_were(cls, B):
    # At T = 1 (generation) or B = 1 the batch-first view of the state history is
    # contiguous: the outputs must still be copies, not workspace memory.
    rng = np.random.default_rng(0)
    layer = cls(3, 4, rng=rng)
    x = rng.standard_normal((B, 5, 3)).astype(np.float32)  # (B, T, D)
    whole, _ = layer.forward(x)
    state, outs = None, []
    for t in range(5):
        out, state = layer.forward(x[:, t : t + 1], state)  # (B, 1, H)
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=1e-6, atol=1e-6)
