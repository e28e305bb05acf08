"""Checkpointing through time: keep one state per chunk, recompute the rest in BPTT.

A cell's cache grows as T × B × H (the LSTM keeps h, C, tanh C and the four
gates for every step: about 7·T·B·H numbers). For very long sequences that is
too much, so this wrapper runs any cell of the common contract in chunks of
``chunk`` steps and keeps only the state at the start of each chunk. The
backward pass walks the chunks from last to first; for each it re-runs the
cell's forward from the kept state (the same arithmetic, so the same values)
and hands that chunk's cache to the cell's backward, with the state gradient
arriving from the chunk after it:

    forward:   s_{c·k}  kept for chunk c = 0 .. ⌈T/k⌉-1
    backward:  for c = last .. 0:
                   cache_c = cell_forward(x[c·k : (c+1)·k], s_{c·k})        recompute
                   ∂E/∂x_c, ∂E/∂s_{c·k}, ∂E/∂W_c
                       = cell_backward(∂E/∂out_c, ∂E/∂s_{(c+1)·k}, cache_c)
               ∂E/∂W = Σ_c ∂E/∂W_c

Memory for the activations drops from T·B·H·(per-step cache) to
k·B·H·(per-step cache) + ⌈T/k⌉·B·H·(state arrays); the price is a second
forward pass (about a third more time for a training step). The results
equal the unchunked cell's up to the rounding of summing the weight
gradients chunk by chunk.

Shapes: B batch, T time steps, D input features, H hidden units, k = chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bptt.errors import BpttError


def checkpointed_forward(
    cell_forward: Callable,
    x: np.ndarray,
    state: tuple[np.ndarray, ...],
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray | None = None,
    bias_hh: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    *,
    chunk: int,
    **cell_kwargs,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], dict]:
    """Run ``cell_forward`` over x (B, T, D) in chunks of ``chunk`` steps.

    Returns the cell's outputs (B, T, H) and final state, and a small cache
    (the inputs, the weights and one state per chunk) for
    :func:`checkpointed_backward`.
    """
    if not isinstance(chunk, int | np.integer) or chunk < 1:
        raise BpttError(f"chunk must be a positive number of steps, got {chunk!r}")
    B, T, _ = x.shape
    weights = (weight_ih, weight_hh, bias_ih, bias_hh)
    outputs = None
    starts = []
    for t0 in range(0, T, chunk):
        t1 = min(t0 + chunk, T)
        m = None if mask is None else mask[:, t0:t1]  # (B, k)
        out, next_state, _ = cell_forward(x[:, t0:t1], state, *weights, mask=m, **cell_kwargs)
        if outputs is None:
            outputs = np.empty((B, T, out.shape[2]), dtype=out.dtype)  # (B, T, H)
        outputs[:, t0:t1] = out
        starts.append(tuple(s.copy() for s in state))  # (B, H) each, the chunk's first state
        state = next_state
    cache = {
        "checkpointed": True,
        "x": x,
        "mask": mask,
        "weights": weights,
        "starts": starts,
        "chunk": int(chunk),
        "cell_kwargs": cell_kwargs,
    }
    return outputs, state, cache


def checkpointed_backward(
    cell_forward: Callable,
    cell_backward: Callable,
    d_outputs: np.ndarray,
    d_final_state: tuple[np.ndarray | None, ...] | None,
    cache: dict,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    """BPTT for :func:`checkpointed_forward`: recompute each chunk, then its backward.

    Returns ∂E/∂x (B, T, D), ∂E/∂(initial state), and the weight gradients summed
    over the chunks, as the cell's backward does for the whole sequence.
    """
    x, mask, weights, chunk = cache["x"], cache["mask"], cache["weights"], cache["chunk"]
    T = x.shape[1]
    d_x = np.empty(x.shape, dtype=x.dtype)  # (B, T, D)
    grads: dict[str, np.ndarray] = {}
    d_state = d_final_state
    for c in range(len(cache["starts"]) - 1, -1, -1):
        t0, t1 = c * chunk, min((c + 1) * chunk, T)
        m = None if mask is None else mask[:, t0:t1]  # (B, k)
        _, _, chunk_cache = cell_forward(
            x[:, t0:t1], cache["starts"][c], *weights, mask=m, **cache["cell_kwargs"]
        )
        d_out = np.ascontiguousarray(d_outputs[:, t0:t1])  # (B, k, H)
        d_x[:, t0:t1], d_state, g = cell_backward(d_out, d_state, chunk_cache)
        for name, value in g.items():
            if name in grads:
                grads[name] += value
            else:
                grads[name] = value
    return d_x, d_state, grads
