"""What the cell tests (test_rnn, test_lstm, test_gru) share: weights, masks, and the
check that a padded batch equals running each sequence alone.

Shapes: B batch, T time steps, D input features, H hidden units, G gates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

D, H = 4, 5
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def make_params(rng: np.random.Generator, gates: int, dtype=np.float64, bias=True) -> dict:
    """PyTorch-shaped weights of a cell with G = ``gates``; a scale of 0.5 keeps the gates
    away from saturation."""
    params = {
        "weight_ih": 0.5 * rng.standard_normal((gates * H, D)),  # (G*H, D)
        "weight_hh": 0.5 * rng.standard_normal((gates * H, H)),  # (G*H, H)
    }
    if bias:
        params["bias_ih"] = 0.5 * rng.standard_normal(gates * H)  # (G*H,)
        params["bias_hh"] = 0.5 * rng.standard_normal(gates * H)  # (G*H,)
    return {k: v.astype(dtype) for k, v in params.items()}


def make_mask(rng: np.random.Generator, B: int, T: int) -> np.ndarray:
    """Right-padded (B, T) mask: lengths cycle through T, 1 and a random length."""
    lengths = [(T, 1, int(rng.integers(1, T + 1)))[b % 3] for b in range(B)]
    if B == 1:
        lengths = [max(1, T - 1)]  # a single sequence still gets padding when T > 1
    return np.arange(T)[None, :] < np.array(lengths)[:, None]  # (B, T)


# Right padding, a length-1 sequence, and holes: a padded step may sit anywhere.
HOLES = np.array(
    [
        [1, 1, 1, 1, 1, 1],
        [1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 1, 1, 0, 1, 0],
    ],
    dtype=bool,
)  # (B, T)


def check_padded_batch_equals_each_alone(run: Callable, params: dict, rng) -> None:
    """``run(x, h0, params, mask, d_out, d_hT)`` -> (loss, out, h_T, d_x, d_h0, grads) on the
    batch masked by :data:`HOLES` equals it on each sequence's real steps alone; the weight
    gradients are the sum of the sequences'; padding gets exactly zero output and gradient."""
    mask = HOLES
    B, T = mask.shape
    x = rng.standard_normal((B, T, D))  # (B, T, D)
    h0 = rng.standard_normal((B, H))  # (B, H)
    d_out = rng.standard_normal((B, T, H))  # (B, T, H)
    d_hT = rng.standard_normal((B, H))  # (B, H)

    _, out, hT, d_x, d_h0, grads = run(x, h0, params, mask, d_out, d_hT)

    summed = {name: np.zeros_like(p) for name, p in params.items()}
    for b in range(B):
        real = mask[b]  # (T,)
        one = (x[b : b + 1, real], h0[b : b + 1], params, None, d_out[b : b + 1, real])
        _, out_b, hT_b, d_x_b, d_h0_b, grads_b = run(*one, d_hT[b : b + 1])
        np.testing.assert_allclose(out[b, real], out_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hT[b], hT_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d_x[b, real], d_x_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d_h0[b], d_h0_b[0], rtol=1e-12, atol=1e-12)
        for name in summed:
            summed[name] += grads_b[name]
    for name, value in grads.items():
        np.testing.assert_allclose(value, summed[name], rtol=1e-12, atol=1e-12, err_msg=name)

    # Padding: output exactly zero, input gradient exactly zero.
    assert np.all(out[~mask] == 0.0)
    assert np.all(d_x[~mask] == 0.0), f"padded x gradient: {d_x[~mask]}"
