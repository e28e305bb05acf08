"""Attention over the encoder's outputs, one decoder step at a time, and its backward.

The decoder at step t holds a query q (its state s_{t-1}); the encoder left
S outputs h_1..h_S (the values). Attention scores every source position,
turns the scores into weights with a softmax over the real (unpadded)
positions, and returns the weighted mean of the values, the context:

    e_{s}  = score(q, h_s)                            (B, S)  one score per source position
    α_s    = exp(e_s) / Σ_{s' real} exp(e_{s'})       (B, S)  α_s = 0 at padding
    c      = Σ_s α_s h_s                              (B, C)  the context

Two scores (the keys k_s = W_k h_s are projected once per source sentence,
not once per step, because they do not depend on the query):

    additive (Bahdanau):   e_s = v · tanh(W_q q + k_s),   k_s = W_k h_s   (A units)
    dot (Luong, "general"): e_s = q · k_s,                k_s = W_k h_s   (k_s has q's size)

Backward, with g = ∂E/∂c (B, C) from the decoder:

    ∂E/∂h_s  += α_s g                                 the values' direct share
    ∂E/∂α_s   = g · h_s
    ∂E/∂e_s   = α_s (∂E/∂α_s - Σ_{s'} α_{s'} ∂E/∂α_{s'})   softmax's Jacobian; 0 at padding
    additive:  u_s = W_q q + k_s,  z_s = tanh(u_s)
               ∂E/∂v   = Σ_s ∂E/∂e_s z_s
               ∂E/∂u_s = ∂E/∂e_s v (1 - z_s²)
               ∂E/∂k_s = ∂E/∂u_s,   ∂E/∂(W_q q) = Σ_s ∂E/∂u_s
               ∂E/∂W_q = (Σ_s ∂E/∂u_s) q^T,   ∂E/∂q = W_q^T Σ_s ∂E/∂u_s
    dot:       ∂E/∂k_s = ∂E/∂e_s q,   ∂E/∂q = Σ_s ∂E/∂e_s k_s

The key projection's own backward (∂E/∂W_k, and ∂E/∂h_s through the keys)
is a Linear's (:func:`bptt.functional.linear.linear_backward`), done once
after the decoder's reverse loop has summed ∂E/∂k over all steps.

Masks: ``mask`` (B, S) is True at real source positions; padded positions get
weight exactly 0 and exactly zero gradient, so a padded batch gives what each
sentence gives alone. Every row needs at least one real position.

Shapes: B batch, S source positions, C value (context) size, A attention
units (additive) or the query size (dot), Q query size.
"""

from __future__ import annotations

import numpy as np

KINDS = ("additive", "dot")


def _masked_softmax(e: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """softmax over the last axis of e (B, S), exactly 0 where mask is False."""
    if mask is not None:
        e = np.where(mask, e, -np.inf)  # (B, S)
    e = e - e.max(axis=-1, keepdims=True)  # (B, S) stable
    p = np.exp(e)  # (B, S)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def attention_forward(
    query: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    mask: np.ndarray | None,
    weight_query: np.ndarray | None = None,
    v: np.ndarray | None = None,
    kind: str = "additive",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One step of attention: context c = Σ_s α_s h_s and the weights α.

    Args:
        query: q (B, Q), the decoder's state s_{t-1} (its top layer's h).
        keys: k (B, S, A), the projected values W_k h_s (A = Q for "dot").
        values: h (B, S, C), the encoder's outputs.
        mask: (B, S) booleans, True at real source positions; None means all real.
        weight_query: W_q (A, Q), additive only.
        v: (A,), additive only.
        kind: "additive" or "dot".

    Returns:
        context (B, C), weights α (B, S) (0 at padding), and the cache for
        :func:`attention_backward`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cache: dict = {"kind": kind, "query": query, "keys": keys, "values": values}
    if kind == "additive":
        z = np.tanh(keys + (query @ weight_query.T)[:, None, :])  # (B, S, A)
        e = z @ v  # (B, S)
        cache |= {"z": z, "weight_query": weight_query, "v": v}
    else:
        e = np.einsum("bsa,ba->bs", keys, query)  # (B, S)
    alpha = _masked_softmax(e, mask)  # (B, S)
    context = np.einsum("bs,bsc->bc", alpha, values)  # (B, C)
    cache["alpha"] = alpha
    return context, alpha, cache


def attention_backward(
    d_context: np.ndarray, cache: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Gradients of :func:`attention_forward` from ∂E/∂c (B, C).

    Returns:
        ∂E/∂q (B, Q), ∂E/∂keys (B, S, A), ∂E/∂values (B, S, C) (the direct
        share through α h; the keys' share comes from the key projection's
        backward), and {"weight_query": (A, Q), "v": (A,)} for "additive"
        ({} for "dot").
    """
    alpha, values, query, keys = cache["alpha"], cache["values"], cache["query"], cache["keys"]
    d_values = alpha[:, :, None] * d_context[:, None, :]  # (B, S, C)
    d_alpha = np.einsum("bc,bsc->bs", d_context, values)  # (B, S)
    # softmax's Jacobian; α = 0 at padding, so padding gets exactly 0
    d_e = alpha * (d_alpha - (alpha * d_alpha).sum(axis=-1, keepdims=True))  # (B, S)
    if cache["kind"] == "additive":
        z, weight_query, v = cache["z"], cache["weight_query"], cache["v"]
        d_u = (d_e[:, :, None] * v) * (1.0 - z * z)  # (B, S, A)
        d_qproj = d_u.sum(axis=1)  # (B, A) ∂E/∂(W_q q)
        grads = {
            "weight_query": d_qproj.T @ query,  # (A, Q)
            "v": np.einsum("bs,bsa->a", d_e, z),  # (A,)
        }
        return d_qproj @ weight_query, d_u, d_values, grads  # (B, Q), (B, S, A), (B, S, C)
    d_keys = d_e[:, :, None] * query[:, None, :]  # (B, S, Q)
    d_query = np.einsum("bs,bsq->bq", d_e, keys)  # (B, Q)
    return d_query, d_keys, d_values, {}
