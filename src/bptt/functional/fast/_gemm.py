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

Layout: :func:`pack` turns w (N, K) into panels (⌈N/16⌉, K, 16), the layout the
register tiles of :mod:`bptt.functional.fast._tiles` read. :func:`matmul_packed`
walks the rows of ``a`` in blocks of 48 (which stay in L2) and, within a block,
the panels, a tile of rows at a time.

The sums run over k in order, so results differ from BLAS only by float32
rounding (BLAS splits k into blocks). Used only for float32 and numba present
(:func:`usable`); everything else takes ``np.matmul``.

Shapes: a (M, K), rows contiguous (any row stride); w (N, K); out (M, N) C-contiguous.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast import _routes, _team, _threads
from bptt.functional.fast._dot import DOT_ROWS, _dot_par, _dot_rows, dot_usable, matmul_dot
from bptt.functional.fast._jit import JIT, numba
from bptt.functional.fast._threads import compiled_threads, get_num_threads, step_threads
from bptt.functional.fast._tiles import PANEL, ROW_BLOCK, WIDE

MIN_STEPS = 8  # packing costs about two products; below this many steps BLAS is as fast
PROBE_RUN = 32  # products in a row per call of the step probe (fewer if the sequence is shorter)


def usable(dtype, n_columns: int, rows: int) -> bool:
    """True when the compiled product applies: float32, a few rows.

    With fewer than 4 rows a tile has too few independent sums to hide the FMA
    latency, and BLAS's matrix-vector path does as well. Any N: a last panel of
    fewer than 16 columns is zero-padded (see :func:`pack`).
    """
    return JIT and dtype == np.float32 and n_columns >= 1 and rows >= 4


def thin_usable(dtype, n_columns: int, rows: int) -> bool:
    """True when the packed kernel's tiles of one to three rows apply (AVX-512, float32):
    eight panels a tile keep 8 FMA chains in flight even at one row."""
    return JIT and WIDE and dtype == np.float32 and n_columns >= 1 and 1 <= rows < 4


