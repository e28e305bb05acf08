"""Turning a trained model into sequences: sampling with temperature and top-k, greedy,
for encoder-decoders batched greedy/sampled decoding and beam search, and for CTC
models best-path (greedy) and prefix beam search decoding.

The model keeps its recurrent state and runs one step per symbol through the
same forward code as training (``model.step``), so the prompt is read once and
never re-run.
"""

from __future__ import annotations

import math

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import log_softmax, softmax
from bptt.functional.ctc import ctc_collapse


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


# -- CTC (connectionist temporal classification) -------------------------------------
#
# A CTC model gives log-probabilities lp (B, T, C) over C classes per frame, one of
# them the blank ∅; a labelling is read from a path by merging repeats, then
# dropping blanks. Shapes: B utterances, T frames, C classes, W beam width.


def _check_ctc_args(log_probs, lengths, blank: int) -> tuple[np.ndarray, np.ndarray]:
    lp = np.asarray(log_probs)
    if lp.ndim != 3:
        raise BpttError(f"log_probs must be (B, T, C); got shape {lp.shape}")
    B, T, C = lp.shape
    if not (isinstance(blank, int | np.integer) and 0 <= blank < C):
        raise BpttError(f"blank must be a class index in [0, {C}); got {blank!r}")
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)  # (B,)
    if lengths.shape != (B,) or (lengths.size and ((lengths < 1) | (lengths > T)).any()):
        raise BpttError(f"lengths must be {B} frame counts in [1, {T}]; got {lengths!r}")
    return lp, lengths.astype(np.int64)


def ctc_greedy(log_probs, lengths=None, blank: int = 0) -> list[np.ndarray]:
    """Best-path decoding: the most likely class at every frame, repeats merged, blanks dropped.

        π*_t = argmax_c lp_t(c),   ŷ = B(π*)            (B(a a ∅ a b b) = a a b)

    ŷ is the labelling of the single most likely path, which is not always the
    most likely labelling (that sums over all its paths; see
    :func:`ctc_prefix_beam_search`).

    Args:
        log_probs: (B, T, C) log-probabilities (or logits: the argmax is the same).
        lengths: (B,) real frames per utterance (None: all T).
        blank: the blank's class index.

    Returns:
        per utterance the label ids (L_b,) int64.
    """
    lp, lengths = _check_ctc_args(log_probs, lengths, blank)
    best = lp.argmax(axis=-1)  # (B, T)
    return [ctc_collapse(best[b, :n], blank) for b, n in enumerate(lengths)]


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) for Python floats (-inf allowed), faster than numpy on scalars."""
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def ctc_prefix_beam_search(
    log_probs, lengths=None, beam_width: int = 8, blank: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Prefix beam search: the most likely labelling, summing over its paths, in log space.

    Each kept prefix ℓ carries two log-probabilities of the frames so far:
    p_∅(ℓ), of the paths that read as ℓ and end in a blank, and p_+(ℓ), of those
    that end in ℓ's last label. At frame t, with p(ℓ) = p_∅(ℓ) ⊕ p_+(ℓ)
    (⊕ is log-add):

        ℓ stays by a blank:           p_∅'(ℓ)   ⊕= p(ℓ) + lp_t(∅)
        ℓ stays by its last label a:  p_+'(ℓ)   ⊕= p_+(ℓ) + lp_t(a)      (a a merges)
        ℓ grows by c ≠ last label:    p_+'(ℓc)  ⊕= p(ℓ) + lp_t(c)
        ℓ grows by c = last label:    p_+'(ℓc)  ⊕= p_∅(ℓ) + lp_t(c)      (a ∅ a)

    and the W prefixes with the largest p' are kept. Without pruning (W at
    least the number of prefixes) p(ℓ) at the last frame is exactly log P(ℓ | x),
    the CTC likelihood; width 1 is close to, but not always, best path.

    Args:
        log_probs: (B, T, C) log-probabilities (normalised per frame).
        lengths: (B,) real frames per utterance (None: all T).
        beam_width: W, prefixes kept per frame.
        blank: the blank's class index.

    Returns:
        per utterance the best labelling's ids (L_b,) int64, and its
        log-probabilities log P(ŷ | x) as found by the search (B,).
    """
    lp, lengths = _check_ctc_args(log_probs, lengths, blank)
    if (
        isinstance(beam_width, bool)
        or not isinstance(beam_width, int | np.integer)
        or beam_width < 1
    ):
        raise BpttError(f"beam width must be an integer >= 1; got {beam_width!r}")
    C = lp.shape[2]
    labels = [c for c in range(C) if c != blank]
    ids, scores = [], np.empty(lp.shape[0])  # (B,)
    neg = -math.inf
    for b, n in enumerate(lengths):
        frames = lp[b, :n].astype(np.float64).tolist()  # T_b lists of C floats
        beams: dict[tuple, tuple[float, float]] = {(): (0.0, neg)}  # ℓ -> (p_∅, p_+)
        for row in frames:
            nxt: dict[tuple, list[float]] = {}
            for prefix, (p_blank, p_label) in beams.items():
                total = _logaddexp(p_blank, p_label)
                entry = nxt.setdefault(prefix, [neg, neg])
                entry[0] = _logaddexp(entry[0], total + row[blank])
                last = prefix[-1] if prefix else None
                for c in labels:
                    grown = nxt.setdefault((*prefix, c), [neg, neg])
                    if c == last:
                        entry[1] = _logaddexp(entry[1], p_label + row[c])
                        grown[1] = _logaddexp(grown[1], p_blank + row[c])
                    else:
                        grown[1] = _logaddexp(grown[1], total + row[c])
            ranked = sorted(nxt.items(), key=lambda kv: (-_logaddexp(*kv[1]), kv[0]))
            beams = {k: (v[0], v[1]) for k, v in ranked[: int(beam_width)]}
        best, (p_blank, p_label) = next(iter(beams.items()))
        ids.append(np.array(best, dtype=np.int64))
        scores[b] = _logaddexp(p_blank, p_label)
    return ids, scores


def ctc_decode(model, inputs, mask, beam_width: int = 1) -> list[np.ndarray]:
    """Label ids per utterance from a CTC model: best path (width 1) or prefix beam search.

    The model offers ``log_probs(inputs, mask) -> (B, T, C)`` and ``blank``
    (:class:`bptt.models.ctc.CTCRecognizer`); ``mask`` (B, T) is True at each
    utterance's real frames, which come first.
    """
    lp = model.log_probs(inputs, mask)  # (B, T, C)
    lengths = np.asarray(mask).sum(axis=1)  # (B,)
    if beam_width == 1:
        return ctc_greedy(lp, lengths, model.blank)
    return ctc_prefix_beam_search(lp, lengths, beam_width, model.blank)[0]
