"""Recurrent layers called one step at a time (T = 1), as generation and streaming call them.

Such calls take the one-step route (bptt.functional.fast._step). It must give the
reference's numbers (float64 to 1e-12) for stacked, bidirectional layers, through
backward too; PyTorch's cells' numbers in float32; and read the weights as they are
at each call, after an optimizer or the user changed them in place (nothing is packed
or kept between calls).

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bptt.nn
from bptt.functional.fast import _step
from bptt.functional.reference import forced
from bptt.optim import Adam

pytestmark = pytest.mark.skipif(not _step.JIT, reason="numba absent or BPTT_NO_JIT set")

D, H = 5, 8


def assert_close(got: dict, want: dict, tol: float, what: str) -> None:
    assert got.keys() == want.keys(), what
    for name in want:
        err = np.abs(got[name] - want[name]).max()
        assert err <= tol, f"{what}: {name} differs by {err:.2e} (tolerance {tol:.0e})"


def stepped(layer, xs: np.ndarray, state=None) -> tuple[np.ndarray, object]:
    """Outputs (B, T, K*H) of T calls of ``layer.forward`` with T = 1, the state carried."""
    outs = []
    for t in range(xs.shape[1]):
        out, state = layer.forward(xs[:, t : t + 1], state)  # (B, 1, K*H)
        outs.append(out)
    return np.concatenate(outs, axis=1), state  # (B, T, K*H)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_layer_steps_follow_weights_changed_in_place(cell) -> None:
    """Stacked and bidirectional, T = 1 calls: an Adam update and an in-place edit between
    steps are seen at the next step, on the fast route as on the reference."""
    rng = np.random.default_rng(3)
    layer = bptt.nn.CELLS[cell](D, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=rng)
    start = {k: v.copy() for k, v in layer.params.items()}
    xs = rng.uniform(-1, 1, (2, 4, D))  # (B, T, D)
    grads = {k: rng.uniform(-1, 1, v.shape) for k, v in layer.params.items()}

    def trajectory():
        for k, v in start.items():
            layer.params[k][...] = v
        opt = Adam(lr=0.05)
        out1, state = stepped(layer, xs[:, :2])
        opt.step(layer.params, grads)  # in place, as in training
        layer.params["weight_hh_l1_reverse"] *= 0.5  # the user, in place
        out2, state = stepped(layer, xs[:, 2:], state)
        d_x = layer.backward(np.ones_like(out2[:, -1:]))  # through the last step
        return {"out": np.concatenate([out1, out2], axis=1), "d_x": d_x, **layer.grads}

    with forced(False):
        fast = trajectory()
    with forced(True):
        ref = trajectory()
    assert_close(fast, ref, 1e-12, f"{cell} stepped")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_layer_steps_match_torch_cells_in_float32(cell) -> None:
    rng = np.random.default_rng(4)
    layer = bptt.nn.CELLS[cell](D, H, dtype=np.float32, rng=rng)
    xs = rng.uniform(-1, 1, (1, 6, D)).astype(np.float32)  # (B, T, D)
    with forced(False):
        ours, _ = stepped(layer, xs)
    torch_cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}
    tcell = torch_cell[cell](D, H)
    with torch.no_grad():
        for name, p in tcell.named_parameters():
            p.copy_(torch.from_numpy(layer.params[f"{name}_l0"]))
        state, theirs = None, []
        for t in range(xs.shape[1]):
            state = tcell(torch.from_numpy(xs[:, t]), state)
            theirs.append((state[0] if cell == "lstm" else state).numpy())  # (B, H)
    err = np.abs(ours - np.stack(theirs, axis=1)).max()
    assert err < 1e-5, f"{cell}: bptt's steps differ from torch's cell by {err:.2e}"
