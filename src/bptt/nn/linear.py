"""Linear, Embedding and Dropout layers over ``bptt.functional.linear``.

    Linear      y = x V^T + c at every position of x (..., D) -> (..., O)
                (the lecture's output layer: ŷ_t = softmax(V s_t + c), V ≡ weight)
    Embedding   y = E[i] for integer indices (...), or y = x E for one-hot x (..., V)
    Dropout     y = x * m, m = [u >= p] / (1 - p) while training, y = x otherwise

Each layer has ``params``/``grads`` dicts with the same keys (PyTorch's names),
``forward`` that keeps its cache in ``self._cache`` (replaced by each call),
``backward`` that returns the input gradient and replaces ``grads`` (fresh
arrays, not accumulated), and ``state_dict``/``load_state_dict``.

Shapes: D input features, O output features, V vocabulary, E embedding width,
"..." any leading axes, typically (B, T).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bptt.errors import BpttError
from bptt.functional.linear import (
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
)
from bptt.nn.init import uniform
from bptt.nn.layer import (
    Layer,
    as_layer_dtype,
    check_count,
    check_probability,
    check_rng,
    layer_dtype,
)


class Linear(Layer):
    """y = x V^T + c applied at every position (time-distributed).

    Args:
        in_features: D.
        out_features: O.
        bias: whether there is a c.
        dtype: float32 (default) or float64.
        rng: Generator for the initialisation; None means a fresh unseeded one.
            PyTorch's: V and c ~ U(-1/√D, 1/√D) (kaiming-uniform with a = √5).

    Params: ``weight`` (O, D), ``bias`` (O,).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.in_features = check_count("in_features", in_features)
        self.out_features = check_count("out_features", out_features)
        self.dtype = layer_dtype(dtype)
        rng = check_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        shape = (self.out_features, self.in_features)
        self.params = {"weight": uniform(shape, bound, rng, self.dtype)}  # (O, D)
        if bias:
            self.params["bias"] = uniform((self.out_features,), bound, rng, self.dtype)  # (O,)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache: dict | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (..., D) -> y (..., O); keeps x for :meth:`backward`."""
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            last = x.shape[-1] if x.ndim else "no"
            raise BpttError(f"input has {last} features, the layer expects {self.in_features}")
        x = as_layer_dtype("input", x, self.dtype)
        y, self._cache = linear_forward(x, self.params["weight"], self.params.get("bias"))
        return y

    def backward(self, d_y: np.ndarray) -> np.ndarray:
        """∂E/∂y (..., O) -> ∂E/∂x (..., D); replaces ``grads``."""
        cache = self._cache_or_raise()
        d_y = as_layer_dtype("d_y", d_y, self.dtype)
        expected = (*cache["x_shape"][:-1], self.out_features)
        if d_y.shape != expected:
            raise BpttError(f"d_y has shape {d_y.shape}, expected {expected}")
        d_x, self.grads = linear_backward(d_y, cache)
        return d_x

    __call__ = forward

    def __repr__(self) -> str:
        bias = "" if "bias" in self.params else ", bias=False"
        return f"Linear({self.in_features}, {self.out_features}{bias}, dtype={self.dtype.name})"