def pack(w: np.ndarray) -> np.ndarray:
    """w (N, K) -> panels (⌈N/16⌉, K, 16), the layout :func:`matmul_packed` reads.

    Where N is not a multiple of 16 the last panel's missing columns are zero; the
    kernel computes them and does not store them (a GRU's 3H = 300 columns, an RNN's
    H = 200: BLAS made those per-step products at 15-25 GFLOP/s on an AMD EPYC).
    From w's rows the copy is a transpose, compiled and with the panels shared over
    bptt's threads where there are several (1 MiB: about 100 µs on one core here,
    as NumPy's strided copy takes); from a transposed view, runs of 16 copied by NumPy."""
    N, K = w.shape
    P = -(-N // PANEL)  # panels, the last one padded
    if w.T.flags.c_contiguous or not JIT:  # runs of 16 from wᵀ (K, N), zero-padded
        w_t = w.T if N == P * PANEL else np.pad(w.T, ((0, 0), (0, P * PANEL - N)))
        return np.ascontiguousarray(w_t.reshape(K, P, PANEL).transpose(1, 0, 2))
    panels = np.empty((P, K, PANEL), dtype=w.dtype)  # (⌈N/16⌉, K, 16)
    threads = compiled_threads() if get_num_threads() > 1 else 1
    if threads > 1 and P > 1:
        _pack_par(w, panels, threads)
    else:
        _pack_rows(w, panels, 0, P)
    return panels


if numba is not None:
    from numba import types

    from bptt.functional.fast._tiles import _block_rows

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _pack_rows(w, panels, p0, p1):
        """panels[p] = w[16p:16p+16]ᵀ for panels p0:p1: each row of w read once, in order;
        the columns of a last panel past w's N rows are zero."""
        for p in range(p0, p1):
            filled = min(PANEL, w.shape[0] - PANEL * p)
            for i in range(filled):
                for k in range(w.shape[1]):
                    panels[p, k, i] = w[PANEL * p + i, k]
            if filled < PANEL:
                panels[p, :, filled:] = 0

    @numba.njit(cache=True, boundscheck=False, nogil=True, parallel=True)
    def _pack_par(w, panels, threads):
        """_pack_rows with the panels shared over ``threads``."""
        P = panels.shape[0]
        chunks = min(threads, P)
        for j in numba.prange(chunks):
            p0, p1 = _threads.share(j, chunks, P)
            _pack_rows(w, panels, p0, p1)

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

    @numba.njit(cache=True, nogil=True)
    def _python_step(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out):
        """Nothing: a gate kernel's call as a Python time loop makes it, for the probe."""

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
    The packed kernel needs float32, N a multiple of 16, >= 4 rows (1 to 3 where the CPU
    has AVX-512: :func:`thin_usable`) and enough steps to repay the packing (MIN_STEPS);
    "dot" float32 or float64. The probe charges the packed routes their share of the
    packing, one pack a sequence: at one row a pack costs as much as a dozen products.

    ``groups``: the caller's time loop can run as a team (:mod:`._team`; one to three
    rows, several threads): out's N columns are ``groups`` blocks of N/groups units
    (a cell's gates) and each thread takes the same units of every block, the product
    by "dot" (N/groups a multiple of 8) or "packed" (of 16, AVX-512), routes
    "dot_team" and "packed_team". 0: the loop cannot.

    ``compiled``: the route is one of the compiled kernels, which the time loops
    call from their own compiled loop (``panels`` and ``rows`` then hold the
    weight, the unused one an empty placeholder); ``parallel``: split over threads
    each step or once for the batch rows; ``team``: a team route.
    """

    def __init__(self, w: np.ndarray, rows: int, steps: int, groups: int = 0) -> None:
        N, K = w.shape
        packable = steps >= MIN_STEPS and usable(w.dtype, N, rows)
        thin = steps >= MIN_STEPS and thin_usable(w.dtype, N, rows)  # packed, 1 to 3 rows
        dottable = dot_usable(w.dtype, rows) and (w.flags.c_contiguous or steps >= MIN_STEPS)
        threads = get_num_threads()
        par = threads > 1 and compiled_threads() > 1
        mt = ("blas_mt",) if threads > 1 else ()  # BLAS at every thread
        units = N // groups if groups and N % groups == 0 else 0
        team = (
            *(("dot_team",) if par and dottable and units % DOT_ROWS == 0 else ()),
            *(("packed_team",) if par and thin and units % PANEL == 0 else ()),
        ) if units else ()  # fmt: skip
        if packable:
            applies = ("packed", "blas", *(("packed_mt",) if par else ()), *mt)
        elif dottable:
            applies = (
                "blas",
                "dot",
                *(("packed",) if thin else ()),
                *(("dot_mt",) if par else ()),
                *team,
                *mt,
            )
        else:
            applies = ("blas", *mt)

        def candidates():
            a = np.random.default_rng(0).standard_normal((rows, K)).astype(w.dtype)  # (rows, K)
            out = np.empty((rows, N), dtype=w.dtype)  # (rows, N)
            w_t = w.T
            panels = pack(w) if packable or thin else None
            w_rows = np.ascontiguousarray(w) if dottable else None  # (N, K)

            def blas(n, route="blas"):
                # The BLAS routes run the time loop from Python: each step also slices the
                # histories and calls the gate kernel (about 1 µs a step here), which the
                # compiled routes' loop does not. A compiled route that computes the
                # product a little slower than BLAS can still make the faster loop.
                hist = np.empty((2, *out.shape), dtype=out.dtype)  # (2, rows, N)
                with step_threads(route):
                    for _ in range(n):
                        np.matmul(a, w_t, out=out)
                        if JIT:
                            _python_step(out, out, out[0], hist[0], hist[1], hist[0, 0],
                                         hist[1], hist[0], hist[1])  # fmt: skip

            def packing(n):
                """The packing n of a sequence's ``steps`` products pay: whole packs of w,
                then a share of its panels (packing costs about the same per panel)."""
                n_panels = -(-N // PANEL)
                share = n * n_panels // steps  # panels
                for _ in range(share // n_panels):
                    pack(w)
                if share % n_panels:
                    pack(w[: PANEL * (share % n_panels)])

            def packed(n, par=False):
                packing(n)  # at one row a pack costs about 13 products (1 MiB weight)
                if par:  # one region for all n, as the time loop runs them
                    _step_products_split(a, panels, out, n, compiled_threads())
                    return
                for _ in range(n):
                    matmul_packed(a, panels, out)

            def dot(n, par=False):
                for _ in range(n):
                    matmul_dot(a, w_rows, out, par)

            def teams(n, route):
                """n products in one team region, each thread its units of every group."""
                threads = compiled_threads()
                if route == "packed_team":
                    packing(n)
                    w_p, w_r = panels, np.empty((0, K), dtype=w.dtype)
                else:
                    w_p, w_r = np.empty((0, K, PANEL), dtype=w.dtype), w_rows
                flags = _team.flags(n, threads)
                _team.team_products(a, w_p, w_r, out, n, threads, groups, flags)

            # A probe call makes `run` products in a row, as the time loop makes a sequence's
            # products: packed_mt's loop opens one parallel region for all its steps, and
            # timed one product a region it paid the threads' wake-up each time (measured
            # at 2 threads, (32, 128) @ (128, 512): 87 µs a product against 36 on one
            # thread, while a region of 100 ran twice as fast as one thread).
            run = min(steps, PROBE_RUN)
            routes = {
                "blas": blas,
                "blas_mt": lambda n: blas(n, "blas_mt"),
                "packed": packed,
                "packed_mt": lambda n: packed(n, True),
                "dot": dot,
                "dot_mt": lambda n: dot(n, True),
                "dot_team": lambda n: teams(n, "dot_team"),
                "packed_team": lambda n: teams(n, "packed_team"),
            }
            return {name: (lambda n, f=f: f(n * run)) for name, f in routes.items()}

        self.route = _routes.choose("step", w.dtype, rows, K, N, candidates, applies)
        self.parallel = self.route in ("packed_mt", "dot_mt")
        self.team = self.route in ("dot_team", "packed_team")
        self.compiled = self.route not in ("blas", "blas_mt")
        packed_route = self.route in ("packed", "packed_mt", "packed_team")
        dot_route = self.route in ("dot", "dot_mt", "dot_team")
        # (⌈N/16⌉, K, 16) and (N, K), or (0, K, 16) and (0, K) placeholders
        self.panels = pack(w) if packed_route else np.empty((0, K, PANEL), dtype=w.dtype)
        self.rows = np.ascontiguousarray(w) if dot_route else np.empty((0, K), dtype=w.dtype)
        self.w_t = w.T  # (K, N) a view

    def __call__(self, a: np.ndarray, out: np.ndarray) -> None:
        if self.route == "packed_mt":
            _matmul_packed_par(a, self.panels, out, compiled_threads())
        elif self.route in ("packed", "packed_team"):
            _matmul_packed_jit(a, self.panels, out)
        elif self.compiled:
            matmul_dot(a, self.rows, out, self.route == "dot_mt")
        else:
            np.matmul(a, self.w_t, out=out)
