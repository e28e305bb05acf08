"""Initialisers: fresh arrays from a passed ``numpy.random.Generator``.

Array makers (return a new array of the requested shape and dtype):

    uniform_default   U(-1/√H, 1/√H)                 PyTorch's RNN/LSTM/GRU default
    uniform           U(-bound, bound)
    xavier_uniform    U(-a, a), a = gain √(6 / (fan_in + fan_out))   (Glorot & Bengio)
    orthogonal        Q from the QR of a Gaussian matrix, columns' signs fixed
                      by diag(R) so Q is uniformly (Haar) distributed

Helpers that change a recurrent layer's ``params`` in place (trailing ``_``,
as in PyTorch):

    orthogonal_recurrent_   every (H, H) gate block of every weight_hh
                            (the lecture's W) becomes orthogonal, so repeated
                            products W^T g neither blow up nor vanish at init
    forget_bias_            LSTM: bias of the forget gate f_t set to a value
                            (commonly 1.0) in bias_ih and 0 in bias_hh, so the
                            cell C_t = f_t * C_{t-1} + ... starts out remembering

Shapes: H hidden units, G gates; weights are (rows, cols) = (fan_out, fan_in).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bptt.errors import BpttError


def uniform(
    shape: tuple[int, ...], bound: float, rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """Samples from U(-bound, bound), drawn in float64 then cast (same numbers for both dtypes)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)  # shape


def uniform_default(
    shape: tuple[int, ...], hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """PyTorch's recurrent default: U(-1/√H, 1/√H) for every weight and bias."""
    return uniform(shape, 1.0 / math.sqrt(hidden_size), rng, dtype)  # shape


def xavier_uniform(
    shape: tuple[int, int],
    rng: np.random.Generator,
    gain: float = 1.0,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Glorot uniform: U(-a, a) with a = gain √(6 / (fan_in + fan_out)), shape (fan_out, fan_in)."""
    if len(shape) != 2:
        raise BpttError(f"xavier_uniform needs a 2-D shape (fan_out, fan_in), got {shape}")
    fan_out, fan_in = shape
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng, dtype)  # shape


def orthogonal(
    shape: tuple[int, int],
    rng: np.random.Generator,
    gain: float = 1.0,
    dtype: Any = np.float32,
) -> np.ndarray:
    """A (semi-)orthogonal matrix: orthonormal rows if rows <= cols, else orthonormal columns.

    Q R = A with A ~ N(0, 1) of shape (max, min); multiplying Q's columns by
    sign(diag(R)) makes the factorisation unique and Q Haar-distributed
    (Mezzadri 2007), as PyTorch's ``nn.init.orthogonal_`` does.
    """
    if len(shape) != 2:
        raise BpttError(f"orthogonal needs a 2-D shape (rows, cols), got {shape}")
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))  # (max, min) tall
    q, r = np.linalg.qr(a)  # q (max, min) orthonormal columns, r (min, min)
    q *= np.sign(np.diag(r))  # sign fix; diag(r) is never exactly 0 for a Gaussian
    if rows < cols:
        q = q.T  # (rows, cols) orthonormal rows
    return (gain * q).astype(dtype)  # (rows, cols)


def _recurrent_keys(layer: Any, prefix: str) -> list[str]:
    keys = [k for k in layer.params if k.startswith(prefix)]
    if not keys:
        raise BpttError(f"the layer has no {prefix}* parameters; expected a recurrent layer")
    return keys


def orthogonal_recurrent_(layer: Any, rng: np.random.Generator, gain: float = 1.0) -> None:
    """Make every (H, H) gate block of every ``weight_hh_*`` orthogonal, in place.

    ``weight_hh`` is G blocks of (H, H) stacked along the rows (LSTM i, f, g, o;
    GRU r, z, n); each block is drawn separately, as each multiplies s_{t-1} alone.
    """
    H = layer.hidden_size
    for key in _recurrent_keys(layer, "weight_hh"):
        w = layer.params[key]  # (G*H, H)
        for g in range(w.shape[0] // H):
            w[g * H : (g + 1) * H] = orthogonal((H, H), rng, gain, w.dtype)


def forget_bias_(layer: Any, value: float = 1.0) -> None:
    """LSTM only: forget-gate bias b_f = value, split as bias_ih = value, bias_hh = 0.

    The forget gate is the second of the four blocks (i, f, g, o), rows H..2H.
    """
    if getattr(layer, "gates", None) != 4:
        raise BpttError(
            f"forget_bias_ needs an LSTM (4 gates), got {type(layer).__name__} "
            f"with {getattr(layer, 'gates', '?')} gate(s)"
        )
    H = layer.hidden_size
    keys = [k for k in layer.params if k.startswith("bias_")]
    if not keys:
        raise BpttError(
            "forget_bias_ needs a layer with biases; this one was built with bias=False"
        )
    for key in keys:
        layer.params[key][H : 2 * H] = value if key.startswith("bias_ih") else 0.0
