"""Conv2d and Conv1d over ``bptt.functional.conv``: channels last, "same" padding.

    y = conv(x, K) + b       x (N, H, W, C) -> y (N, H/s, W/s, O), K ≡ weight (O, C, k, k)
    y = conv(x, K) + b       x (N, W, C) -> y (N, W, O), K ≡ weight (O, C, k)   (Conv1d)

Params as PyTorch's ``nn.Conv2d`` and ``nn.Conv1d``: ``weight`` (O, C, k, k) or
(O, C, k), ``bias`` (O,), both ~ U(-1/√(fan in), 1/√(fan in)).

Shapes: N images (or sequences), H x W pixels (or W steps), C input channels,
O output channels, k kernel size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bptt.errors import BpttError
from bptt.functional.conv import conv1d_backward, conv1d_forward, conv2d_backward, conv2d_forward
from bptt.nn.init import uniform
from bptt.nn.layer import Layer, as_layer_dtype, check_count, check_rng, layer_dtype


class _Conv(Layer):
    """What Conv1d and Conv2d share: the checked sizes, the weights of a ``dims``-D kernel,
    and reading an input of ``ndim`` axes whose last is the channels."""

    def _init(self, in_channels, out_channels, kernel_size, dims: int, keeps: str, dtype, rng):
        self.in_channels = check_count("in_channels", in_channels)
        self.out_channels = check_count("out_channels", out_channels)
        k = check_count("kernel_size", kernel_size)
        if k % 2 == 0:
            raise BpttError(f"kernel_size must be odd (the {keeps}); got {k}")
        self.kernel_size, self.dtype = k, layer_dtype(dtype)
        rng = check_rng(rng)
        bound = 1.0 / math.sqrt(in_channels * k**dims)
        self.params = {
            "weight": uniform((out_channels, in_channels, *(k,) * dims), bound, rng, self.dtype),
            "bias": uniform((out_channels,), bound, rng, self.dtype),
        }
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}
        self._cache: dict | None = None

    def backward(self, d_y: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """∂E/∂y (the output's shape) -> ∂E/∂x (the input's), or None if not ``need_dx``;
        sets grads."""
        d_y = as_layer_dtype("d_y", d_y, self.dtype)
        d_x, self.grads = self._backward(d_y, self._cache_or_raise(), need_dx)
        return d_x

    def _input(self, x, shape: str) -> np.ndarray:
        """``x`` checked to be ``shape`` (e.g. "images (N, H, W, C)"), in the layer's dtype."""
        x = np.asarray(x)
        if x.ndim != shape.count(",") + 1 or x.shape[-1] != self.in_channels:
            shape = shape.replace("C)", f"{self.in_channels})")
            raise BpttError(f"{type(self).__name__} reads {shape}; got shape {x.shape}")
        return as_layer_dtype("input", x, self.dtype)


class Conv2d(_Conv):
    """A k x k convolution (k odd), padding (k - 1)/2: the image keeps its size at stride 1.

    Args:
        in_channels: C.
        out_channels: O.
        kernel_size: k, odd.
        stride: s, the step between windows.
        dtype: float32 (default) or float64.
        rng: Generator for the initialisation.
    """

    _backward = staticmethod(conv2d_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ):
        keeps = "image keeps its size"
        self._init(in_channels, out_channels, kernel_size, 2, keeps, dtype, rng)
        self.stride = check_count("stride", stride)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H/s, W/s, O); keeps what :meth:`backward` needs."""
        x = self._input(x, "images (N, H, W, C)")
        w, b = self.params["weight"], self.params["bias"]
        y, self._cache = conv2d_forward(x, w, b, (self.kernel_size - 1) // 2, self.stride)
        return y

    def __repr__(self) -> str:
        k = self.kernel_size
        return (
            f"Conv2d({self.in_channels}, {self.out_channels}, {k}, stride={self.stride}, "
            f"dtype={self.dtype.name})"
        )


class Conv1d(_Conv):
    """A width-k convolution along the steps (k odd), padding (k - 1)/2, stride 1: the
    sequence keeps its length (a word's letters in :class:`~bptt.models.SequenceTagger`).

    Args:
        in_channels: C.
        out_channels: O.
        kernel_size: k, odd.
        dtype: float32 (default) or float64.
        rng: Generator for the initialisation.
    """

    _backward = staticmethod(conv1d_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ):
        keeps = "sequence keeps its length"
        self._init(in_channels, out_channels, kernel_size, 1, keeps, dtype, rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, W, C) -> y (N, W, O); keeps what :meth:`backward` needs."""
        x = self._input(x, "sequences (N, W, C)")
        w, b = self.params["weight"], self.params["bias"]
        y, self._cache = conv1d_forward(x, w, b, (self.kernel_size - 1) // 2)
        return y

    def __repr__(self) -> str:
        return (
            f"Conv1d({self.in_channels}, {self.out_channels}, {self.kernel_size}, "
            f"dtype={self.dtype.name})"
        )
