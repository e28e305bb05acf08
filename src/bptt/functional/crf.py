"""A linear-chain conditional random field (CRF) over per-step tag scores: its negative
log-likelihood by the forward algorithm in log space, the gradient by forward-backward
marginals, and Viterbi decoding (Lafferty et al., 2001; Lample et al., 2016).

A network gives emission scores e_t(j) (B, T, C) for tag j at step t; the CRF adds
a transition score A_ij (C, C) for tag i followed by tag j, a start score a_j for
the first tag and an end score z_j for the last. A tag sequence y_1..y_L of a
sentence of L real steps scores

    s(y)      = a_{y_1} + Σ_{t=1..L} e_t(y_t) + Σ_{t=2..L} A_{y_{t-1} y_t} + z_{y_L}
    p(y | x)  = exp(s(y)) / Z,    Z = Σ_{y'} exp(s(y'))       over all C^L sequences
    E         = log Z - s(y)                                  the negative log-likelihood

Z by the forward algorithm (⊕ is logsumexp over the index named below it):

    α_1(j)    = a_j + e_1(j)
    α_t(j)    = e_t(j) + ⊕_i [α_{t-1}(i) + A_ij]             t = 2..L
    log Z     = ⊕_j [α_L(j) + z_j]

and the backward algorithm, the log score of every way to finish from tag i at t:

    β_L(i)    = z_i
    β_t(i)    = ⊕_j [A_ij + e_{t+1}(j) + β_{t+1}(j)]         t = L-1..1

so log Z = ⊕_j [α_t(j) + β_t(j)] at every t. The marginals of one tag and of a pair

    γ_t(j)    = exp(α_t(j) + β_t(j) - log Z)                   p(y_t = j | x)
    ξ_t(i, j) = exp(α_{t-1}(i) + A_ij + e_t(j) + β_t(j) - log Z)   p(y_{t-1} = i, y_t = j | x)

give the gradient (the expected counts under the model minus the observed ones):

    ∂E/∂e_t(j) = γ_t(j) - [y_t = j]
    ∂E/∂A_ij   = Σ_{t=2..L} (ξ_t(i, j) - [y_{t-1} = i, y_t = j])
    ∂E/∂a_j    = γ_1(j) - [y_1 = j]
    ∂E/∂z_j    = γ_L(j) - [y_L = j]

Viterbi finds argmax_y s(y) with the same recursion, max in place of ⊕:

    δ_1(j)    = a_j + e_1(j)
    δ_t(j)    = e_t(j) + max_i [δ_{t-1}(i) + A_ij],  ψ_t(j) = argmax_i [...]
    y_L       = argmax_j [δ_L(j) + z_j],  y_{t-1} = ψ_t(y_t)

Masks: (B, T) booleans, True at the first L_b steps of row b (padding at the end,
at least one real step). A padded step carries α (and β, δ) through unchanged,
so padding changes nothing, and its emissions get exactly zero gradient.

Constraints (optional, decoding only): ``allowed`` (C, C) bools, False where tag i
may not be followed by tag j, and ``allowed_start`` (C,) bools; :func:`bio_constraints`
builds them for BIO tags (no I-X after O or after another type, no I-X first).
Viterbi then searches only the allowed paths. Training leaves them out, so a gold
sequence that breaks them (annotators do) still has a finite likelihood; the
learned A_ij for such pairs become very negative anyway.

Precision: α, β and the marginals are computed in float64 whatever the input dtype;
gradients come back in the emissions' dtype. The batch and tag axes are vectorised;
only the time loop runs in Python (2T steps over (B, C, C) arrays).

Shapes: B batch, T time steps (the longest sentence), C tags.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError

NEG_INF = -np.inf


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log Σ exp(a) along ``axis``, -inf where every term is -inf."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def _check(emissions, mask, transitions, start, end, tags=None):
    emissions = np.asarray(emissions)
    if emissions.ndim != 3:
        raise BpttError(f"emissions must be (B, T, C); got shape {emissions.shape}")
    B, T, C = emissions.shape
    if np.shape(transitions) != (C, C):
        raise BpttError(f"transitions must be (C, C) = {(C, C)}; got {np.shape(transitions)}")
    for name, v in (("start", start), ("end", end)):
        if np.shape(v) != (C,):
            raise BpttError(f"{name} scores must be (C,) = ({C},); got {np.shape(v)}")
    mask = np.ones((B, T), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != (B, T):
        raise BpttError(f"mask has shape {mask.shape}, emissions {(B, T)} (B, T)")
    lengths = mask.sum(axis=1)  # (B,)
    if T == 0 or (lengths < 1).any():
        raise BpttError("every sequence needs at least one real step (mask True at t = 0)")
    if (mask != (np.arange(T)[None, :] < lengths[:, None])).any():
        raise BpttError("the mask must be True at the first L_b steps of each row, then False")
    if tags is not None:
        tags = np.asarray(tags)
        if tags.shape != (B, T) or tags.dtype.kind not in "iu":
            raise BpttError(
                f"tags must be integer (B, T) = {(B, T)}; got {tags.dtype} {tags.shape}"
            )
        real = tags[mask]
        if real.size and (real.min() < 0 or real.max() >= C):
            raise BpttError(f"tags must lie in [0, {C}); got {real.min()}..{real.max()}")
        tags = np.where(mask, tags, 0)  # (B, T) padding: any valid index
    return emissions, mask, lengths, tags


def crf_forward(emissions, tags, mask, transitions, start, end):
    """Negative log-likelihood E_b (B,) of each row's tags, and the cache for the gradient.

    Args:
        emissions: e (B, T, C).
        tags: y (B, T) integers in [0, C) (any value at padded steps).
        mask: (B, T) bools, True at the real steps (a prefix of each row); None: all real.
        transitions: A (C, C), A[i, j] the score of tag i followed by tag j.
        start: a (C,). end: z (C,).

    Returns:
        (E (B,) float64, cache) for :func:`crf_backward`.
    """
    e, mask, lengths, tags = _check(emissions, mask, transitions, start, end, tags)
    B, T, C = e.shape
    e64 = e.astype(np.float64)  # (B, T, C)
    A = np.asarray(transitions, dtype=np.float64)  # (C, C)
    a, z = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)  # (C,)
    rows = np.arange(B)  # (B,)

    # Forward: α_t (B, C) for every t, carried through padded steps.
    alpha = np.empty((B, T, C))  # (B, T, C)
    alpha[:, 0] = a + e64[:, 0]
    for t in range(1, T):
        step = e64[:, t] + _logsumexp(alpha[:, t - 1, :, None] + A, axis=1)  # (B, C)
        alpha[:, t] = np.where(mask[:, t, None], step, alpha[:, t - 1])
    log_z = _logsumexp(alpha[:, T - 1] + z, axis=1)  # (B,)

    # The gold score s(y).
    last = tags[rows, lengths - 1]  # (B,)
    gold = a[tags[:, 0]] + z[last]  # (B,)
    gold += np.where(mask, np.take_along_axis(e64, tags[..., None], 2)[..., 0], 0.0).sum(1)
    if T > 1:
        pair = A[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        gold += np.where(mask[:, 1:], pair, 0.0).sum(1)
    cache = {
        "e": e64,
        "dtype": e.dtype,
        "tags": tags,
        "mask": mask,
        "lengths": lengths,
        "A": A,
        "z": z,
        "alpha": alpha,
        "log_z": log_z,
    }
    return log_z - gold, cache


def _beta_gamma(cache) -> tuple[np.ndarray, np.ndarray]:
    """β_t (B, T, C) by the backward algorithm and the marginals γ_t (zero at padding)."""
    e, mask, A, z = cache["e"], cache["mask"], cache["A"], cache["z"]
    B, T, C = e.shape
    beta = np.empty((B, T, C))  # (B, T, C); β = z at each row's last real step and after
    beta[:, T - 1] = z
    for t in range(T - 2, -1, -1):
        step = _logsumexp(A + (e[:, t + 1] + beta[:, t + 1])[:, None, :], axis=2)  # (B, C)
        beta[:, t] = np.where(mask[:, t + 1, None], step, beta[:, t + 1])
    log_z = cache["log_z"][:, None, None]  # (B, 1, 1)
    gamma = np.exp(cache["alpha"] + beta - log_z) * mask[..., None]  # (B, T, C) γ_t(j)
    return beta, gamma


def crf_backward(d_loss, cache) -> dict[str, np.ndarray]:
    """∂(Σ_b d_loss_b E_b) for the emissions (B, T, C), transitions, start and end.

    Args:
        d_loss: (B,) upstream gradient of each row's E (ones for a plain sum).
        cache: from :func:`crf_forward`.

    Returns:
        {"emissions": (B, T, C) in the emissions' dtype, zero at padded steps,
        "transitions": (C, C), "start": (C,), "end": (C,)} in float64.
    """
    e, tags, mask, lengths = cache["e"], cache["tags"], cache["mask"], cache["lengths"]
    A, alpha, log_z = cache["A"], cache["alpha"], cache["log_z"]
    B, T, C = e.shape
    d_loss = np.broadcast_to(np.asarray(d_loss, dtype=np.float64), (B,))  # (B,)
    rows = np.arange(B)  # (B,)

    beta, gamma = _beta_gamma(cache)  # (B, T, C) each
    onehot = np.zeros((B, T, C))  # (B, T, C) [y_t = j]
    np.put_along_axis(onehot, tags[..., None], 1.0, axis=2)
    onehot *= mask[..., None]
    d_e = (gamma - onehot) * d_loss[:, None, None]  # (B, T, C)

    d_A = np.zeros((C, C))  # (C, C)
    if T > 1:
        # ξ_t(i, j) for t = 2..T (zero where step t is padding), (B, T-1, C, C)
        log_xi = alpha[:, :-1, :, None] + A + (e[:, 1:] + beta[:, 1:])[:, :, None, :]
        xi = np.exp(log_xi - log_z[:, None, None, None]) * mask[:, 1:, None, None]
        weights = d_loss[:, None, None, None]  # (B, 1, 1, 1)
        d_A += (xi * weights).sum(axis=(0, 1))
        real = mask[:, 1:]  # (B, T-1)
        np.add.at(
            d_A,
            (tags[:, :-1][real], tags[:, 1:][real]),
            -np.broadcast_to(d_loss[:, None], real.shape)[real],
        )
    first = np.zeros((B, C))  # (B, C)
    first[rows, tags[:, 0]] = 1.0
    final = np.zeros((B, C))  # (B, C)
    final[rows, tags[rows, lengths - 1]] = 1.0
    d_start = ((gamma[:, 0] - first) * d_loss[:, None]).sum(0)  # (C,)
    d_end = ((gamma[rows, lengths - 1] - final) * d_loss[:, None]).sum(0)  # (C,)
    return {
        "emissions": d_e.astype(cache["dtype"]),
        "transitions": d_A,
        "start": d_start,
        "end": d_end,
    }


def crf_marginals(emissions, mask, transitions, start, end) -> np.ndarray:
    """γ_t(j) = p(y_t = j | x) (B, T, C), zero at padded steps: the tags' posteriors."""
    e, mask, _, _ = _check(emissions, mask, transitions, start, end)
    zeros = np.zeros(mask.shape, dtype=np.int64)  # (B, T) any tags: γ does not depend on them
    _, cache = crf_forward(e, zeros, mask, transitions, start, end)
    return _beta_gamma(cache)[1]  # (B, T, C)


