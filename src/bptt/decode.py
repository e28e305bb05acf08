"""Turning a trained model into sequences: sampling with temperature and top-k, greedy,
and, for encoder-decoders, batched greedy/sampled decoding and beam search.

The model keeps its recurrent state and runs one step per symbol through the
same forward code as training (``model.step``), so the prompt is read once and
never re-run.
"""

from __future__ import annotations

import math

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import log_softmax, softmax


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


# -- encoder-decoder (seq2seq) -------------------------------------------------------
#
# The model offers encode(source, mask) -> (memory, s_0) and
# step(prev_ids (R,), state, memory) -> (logits (R, V), state, α (R, S) or None),
# the same step its training runs. Shapes: B sources, W beam width, R = B*W rows,
# S source length, V target vocabulary, N steps decoded (at most max_length).


def _check_decode_args(max_length: int, source: np.ndarray, source_mask: np.ndarray) -> None:
    if not isinstance(max_length, int | np.integer) or max_length < 1:
        raise BpttError(f"max_length must be an integer >= 1; got {max_length!r}")
    if np.shape(source) != np.shape(source_mask) or np.ndim(source) != 2:
        raise BpttError(
            f"source (B, S) and source_mask (B, S) must match; got {np.shape(source)} "
            f"and {np.shape(source_mask)}"
        )


def _cut_at_eos(rows: np.ndarray, eos_id: int) -> list[np.ndarray]:
    """Each row (N,) up to, not including, its first <eos> (the whole row if none)."""
    out = []
    for row in rows:
        ends = np.flatnonzero(row == eos_id)
        out.append(row[: ends[0]] if ends.size else row)
    return out


