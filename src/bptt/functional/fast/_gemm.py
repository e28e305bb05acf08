"""The per-step product ``a @ wᵀ`` with ``w`` packed once per sequence (float32, compiled).

Why: a recurrent layer multiplies a small (B, K) state by the same (N, K)
weight at every one of T steps. OpenBLAS repacks the weight into its own
panel layout on every call, and at small B that copy costs about as much as
the arithmetic. Measured here with one thread (``python benchmarks/gemm_step.py``):
(16, 256) @ (256, 1024) runs at 58 GFLOP/s in OpenBLAS and 90 in the kernel
below, which reads a weight packed once; (32, 128) @ (128, 512) at 69 and 88;
(64, 512) @ (512, 2048) at 80 and 92. oneDNN's LSTM, which PyTorch uses, also
packs its weights once; this is how we match it. At one to three rows nothing is
reused, and the "dot" route (:mod:`bptt.functional.fast._dot`) reads w in place.

Layout: :func:`pack` turns w (N, K) into panels (N/16, K, 16): panel p holds
columns 16p .. 16p+15 of wᵀ, one row of 16 per k, so the kernel reads each
panel front to back. :func:`matmul_packed` walks the rows of ``a`` in blocks
of 48 (which stay in L2) and, within a block, the panels; for each panel it
multiplies tiles of up to 6 rows of ``a`` by the panel, keeping the 6 × 16
block of ``out`` in twelve 8-wide vector registers (the classic AVX2 tile:
12 accumulators + 2 weight vectors + 1 broadcast fill the 16 registers) and
storing it once at the end. Each k adds a[r, k] · panel[k, :] with
``llvm.fmuladd``, which becomes an FMA where the CPU has one. Where the CPU has
AVX-512 (:data:`WIDE`), tiles take two panels at once in 16-wide vectors: up to
12 rows × 32 columns in 24 of the 32 zmm registers, each broadcast of a[r, k]
feeding two FMAs. An Intel core's ymm FMAs reach only half its peak (AMD's Zen 4
runs a zmm FMA as two ymm halves, at the same rate): on an Intel Xeon with AVX-512
(2 cores, 2026-12-06) the narrow tiles ran (32, 128) @ (128, 512) at 88 GFLOP/s,
the wide ones at 140-162; ``python benchmarks/gemm_step.py`` then gave, median
over 200 rounds, packed against BLAS: lstm-a forward 136 against 61 GFLOP/s,
lstm-b forward 132 against 84, lstm-c forward 92 against 36.

The sums run over k in order, so results differ from BLAS only by float32
rounding (BLAS splits k into blocks). Used only for float32 with N a multiple
of 16 and numba present (:func:`usable`); everything else takes ``np.matmul``.

Shapes: a (M, K), rows contiguous (any row stride); w (N, K); out (M, N) C-contiguous.
"""

from __future__ import annotations

import functools

import numpy as np

from bptt.functional.fast import _routes, _threads
from bptt.functional.fast._dot import _dot_par, _dot_rows, dot_usable, matmul_dot
from bptt.functional.fast._jit import JIT, numba
from bptt.functional.fast._threads import compiled_threads, get_num_threads, step_threads

PANEL = 16  # columns per panel: two 8-wide float32 vectors
ROW_BLOCK = 48  # rows of a per block in a large product: 48 x K floats stay in L2
MIN_STEPS = 8  # packing costs about two products; below this many steps BLAS is as fast


def _has_avx512() -> bool:
    """True when the CPU numba compiles for has AVX-512 (its 32 zmm registers)."""
    if numba is None:
        return False
    from llvmlite import binding

    return bool(binding.get_host_cpu_features().get("avx512f", False))


#: Tiles of 16-wide vectors (zmm) instead of 8-wide (ymm): on an Intel Xeon with two
#: 512-bit FMA units a ymm kernel reaches half the peak (measured: 95 GFLOP/s against
#: BLAS's 145 at one thread). A global, so compiled code (and numba's cache, keyed by
#: the CPU's features) bakes it in.
WIDE = _has_avx512()


def usable(dtype, n_columns: int, rows: int) -> bool:
    """True when the compiled product applies: float32, N a multiple of 16, a few rows.

    With fewer than 4 rows a tile has too few independent sums to hide the FMA
    latency, and BLAS's matrix-vector path does as well.
    """
    return JIT and dtype == np.float32 and n_columns % PANEL == 0 and rows >= 4


