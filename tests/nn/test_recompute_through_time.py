"""Checkpointing through time (``layer.checkpoint_steps``): same numbers, less cache.

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import numpy as np
import pytest

import bptt.nn
from bptt.errors import BpttError
from bptt.functional.lstm import lstm_backward, lstm_forward
from bptt.functional.recompute import checkpointed_backward, checkpointed_forward

B, T, D, H = 3, 7, 4, 5


def run(layer, x, mask, d_out, state):
    out, final = layer.forward(x, state, mask=mask)
    d_x = layer.backward(d_out)
    return out, final, d_x, dict(layer.grads), layer.d_initial_state


@pytest.mark.parametrize("cls", [bptt.nn.RNN, bptt.nn.LSTM, bptt.nn.GRU])
@pytest.mark.parametrize("chunk", [1, 3, T, 100])
def test_checkpointed_layer_equals_the_plain_one(cls, chunk: int) -> None:
    rng = np.random.default_rng(0)
    layer = cls(D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    d_out = rng.standard_normal((B, T, 2 * H))  # (B, T, K*H)
    mask = np.arange(T)[None, :] < np.array([T, 2, 5])[:, None]  # (B, T)
    state = tuple(rng.standard_normal((4, B, H)) for _ in layer.state_names)  # (L*K, B, H) each
    state = state[0] if len(state) == 1 else state
    plain = run(layer, x, mask, d_out, state)
    layer.checkpoint_steps = chunk
    layer.forward(x, state, mask=mask)
    # The setting must take effect: each direction keeps one state per chunk,
    # not every step's activations (equal numbers alone would pass if ignored).
    n_chunks = -(-T // chunk)
    for cache in layer._cache["caches"]:
        assert len(cache["starts"]) == n_chunks, (len(cache["starts"]), n_chunks)
    ckpt = run(layer, x, mask, d_out, state)

    for name, a, b in zip(("outputs", "final", "d_x"), plain[:3], ckpt[:3], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12, err_msg=name)
    assert plain[3].keys() == ckpt[3].keys()
    for k in plain[3]:
        np.testing.assert_allclose(ckpt[3][k], plain[3][k], rtol=1e-12, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(ckpt[4], plain[4], rtol=1e-12, atol=1e-12)


def test_checkpointed_cache_keeps_one_state_per_chunk() -> None:
    rng = np.random.default_rng(1)
    T_long, k = 40, 10
    x = rng.standard_normal((B, T_long, D))  # (B, T, D)
    w = [rng.standard_normal(s) for s in ((4 * H, D), (4 * H, H), (4 * H,), (4 * H,))]
    state = (np.zeros((B, H)), np.zeros((B, H)))  # (B, H) each
    _, _, full = lstm_forward(x, state, *w)
    out, _, cache = checkpointed_forward(lstm_forward, x, state, *w, chunk=k)
    assert len(cache["starts"]) == T_long // k
    kept = sum(s.nbytes for st in cache["starts"] for s in st)
    full_bytes = sum(v.nbytes for v in full.values() if isinstance(v, np.ndarray))
    assert kept < full_bytes / 20, (kept, full_bytes)
    d_x, _, grads = checkpointed_backward(
        lstm_forward, lstm_backward, np.ones_like(out), None, cache
    )
    expected = lstm_backward(np.ones_like(out), None, full)
    np.testing.assert_allclose(d_x, expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["weight_hh"], expected[2]["weight_hh"], rtol=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, 4, T])
def test_forward_and_backward_each_run_the_cell_chunk_by_chunk(chunk, monkeypatch) -> None:
    """The cell is called on pieces of ``chunk`` steps, forward and again in backward (the
    recomputation), last piece first; ignoring the setting would call it once on all T."""
    calls: list[tuple[str, int]] = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append((name, args[0].shape[1]))  # x (B, k, D) or d_outputs (B, k, H)
            return fn(*args, **kwargs)

        return wrapped

    rng = np.random.default_rng(3)
    layer = bptt.nn.LSTM(D, H, dtype=np.float64, rng=rng)
    monkeypatch.setattr(layer, "cell_forward", spy("forward", lstm_forward))
    monkeypatch.setattr(layer, "cell_backward", spy("backward", lstm_backward))
    layer.checkpoint_steps = chunk
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    layer.forward(x)
    sizes = [min(chunk, T - t0) for t0 in range(0, T, chunk)]  # steps of each piece
    assert calls == [("forward", k) for k in sizes]
    calls.clear()
    layer.backward(rng.standard_normal((B, T, H)))
    assert calls == [(name, k) for k in reversed(sizes) for name in ("forward", "backward")]


@pytest.mark.parametrize("chunk", [0, -2, 2.5])
def test_a_bad_chunk_is_refused(chunk) -> None:
    layer = bptt.nn.LSTM(D, H, dtype=np.float64, rng=np.random.default_rng(2))
    layer.checkpoint_steps = chunk
    with pytest.raises(BpttError, match="chunk must be a positive number of steps"):
        layer.forward(np.zeros((B, T, D)))
