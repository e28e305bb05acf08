"""Turning a trained model into sequences: sampling with temperature and top-k, greedy.

The model keeps its recurrent state and runs one step per symbol through the
same forward code as training (``model.step``), so the prompt is read once and
never re-run.
"""

from __future__ import annotations

import math

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import softmax


def sample_next(
    logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Draw one index per row of ``logits`` (B, V).

    temperature 0 is greedy (argmax); below 1 sharpens, above 1 flattens the
    distribution softmax(logits / temperature). ``top_k`` keeps only the k most
    likely symbols before drawing.
    """
    if temperature == 0:
        return logits.argmax(axis=-1)
    z = logits.astype(np.float64) / temperature  # (B, V)
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k, None]  # (B, 1)
        z = np.where(z < kth, -np.inf, z)
    p = softmax(z)  # (B, V)
    u = rng.random((p.shape[0], 1))  # (B, 1)
    return np.minimum((p.cumsum(axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)


def generate(
    model,
    prompt: np.ndarray,
    n: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    state=None,
    exclude: tuple[int, ...] = (),
) -> np.ndarray:
    """Continue ``prompt`` (a 1-D array of ids, at least one) by ``n`` sampled ids.

    Returns the ``n`` new ids. ``rng`` is required unless ``temperature`` is 0.
    Ids in ``exclude`` (such as ``<unk>``) are never produced.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)):
        raise BpttError(f"temperature must be a finite number >= 0; got {temperature!r}")
    if temperature < 0:
        raise BpttError(f"temperature must be >= 0 (0 is greedy); got {temperature}")
    if top_k is not None and top_k < 1:
        raise BpttError(f"top_k must be at least 1; got {top_k}")
    if n < 0:
        raise BpttError(f"length must be >= 0; got {n}")
    prompt = np.asarray(prompt)
    if prompt.ndim != 1 or prompt.size == 0:
        raise BpttError("the prompt must be a non-empty sequence of symbols")
    if temperature > 0 and rng is None:
        raise BpttError("sampling needs rng (a numpy.random.Generator) unless temperature is 0")
    logits, state = model.forward(prompt[None, :], state)  # (1, P, V) the prompt in one pass
    logits = logits[:, -1]  # (1, V)
    banned = list(exclude)
    out = np.empty(n, dtype=np.int64)
    for t in range(n):
        if banned:
            logits = logits.copy()
            logits[:, banned] = -np.inf
        nxt = sample_next(logits, temperature, top_k, rng)  # (1,)
        out[t] = nxt[0]
        logits, state = model.step(nxt, state)
    return out
