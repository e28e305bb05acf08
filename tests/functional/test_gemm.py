"""bptt.functional.fast._gemm: the packed per-step product equals a @ wᵀ, and falls back to BLAS.

Without numba (or with BPTT_NO_JIT=1) only the fallback test runs, and checks
that every case takes np.matmul.

The compiled tiles cover 6, 4, 2 and 1 rows (AVX2), 12, 8, 4, 2, 1 rows of two
panels and 3, 2, 1 rows of eight (AVX-512); the shapes below hit every remainder, a
single column panel and many, K = 1 and K = 0. float32 sums run in another order than
BLAS's, so they agree to float32 rounding of the sum (relative to the largest |a| |w|
sum, as a dot product's error bound).

Shapes: M rows of a, K inner size, N columns of out (any: a last panel of fewer than 16
columns is zero-padded, computed into a scratch block and its columns copied).
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt.functional.fast import _gemm, _tiles

compiled = pytest.mark.skipif(not _gemm.JIT, reason="numba absent or BPTT_NO_JIT set")

SHAPES = [(1, 5, 16), (5, 3, 32), (7, 128, 512), (9, 7, 16), (13, 1, 48), (16, 256, 1024)]
SHAPES += [(23, 64, 64), (32, 128, 512)]  # 32 rows: tiles 6 6 6 6 4 4; 9: 6 3
SHAPES += [(2, 64, 256), (3, 17, 176)]  # AVX-512, 1-3 rows: eight panels a tile, then 2, 1
SHAPES += [(1, 5, 3), (5, 7, 20), (2, 9, 100), (13, 33, 300), (50, 17, 900)]  # N % 16 != 0


def reference(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a @ wᵀ in float64 and its error scale |a| @ |w|ᵀ: (M, N) each."""
    a64, w64 = a.astype(np.float64), w.astype(np.float64)
    return a64 @ w64.T, np.abs(a64) @ np.abs(w64).T


@compiled
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("transposed", [False, True], ids=["w", "w-view"])
def test_packed_product_matches_float64(shape, transposed) -> None:
    M, K, N = shape
    rng = np.random.default_rng(M * 1000 + K)
    a = rng.standard_normal((M, K)).astype(np.float32)  # (M, K)
    w = rng.standard_normal((N, K)).astype(np.float32)  # (N, K)
    if transposed:  # the backward passes weight_hh.T, a view
        w = np.ascontiguousarray(w.T).T
    out = np.full((M, N), np.nan, dtype=np.float32)  # (M, N) every entry must be written
    _gemm.matmul_packed(a, _gemm.pack(w), out)
    exact, scale = reference(a, w)
    assert np.all(np.abs(out - exact) <= 4 * K * np.finfo(np.float32).eps * scale + 1e-30)


@compiled
@pytest.mark.parametrize("M", [2, 3, 8, 9, 14, 32, 33, 50])
@pytest.mark.parametrize("N", [176, 170])
def test_packed_rows_do_not_depend_on_their_tile(M, N) -> None:
    """Each row's sums run over k in order whatever tile holds the row: a row alone
    (a one-row tile) equals, bit for bit, the same row inside M rows; also where the
    last panel is zero-padded (N = 170)."""
    rng = np.random.default_rng(M)
    a = rng.standard_normal((M, 37)).astype(np.float32)  # (M, K)
    # 11 panels: a tile of eight for 1-3 rows (AVX-512), then a pair and a single
    panels = _gemm.pack(rng.standard_normal((N, 37)).astype(np.float32))  # (11, K, 16)
    together = np.empty((M, N), dtype=np.float32)  # (M, N)
    _gemm.matmul_packed(a, panels, together)
    alone = np.empty((1, N), dtype=np.float32)  # (1, N)
    for r in range(M):
        _gemm.matmul_packed(a[r : r + 1], panels, alone)
        np.testing.assert_array_equal(together[r], alone[0], err_msg=f"row {r} of {M}")


