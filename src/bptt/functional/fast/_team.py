"""A team of threads running a time loop together, one step at a time, in one parallel region.

At one to three rows (B = 1 inference, streaming) a step is one small product and
a few gates: about 10 µs on one core. Split over threads, each step needs every
thread's part of h_t before any can start step t + 1. Opening a parallel region a
step (the "dot_mt" route) costs about what the step does; this module keeps one
region open for the whole loop and has the threads meet at each step instead, by
spinning on a shared counter, as ONNX Runtime's LSTM does.

A plain spin barrier can hang: numba's pool may run the region's chunks one after
another (one thread left to this caller, a nested call), and then the first chunk
waits for a second that never starts. So no thread ever waits for a part of a step
that nobody has started: each step is cut into ``parts`` (one per thread), a thread
*claims* a part (an atomic add on its flag; the first to add owns it) before it
computes it, and it claims every part of the step it can, its own first, then
waits only for parts another thread claimed and is computing. Alone, a thread
computes every part of every step; two threads each keep their own part step after
step (the same weight rows stay in each core's L2). Which thread computes a part
never changes its numbers: every element is computed by the same code.

The team's products: part j of a step's product computes the columns of its units in
each gate (:func:`part_product`), by the dot kernel in runs of 8 units (the blocks
the one-thread walk makes, so the sums are the same) or the packed kernel a panel
(16 units) at a time.

The flags: one int64 array (T, (parts + 1) * LINE) per call, zeroed, a cache line per
part's claim and one for the step's count of finished parts (threads spinning on one
line do not slow the writes to another).
"""

from __future__ import annotations

import platform

import numpy as np

from bptt.functional.fast._dot import DOT_ROWS
from bptt.functional.fast._jit import numba
from bptt.functional.fast._tiles import PANEL, ROW_BLOCK, WIDE

LINE = 8  # int64 flags a cache line (64 bytes)
SPINS = 2000  # spins on a part before each wait also yields the core (an oversubscribed machine)


def flags(steps: int, parts: int) -> np.ndarray:
    """Zeroed flags for a team loop of ``steps`` steps of ``parts`` parts:
    (steps, (parts + 1) * LINE) int64, the claims, then the count of finished parts."""
    return np.zeros((steps, (parts + 1) * LINE), dtype=np.int64)