def viterbi(emissions, mask, transitions, start, end, allowed=None, allowed_start=None):
    """The best tag sequence argmax_y s(y) of every row: (B, T) ints, 0 at padded steps.

    ``allowed`` (C, C) and ``allowed_start`` (C,) bools, if given, forbid the
    transitions and first tags that are False (a row whose every path is forbidden
    falls back to the unconstrained best).
    """
    e, mask, _, _ = _check(emissions, mask, transitions, start, end)
    B, T, C = e.shape
    A = np.asarray(transitions, dtype=np.float64).copy()  # (C, C)
    a, z = np.array(start, dtype=np.float64), np.asarray(end, dtype=np.float64)  # (C,)
    if allowed is not None:
        A[~np.asarray(allowed, dtype=bool)] = NEG_INF
    if allowed_start is not None:
        a[~np.asarray(allowed_start, dtype=bool)] = NEG_INF
    e64 = e.astype(np.float64)  # (B, T, C)
    delta = a + e64[:, 0]  # (B, C)
    back = np.zeros((B, T, C), dtype=np.int64)  # (B, T, C) ψ_t(j); identity at padding
    back[:] = np.arange(C)
    for t in range(1, T):
        cand = delta[:, :, None] + A  # (B, C, C) from i to j
        best = np.argmax(cand, axis=1)  # (B, C)
        step = e64[:, t] + np.take_along_axis(cand, best[:, None, :], 1)[:, 0]  # (B, C)
        real = mask[:, t, None]  # (B, 1)
        delta = np.where(real, step, delta)
        back[:, t] = np.where(real, best, back[:, t])
    final = delta + z  # (B, C)
    if allowed is not None or allowed_start is not None:
        stuck = ~np.isfinite(final.max(axis=1))  # (B,) no allowed path
        if stuck.any():
            free = viterbi(e[stuck], mask[stuck], transitions, start, end)
            out = viterbi(e[~stuck], mask[~stuck], A, a, z) if (~stuck).any() else None
            paths = np.zeros((B, T), dtype=np.int64)
            paths[stuck] = free
            if out is not None:
                paths[~stuck] = out
            return paths
    paths = np.zeros((B, T), dtype=np.int64)  # (B, T)
    tag = np.argmax(final, axis=1)  # (B,)
    for t in range(T - 1, -1, -1):
        paths[:, t] = tag
        tag = back[np.arange(B), t, tag]
    return np.where(mask, paths, 0)


def bio_constraints(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(allowed (C, C), allowed_start (C,)) for BIO tags: I-X only after B-X or I-X."""
    C = len(labels)
    allowed = np.ones((C, C), dtype=bool)  # (C, C)
    allowed_start = np.ones(C, dtype=bool)  # (C,)
    for j, tag in enumerate(labels):
        prefix, _, kind = tag.partition("-")
        if prefix != "I":
            continue
        allowed_start[j] = False
        for i, prev in enumerate(labels):
            allowed[i, j] = prev in (f"B-{kind}", f"I-{kind}")
    return allowed, allowed_start