@compiled
@pytest.mark.parametrize(
    ("M", "N"),
    [(1, 32), (3, 48), (12, 64), (16, 32), (29, 80), (48, 16), (1, 144), (2, 272), (13, 300)],
)
def test_wide_tiles_equal_the_narrow_ones_bit_for_bit(M, N) -> None:
    """The AVX-512 tiles (two panels, 12/8/4/2/1 rows; eight panels, 3/2/1 rows) make
    every element from the same chain of FMAs over k as the AVX2 tiles: equal bit for
    bit, for odd panel counts (the last panel narrow) and row counts off the tile sizes,
    from strided rows. On a CPU without AVX-512 LLVM splits the wide vectors, so this
    runs everywhere."""
    rng = np.random.default_rng(M + N)
    a = rng.standard_normal((M, 45)).astype(np.float32)[:, :37]  # (M, K) row stride 45
    panels = _gemm.pack(rng.standard_normal((N, 37)).astype(np.float32))  # (N/16, K, 16)
    narrow, wide = (np.full((M, N), np.nan, dtype=np.float32) for _ in range(2))  # (M, N)
    _tiles._block_rows(a, panels, narrow, 0, M, False)
    _tiles._block_rows(a, panels, wide, 0, M, True)
    np.testing.assert_array_equal(wide, narrow)


