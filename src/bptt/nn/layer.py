"""What every layer shares: :class:`Layer` and the checks of its arguments.

:class:`Layer` gives ``params``/``grads`` dicts (same keys, PyTorch's names), state
dicts and a parameter count. The validators turn a bad argument into a one-line
BpttError naming it; the dtype rules (:func:`layer_dtype`, :func:`as_layer_dtype`)
are the same for every layer: float32 or float64, never silently the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bptt.errors import BpttError

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
