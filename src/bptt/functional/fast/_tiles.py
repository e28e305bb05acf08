"""The register tiles of the packed product ``out = a @ wᵀ`` (float32, compiled), in LLVM IR.

Layout (:func:`bptt.functional.fast._gemm.pack`): w (N, K) as panels (⌈N/16⌉, K, 16):
panel p holds columns 16p .. 16p+15 of wᵀ, one row of 16 per k, so a tile reads
each panel front to back. A tile multiplies up to 6 rows of ``a`` by a panel,
keeping the 6 × 16 block of ``out`` in twelve 8-wide vector registers (the classic
AVX2 tile: 12 accumulators + 2 weight vectors + 1 broadcast fill the 16 registers)
and storing it once at the end. Each k adds a[r, k] · panel[k, :] with
``llvm.fmuladd``, which becomes an FMA where the CPU has one. Where the CPU has
AVX-512 (:data:`WIDE`), tiles take two panels at once in 16-wide vectors: up to
12 rows × 32 columns in 24 of the 32 zmm registers, each broadcast of a[r, k]
feeding two FMAs. An Intel core's ymm FMAs reach only half its peak (AMD's Zen 4
runs a zmm FMA as two ymm halves, at the same rate): on an Intel Xeon with AVX-512
(2 cores, 2026-12-06) the narrow tiles ran (32, 128) @ (128, 512) at 88 GFLOP/s,
the wide ones at 140-162; ``python benchmarks/gemm_step.py`` then gave, median
over 200 rounds, packed against BLAS: lstm-a forward 136 against 61 GFLOP/s,
lstm-b forward 132 against 84, lstm-c forward 92 against 36.

Whatever the tile, each element of ``out`` is one chain of FMAs over k in order,
so every tile shape gives the same bits. Shapes: a (M, K), rows contiguous (any
row stride); panels (⌈N/16⌉, K, 16); out (M, N) C-contiguous.
"""

from __future__ import annotations

import functools

import numpy as np

from bptt.functional.fast._jit import numba

PANEL = 16  # columns per panel: two 8-wide or one 16-wide float32 vector
THIN = 8  # panels a tile of one to three rows takes at once (AVX-512)
ROW_BLOCK = 48  # rows of a per block in a large product: 48 x K floats stay in L2


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
    # AVX-512, one to three rows (B = 1 inference, a short batch's last rows): eight panels
    # (128 columns) a tile, so even one row keeps 8 FMA chains in flight, where a pair tile
    # has 2 and waits on the FMA's latency.
    _thin3, _thin2, _thin1 = (_make_tile(r, 16, THIN) for r in (3, 2, 1))

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
        (16 as 8 + 8: 4 rows keep too few FMAs in flight). The same walk as _panel_rows
        over other tiles: a tile is an intrinsic, which numba will not take as an argument."""
        r, n = r_start, r_end - r_start
        twelves = n // 12 - (1 if n % 12 == 4 and n > 12 else 0)  # ... 12 + 4 rows run as 8 + 8
        for _ in range(twelves):
            _wide12(a, panels, out, r, p)
            r += 12
        while r + 8 <= r_end:  # once, or twice for the 8 + 8
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
        """out[r_start:r_end] over every panel (:func:`_block_panels`). Where out's N is not
        a multiple of 16, the last panel (zero-padded by ``pack``) goes to a scratch block
        of 16 columns, since a tile stores whole panels, and its first N % 16 are copied."""
        full = out.shape[1] // PANEL
        _block_panels(a, panels, out, r_start, r_end, wide, 0, full)
        if full < panels.shape[0]:
            n, c0 = r_end - r_start, PANEL * full
            edge = np.empty((n, PANEL), dtype=out.dtype)  # (rows, 16)
            _block_panels(a[r_start:r_end], panels[full:], edge, 0, n, wide, 0, 1)
            out[r_start:r_end, c0:] = edge[:, : out.shape[1] - c0]

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _block_panels(a, panels, out, r_start, r_end, wide, p0, p1):
        """out[r_start:r_end] over panels p0:p1 (columns 16 p0 .. 16 p1): by pairs of
        panels in zmm tiles if ``wide`` (and eight at a time first for fewer than four
        rows). Either way each element is the same chain of FMAs over k in order: bit for
        bit equal, whichever tile or panel range computes it."""
        p = p0
        n = r_end - r_start
        if wide and n < 4:  # a few rows: eight panels a tile, then pairs and singles
            while p + THIN <= p1:
                if n == 3:
                    _thin3(a, panels, out, r_start, p)
                elif n == 2:
                    _thin2(a, panels, out, r_start, p)
                else:
                    _thin1(a, panels, out, r_start, p)
                p += THIN
        if wide:
            while p + 2 <= p1:
                _panel_pair_rows(a, panels, out, r_start, r_end, p)
                p += 2
        while p < p1:
            _panel_rows(a, panels, out, r_start, r_end, p)
            p += 1
