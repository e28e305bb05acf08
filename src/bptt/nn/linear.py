"""Linear, Embedding and Dropout layers over ``bptt.functional.linear``.

    Linear      y = x V^T + c at every position of x (..., D) -> (..., O)
                (the lecture's output layer: ŷ_t = softmax(V s_t + c), V ≡ weight)
    Embedding   y = E[i] for integer indices (...), or y = x E for one-hot x (..., V)
    Dropout     y = x * m, m = [u >= p] / (1 - p) while training, y = x otherwise

Each layer has ``params``/``grads`` dicts with the same keys (PyTorch's names),
``forward`` that keeps its cache in ``self._cache`` (replaced by each call),
``backward`` that returns the input gradient and replaces ``grads`` (fresh
arrays, not accumulated), and ``state_dict``/``load_state_dict``.

Also here: the dtype rules shared by every layer (:func:`layer_dtype`,
:func:`as_layer_dtype`).

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

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_count(name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a BpttError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise BpttError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_probability(name: str, p: Any) -> float:
    """``p`` as a float in [0, 1), or a BpttError naming ``name``."""
    if isinstance(p, bool) or not isinstance(p, int | float | np.integer | np.floating):
        raise BpttError(f"{name} must be a number in [0, 1), got {p!r}")
    if not 0.0 <= float(p) < 1.0:
        raise BpttError(f"{name} must be in [0, 1), got {p}")
    return float(p)


def check_rng(rng: Any) -> np.random.Generator:
    """The initialisation Generator; None means a fresh unseeded one (not reproducible)."""
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise BpttError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def layer_dtype(dtype: Any) -> np.dtype:
    """The layer's float dtype: float32 or float64, anything else is a BpttError."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise BpttError(f"dtype must be float32 or float64, got {dtype!r}") from e
    if dt not in _FLOATS:
        raise BpttError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_layer_dtype(name: str, a: Any, dtype: np.dtype) -> np.ndarray:
    """``a`` as an array of the layer's dtype.

    The choice: a float32/float64 array of the *other* precision is refused
    with a BpttError (casting float64 down would silently lose precision, and
    casting float32 up would silently change the output's dtype); integer,
    boolean and float16 arrays are cast to the layer's dtype.
    """
    a = np.asarray(a)
    if a.dtype == dtype:
        return a
    if a.dtype in _FLOATS:
        raise BpttError(
            f"{name} has dtype {a.dtype}, the layer's dtype is {dtype}; "
            f"cast with .astype(np.{dtype}) or build the layer with dtype=np.{a.dtype}"
        )
    if a.dtype.kind in "biuf":
        return a.astype(dtype)
    raise BpttError(f"{name} must be a numeric array, got dtype {a.dtype}")


class Layer:
    """What every layer shares: ``params``/``grads`` dicts, state dicts, a parameter count."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    dtype: np.dtype

    def num_parameters(self) -> int:
        """Total number of scalars in ``params``."""
        return sum(v.size for v in self.params.values())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under PyTorch's names."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Copy ``state_dict``'s values into the parameters, cast to the layer's dtype.

        Keys must match exactly (missing and unexpected ones are listed), and
        every shape must match; nothing changes unless all do. The copy is in
        place, so references to ``params``' arrays (a model's or an
        optimizer's) stay valid.
        """
        missing = sorted(set(self.params) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(self.params))
        if missing or unexpected:
            raise BpttError(
                f"state_dict does not fit {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        values = {key: np.asarray(state_dict[key]) for key in self.params}
        for key, value in values.items():
            if value.shape != self.params[key].shape:
                raise BpttError(f"{key} has shape {value.shape}, expected {self.params[key].shape}")
        for key, value in values.items():
            np.copyto(self.params[key], value, casting="unsafe")  # e.g. float64 -> float32

    def _cache_or_raise(self) -> dict:
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise BpttError(f"{type(self).__name__}.backward called before forward")
        return cache


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
