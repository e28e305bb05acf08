"""The cells' time loops: every step's product and gate kernel, compiled as one call when it can be.

A step is two calls: the recurrent product (:class:`bptt.functional.fast._gemm.StepProduct`)
and the fused gate kernel (:mod:`bptt.functional.fast._fused`). When the product's route
is compiled (packed: float32, B >= 4; dot: B < 4; numba present), both are compiled, so
the whole loop over T steps runs as one compiled function: no Python call, slice or
dispatch per step (measured at T = 200, B = 16, H = 256: a layer's loop went from
27-32 ms to 26-30). Otherwise the same loop runs from Python, step by step, with
``np.matmul``. Both give the same numbers to float32 rounding
(tests/functional/test_fused_kernels.py).

Shapes: T time steps, B batch, H hidden units; 4H the gates i, f, g, o.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast import _fused, _gemm, _team, _threads
from bptt.functional.fast._jit import numba
from bptt.functional.fast._threads import compiled_threads, step_threads

if numba is not None:
    # A step's gate kernel on the batch rows b0:b1: all of them on one thread, a share of
    # them on each of several. The backward's ``arrays``: gates, c, tanh_c, d_out (read),
    # dh_rec, carry, dc (B, H, carried from step to step), real, dz (out), keep_h, keep_c.

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _lstm_forward_rows(t, b0, b1, gates, rec, bias, h, c, tanh_c, real):
        z, r, m = gates[t, b0:b1], rec[b0:b1], real[t, b0:b1]  # (b, 4H), (b, 4H), (b,)
        c_prev, h_prev = c[t, b0:b1], h[t, b0:b1]  # (b, H) each
        c_out, tanh_c_out, h_out = c[t + 1, b0:b1], tanh_c[t, b0:b1], h[t + 1, b0:b1]
        _fused._lstm_forward_jit(z, r, bias, c_prev, h_prev, m, c_out, tanh_c_out, h_out)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _lstm_backward_rows(t, b0, b1, arrays, keep):
        gates, c, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c = arrays
        k, kb0, kb1 = (t + 1, b0, b1) if keep else (0, 0, 1)  # else the (1, 1, 1) placeholders
        z, c_prev, tc, d = gates[t, b0:b1], c[t, b0:b1], tanh_c[t, b0:b1], d_out[t, b0:b1]
        dh, cr, dcb, m, dz_t = dh_rec[b0:b1], carry[b0:b1], dc[b0:b1], real[t, b0:b1], dz[t, b0:b1]
        kh, kc = keep_h[k, kb0:kb1], keep_c[k, kb0:kb1]  # (b, H) each, or (1, 1)
        _fused._lstm_backward_jit(z, c_prev, tc, d, dh, cr, dcb, m, dz_t, kh, kc, keep)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _product(a, panels, rows, out, threads):
        """out = a @ wᵀ on ``threads`` (1: the one-thread kernel; more: the columns split)."""
        if threads > 1:
            _gemm._step_product_par(a, panels, rows, out, threads)
        else:
            _gemm._step_product(a, panels, rows, out)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _padded_product(a_t, panels, rows, out, b0, b1, real, t, threads):
        """out[b0:b1] = a_t[b0:b1] @ wᵀ for a backward step: the rows after the last real
        one are padding, their gradient a_t zero, so their product is zero without computing
        it (every cell's backward loop)."""
        e = _fused._rows_running(real, t, b0, b1)
        if e > b0:
            _product(a_t[b0:e], panels, rows, out[b0:e], threads)
        out[e:b1] = 0

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _lstm_forward_part(t, b0, b1, panels, rows, gates, rec, bias, h, c, tanh_c, real):
        """Step t of rows b0:b1, product and gate kernel; the rows after the last real one
        are padding there and carry their state."""
        e = _fused._rows_running(real, t, b0, b1)
        if e > b0:
            _gemm._step_product(h[t, b0:e], panels, rows, rec[b0:e])
            _lstm_forward_rows(t, b0, e, gates, rec, bias, h, c, tanh_c, real)
        _fused._lstm_skip_rows(t, e, b1, gates, h, c, tanh_c)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _lstm_forward_steps_jit(panels, rows, gates, rec, bias, h, c, tanh_c, real):
        step = (gates, rec, bias, h, c, tanh_c, real)
        for t in range(gates.shape[0]):  # the whole time loop compiled: no call per step
            _lstm_forward_part(t, 0, rec.shape[0], panels, rows, *step)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _lstm_backward_steps_jit(panels_t, rows_t, arrays, keep):
        dh_rec, dz = arrays[4], arrays[8]
        for t in range(dz.shape[0] - 1, -1, -1):  # the whole BPTT loop compiled
            _lstm_backward_rows(t, 0, dh_rec.shape[0], arrays, keep)
            _padded_product(dz[t], panels_t, rows_t, dh_rec, 0, dh_rec.shape[0], arrays[7], t, 1)

    # The same loops on several threads (routes "packed_mt", "dot_mt"). Packed (four rows or
    # more): a sequence's batch rows never meet, so each thread takes a share of them and
    # runs the whole time loop on its share, product and gate kernel, with no barrier
    # between steps (one parallel region a call, not one a step: at T = 100, B = 32,
    # H = 128 a step's region cost about as much as its product). Dot (one to three
    # rows): each step splits the product's gate columns, then the gate kernel the rows.
    # Every element is computed by the same code as on one thread: the numbers are equal.

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _lstm_forward_steps_par(panels, rows, gates, rec, bias, h, c, tanh_c, real, threads):
        B, T = rec.shape[0], gates.shape[0]
        if rows.shape[0] == 0:  # packed
            chunks = _threads.batch_chunks(B, threads)
            for k in numba.prange(chunks):  # rows b0:b1 of the batch, all T steps
                b0, b1 = _threads.share(k, chunks, B)
                for t in range(T):
                    step = (gates, rec, bias, h, c, tanh_c, real)
                    _lstm_forward_part(t, b0, b1, panels, rows, *step)
            return
        for t in range(T):
            n = _fused._rows_running(real, t, 0, B)
            chunks = min(threads, n)
            if n > 0:
                _gemm._step_product_par(h[t, :n], panels, rows, rec[:n], threads)
            if chunks == 1:  # one row: a parallel region would wake threads for nothing
                _lstm_forward_rows(t, 0, n, gates, rec, bias, h, c, tanh_c, real)
            elif chunks > 1:
                for k in numba.prange(chunks):
                    b0, b1 = _threads.share(k, chunks, n)
                    _lstm_forward_rows(t, b0, b1, gates, rec, bias, h, c, tanh_c, real)
            _fused._lstm_skip_rows(t, n, B, gates, h, c, tanh_c)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _lstm_backward_steps_par(panels_t, rows_t, arrays, keep, threads):
        dh_rec, dz = arrays[4], arrays[8]
        B, T = dh_rec.shape[0], dz.shape[0]
        if rows_t.shape[0] == 0:  # packed
            chunks = _threads.batch_chunks(B, threads)
            for j in numba.prange(chunks):  # rows b0:b1 of the batch, all T steps
                b0, b1 = _threads.share(j, chunks, B)
                for t in range(T - 1, -1, -1):
                    _lstm_backward_rows(t, b0, b1, arrays, keep)
                    _padded_product(dz[t], panels_t, rows_t, dh_rec, b0, b1, arrays[7], t, 1)
            return
        chunks = min(threads, B)
        for t in range(T - 1, -1, -1):
            if chunks == 1:  # one row, as in the forward
                _lstm_backward_rows(t, 0, B, arrays, keep)
            else:
                for j in numba.prange(chunks):
                    b0, b1 = _threads.share(j, chunks, B)
                    _lstm_backward_rows(t, b0, b1, arrays, keep)
            _gemm._step_product_par(dz[t], panels_t, rows_t, dh_rec, threads)

    # The team loop (routes "dot_team", "packed_team"; one to three rows): one parallel
    # region for all T steps, each thread computing its part of the hidden units, product
    # columns of their four gates and their gate kernel, and all meeting after each step
    # (:mod:`bptt.functional.fast._team`, which says why it cannot hang). With the packed
    # weight of the inputs (``panels_ih``, else a (0, D, 16) placeholder) the team first
    # makes the input projection of its units for all steps, x (T*B, D) into gates: one
    # region for the whole layer (see lstm_forward_steps).

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _lstm_forward_steps_team(
        panels, rows, gates, rec, bias, h, c, tanh_c, real, threads, flags, x, panels_ih
    ):
        T = gates.shape[0]
        z = gates.reshape(T * gates.shape[1], gates.shape[2])  # (T*B, 4H) a view
        for k in numba.prange(threads):
            if panels_ih.shape[0]:  # the projection, flags' last row
                for q in range(threads):
                    j = (k + q) % threads
                    if _team.claim(flags, T, j):
                        _team.part_panels(x, panels_ih, z, j, threads, 4)
                        _team.finish(flags, T)
                _team.wait(flags, T, threads)
            for t in range(T):
                for q in range(threads):
                    j = (k + q) % threads  # its own part first, then any nobody has claimed
                    if _team.claim(flags, t, j):
                        u0, u1 = _team.part_product(h[t], panels, rows, rec, j, threads, 4)
                        _fused._lstm_forward_units(
                            gates[t], rec, bias, c[t], h[t], real[t], c[t + 1], tanh_c[t],
                            h[t + 1], u0, u1,
                        )  # fmt: skip
                        _team.finish(flags, t)
                _team.wait(flags, t, threads)


def team_projects(recurrent: _gemm.StepProduct, x: np.ndarray, columns: int) -> bool:
    """Whether the forward loop makes the input projection x (T*B, D) @ (D, columns)
    itself: a team route, and a projection the packed kernel can make (float32, four
    rows or more unless the CPU has AVX-512; columns a multiple of 16, as the team's
    parts are whole panels)."""
    return (
        recurrent.team
        and columns % _gemm.PANEL == 0
        and (_gemm.usable(x.dtype, columns, x.shape[0]) or _gemm.thin_usable(x.dtype, columns, 1))
    )


def lstm_forward_steps(
    recurrent: _gemm.StepProduct, gates, rec, bias, h, c, tanh_c, real, x=None, weight_ih=None
) -> None:
    """All T LSTM steps: for each t, rec = recurrent(h[t]), then the gate kernel.

    gates (T, B, 4H) holds the input projections and leaves holding the gates;
    h, c (T+1, B, H) enter with the state at index 0; tanh_c (T, B, H). When the
    product's route is compiled the whole loop runs compiled, else step by step from Python.

    With ``x`` (T*B, D) and ``weight_ih`` (4H, D), a team route makes the input
    projection itself where :func:`team_projects` says so (gates then enters as
    scratch), by the packed kernel in the team's region: at one to three rows the
    projection is a small product, and made apart, by BLAS on its own threads, it paid
    them a wake-up each call (lstm-e, T = 50, B = 1, H = 256, two
    threads: 0.26 ms at best, 0.40 median, against the team's about 0.15). Other
    routes leave the projection to the caller: :func:`team_projects` says which.
    """
    with step_threads(recurrent.route):  # BLAS at one thread unless the route is blas_mt
        w = (recurrent.panels, recurrent.rows)
        if recurrent.team:
            threads = compiled_threads()
            T, D = gates.shape[0], 0 if x is None else x.shape[1]
            in_team = x is not None and team_projects(recurrent, x, gates.shape[2])
            panels_ih = _gemm.pack(weight_ih) if in_team else np.empty((0, D, 16), gates.dtype)
            x = x if in_team else np.empty((0, D), gates.dtype)
            flags = _team.flags(T + 1, threads)  # the steps', then the projection's
            step = (gates, rec, bias, h, c, tanh_c, real)
            _lstm_forward_steps_team(*w, *step, threads, flags, x, panels_ih)
            return
        step = (gates, rec, bias, h, c, tanh_c, real)
        if recurrent.parallel:
            _lstm_forward_steps_par(*w, *step, compiled_threads())
        elif recurrent.compiled:
            _lstm_forward_steps_jit(*w, *step)
        else:
            for t in range(gates.shape[0]):
                n = _fused.rows_running(real[t])  # rows n: are padding at step t
                recurrent(h[t, :n], rec[:n])  # the only per-step product
                rows = (gates[t, :n], rec[:n], bias, c[t, :n], h[t, :n], real[t, :n])
                _fused.lstm_step_forward(*rows, c[t + 1, :n], tanh_c[t, :n], h[t + 1, :n])
                h[t + 1, n:], c[t + 1, n:] = h[t, n:], c[t, n:]  # padding carries the state
                gates[t, n:], tanh_c[t, n:] = 0, 0


def lstm_backward_steps(
    recurrent_t, gates, c, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c
) -> None:
    """All T BPTT steps, t = T-1 .. 0: the gate kernel's backward, then dh_rec = recurrent_t(dz[t]).

    recurrent_t is the :class:`~bptt.functional.fast._gemm.StepProduct` of weight_hh^T;
    d_out (T, B, H) time-major (a view is fine); dz (T, B, 4H) out; dh_rec, carry
    and dc (B, H) carry the gradients from step to step and leave holding step 0's.
    keep_h, keep_c (T+1, B, H) or None: where to store ∂E/∂h_t, ∂E/∂C_t at t + 1.
    Compiled as one loop when the product's route is compiled, else step by step from Python.
    """
    with step_threads(recurrent_t.route):  # BLAS at one thread unless the route is blas_mt
        if recurrent_t.compiled:
            keep = keep_h is not None
            if not keep:
                keep_h = keep_c = np.empty((1, 1, 1), dtype=dc.dtype)  # (1, 1, 1) never written
            arrays = (gates, c, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c)
            w = (recurrent_t.panels, recurrent_t.rows)
            if recurrent_t.parallel:
                _lstm_backward_steps_par(*w, arrays, keep, compiled_threads())
            else:
                _lstm_backward_steps_jit(*w, arrays, keep)
            return
        for t in range(gates.shape[0] - 1, -1, -1):
            # ∂E/∂o_t, ∂E/∂C_t, ∂E/∂i_t, ∂E/∂f_t, ∂E/∂C~_t through their slopes, the belt
            step = (gates[t], c[t], tanh_c[t], d_out[t])  # what the forward kept at step t
            kept = (None, None) if keep_h is None else (keep_h[t + 1], keep_c[t + 1])
            _fused.lstm_step_backward(*step, dh_rec, carry, dc, real[t], dz[t], *kept)
            recurrent_t(dz[t], dh_rec)  # ∂E/∂h_{t-1} = weight_hh^T ∂E/∂z_t
