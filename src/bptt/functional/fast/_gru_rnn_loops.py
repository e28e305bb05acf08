"""The GRU's and the RNN's time loops: every step's product and gate kernel, compiled as
one call when the product's route is compiled (as :mod:`bptt.functional.fast._time_loops`
says for the LSTM's), else step by step from Python.

At each step the rows after the last real one (padding to the end of the batch) are
left out of the product and the gate kernel and carry their state
(``_fused._rows_running``): with a masked batch sorted longest first
(:mod:`bptt.nn.batch_order`) each step computes only the sequences still running.

Shapes: T time steps, B batch, H hidden units; 3H the GRU's gates r, z, n.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast import _fused, _gemm, _threads
from bptt.functional.fast._jit import numba
from bptt.functional.fast._threads import compiled_threads, step_threads

if numba is not None:
    from bptt.functional.fast._time_loops import _padded_product, _product

    # The product on ``threads`` (1: the one-thread kernel; more: "dot_mt", the columns
    # split each step), the gate kernel on one thread (a small part of a GRU or RNN step).
    # "packed_mt" runs the *_par loops, which split the batch rows once for all steps, as
    # the LSTM's do. Both run a step on a range of rows (*_rows, on the whole arrays: a
    # one-thread loop called on (T, b, N) slices compiled for strided arrays and ran gru-a
    # inference 40% slower); its rows after the last real one carry their state.

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _gru_forward_rows(t, b0, b1, panels, rows, a, c, bias_hh, h, real, gates, hn, threads):
        e = _fused._rows_running(real, t, b0, b1)  # rows e:b1 are padding at step t
        if e > b0:
            _product(h[t, b0:e], panels, rows, c[b0:e], threads)
            for b in range(b0, e):
                for j in range(c.shape[1]):  # c_t = W_h h_{t-1} + b_h
                    c[b, j] += bias_hh[j]
            step = (a[t, b0:e], c[b0:e], h[t, b0:e], real[t, b0:e])
            _fused._gru_forward_jit(*step, gates[t, b0:e], hn[t, b0:e], h[t + 1, b0:e])
        for b in range(e, b1):  # h carried; the gates and c^n kept zero (never read)
            h[t + 1, b], gates[t, b], hn[t, b] = h[t, b], 0, 0

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _gru_backward_rows(t, b0, b1, panels_t, rows_t, arrays, keep, threads):
        gates, hn, h, d_out, g_rec, carry, real, da, dc, keep_h = arrays
        k, kb0, kb1 = (t + 1, b0, b1) if keep else (0, 0, 1)  # else the (1, 1, 1) placeholder
        step = (gates[t, b0:b1], hn[t, b0:b1], h[t, b0:b1], d_out[t, b0:b1])
        grads = (g_rec[b0:b1], carry[b0:b1], real[t, b0:b1], da[t, b0:b1], dc[t, b0:b1])
        _fused._gru_backward_jit(*step, *grads, keep_h[k, kb0:kb1], keep)
        _padded_product(dc[t], panels_t, rows_t, g_rec, b0, b1, real, t, threads)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _rnn_forward_rows(t, b0, b1, panels, rows, a, rec, s, real, relu, threads):
        e = _fused._rows_running(real, t, b0, b1)  # rows e:b1 are padding at step t
        if e > b0:
            _product(s[t, b0:e], panels, rows, rec[b0:e], threads)
            step = (a[t, b0:e], rec[b0:e], s[t, b0:e], real[t, b0:e])
            _fused._rnn_forward_jit(*step, relu, s[t + 1, b0:e])
        for b in range(e, b1):  # the state carried
            s[t + 1, b] = s[t, b]

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _rnn_backward_rows(t, b0, b1, panels_t, rows_t, arrays, relu, keep, threads):
        s, d_out, g_rec, carry, real, da, keep_h = arrays
        k, kb0, kb1 = (t + 1, b0, b1) if keep else (0, 0, 1)
        step = (s[t + 1, b0:b1], d_out[t, b0:b1], g_rec[b0:b1], carry[b0:b1], real[t, b0:b1])
        _fused._rnn_backward_jit(*step, relu, da[t, b0:b1], keep_h[k, kb0:kb1], keep)
        _padded_product(da[t], panels_t, rows_t, g_rec, b0, b1, real, t, threads)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _gru_forward_steps_jit(panels, rows, a, c, bias_hh, h, real, gates, hn, threads):
        for t in range(a.shape[0]):
            _gru_forward_rows(
                t, 0, c.shape[0], panels, rows, a, c, bias_hh, h, real, gates, hn, threads
            )

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _gru_backward_steps_jit(panels_t, rows_t, arrays, keep, threads):
        for t in range(arrays[0].shape[0] - 1, -1, -1):
            _gru_backward_rows(t, 0, arrays[4].shape[0], panels_t, rows_t, arrays, keep, threads)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _rnn_forward_steps_jit(panels, rows, a, rec, s, real, relu, threads):
        for t in range(a.shape[0]):
            _rnn_forward_rows(t, 0, rec.shape[0], panels, rows, a, rec, s, real, relu, threads)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)
    def _rnn_backward_steps_jit(panels_t, rows_t, arrays, relu, keep, threads):
        for t in range(arrays[0].shape[0] - 2, -1, -1):
            _rnn_backward_rows(
                t, 0, arrays[2].shape[0], panels_t, rows_t, arrays, relu, keep, threads
            )

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _gru_forward_steps_par(panels, rows, a, c, bias_hh, h, real, gates, hn, threads):
        B, T = c.shape[0], a.shape[0]
        chunks = _threads.batch_chunks(B, threads)
        for k in numba.prange(chunks):  # rows b0:b1 of the batch, all T steps
            b0, b1 = _threads.share(k, chunks, B)
            for t in range(T):
                _gru_forward_rows(t, b0, b1, panels, rows, a, c, bias_hh, h, real, gates, hn, 1)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _gru_backward_steps_par(panels_t, rows_t, arrays, keep, threads):
        B, T = arrays[4].shape[0], arrays[0].shape[0]
        chunks = _threads.batch_chunks(B, threads)
        for q in numba.prange(chunks):  # rows b0:b1 of the batch, all T steps
            b0, b1 = _threads.share(q, chunks, B)
            for t in range(T - 1, -1, -1):
                _gru_backward_rows(t, b0, b1, panels_t, rows_t, arrays, keep, 1)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _rnn_forward_steps_par(panels, rows, a, rec, s, real, relu, threads):
        B, T = rec.shape[0], a.shape[0]
        chunks = _threads.batch_chunks(B, threads)
        for k in numba.prange(chunks):  # rows b0:b1 of the batch, all T steps
            b0, b1 = _threads.share(k, chunks, B)
            for t in range(T):
                _rnn_forward_rows(t, b0, b1, panels, rows, a, rec, s, real, relu, 1)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _rnn_backward_steps_par(panels_t, rows_t, arrays, relu, keep, threads):
        B, T = arrays[2].shape[0], arrays[0].shape[0] - 1
        chunks = _threads.batch_chunks(B, threads)
        for q in numba.prange(chunks):  # rows b0:b1 of the batch, all T steps
            b0, b1 = _threads.share(q, chunks, B)
            for t in range(T - 1, -1, -1):
                _rnn_backward_rows(t, b0, b1, panels_t, rows_t, arrays, relu, keep, 1)


def _compiled_args(product: _gemm.StepProduct, keep: np.ndarray | None, dtype) -> tuple:
    """The weight (panels, rows), the kept array or a (1, 1, 1) placeholder, whether it is
    kept, and the threads of a compiled loop: the arguments every GRU and RNN loop ends with."""
    kept = keep is not None
    placeholder = np.empty((1, 1, 1), dtype=dtype)  # (1, 1, 1) never written
    threads = compiled_threads() if product.parallel else 1
    return (product.panels, product.rows), (keep if kept else placeholder, kept, threads)


def gru_forward_steps(recurrent: _gemm.StepProduct, a, c, bias_hh, h, real, gates, hn) -> None:
    """All T GRU steps: c = recurrent(h[t]) + bias_hh, then the gate kernel.

    a (T, B, 3H) the input parts; c (B, 3H) scratch; h (T+1, B, H) enters with h_0;
    gates (T, B, 3H) and hn (T, B, H) out. Compiled as one loop when the product's
    route is compiled, else step by step from Python.
    """
    with step_threads(recurrent.route):  # BLAS at one thread unless the route is blas_mt
        if recurrent.compiled:
            w, (_, _, threads) = _compiled_args(recurrent, None, c.dtype)
            bias = np.zeros(c.shape[1], c.dtype) if bias_hh is None else bias_hh  # (3H,)
            if recurrent.route == "packed_mt":
                _gru_forward_steps_par(*w, a, c, bias, h, real, gates, hn, threads)
            else:
                _gru_forward_steps_jit(*w, a, c, bias, h, real, gates, hn, threads)
            return
        for t in range(a.shape[0]):
            n = _fused.rows_running(real[t])  # rows n: are padding: h carried
            recurrent(h[t, :n], c[:n])  # the only per-step product
            if bias_hh is not None:
                c[:n] += bias_hh
            # r_t, z_t = σ(a + c); n_t = tanh(a^n + r_t c^n); h_t = n_t + z_t (h_{t-1} - n_t)
            rows = (a[t, :n], c[:n], h[t, :n], real[t, :n], gates[t, :n], hn[t, :n])
            _fused.gru_step_forward(*rows, h[t + 1, :n])
            h[t + 1, n:], gates[t, n:], hn[t, n:] = h[t, n:], 0, 0


def gru_backward_steps(
    recurrent_t: _gemm.StepProduct, gates, hn, h, d_out, g_rec, carry, real, da, dc, keep
) -> None:
    """All T GRU BPTT steps, t = T-1 .. 0: the gate kernel's backward, then
    g_rec = recurrent_t(dc[t]). keep (T+1, B, H) or None: ∂E/∂h_t stored at t + 1."""
    with step_threads(recurrent_t.route):
        if recurrent_t.compiled:
            w, tail = _compiled_args(recurrent_t, keep, g_rec.dtype)
            keep_h, kept, threads = tail
            arrays = (gates, hn, h, d_out, g_rec, carry, real, da, dc, keep_h)
            loop = (
                _gru_backward_steps_par
                if recurrent_t.route == "packed_mt"
                else _gru_backward_steps_jit
            )
            loop(*w, arrays, kept, threads)
            return
        for t in range(gates.shape[0] - 1, -1, -1):
            # ∂E/∂n̂_t, ∂E/∂r̂_t, ∂E/∂ẑ_t, ∂E/∂c_t and the direct path g_t z_t: one pass
            step = (gates[t], hn[t], h[t], d_out[t])  # what the forward kept at step t
            kept = None if keep is None else keep[t + 1]
            _fused.gru_step_backward(*step, g_rec, carry, real[t], da[t], dc[t], kept)
            recurrent_t(dc[t], g_rec)  # through the gates to h_{t-1}


def rnn_forward_steps(recurrent: _gemm.StepProduct, a, rec, s, real, relu: bool) -> None:
    """All T RNN steps: rec = recurrent(s[t]), s_{t+1} = tanh(a[t] + rec) (or relu).

    a (T, B, H) = U x_t + b; rec (B, H) scratch; s (T+1, B, H) enters with s_0.
    """
    with step_threads(recurrent.route):
        if recurrent.compiled:
            w, (_, _, threads) = _compiled_args(recurrent, None, rec.dtype)
            if recurrent.route == "packed_mt":
                _rnn_forward_steps_par(*w, a, rec, s, real, relu, threads)
            else:
                _rnn_forward_steps_jit(*w, a, rec, s, real, relu, threads)
            return
        for t in range(a.shape[0]):
            n = _fused.rows_running(real[t])  # rows n: are padding: s carried
            recurrent(s[t, :n], rec[:n])  # W s_{t-1}
            _fused.rnn_step_forward(a[t, :n], rec[:n], s[t, :n], real[t, :n], relu, s[t + 1, :n])
            s[t + 1, n:] = s[t, n:]


def rnn_backward_steps(
    recurrent_t: _gemm.StepProduct, s, d_out, g_rec, carry, real, relu: bool, da, keep
) -> None:
    """All T RNN BPTT steps, t = T-1 .. 0: da[t] = ∂E/∂a_t, then g_rec = recurrent_t(da[t])."""
    with step_threads(recurrent_t.route):
        if recurrent_t.compiled:
            w, tail = _compiled_args(recurrent_t, keep, g_rec.dtype)
            keep_h, kept, threads = tail
            arrays = (s, d_out, g_rec, carry, real, da, keep_h)
            loop = (
                _rnn_backward_steps_par
                if recurrent_t.route == "packed_mt"
                else _rnn_backward_steps_jit
            )
            loop(*w, arrays, relu, kept, threads)
            return
        for t in range(s.shape[0] - 2, -1, -1):
            # ∂E/∂a_t = g_t * (1 - s_t²) with g_t = ∂E/∂s_t from the output and from s_{t+1}
            kept = None if keep is None else keep[t + 1]
            _fused.rnn_step_backward(s[t + 1], d_out[t], g_rec, carry, real[t], relu, da[t], kept)
            recurrent_t(da[t], g_rec)  # g_{t-1} = W^T ∂E/∂a_t