def decode_greedy(
    model,
    source: np.ndarray,
    source_mask: np.ndarray,
    bos_id: int,
    eos_id: int,
    max_length: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    exclude: tuple[int, ...] = (),
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Greedy decoding (temperature 0) or sampling, all B sources at once.

    Each step feeds back the symbol chosen at the previous step, starting from
    ``<bos>``; a row stops at its ``<eos>`` or after ``max_length`` symbols.

    Returns:
        per source the output ids (without ``<eos>``), and its attention
        weights (n, S) for the n steps up to and including ``<eos>`` (None
        without attention).
    """
    _check_decode_args(max_length, source, source_mask)
    if temperature > 0 and rng is None:
        raise BpttError("sampling needs rng (a numpy.random.Generator) unless temperature is 0")
    memory, state = model.encode(source, source_mask)
    B = source.shape[0]
    out = np.full((B, max_length), eos_id, dtype=np.int64)  # (B, N)
    alphas = []
    prev = np.full(B, bos_id, dtype=np.int64)  # (B,)
    done = np.zeros(B, dtype=bool)  # (B,)
    for t in range(max_length):
        logits, state, alpha = model.step(prev, state, memory)  # (B, V)
        if exclude:
            logits = logits.copy()
            logits[:, list(exclude)] = -np.inf
        prev = sample_next(logits, temperature, top_k, rng)  # (B,)
        out[:, t] = np.where(done, eos_id, prev)
        alphas.append(alpha)
        done |= prev == eos_id
        if done.all():
            break
    ids = _cut_at_eos(out[:, : t + 1], eos_id)
    return ids, _attention_rows(alphas, ids, source_mask)


def _attention_rows(alphas: list, ids: list[np.ndarray], source_mask: np.ndarray) -> list:
    """Per source, its weights (n, S_b) for its n output steps (``<eos>`` included)."""
    if not alphas or alphas[0] is None:
        return [None] * len(ids)
    a = np.stack(alphas, axis=1)  # (B, N, S)
    S_b = source_mask.sum(axis=1)  # (B,)
    return [a[b, : len(ids[b]) + 1, : S_b[b]] for b in range(len(ids))]


def _top_k(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k largest values (B, k), largest first, ties by lower index.

    One partition and a sort of k values per row, not a sort of the whole row
    (a beam of 5 over 6,000 words is 30,000 candidates per source).
    """
    if k == 1:
        return x.argmax(axis=1)[:, None]  # (B, 1) the first maximum, as greedy takes it
    if k >= x.shape[1]:
        return np.argsort(-x, axis=1, kind="stable")[:, :k]  # (B, k)
    part = np.argpartition(-x, k - 1, axis=1)[:, :k]  # (B, k) the k largest, unordered
    vals = np.take_along_axis(x, part, axis=1)  # (B, k)
    order = np.lexsort((part, -vals), axis=1)  # (B, k) by value, then by index
    return np.take_along_axis(part, order, axis=1)


def beam_search(
    model,
    source: np.ndarray,
    source_mask: np.ndarray,
    bos_id: int,
    eos_id: int,
    max_length: int,
    beam_width: int = 5,
    length_penalty: float = 1.0,
    exclude: tuple[int, ...] = (),
) -> tuple[list[np.ndarray], list[np.ndarray | None], np.ndarray]:
    """Beam search over all B sources at once (B*W decoder rows).

    Each step extends every live hypothesis by every symbol and keeps the W
    best by total log-probability log p(y_1..y_t | x). A hypothesis that wrote
    ``<eos>`` is finished: it stays in the beam with its score frozen (its
    only extension is itself), so with W = 1 this is exactly greedy decoding.
    The search stops when every hypothesis is finished or after
    ``max_length`` steps; the answer is the hypothesis with the best
    length-normalised score log p / n^α (n symbols counting ``<eos>``,
    α = ``length_penalty``; 0 ranks by log p alone).

    Returns:
        per source the best output ids (without ``<eos>``) and its attention
        weights (n, S) (None without attention), and the normalised scores (B,).
    """
    _check_decode_args(max_length, source, source_mask)
    if not isinstance(beam_width, int | np.integer) or beam_width < 1:
        raise BpttError(f"beam width must be an integer >= 1; got {beam_width!r}")
    if length_penalty < 0:
        raise BpttError(f"length_penalty must be >= 0; got {length_penalty}")
    B, W = source.shape[0], int(beam_width)
    memory, state = model.encode(source, source_mask)
    rows = np.repeat(np.arange(B), W)  # (R,) each source once per beam
    memory, state = memory.take(rows), tuple(s[:, rows] for s in state)
    scores = np.full((B, W), -np.inf)  # (B, W) log p of each hypothesis
    scores[:, 0] = 0.0  # one live hypothesis at the start: no duplicates
    finished = np.zeros((B, W), dtype=bool)  # (B, W)
    lengths = np.zeros((B, W), dtype=np.int64)  # (B, W) symbols written, <eos> included
    hist = np.full((B, W, max_length), eos_id, dtype=np.int64)  # (B, W, N)
    att_hist = None
    prev = np.full(B * W, bos_id, dtype=np.int64)  # (R,)
    batch = np.arange(B)[:, None]  # (B, 1)
    for t in range(max_length):
        logits, state, alpha = model.step(prev, state, memory)  # (R, V)
        V = logits.shape[-1]
        log_p = log_softmax(logits.astype(np.float64)).reshape(B, W, V)  # (B, W, V)
        if exclude:
            log_p[:, :, list(exclude)] = -np.inf
        cand = scores[:, :, None] + log_p  # (B, W, V)
        cand[finished] = -np.inf  # a finished hypothesis has one extension: itself
        cand[finished, eos_id] = scores[finished]
        flat = cand.reshape(B, W * V)  # (B, W*V)
        top = _top_k(flat, W)  # (B, W) best first, ties by index
        beam, token = top // V, top % V  # (B, W) each
        scores = np.take_along_axis(flat, top, axis=1)  # (B, W)
        was_finished = np.take_along_axis(finished, beam, axis=1)  # (B, W)
        lengths = np.take_along_axis(lengths, beam, axis=1) + ~was_finished
        finished = was_finished | (token == eos_id)
        hist = hist[batch, beam]  # (B, W, N) the kept hypotheses' histories
        hist[:, :, t] = np.where(was_finished, eos_id, token)
        picked = (batch * W + beam).reshape(-1)  # (R,) rows the kept hypotheses came from
        state = tuple(s[:, picked] for s in state)
        if alpha is not None:
            a = alpha.reshape(B, W, 1, -1)  # (B, W, 1, S)
            att_hist = a if att_hist is None else np.concatenate([att_hist, a], axis=2)
            att_hist = att_hist[batch, beam]  # (B, W, t+1, S)
        prev = token.reshape(-1)  # (R,)
        if finished.all():
            break
    normed = scores / np.maximum(lengths, 1) ** length_penalty  # (B, W)
    best = np.argmax(normed, axis=1)  # (B,)
    ids = _cut_at_eos(hist[np.arange(B), best, : t + 1], eos_id)
    if att_hist is None:
        att = [None] * B
    else:
        S_b = source_mask.sum(axis=1)  # (B,)
        att = [att_hist[b, best[b], : len(ids[b]) + 1, : S_b[b]] for b in range(B)]
    return ids, att, normed[np.arange(B), best]
