"""The "dot" route of the per-step product, for one to three rows: ``out = a @ wᵀ`` read in place.

At one to three rows (generation, streaming, B = 1 inference) a product is a few
matrix-vector products, and its speed is how fast the weight streams from the
caches: nothing is reused, so packing w would only add a copy. The kernel reads
w's rows where they are, DOT_ROWS of them at a time, each block used by every row
of ``a`` while it is in L1: out[m, n] = a[m] · w[n], with vector partial sums over
k (LLVM's ``reassoc``) and FMAs. On this session's AMD EPYC (Zen 4) it streams a
weight from L2 or L3 at about 80 GB/s on one core (``benchmarks/profile_gen.py``).

Used by :mod:`bptt.functional.fast._gemm` (routes "dot", "dot_mt") and
:mod:`bptt.functional.fast._step`. Shapes: a (M, K), w (N, K), out (M, N).
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast._jit import JIT, numba
from bptt.functional.fast._threads import compiled_threads

DOT_ROWS = 8  # rows of w per block of the kernel (written out in _dot_rows)

if numba is not None:
    # Each sum's order depends on K and its block only, never on the thread (dot_span).

    _fast_sums = {"reassoc", "contract"}  # vector partial sums over k, FMAs

    @numba.njit(cache=True, boundscheck=False, nogil=True, fastmath=_fast_sums)
    def _dot_rows(a, w, out, n0, n1, back=False):
        """out[:, n0:n1] = a (M, K) @ w[n0:n1]ᵀ, w (N, K) with contiguous rows.

        Whole blocks of DOT_ROWS (8) rows of w from n0, each used by every row of a
        while it is in L1 (eight sums in flight hide the FMA latency), then single rows.
        ``back``: the same blocks, last to first. Walking back over a weight that was
        just walked forward (the next call of a step) starts with the rows the caches
        still hold: a weight a little larger than L2 then comes partly from L2 (about 8%
        faster for 2 MiB on this session's AMD EPYC). Every sum is the same either way.
        (The loops are written out here: calling a block function measured 15% slower.)"""
        M, K = a.shape
        zero = out.dtype.type(0)
        blocks = (n1 - n0) // 8
        for i in range(blocks):
            n = n0 + 8 * (blocks - 1 - i if back else i)
            for m in range(M):
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
                for k in range(K):
                    v = a[m, k]
                    s0 += v * w[n, k]
                    s1 += v * w[n + 1, k]
                    s2 += v * w[n + 2, k]
                    s3 += v * w[n + 3, k]
                    s4 += v * w[n + 4, k]
                    s5 += v * w[n + 5, k]
                    s6 += v * w[n + 6, k]
                    s7 += v * w[n + 7, k]
                out[m, n], out[m, n + 1], out[m, n + 2], out[m, n + 3] = s0, s1, s2, s3
                out[m, n + 4], out[m, n + 5], out[m, n + 6], out[m, n + 7] = s4, s5, s6, s7
        for n in range(n0 + 8 * blocks, n1):
            for m in range(M):
                s = zero
                for k in range(K):
                    s += a[m, k] * w[n, k]
                out[m, n] = s

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _dot_jit(a, w, out):
        _dot_rows(a, w, out, 0, w.shape[0])

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def dot_span(N, j, chunks):
        """Rows n0:n1 of w that chunk j of ``chunks`` computes: runs of DOT_ROWS, so every
        block is the one the one-thread walk makes and the sums equal it bit for bit."""
        blocks = (N + DOT_ROWS - 1) // DOT_ROWS
        return (
            min(N, DOT_ROWS * (j * blocks // chunks)),
            min(N, DOT_ROWS * ((j + 1) * blocks // chunks)),
        )

    @numba.njit(cache=True, boundscheck=False, nogil=True, parallel=True)
    def _dot_par(a, w, out, chunks):
        """_dot_jit with the rows of w (columns of out) split into ``chunks`` (dot_span)."""
        for j in numba.prange(chunks):
            n0, n1 = dot_span(w.shape[0], j, chunks)
            _dot_rows(a, w, out, n0, n1)


def dot_usable(dtype, rows: int) -> bool:
    """True when the compiled "dot" route applies: float32 or float64, one to three rows."""
    return JIT and dtype in (np.float32, np.float64) and 1 <= rows < 4


def matmul_dot(a: np.ndarray, w: np.ndarray, out: np.ndarray, parallel=False) -> None:
    """out (M, N) = a (M, K) @ wᵀ, w (N, K) and a with contiguous rows, out C-contiguous.
    ``parallel``: the rows of w split over bptt's threads (the same sums, bit for bit).

    ``a`` is made contiguous first (at most three rows: a copy of nothing much). A strided
    view (the LSTM's x_t sits beside h_{t-1} in one buffer) would have numba compile the
    kernel for any layout, and that copy does not vectorise: 4x slower (85 against 22 µs
    for (2, 256) @ (256, 1024) on an AMD EPYC), though the route was measured on a
    contiguous ``a``."""
    a = np.ascontiguousarray(a)  # (M, K)
    if parallel:
        _dot_par(a, w, out, compiled_threads())
    else:
        _dot_jit(a, w, out)