def pack(w: np.ndarray) -> np.ndarray:
    """w (N, K) -> panels (N/16, K, 16), the layout :func:`matmul_packed` reads."""
    N, K = w.shape
    if w.T.flags.c_contiguous:  # w is a transposed view: copy runs of 16 from wᵀ (K, N)
        return np.ascontiguousarray(w.T.reshape(K, N // PANEL, PANEL).transpose(1, 0, 2))
    return np.ascontiguousarray(w.reshape(N // PANEL, PANEL, K).transpose(0, 2, 1))


if numba is not None:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    _I64 = ir.IntType(64)

    def _const(n: int) -> ir.Constant:
        return ir.Constant(_I64, n)

    def _make_tile(rows: int, lanes: int = 8, n_panels: int = 1):
        """An intrinsic: out[r0:r0+rows, 16p:16(p+n_panels)] = a[r0:r0+rows] @ panels p..,
        in registers.

        ``lanes``-wide vectors, 16 // lanes of them per panel and row: 8 (AVX2's ymm) or
        16 (AVX-512's zmm). The accumulators are rows * n_panels * 16 // lanes vectors."""
        vec = ir.VectorType(ir.FloatType(), lanes)
        per_panel = PANEL // lanes

        @intrinsic
        def tile(typingctx, a, panels, out, r0, p):
            def codegen(context, builder, sig, args):
                a_arr = context.make_array(sig.args[0])(context, builder, args[0])
                p_arr = context.make_array(sig.args[1])(context, builder, args[1])
                o_arr = context.make_array(sig.args[2])(context, builder, args[2])
                r0, p = args[3], args[4]
                K = builder.extract_value(a_arr.shape, 1)
                N = builder.extract_value(o_arr.shape, 1)  # out is C-contiguous
                lda = builder.ashr(builder.extract_value(a_arr.strides, 0), _const(2))  # bytes/4
                a_rows = builder.gep(a_arr.data, [builder.mul(r0, lda)])  # &a[r0, 0]
                panel_size = builder.mul(K, _const(PANEL))
                first = builder.gep(p_arr.data, [builder.mul(p, panel_size)])  # &panel p
                fma = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fmuladd.v{lanes}f32"
                )
                as_vec = vec.as_pointer()

                def at(base, *offsets):  # &base[sum(offsets)]
                    return builder.gep(base, [functools.reduce(builder.add, offsets)])

                undef = ir.Constant(vec, ir.Undefined)
                splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
                width = n_panels * per_panel  # vectors a row

                entry = builder.block
                loop = builder.append_basic_block("tile.k")
                done = builder.append_basic_block("tile.done")
                builder.branch(loop)
                builder.position_at_end(loop)
                k = builder.phi(_I64)  # for k in range(K), K >= 1
                acc = [builder.phi(vec) for _ in range(rows * width)]  # out block
                w_k = []  # panel j's row k, vector v: (16p + 16j + lanes v) .. + lanes
                for j in range(n_panels):
                    j_k = (builder.mul(_const(j), panel_size), builder.mul(k, _const(PANEL)))
                    row_k = at(first, *j_k)  # &panel (p + j)[k, 0]
                    for v in range(per_panel):
                        w_v = builder.bitcast(builder.gep(row_k, [_const(v * lanes)]), as_vec)
                        w_k.append(builder.load(w_v, align=4))
                new = []
                for r in range(rows):
                    a_rk = builder.load(at(a_rows, builder.mul(_const(r), lda), k))
                    a_vec = builder.shuffle_vector(
                        builder.insert_element(undef, a_rk, ir.Constant(ir.IntType(32), 0)),
                        undef,
                        splat,
                    )  # a[r0 + r, k] in every lane
                    for i, w in enumerate(w_k):
                        new.append(builder.call(fma, [a_vec, w, acc[r * width + i]]))
                k_next = builder.add(k, _const(1))
                k.add_incoming(_const(0), entry)
                k.add_incoming(k_next, loop)
                for phi, value in zip(acc, new, strict=True):
                    phi.add_incoming(ir.Constant(vec, [0.0] * lanes), entry)
                    phi.add_incoming(value, loop)
                builder.cbranch(builder.icmp_signed("<", k_next, K), loop, done)

                builder.position_at_end(done)
                for r in range(rows):
                    row = builder.add(r0, _const(r))
                    o_r = at(o_arr.data, builder.mul(row, N), builder.mul(p, _const(PANEL)))
                    for i in range(width):
                        o_v = builder.bitcast(builder.gep(o_r, [_const(i * lanes)]), as_vec)
                        builder.store(new[r * width + i], o_v, align=4)
                return context.get_dummy_value()

            return types.void(a, panels, out, types.int64, types.int64), codegen

        return tile

    _tile6, _tile4, _tile3, _tile2, _tile1 = (_make_tile(r) for r in (6, 4, 3, 2, 1))
    # AVX-512: two panels (32 columns) a tile, one zmm per panel and row: 12 rows keep 24
    # of the 32 registers as accumulators, and each broadcast of a[r, k] feeds two FMAs.
    _wide12, _wide8, _wide4, _wide2, _wide1 = (_make_tile(r, 16, 2) for r in (12, 8, 4, 2, 1))

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _panel_rows(a, panels, out, r_start, r_end, p):
        """out[r_start:r_end, 16p:16p+16] = a[r_start:r_end] @ panel p, tiles of 6, 4, 3, 2, 1 rows
        (8 as 4 + 4: 2 rows keep too few FMAs in flight). Any tile: each sum over k in order."""
        r, n = r_start, r_end - r_start
        sixes = n // 6 - (1 if n % 6 == 2 and n > 6 else 0)  # ... 6 + 2 rows run as 4 + 4
        for _ in range(sixes):
            _tile6(a, panels, out, r, p)
            r += 6
        while r + 4 <= r_end:
            _tile4(a, panels, out, r, p)
            r += 4
        if r + 3 <= r_end:
            _tile3(a, panels, out, r, p)
            r += 3
        while r + 2 <= r_end:
            _tile2(a, panels, out, r, p)
            r += 2
        while r < r_end:
            _tile1(a, panels, out, r, p)
            r += 1

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _panel_pair_rows(a, panels, out, r_start, r_end, p):
        """_panel_rows for panels p and p + 1 at once, AVX-512 tiles of 12, 8, 4, 2, 1 rows
        (16 as 8 + 8: 4 rows keep too few FMAs in flight)."""
        r, n = r_start, r_end - r_start
        twelves = n // 12 - (1 if n % 12 == 4 and n > 12 else 0)  # ... 12 + 4 rows run as 8 + 8
        for _ in range(twelves):
            _wide12(a, panels, out, r, p)
            r += 12
        if r + 8 <= r_end:
            _wide8(a, panels, out, r, p)
            r += 8
        if r + 8 <= r_end:
            _wide8(a, panels, out, r, p)
            r += 8
        if r + 4 <= r_end:
            _wide4(a, panels, out, r, p)
            r += 4
        if r + 2 <= r_end:
            _wide2(a, panels, out, r, p)
            r += 2
        if r < r_end:
            _wide1(a, panels, out, r, p)

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _block_rows(a, panels, out, r_start, r_end, wide):
        """out[r_start:r_end] over every panel: by pairs of panels in zmm tiles if ``wide``.
        Either way each element is the same chain of FMAs over k in order: bit for bit equal."""
        P = panels.shape[0]
        p = 0
        if wide:
            while p + 2 <= P:
                _panel_pair_rows(a, panels, out, r_start, r_end, p)
                p += 2
        while p < P:
            _panel_rows(a, panels, out, r_start, r_end, p)
            p += 1

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _matmul_packed_jit(a, panels, out):
        M = a.shape[0]
        if a.shape[1] == 0:  # the tiles run k from 0 at least once
            out[:] = 0
            return
        for r_start in range(0, M, ROW_BLOCK):  # rows of a in blocks that stay in L2
            _block_rows(a, panels, out, r_start, min(M, r_start + ROW_BLOCK), WIDE)

    @numba.njit(cache=True, boundscheck=False, nogil=True, parallel=True)
    def _matmul_packed_par(a, panels, out, threads):
        """_matmul_packed_jit, rows split over threads (as the LSTM loop splits a step's
        product and gates); each element the same tile's sum: one thread's, bit for bit."""
        M = a.shape[0]
        if a.shape[1] == 0:
            out[:] = 0
            return
        chunks = _threads.row_chunks(M, threads, ROW_BLOCK)
        for k in numba.prange(chunks):
            r0, r1 = _threads.share(k, chunks, M)
            for r_start in range(r0, r1, ROW_BLOCK):
                _block_rows(a, panels, out, r_start, min(r1, r_start + ROW_BLOCK), WIDE)

    @numba.njit(cache=True, boundscheck=False, nogil=True, parallel=True)
    def _step_products_split(a, panels, out, n, threads):
        """n products out = a @ wᵀ with a's rows shared over threads, each thread making its
        n in a row: a packed time loop's products as the loop runs them (the route probe)."""
        chunks = _threads.batch_chunks(a.shape[0], threads)
        for k in numba.prange(chunks):
            r0, r1 = _threads.share(k, chunks, a.shape[0])
            for _ in range(n):
                _matmul_packed_jit(a[r0:r1], panels, out[r0:r1])

    def _step_product(a, panels, rows, out):  # pragma: no cover - the overload replaces it
        """out = a @ wᵀ inside a compiled loop: by ``rows`` (w) if it has rows, else ``panels``."""

    @numba.extending.overload(_step_product)
    def _step_product_impl(a, panels, rows, out):
        if a.dtype != types.float32:  # the packed tiles are float32 only
            return lambda a, panels, rows, out: _dot_rows(a, rows, out, 0, rows.shape[0])

        def impl(a, panels, rows, out):
            if rows.shape[0]:
                _dot_rows(a, rows, out, 0, rows.shape[0])
            else:
                _matmul_packed_jit(a, panels, out)

        return impl

    def _step_product_par(a, panels, rows, out, chunks):  # pragma: no cover - overloaded
        """_step_product with the columns of out split over ``chunks`` threads."""

    @numba.extending.overload(_step_product_par)
    def _step_product_par_impl(a, panels, rows, out, chunks):
        if a.dtype != types.float32:
            return lambda a, panels, rows, out, chunks: _dot_par(a, rows, out, chunks)

        def impl(a, panels, rows, out, chunks):
            if rows.shape[0]:
                _dot_par(a, rows, out, chunks)
            else:
                _matmul_packed_par(a, panels, out, chunks)

        return impl


def matmul_packed(a: np.ndarray, panels: np.ndarray, out: np.ndarray, parallel=False) -> None:
    """out (M, N) = a (M, K) @ wᵀ, with ``panels = pack(w)``; float32, out C-contiguous,
    a's rows contiguous (any row stride). ``parallel``: rows split over bptt's threads."""
    if parallel:
        _matmul_packed_par(a, panels, out, compiled_threads())
    else:
        _matmul_packed_jit(a, panels, out)


def _rows_contiguous(*arrays: np.ndarray) -> bool:
    return all(x.strides[-1] == x.itemsize for x in arrays)


def project(a: np.ndarray, w: np.ndarray, out: np.ndarray, kind: str = "proj") -> str:
    """out (M, N) = a (M, K) @ wᵀ over all steps at once, by the measured route; returns it.

    ``kind`` names the product for the route probe: "proj" (the input projection)
    or "dx" (∂E/∂x). Routes: "blas" (np.matmul, BLAS at bptt's thread count),
    "packed" (pack w, the compiled kernel) or, for one to three rows, "dot" (w's rows
    read in place), each on one thread or, as "packed_mt" and "dot_mt", split over
    bptt's threads (a's rows, w's rows): whether the threads pay is measured, not assumed.
    """
    (M, K), N = a.shape, w.shape[0]
    mt = get_num_threads() > 1 and compiled_threads() > 1
    if usable(w.dtype, N, M) and _rows_contiguous(a):
        applies = ("packed", "blas", *(("packed_mt",) if mt else ()))
    elif dot_usable(w.dtype, M) and _rows_contiguous(a, w) and w.flags.c_contiguous:
        applies = ("blas", "dot", *(("dot_mt",) if mt else ()))
    else:
        applies = ("blas",)

    def run(route, a_r, out_r):
        if route.startswith("packed"):
            matmul_packed(a_r, pack(w), out_r, route == "packed_mt")
        elif route.startswith("dot"):
            matmul_dot(a_r, w, out_r, route == "dot_mt")
        else:
            np.matmul(a_r, w.T, out=out_r)

    def candidates():
        rows = _routes.probe_rows(M, K, N)
        a_p, out_p = a[:rows], np.empty((rows, N), dtype=out.dtype)  # (rows, N)

        def runs(route):
            return lambda n: [run(route, a_p, out_p) for _ in range(n)]

        return {r: runs(r) for r in applies}

    route = _routes.choose(kind, w.dtype, M, K, N, candidates, applies)
    run(route, a, out)
    return route


def weight_grad(g: np.ndarray, x: np.ndarray, contiguous: bool = True) -> np.ndarray:
    """Σ over rows of g_rowᵀ x_row: (N, K) = g (M, N)ᵀ @ x (M, K), by the measured orientation.

    Routes (kind "dw"): "gx" computes g.T @ x; "xg" computes (x.T @ g) and
    transposes it (a copy if ``contiguous``, else a view). The same sums either
    way, up to their order.
    """
    (M, N), K = g.shape, x.shape[1]

    def candidates():
        rows = _routes.probe_rows(M, K, N)
        g_p, x_p = g[:rows], x[:rows]
        out_gx = np.empty((N, K), dtype=g.dtype)  # (N, K)
        out_xg = np.empty((K, N), dtype=g.dtype)  # (K, N)

        def gx(n):
            for _ in range(n):
                np.matmul(g_p.T, x_p, out=out_gx)

        def xg(n):
            for _ in range(n):
                np.matmul(x_p.T, g_p, out=out_xg)

        return {"gx": gx, "xg": xg}

    route = _routes.choose("dw", g.dtype, M, K, N, candidates, _routes.ROUTES["dw"])
    if route == "xg":
        d_w = (x.T @ g).T  # (N, K) a view of (K, N)
        return np.ascontiguousarray(d_w) if contiguous else d_w
    return g.T @ x  # (N, K)


class StepProduct:
    """``product(a, out)``: out (rows, N) = a (rows, K) @ wᵀ, for a sequence's per-step products.

    The route (kind "step") is measured per shape and thread count: "packed"
    or "packed_mt" pack w (N, K) once into ``panels`` (the compiled kernel, on one
    thread or with the batch rows split over all); for one to three rows (generation,
    streaming, B = 1 inference) "dot" and "dot_mt" read w's rows in place (``rows``,
    a contiguous copy only when w is a transposed view); "blas" and "blas_mt" call
    ``np.matmul`` on the transposed view each step (BLAS at one thread inside
    the loop, or at bptt's count; see :func:`bptt.functional.fast._threads.step_threads`).
    The packed kernel needs float32, N a multiple of 16, >= 4 rows and enough
    steps to repay the packing (MIN_STEPS); "dot" float32 or float64.

    ``compiled``: the route is one of the compiled kernels, which the time loops
    call from their own compiled loop (``panels`` and ``rows`` then hold the
    weight, the unused one an empty placeholder); ``parallel``: split over threads.
    """

    def __init__(self, w: np.ndarray, rows: int, steps: int) -> None:
        N, K = w.shape
        packable = steps >= MIN_STEPS and usable(w.dtype, N, rows)
        dottable = dot_usable(w.dtype, rows) and (w.flags.c_contiguous or steps >= MIN_STEPS)
        threads = get_num_threads()
        par = threads > 1 and compiled_threads() > 1
        mt = ("blas_mt",) if threads > 1 else ()  # BLAS at every thread
        if packable:
            applies = ("packed", "blas", *(("packed_mt",) if par else ()), *mt)
        elif dottable:
            applies = ("blas", "dot", *(("dot_mt",) if par else ()), *mt)
        else:
            applies = ("blas", *mt)

        def candidates():
            a = np.random.default_rng(0).standard_normal((rows, K)).astype(w.dtype)  # (rows, K)
            out = np.empty((rows, N), dtype=w.dtype)  # (rows, N)
            w_t = w.T
            panels = pack(w) if packable else None
            w_rows = np.ascontiguousarray(w) if dottable else None  # (N, K)

            def blas(n, route="blas"):
                with step_threads(route):
                    for _ in range(n):
                        np.matmul(a, w_t, out=out)

            def packed(n, par=False):
                if par:  # one region for all n, as the time loop runs them
                    _step_products_split(a, panels, out, n, compiled_threads())
                    return
                for _ in range(n):
                    matmul_packed(a, panels, out)

            def dot(n, par=False):
                for _ in range(n):
                    matmul_dot(a, w_rows, out, par)

            return {
                "blas": blas,
                "blas_mt": lambda n: blas(n, "blas_mt"),
                "packed": packed,
                "packed_mt": lambda n: packed(n, True),
                "dot": dot,
                "dot_mt": lambda n: dot(n, True),
            }

        self.route = _routes.choose("step", w.dtype, rows, K, N, candidates, applies)
        self.parallel = self.route in ("packed_mt", "dot_mt")
        self.compiled = self.route not in ("blas", "blas_mt")
        packed_route = self.route in ("packed", "packed_mt")
        dot_route = self.route in ("dot", "dot_mt")
        # (N/16, K, 16) and (N, K), or (0, K, 16) and (0, K) placeholders
        self.panels = pack(w) if packed_route else np.empty((0, K, PANEL), dtype=w.dtype)
        self.rows = np.ascontiguousarray(w) if dot_route else np.empty((0, K), dtype=w.dtype)
        self.w_t = w.T  # (K, N) a view

    def __call__(self, a: np.ndarray, out: np.ndarray) -> None:
        if self.route == "packed_mt":
            _matmul_packed_par(a, self.panels, out, compiled_threads())
        elif self.route == "packed":
            _matmul_packed_jit(a, self.panels, out)
        elif self.compiled:
            matmul_dot(a, self.rows, out, self.parallel)
        else:
            np.matmul(a, self.w_t, out=out)