if numba is not None:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    from bptt.functional.fast._dot import _dot_rows
    from bptt.functional.fast._tiles import _block_panels

    _X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

    def _flag_pointer(context, builder, signature, args):
        """&flags[t, k] from an intrinsic's arguments (flags, t, k)."""
        aryty, t_ty, k_ty = signature.args
        ary_v, t_v, k_v = args
        t_v = context.cast(builder, t_v, t_ty, types.intp)
        k_v = context.cast(builder, k_v, k_ty, types.intp)
        array = context.make_array(aryty)(context, builder, ary_v)
        return cgutils.get_item_pointer(context, builder, aryty, array, [t_v, k_v])

    @intrinsic
    def _fetch_add(typingctx, ary, t, k):
        """flags[t, k] += 1 as one atomic step (sequentially consistent); the old value."""
        sig = types.int64(ary, t, k)

        def codegen(context, builder, signature, args):
            ptr = _flag_pointer(context, builder, signature, args)
            one = ir.Constant(ir.IntType(64), 1)
            return builder.atomic_rmw("add", ptr, one, "seq_cst")

        return sig, codegen

    @intrinsic
    def _load(typingctx, ary, t, k):
        """flags[t, k] read as an atomic load (acquire): never hoisted out of a spin."""
        sig = types.int64(ary, t, k)

        def codegen(context, builder, signature, args):
            ptr = _flag_pointer(context, builder, signature, args)
            return builder.load_atomic(ptr, "acquire", 8)

        return sig, codegen

    @intrinsic
    def _pause(typingctx):
        """The CPU's spin-wait hint (x86 ``pause``), nothing elsewhere."""
        sig = types.void()

        def codegen(context, builder, signature, args):
            if _X86:  # an LLVM intrinsic: numba's JIT takes no inline assembly
                fnty = ir.FunctionType(ir.VoidType(), [])
                fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
                builder.call(fn, [])
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def _yield(typingctx):
        """The C library's ``sched_yield``: let another thread have this core."""
        sig = types.void()

        def codegen(context, builder, signature, args):
            fnty = ir.FunctionType(ir.IntType(32), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
            return context.get_dummy_value()

        return sig, codegen

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def claim(flags, t, j):
        """Whether this thread now owns part j of step t (nobody claimed it before)."""
        return _fetch_add(flags, t, LINE * j) == 0

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def finish(flags, t):
        """Part of step t finished: its results are written (the add orders them first)."""
        _fetch_add(flags, t, flags.shape[1] - LINE)

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def wait(flags, t, parts):
        """Until every part of step t is finished; call after claiming every part you can."""
        spins = 0
        while _load(flags, t, flags.shape[1] - LINE) < parts:
            _pause()
            spins += 1
            if spins > SPINS:
                _yield()

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def part_span(units, j, parts, align):
        """Units u0:u1 of part j: whole runs of ``align`` units (the last may be short),
        shared as evenly as the runs allow."""
        runs = (units + align - 1) // align
        u0, u1 = align * (j * runs // parts), align * ((j + 1) * runs // parts)
        return min(units, u0), min(units, u1)

    def part_product(a, panels, rows, out, j, parts, groups):  # pragma: no cover - overloaded
        """Part j of ``parts`` of out = a @ wᵀ for a team: the columns of
        its units u0:u1 in each of ``groups`` blocks of N/groups (a cell's gates), by
        ``rows`` (the dot kernel, runs of 8 units, as the one-thread walk makes its
        blocks) or ``panels`` (16 units a panel); returns u0, u1."""

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _part_dot(a, rows, out, j, parts, groups):
        """part_product by the dot kernel."""
        units = out.shape[1] // groups
        u0, u1 = part_span(units, j, parts, DOT_ROWS)
        for g in range(groups):
            _dot_rows(a, rows, out, g * units + u0, g * units + u1)
        return u0, u1

    @numba.extending.overload(part_product)
    def part_product_impl(a, panels, rows, out, j, parts, groups):
        if a.dtype != types.float32:  # the packed tiles are float32 only
            return lambda a, panels, rows, out, j, parts, groups: _part_dot(
                a, rows, out, j, parts, groups
            )

        def impl(a, panels, rows, out, j, parts, groups):
            if rows.shape[0]:
                return _part_dot(a, rows, out, j, parts, groups)
            return part_panels(a, panels, out, j, parts, groups)

        return impl

    def part_panels(a, panels, out, j, parts, groups):  # pragma: no cover - overloaded
        """part_product by the packed kernel, any number of rows (in blocks of ROW_BLOCK);
        float32 only (for another dtype it does nothing: no packed route takes one)."""

    @numba.extending.overload(part_panels)
    def part_panels_impl(a, panels, out, j, parts, groups):
        if a.dtype != types.float32:
            return lambda a, panels, out, j, parts, groups: (0, 0)
        return lambda a, panels, out, j, parts, groups: _part_panels_f32(
            a, panels, out, j, parts, groups
        )

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def _part_panels_f32(a, panels, out, j, parts, groups):
        units = out.shape[1] // groups
        u0, u1 = part_span(units, j, parts, PANEL)
        M = a.shape[0]
        for g in range(groups):
            p0, p1 = (g * units + u0) // PANEL, (g * units + u1) // PANEL
            for r in range(0, M, ROW_BLOCK):
                _block_panels(a, panels, out, r, min(M, r + ROW_BLOCK), WIDE, p0, p1)
        return u0, u1

    @numba.njit(cache=True, boundscheck=False, nogil=True, parallel=True)
    def team_products(a, panels, rows, out, n, threads, groups, flags):
        """n products out = a @ wᵀ as a team loop makes them, each thread its part of
        each, all meeting after each (the route probe of the team routes)."""
        for k in numba.prange(threads):
            for t in range(n):
                for q in range(threads):
                    j = (k + q) % threads
                    if claim(flags, t, j):
                        part_product(a, panels, rows, out, j, threads, groups)
                        finish(flags, t)
                wait(flags, t, threads)