class Embedding(Layer):
    """A table of V rows: integer index i -> row E[i]; one-hot x -> x E.

    Args:
        num_embeddings: V, rows of the table.
        embedding_dim: E, width of each row.
        dtype: float32 (default) or float64.
        rng: Generator for the initialisation; None means a fresh unseeded one.
            PyTorch's: every entry ~ N(0, 1).
        padding_idx: a row kept at zero that never receives gradient (as in
            PyTorch), or None.

    Params: ``weight`` (V, E).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
        padding_idx: int | None = None,
    ) -> None:
        self.num_embeddings = check_count("num_embeddings", num_embeddings)
        self.embedding_dim = check_count("embedding_dim", embedding_dim)
        self.dtype = layer_dtype(dtype)
        rng = check_rng(rng)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise BpttError(
                    f"padding_idx {padding_idx} is out of range for {self.num_embeddings} rows"
                )
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        shape = (self.num_embeddings, self.embedding_dim)
        self.params = {"weight": rng.standard_normal(shape).astype(self.dtype)}  # (V, E)
        if padding_idx is not None:
            self.params["weight"][padding_idx] = 0
        self.grads = {"weight": np.zeros_like(self.params["weight"])}  # (V, E)
        self._cache: dict | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Integer indices (...) -> (..., E); or one-hot floats (..., V) -> (..., E).

        Indices must lie in [0, V): negative ones are refused, not wrapped.
        """
        x = np.asarray(x)
        V = self.num_embeddings
        if x.dtype.kind in "iu":
            if x.size and (x.min() < 0 or x.max() >= V):
                bad = x.min() if x.min() < 0 else x.max()
                raise BpttError(
                    f"index {bad} is out of range for an embedding of {V} rows (valid 0..{V - 1})"
                )
            y, cache = embedding_forward(x, self.params["weight"])
            self._cache = {"kind": "index", "cache": cache}
            return y
        if x.dtype.kind == "f":
            if x.ndim == 0 or x.shape[-1] != V:
                last = x.shape[-1] if x.ndim else "no"
                raise BpttError(
                    f"one-hot input has {last} columns, the embedding has {V} rows; "
                    f"pass integer indices or (..., {V}) one-hot floats"
                )
            x = as_layer_dtype("one-hot input", x, self.dtype)
            y, cache = linear_forward(x, self.params["weight"].T)  # (..., E) x E
            self._cache = {"kind": "one_hot", "cache": cache}
            return y
        raise BpttError(f"Embedding takes integer indices or one-hot floats, got dtype {x.dtype}")

    def backward(self, d_y: np.ndarray) -> np.ndarray | None:
        """∂E/∂y (..., E) -> ``grads["weight"]`` (V, E).

        Returns ∂E/∂x (..., V) for one-hot input, None for integer indices
        (which have no gradient).
        """
        outer = self._cache_or_raise()
        d_y = as_layer_dtype("d_y", d_y, self.dtype)
        cache = outer["cache"]
        if outer["kind"] == "index":
            expected = (*cache["indices"].shape, self.embedding_dim)
        else:
            expected = (*cache["x_shape"][:-1], self.embedding_dim)
        if d_y.shape != expected:
            raise BpttError(f"d_y has shape {d_y.shape}, expected {expected}")
        if outer["kind"] == "index":
            self.grads = embedding_backward(d_y, cache)
            d_x = None
        else:
            d_x, g = linear_backward(d_y, cache)
            self.grads = {"weight": np.ascontiguousarray(g["weight"].T)}  # (V, E)
        if self.padding_idx is not None:
            self.grads["weight"][self.padding_idx] = 0
        return d_x

    __call__ = forward

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype.name})"


class Dropout(Layer):
    """Inverted dropout: y = x * m, m = [u >= p] / (1 - p) when training, else y = x.

    Args:
        p: probability of zeroing a unit, in [0, 1).

    No params; ``params`` and ``grads`` are empty dicts.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability("p", p)
        self.params = {}
        self.grads = {}
        self.dtype = np.dtype(np.float32)  # unused: Dropout keeps the input's dtype
        self._cache: dict | None = None

    def forward(
        self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """x (...) -> y (...); ``rng`` (a Generator) is required when training with p > 0."""
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise BpttError(f"Dropout needs a float array, got dtype {x.dtype}")
        if not training or self.p == 0.0:
            self._cache = {"mask": None}
            return x
        if not isinstance(rng, np.random.Generator):
            raise BpttError(
                f"Dropout(p={self.p}) in training needs rng=np.random.Generator, "
                f"got {type(rng).__name__}"
            )
        y, m = dropout_forward(x, self.p, rng)
        self._cache = {"mask": m}
        return y

    def backward(self, d_y: np.ndarray) -> np.ndarray:
        """∂E/∂y -> ∂E/∂x with the mask of the last forward."""
        m = self._cache_or_raise()["mask"]
        if m is None:
            return np.asarray(d_y)
        if np.shape(d_y) != m.shape:
            raise BpttError(f"d_y has shape {np.shape(d_y)}, expected {m.shape}")
        return dropout_backward(np.asarray(d_y), m)

    __call__ = forward

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
