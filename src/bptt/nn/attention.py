"""The Attention layer: parameters over ``bptt.functional.attention``.

    keys     k_s = W_k h_s                       once per source sentence
    additive e_s = v · tanh(W_q q + k_s)         (Bahdanau)
    dot      e_s = q · k_s                       (Luong's "general" score)
    α        = softmax over the real positions of e;   c = Σ_s α_s h_s

Params (``weight_*`` are (fan_out, fan_in) like a Linear's, no biases):

    additive  weight_key (A, C), weight_query (A, Q), v (A,)
    dot       weight_key (Q, C)

Two ways to use it:

- step by step, as a decoder whose query depends on the previous context
  needs: :meth:`project_keys` once, :meth:`step` per decoder step, then in
  reverse :meth:`step_backward` per step and :meth:`project_keys_backward`
  once. The caches are passed in and out explicitly, so the caller (the
  seq2seq model) owns the order; the layer keeps nothing between calls.
- over a whole sequence of queries known in advance: :meth:`forward` /
  :meth:`backward`, like every other layer (also how the tests check it).

Shapes: B batch, S source positions, T decoder steps, C value size, Q query
size, A attention units.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bptt.errors import BpttError
from bptt.functional.attention import KINDS, attention_backward, attention_forward
from bptt.functional.linear import linear_backward, linear_forward
from bptt.nn.init import uniform
from bptt.nn.layer import Layer, as_layer_dtype, check_count, check_rng, layer_dtype


class Attention(Layer):
    """Additive (Bahdanau) or dot-product (Luong) attention, masked over padding.

    Args:
        kind: "additive" or "dot".
        query_size: Q, the decoder state's size.
        value_size: C, the encoder output's size (K*H for a bidirectional encoder).
        attention_size: A, the additive score's hidden units (ignored by "dot").
        dtype: float32 (default) or float64.
        rng: Generator for the initialisation U(-1/√fan_in, 1/√fan_in).
    """

    def __init__(
        self,
        kind: str,
        query_size: int,
        value_size: int,
        attention_size: int = 64,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        if kind not in KINDS:
            raise BpttError(f"attention kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.query_size = check_count("query_size", query_size)
        self.value_size = check_count("value_size", value_size)
        self.dtype = layer_dtype(dtype)
        rng = check_rng(rng)
        Q, C = self.query_size, self.value_size
        A = check_count("attention_size", attention_size) if kind == "additive" else Q
        self.attention_size = A

        def init(shape, fan_in):
            return uniform(shape, 1.0 / math.sqrt(fan_in), rng, self.dtype)

        self.params = {"weight_key": init((A, C), C)}  # (A, C)
        if kind == "additive":
            self.params["weight_query"] = init((A, Q), Q)  # (A, Q)
            self.params["v"] = init((A,), A)  # (A,)
        self.grads = {k: np.zeros_like(p) for k, p in self.params.items()}
        self._cache: dict | None = None

    # -- step by step ------------------------------------------------------------

    def project_keys(self, values: np.ndarray) -> tuple[np.ndarray, dict]:
        """k = values W_k^T for every source position: (B, S, C) -> (B, S, A), cache."""
        return linear_forward(values, self.params["weight_key"])  # (B, S, A)

    def project_keys_backward(
        self, d_keys: np.ndarray, cache: dict
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """∂E/∂k (B, S, A) -> ∂E/∂values through the keys (B, S, C), {"weight_key": (A, C)}."""
        return linear_backward(d_keys, cache)

    def step(
        self, query: np.ndarray, keys: np.ndarray, values: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """One decoder step: query (B, Q) -> context (B, C), weights α (B, S), cache."""
        return attention_forward(
            query,
            keys,
            values,
            mask,
            self.params.get("weight_query"),
            self.params.get("v"),
            self.kind,
        )

    def step_backward(
        self, d_context: np.ndarray, cache: dict
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """∂E/∂c (B, C) -> ∂E/∂q (B, Q), ∂E/∂k (B, S, A), ∂E/∂values (B, S, C), grads."""
        return attention_backward(d_context, cache)

    # -- over a whole sequence of queries -----------------------------------------

    def forward(
        self, queries: np.ndarray, values: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Attend with every query: (B, T, Q), (B, S, C) -> contexts (B, T, C), α (B, T, S)."""
        queries = as_layer_dtype("queries", queries, self.dtype)
        values = as_layer_dtype("values", values, self.dtype)
        if queries.ndim != 3 or queries.shape[-1] != self.query_size:
            raise BpttError(f"queries must be (B, T, {self.query_size}), got shape {queries.shape}")
        if values.ndim != 3 or values.shape[-1] != self.value_size:
            raise BpttError(f"values must be (B, S, {self.value_size}), got shape {values.shape}")
        B, T, _ = queries.shape
        if values.shape[0] != B:
            raise BpttError(f"values have batch {values.shape[0]}, queries have {B}")
        S = values.shape[1]
        check_source_mask(mask, B, S)
        keys, key_cache = self.project_keys(values)  # (B, S, A)
        contexts = np.empty((B, T, self.value_size), dtype=self.dtype)  # (B, T, C)
        alphas = np.empty((B, T, S), dtype=self.dtype)  # (B, T, S)
        steps = []
        for t in range(T):
            contexts[:, t], alphas[:, t], cache = self.step(queries[:, t], keys, values, mask)
            steps.append(cache)
        self._cache = {"keys": key_cache, "steps": steps, "B": B, "T": T}
        return contexts, alphas

    def backward(self, d_contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∂E/∂contexts (B, T, C) -> ∂E/∂queries (B, T, Q), ∂E/∂values (B, S, C); sets grads."""
        cache = self._cache_or_raise()
        d_contexts = as_layer_dtype("d_contexts", d_contexts, self.dtype)
        B, T = cache["B"], cache["T"]
        if d_contexts.shape != (B, T, self.value_size):
            raise BpttError(
                f"d_contexts has shape {d_contexts.shape}, expected {(B, T, self.value_size)}"
            )
        grads = {k: np.zeros_like(p) for k, p in self.params.items()}
        d_queries = np.empty((B, T, self.query_size), dtype=self.dtype)  # (B, T, Q)
        d_keys, d_values = None, None
        for t in range(T - 1, -1, -1):
            d_q, d_k, d_v, g = self.step_backward(d_contexts[:, t], cache["steps"][t])
            d_queries[:, t] = d_q
            d_keys = d_k if d_keys is None else d_keys + d_k  # (B, S, A)
            d_values = d_v if d_values is None else d_values + d_v  # (B, S, C)
            for k, v in g.items():
                grads[k] += v
        d_values_k, g = self.project_keys_backward(d_keys, cache["keys"])
        grads["weight_key"] += g["weight"]
        self.grads = grads
        return d_queries, d_values + d_values_k

    __call__ = forward

    def __repr__(self) -> str:
        size = f", attention_size={self.attention_size}" if self.kind == "additive" else ""
        return (
            f"Attention({self.kind!r}, query_size={self.query_size}, "
            f"value_size={self.value_size}{size}, dtype={self.dtype.name})"
        )


def check_source_mask(mask: Any, B: int, S: int) -> None:
    """A (B, S) boolean mask with at least one real position per row, or a BpttError."""
    if mask is None:
        return
    mask = np.asarray(mask)
    if mask.shape != (B, S) or mask.dtype != np.bool_:
        raise BpttError(
            f"source mask must be (B, S) = {(B, S)} booleans, got shape {mask.shape} "
            f"dtype {mask.dtype}"
        )
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise BpttError(f"source(s) {empty.tolist()} have no real position; every one needs one")
