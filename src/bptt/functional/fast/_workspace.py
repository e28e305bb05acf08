"""Scratch arrays the time loops reuse from one call to the next.

A large NumPy array is fresh memory from the operating system, and its first
touch costs a page fault per 4 KiB page. A recurrent layer's forward makes
several (T, B, G*H) arrays per layer and direction (the time-major input, the
gate and state histories backward reads, the gate gradients), so a call of the
lstm-c benchmark's shape (T=200, B=16, H=256, two layers) took about 4,000
page faults and 10-25 ms of system time (``resource.getrusage``), every call.

A *workspace* is a plain dict the caller owns: each named array is kept there
and handed out again on the next call, grown when a call needs more. Only
arrays whose life ends before the next call may come from it: the cache that
backward reads (so a workspace serves one forward/backward pair at a time, which
is the nn layers' contract: each forward replaces the last one's cache), never
the outputs, final states or gradients handed to the caller. ``None`` means no
reuse: every array is new, as for callers that keep several caches alive.
"""

from __future__ import annotations

import math

import numpy as np

from bptt.functional.fast import _threads
from bptt.functional.fast._gemm import project
from bptt.functional.fast._jit import numba, tell_slow_path

SWAP_THREADED = 1 << 16  # floats from which a swap copy is shared over threads (256 KiB)

if numba is not None:

    @numba.njit(cache=True, boundscheck=False, nogil=True, parallel=True)
    def _swap_par(src, dst, chunks):
        """dst[a, b] = src[b, a], dst's first axis shared out in ``chunks``."""
        for k in numba.prange(chunks):
            a0, a1 = _threads.share(k, chunks, dst.shape[0])
            for b in range(dst.shape[1]):
                for a in range(a0, a1):
                    for j in range(dst.shape[2]):
                        dst[a, b, j] = src[b, a, j]


def swap_copy(src: np.ndarray, dst: np.ndarray) -> None:
    """dst (A, B, K) = src (B, A, K) with its first two axes swapped: time-major to
    batch-first or back. On several threads (compiled) for a large copy, where NumPy
    would copy on one: a layer's input and output copies are a tenth of its inference
    time at lstm-c's shape (T = 200, B = 16, H = 256), and two cores copy about twice
    as fast as one (``benchmarks/infer_breakdown.py``)."""
    chunks = min(_threads.compiled_threads(), dst.shape[0]) if numba is not None else 1
    if chunks > 1 and dst.size >= SWAP_THREADED and _threads.get_num_threads() > 1:
        _swap_par(src, dst, chunks)
    else:
        np.copyto(dst, src.transpose(1, 0, 2))


def scratch(workspace: dict | None, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array of ``shape``: the workspace's memory when it has some, else new."""
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    size = math.prod(shape)
    flat = workspace.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = workspace[name] = np.empty(size, dtype=dtype)  # (size,) grown, kept
    return flat[:size].reshape(shape)


def time_major(workspace: dict | None, name: str, a: np.ndarray) -> np.ndarray:
    """a (B, T, K) copied time-major, (T, B, K), into the workspace's ``name``: each step
    contiguous. A transposed view would do for NumPy, but a compiled kernel handed one is
    compiled for any layout and its loops do not vectorise (the LSTM backward's gate
    kernel, T = 100, B = 32, H = 128, on an AMD EPYC: 1.03 ms from the view, 0.67 from
    the copy, which costs 0.11)."""
    B, T, K = a.shape
    out = scratch(workspace, name, (T, B, K), a.dtype)  # (T, B, K)
    swap_copy(a, out)
    return out


def outputs_from(history: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    """The outputs (B, T, H) as a new array: states 1..T of ``history`` (T+1, B, H), batch-first.

    Always a copy: at T = 1 or B = 1 the transposed view is already contiguous, and
    ``np.ascontiguousarray`` would hand out workspace memory the next call overwrites.
    Zero at padded steps, where ``m`` (T, B, 1) is False.
    """
    T, B, H = history.shape[0] - 1, history.shape[1], history.shape[2]
    outputs = np.empty((B, T, H), dtype=history.dtype)  # (B, T, H) the caller's own
    swap_copy(history[1:], outputs)
    if m is not None:
        outputs *= m.transpose(1, 0, 2)  # (B, T, 1)
    return outputs


def cell_cache(m, real, weights, workspace, **arrays) -> dict:
    """The cache every fast cell's forward hands its backward: its own ``arrays``
    (the time-major histories), the mask ``m`` (T, B, 1) or None, ``real`` (T, B),
    ``weights`` = (weight_ih, weight_hh, bias_ih, bias_hh): the weights and which
    biases exist, and the workspace the backward's scratch comes from."""
    weight_ih, weight_hh, bias_ih, bias_hh = weights
    return {
        **arrays,
        "m": m,
        "real": real,
        "weight_ih": weight_ih,
        "weight_hh": weight_hh,
        "has_bias_ih": bias_ih is not None,
        "has_bias_hh": bias_hh is not None,
        "workspace": workspace,
    }


def inputs_projected(x: np.ndarray, weight_ih: np.ndarray, workspace: dict | None):
    """x (B, T, D) copied time-major, so each step is contiguous, and weight_ih x_t for
    every step in one product: x_tm (T, B, D) and a (T, B, N), both workspace memory.

    The first thing a cell's forward does; says once, without numba, how to get the fast path.
    """
    tell_slow_path()
    B, T, D = x.shape
    N = weight_ih.shape[0]
    x_tm = time_major(workspace, "x_tm", x)  # (T, B, D)
    a = scratch(workspace, "a", (T, B, N), x.dtype)  # (T, B, N)
    project(x_tm.reshape(T * B, D), weight_ih, a.reshape(T * B, N))
    return x_tm, a