@compiled
@pytest.mark.parametrize("N", [7, 40, 300])
def test_rows_split_over_threads_equal_one_thread_with_a_padded_panel(N) -> None:
    """The packed product with its rows split over two threads (route packed_mt) gives
    one thread's bits, the last panel's columns too, over several row blocks; a padded
    panel's zero columns never reach out, which is exactly its N columns wide."""
    rng = np.random.default_rng(N)
    a = rng.standard_normal((130, 29)).astype(np.float32)  # (M, K), three row blocks
    w = rng.standard_normal((N, 29)).astype(np.float32)  # (N, K)
    panels = _gemm.pack(w)  # (⌈N/16⌉, K, 16)
    assert panels.shape[0] == -(-N // 16) and np.all(panels[-1, :, N % 16 :] == 0)
    one, two = (np.full((130, N), np.nan, dtype=np.float32) for _ in range(2))  # (M, N)
    _gemm._matmul_packed_jit(a, panels, one)
    _gemm._matmul_packed_par(a, panels, two, 2)
    np.testing.assert_array_equal(two, one)
    exact, scale = reference(a, w)
    assert np.all(np.abs(one - exact) <= 4 * 29 * np.finfo(np.float32).eps * scale)


@compiled
def test_packed_product_with_no_inner_dimension_is_zero() -> None:
    out = np.full((6, 16), np.nan, dtype=np.float32)  # (6, 16)
    a, w = np.zeros((6, 0), np.float32), np.zeros((16, 0), np.float32)
    _gemm.matmul_packed(a, _gemm.pack(w), out)
    assert np.all(out == 0)


@pytest.mark.skipif(not _gemm.JIT, reason="numba absent or BPTT_NO_JIT set")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("rows", "N", "K"), [(1, 64, 24), (3, 37, 5), (2, 3, 1)])
@pytest.mark.parametrize("parallel", [False, True])
def test_dot_kernel_is_the_product(dtype, rows, N, K, parallel) -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((N, K)).astype(dtype)  # (N, K)
    a = rng.standard_normal((rows, K)).astype(dtype)  # (rows, K)
    out = np.full((rows, N), np.nan, dtype=dtype)  # (rows, N) every entry must be written
    _gemm.matmul_dot(a, w, out, parallel)
    exact, scale = reference(a, w)
    assert np.all(np.abs(out - exact) <= 4 * K * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize(
    ("dtype", "N", "rows", "steps", "packed"),
    [
        (np.float32, 64, 8, 100, True),
        (np.float64, 64, 8, 100, False),  # float64 keeps BLAS (and the parity tests exact)
        (np.float32, 60, 8, 100, True),  # N not a multiple of 16: the last panel padded
        (np.float32, 64, 2, 100, False),  # few rows: packed only if the probe picks it
        (np.float32, 64, 8, 3, False),  # too few steps to repay the packing
    ],
)
def test_step_product_picks_its_path_and_is_right_on_both(
    dtype, N, rows, steps, packed, monkeypatch
) -> None:
    monkeypatch.setenv("BPTT_ROUTES", "default")  # the rule, not the machine's probed routes
    rng = np.random.default_rng(0)
    w = rng.standard_normal((N, 24)).astype(dtype)  # (N, K)
    a = rng.standard_normal((rows, 24)).astype(dtype)  # (rows, K)
    product = _gemm.StepProduct(w, rows, steps)
    assert (product.route == "packed") == (packed and _gemm.JIT)  # without the JIT: BLAS
    out = np.empty((rows, N), dtype=dtype)  # (rows, N)
    product(a, out)
    exact, scale = reference(a, w)
    assert np.all(np.abs(out - exact) <= 4 * 24 * np.finfo(dtype).eps * scale)


@compiled
def test_project_reads_strided_rows_over_several_row_blocks() -> None:
    """A large product (rows > ROW_BLOCK) from a view whose rows sit in a wider buffer,
    as the LSTM's input projection reads x_t out of its [x_t | h_t] buffer."""
    rng = np.random.default_rng(9)
    M, K, N = 2 * _gemm.ROW_BLOCK + 7, 24, 48
    wide = rng.standard_normal((M, K + 13)).astype(np.float32)  # (M, K + 13)
    a = wide[:, :K]  # (M, K) row stride K + 13
    w = rng.standard_normal((N, K)).astype(np.float32)  # (N, K)
    out = np.full((M, N), np.nan, dtype=np.float32)  # (M, N)
    _gemm.project(a, w, out)
    exact, scale = reference(a, w)
    assert np.all(np.abs(out - exact) <= 4 * K * np.finfo(np.float32).eps * scale)


@compiled
@pytest.mark.parametrize("steps", [10, 100])
def test_step_probe_times_products_in_a_row_as_the_time_loop_makes_them(steps, monkeypatch) -> None:
    """One probe call of a step route makes min(steps, PROBE_RUN) products: timed one
    product at a time, a threaded route paid a parallel region's wake-up per product
    that the time loop pays once per sequence, and lost to one thread."""
    calls = []
    monkeypatch.setattr(_gemm, "matmul_packed", lambda a, panels, out: calls.append(1))

    def choose(kind, dtype, M, K, N, candidates, applies):
        candidates()["packed"](1)
        return "packed"

    monkeypatch.setattr(_gemm._routes, "choose", choose)
    _gemm.StepProduct(np.ones((32, 8), np.float32), 8, steps)
    assert len(calls) == min(steps, _gemm.PROBE_RUN)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(3, 5, 4), (40, 70, 30)])  # one tiny, one over SWAP_THREADED
def test_swap_copy_is_the_transposed_copy_on_one_thread_or_several(threads, shape) -> None:
    """The time-major <-> batch-first copy, into a strided view (as into [x_t | h_{t-1}])."""
    from bptt.functional.fast import _threads, _workspace

    before = _threads.get_num_threads()
    _threads.set_num_threads(threads)
    try:
        src = np.random.default_rng(0).standard_normal(shape).astype(np.float32)  # (B, A, K)
        wide = np.zeros((shape[1], shape[0], shape[2] + 3), dtype=np.float32)  # (A, B, K+3)
        _workspace.swap_copy(src, wide[:, :, : shape[2]])
        np.testing.assert_array_equal(wide[:, :, : shape[2]], src.transpose(1, 0, 2))
        assert not wide[:, :, shape[2] :].any()  # nothing written beyond the view
    finally:
        _threads.set_num_threads(before)
