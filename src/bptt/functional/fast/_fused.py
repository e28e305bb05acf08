"""One time step's elementwise gate math, fused into a single pass per step.

The cells (``rnn.py``, ``lstm.py``, ``gru.py``) run the time loop and the
matrix products; everything between two products — adding the input
projection, the activations, the state update, the mask, and in the backward
the gate gradients — is one call here. Each kernel is written twice from the
same equations:

- compiled with numba (the optional ``fast`` extra) as one loop over (b, j),
  so no temporaries are made and the gates stay in registers; ``cache=True``
  stores the machine code, so a new process does not wait for the compiler;
- in plain NumPy, used when numba is absent or ``BPTT_NO_JIT=1`` is set.

The two agree to float32 rounding: the compiled float32 tanh is a rational
approximation (Eigen's, a few ulp; :mod:`._math`), float64
uses the C library's tanh. σ(x) = (1 + tanh(x/2)) / 2 everywhere, as in
``activations.sigmoid``.

Every kernel takes ``real`` (B,) booleans (all True without a mask). A padded
row carries the state unchanged and gets zero gate gradient; the gradient that
reaches a padded row passes straight back through ``carry`` (B, H), which the
next (earlier) step adds to its incoming gradient.

Shapes: B batch, H hidden units; rows of a gate block (B, G*H) hold the gates
in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
"""

from __future__ import annotations

import numpy as np

from bptt.functional.activations import sigmoid
from bptt.functional.fast._jit import JIT, numba

if numba is not None:
    from bptt.functional.fast._math import fma, sigmoid_approx, tanh_approx

# --------------------------------------------------------------------------- NumPy


def _lstm_forward_np(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out):
    """z (B, 4H) holds x_t's projection; on return the gates i, f, g, o."""
    H = c_prev.shape[1]
    z += rec  # + weight_hh h_{t-1}
    z += bias  # + bias_ih + bias_hh
    sigmoid(z[:, : 2 * H], out=z[:, : 2 * H])  # i_t, f_t
    np.tanh(z[:, 2 * H : 3 * H], out=z[:, 2 * H : 3 * H])  # g_t = C~_t
    sigmoid(z[:, 3 * H :], out=z[:, 3 * H :])  # o_t
    i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
    np.multiply(f, c_prev, out=c_out)  # C_t = f_t * C_{t-1} + i_t * C~_t
    c_out += i * g
    np.tanh(c_out, out=tanh_c_out)
    np.multiply(o, tanh_c_out, out=h_out)  # h_t = o_t * tanh(C_t)
    if not real.all():
        pad = ~real
        c_out[pad] = c_prev[pad]  # padding carries both states
        h_out[pad] = h_prev[pad]


def _incoming(g_rec, carry, d_out, real, keep_h):
    """∂E/∂h_t (B, H) = from step t+1 + through padding + the output's (padded outputs are
    constants); stored in keep_h when asked."""
    g = g_rec + carry + np.where(real[:, None], d_out, 0)  # (B, H)
    if keep_h is not None:
        keep_h[...] = g
    return g


def _lstm_backward_np(gates, c_prev, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c):
    """dz (B, 4H) = ∂E/∂z_t; dc becomes ∂E/∂C_{t-1}; carry the padded rows' ∂E/∂h."""
    H = dc.shape[1]
    dh = _incoming(dh_rec, carry, d_out, real, keep_h)  # (B, H) ∂E/∂h_t
    r = real[:, None]  # (B, 1)
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    dc_t = dc + dh * o * (1 - tanh_c * tanh_c)  # (B, H) ∂E/∂C_t
    if keep_c is not None:
        keep_c[...] = np.where(r, dc_t, dc)
    dc_t *= r  # only real steps go through the cell
    dh_r = dh * r  # (B, H)
    np.multiply(dc_t * g, i * (1 - i), out=dz[:, :H])  # ∂E/∂i_t σ'
    np.multiply(dc_t * c_prev, f * (1 - f), out=dz[:, H : 2 * H])  # ∂E/∂f_t σ'
    np.multiply(dc_t * i, 1 - g * g, out=dz[:, 2 * H : 3 * H])  # ∂E/∂C~_t tanh'
    np.multiply(dh_r * tanh_c, o * (1 - o), out=dz[:, 3 * H :])  # ∂E/∂o_t σ'
    np.copyto(dc, np.where(r, dc_t * f, dc))  # ∂E/∂C_{t-1}: the belt
    np.copyto(carry, np.where(r, 0, dh))  # padding passes ∂E/∂h_t straight back


def _gru_forward_np(a, c, h_prev, real, gates, hn, h_out):
    """a (B, 3H) = W_i x_t + b_i, c (B, 3H) = W_h h_{t-1} + b_h; writes r, z, n and h_t."""
    H = h_prev.shape[1]
    rz = gates[:, : 2 * H]  # (B, 2H) view
    np.add(a[:, : 2 * H], c[:, : 2 * H], out=rz)
    sigmoid(rz, out=rz)  # r_t, z_t
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    hn[...] = c[:, 2 * H :]  # c_t^n = W_hn h_{t-1} + b_hn
    np.multiply(r, hn, out=n)
    n += a[:, 2 * H :]
    np.tanh(n, out=n)  # n_t
    np.subtract(h_prev, n, out=h_out)  # h_t = n_t + z_t (h_{t-1} - n_t), as PyTorch
    h_out *= z
    h_out += n
    if not real.all():
        pad = ~real
        h_out[pad] = h_prev[pad]


def _gru_backward_np(gates, hn, h_prev, d_out, g_rec, carry, real, da, dc, keep_h):
    """da, dc (B, 3H) = ∂E/∂a_t, ∂E/∂c_t; carry = the direct path g z_t (or g at padding)."""
    H = h_prev.shape[1]
    g = _incoming(g_rec, carry, d_out, real, keep_h)  # (B, H) ∂E/∂h_t
    r_ = real[:, None]  # (B, 1)
    dh = g * r_  # (B, H) only real steps go through the cell
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    dn = dh * (1 - z) * (1 - n * n)  # (B, H) ∂E/∂n̂_t
    dr = dn * hn * r * (1 - r)  # (B, H) ∂E/∂r̂_t
    dzz = dh * (h_prev - n) * z * (1 - z)  # (B, H) ∂E/∂ẑ_t
    da[:, :H], da[:, H : 2 * H], da[:, 2 * H :] = dr, dzz, dn
    dc[:, :H], dc[:, H : 2 * H] = dr, dzz
    np.multiply(dn, r, out=dc[:, 2 * H :])  # ∂E/∂c_t^n
    np.copyto(carry, np.where(r_, dh * z, g))  # straight through z_t h_{t-1}, or padding


def _rnn_forward_np(a, rec, s_prev, real, relu, s_out):
    """s_t = tanh(a + rec) (or relu), a = U x_t + b, rec = W s_{t-1}."""
    np.add(a, rec, out=s_out)
    if relu:
        np.maximum(s_out, 0, out=s_out)
    else:
        np.tanh(s_out, out=s_out)
    if not real.all():
        pad = ~real
        s_out[pad] = s_prev[pad]


def _rnn_backward_np(s, d_out, g_rec, carry, real, relu, da, keep_h):
    """da (B, H) = ∂E/∂a_t = g (1 - s_t²) (relu: g [s_t > 0]); carry the padded rows' g."""
    g = _incoming(g_rec, carry, d_out, real, keep_h)  # (B, H) ∂E/∂s_t
    r = real[:, None]  # (B, 1)
    slope = (s > 0) if relu else 1 - s * s  # (B, H)
    np.multiply(g * r, slope, out=da)
    np.copyto(carry, np.where(r, 0, g))


# --------------------------------------------------------------------------- numba

if numba is not None:
    _jit = numba.njit(
        cache=True, error_model="numpy", boundscheck=False, nogil=True, fastmath={"contract"}
    )

    # Each inner loop runs over j with one output offset, so LLVM vectorises it;
    # a row's padding branch sits outside the loops.

    @_jit
    def _lstm_forward_jit(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out):
        H = c_prev.shape[1]
        _lstm_forward_units(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out, 0, H)

    # Inlined into its callers: a call passing nine arrays costs about 0.1 µs, a fifth of
    # a one-row step at H = 256.
    @numba.njit(
        cache=True,
        error_model="numpy",
        boundscheck=False,
        nogil=True,
        fastmath={"contract"},
        inline="always",
    )
    def _lstm_forward_units(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out, j0, j1):
        """The step for hidden units j0:j1 only, its four gates' columns among them:
        each unit's numbers the same whichever range computes it. (The unit index is
        unsigned: a signed one from a range not starting at 0 would make every access
        check for a negative index, and the loops would not vectorise: 5x slower.)"""
        H = np.uint64(c_prev.shape[1])
        H2, H3 = H + H, H + H + H
        u0, u1 = np.uint64(j0), np.uint64(j1)
        for b in range(c_prev.shape[0]):
            for j in range(u0, u1):  # i_t = σ(z_i)
                z[b, j] = sigmoid_approx((z[b, j] + rec[b, j]) + bias[j])
            for j in range(u0, u1):  # f_t = σ(z_f)
                z[b, H + j] = sigmoid_approx((z[b, H + j] + rec[b, H + j]) + bias[H + j])
            for j in range(u0, u1):  # g_t = C~_t = tanh(z_g)
                g = (z[b, H2 + j] + rec[b, H2 + j]) + bias[H2 + j]
                z[b, H2 + j] = tanh_approx(g)
            for j in range(u0, u1):  # o_t = σ(z_o)
                o = (z[b, H3 + j] + rec[b, H3 + j]) + bias[H3 + j]
                z[b, H3 + j] = sigmoid_approx(o)
            for j in range(u0, u1):
                # C_t = f_t C_{t-1} + i_t C~_t
                c = fma(z[b, H + j], c_prev[b, j], z[b, j] * z[b, H2 + j])
                tc = tanh_approx(c)
                c_out[b, j], tanh_c_out[b, j] = c, tc
                h_out[b, j] = z[b, H3 + j] * tc  # h_t = o_t * tanh(C_t)
            if not real[b]:  # padding carries both states (the gates are computed, unused)
                for j in range(u0, u1):
                    c_out[b, j], h_out[b, j] = c_prev[b, j], h_prev[b, j]

    @_jit
    def _lstm_backward_jit(
        gates, c_prev, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c, keep
    ):
        B, H = dc.shape
        one = dc.dtype.type(1)
        zero = dc.dtype.type(0)
        for b in range(B):
            if not real[b]:  # padding: no gate gradient, both gradients pass straight back
                for j in range(H):
                    carry[b, j] += dh_rec[b, j]
                    if keep:
                        keep_h[b, j], keep_c[b, j] = carry[b, j], dc[b, j]
                for j in range(4 * H):
                    dz[b, j] = zero
                continue
            for j in range(H):
                dh = dh_rec[b, j] + carry[b, j] + d_out[b, j]  # ∂E/∂h_t
                o, tc = gates[b, 3 * H + j], tanh_c[b, j]
                dct = dc[b, j] + dh * o * (one - tc * tc)  # ∂E/∂C_t
                dz[b, 3 * H + j] = dh * tc * o * (one - o)  # ∂E/∂o_t σ'(z_o)
                dc[b, j] = dct
                carry[b, j] = zero
                if keep:
                    keep_h[b, j], keep_c[b, j] = dh, dct
            for j in range(H):  # ∂E/∂i_t σ'(z_i) = dC g i (1 - i)
                i = gates[b, j]
                dz[b, j] = dc[b, j] * gates[b, 2 * H + j] * i * (one - i)
            for j in range(H):  # ∂E/∂f_t σ'(z_f) = dC C_{t-1} f (1 - f)
                f = gates[b, H + j]
                dz[b, H + j] = dc[b, j] * c_prev[b, j] * f * (one - f)
            for j in range(H):  # ∂E/∂C~_t tanh'(z_g) = dC i (1 - g²)
                g = gates[b, 2 * H + j]
                dz[b, 2 * H + j] = dc[b, j] * gates[b, j] * (one - g * g)
            for j in range(H):  # ∂E/∂C_{t-1} = dC f: the belt
                dc[b, j] *= gates[b, H + j]

    @_jit
    def _gru_forward_jit(a, c, h_prev, real, gates, hn, h_out):
        B, H = h_prev.shape
        for b in range(B):
            for j in range(H):  # r_t = σ(a^r + c^r)
                gates[b, j] = sigmoid_approx(a[b, j] + c[b, j])
            for j in range(H):  # z_t = σ(a^z + c^z)
                gates[b, H + j] = sigmoid_approx(a[b, H + j] + c[b, H + j])
            for j in range(H):  # c_t^n = W_hn h_{t-1} + b_hn, kept for the backward
                hn[b, j] = c[b, 2 * H + j]
            for j in range(H):  # n_t = tanh(a^n + r_t c^n), first into h_out
                h_out[b, j] = tanh_approx(gates[b, j] * hn[b, j] + a[b, 2 * H + j])
            for j in range(H):
                gates[b, 2 * H + j] = h_out[b, j]
            if real[b]:
                for j in range(H):  # h_t = n_t + z_t (h_{t-1} - n_t), as PyTorch
                    n = h_out[b, j]
                    h_out[b, j] = n + gates[b, H + j] * (h_prev[b, j] - n)
            else:  # padding carries the state
                for j in range(H):
                    h_out[b, j] = h_prev[b, j]

    @_jit
    def _gru_backward_jit(gates, hn, h_prev, d_out, g_rec, carry, real, da, dc, keep_h, keep):
        B, H = h_prev.shape
        one = h_prev.dtype.type(1)
        zero = h_prev.dtype.type(0)
        for b in range(B):
            if not real[b]:  # padding: no gate gradient, g passes straight back
                for j in range(H):
                    carry[b, j] += g_rec[b, j]
                    if keep:
                        keep_h[b, j] = carry[b, j]
                for j in range(3 * H):
                    da[b, j] = zero
                    dc[b, j] = zero
                continue
            for j in range(H):  # ∂E/∂n̂_t = g (1 - z) (1 - n²); carry = g z, straight to h_{t-1}
                g = g_rec[b, j] + carry[b, j] + d_out[b, j]  # ∂E/∂h_t
                z, n = gates[b, H + j], gates[b, 2 * H + j]
                da[b, 2 * H + j] = g * (one - z) * (one - n * n)
                dc[b, H + j] = g  # kept for the next loop
                carry[b, j] = g * z
                if keep:
                    keep_h[b, j] = g
            for j in range(H):  # ∂E/∂ẑ_t = g (h_{t-1} - n) z (1 - z)
                z, n = gates[b, H + j], gates[b, 2 * H + j]
                da[b, H + j] = dc[b, H + j] * (h_prev[b, j] - n) * z * (one - z)
            for j in range(H):  # ∂E/∂r̂_t = ∂E/∂n̂_t c^n r (1 - r)
                r = gates[b, j]
                da[b, j] = da[b, 2 * H + j] * hn[b, j] * r * (one - r)
            for j in range(H):  # r and z: the input and hidden parts share a gradient
                dc[b, j] = da[b, j]
            for j in range(H):
                dc[b, H + j] = da[b, H + j]
            for j in range(H):  # ∂E/∂c_t^n = ∂E/∂n̂_t r_t
                dc[b, 2 * H + j] = da[b, 2 * H + j] * gates[b, j]

    @_jit
    def _rnn_forward_jit(a, rec, s_prev, real, relu, s_out):
        B, H = s_prev.shape
        zero = s_prev.dtype.type(0)
        for b in range(B):
            if not real[b]:  # padding carries the state
                for j in range(H):
                    s_out[b, j] = s_prev[b, j]
            elif relu:
                for j in range(H):
                    s_out[b, j] = max(a[b, j] + rec[b, j], zero)
            else:
                for j in range(H):  # s_t = tanh(U x_t + W s_{t-1} + b)
                    s_out[b, j] = tanh_approx(a[b, j] + rec[b, j])

    @_jit
    def _rnn_backward_jit(s, d_out, g_rec, carry, real, relu, da, keep_h, keep):
        B, H = s.shape
        one = s.dtype.type(1)
        zero = s.dtype.type(0)
        for b in range(B):
            if not real[b]:  # padding: g passes straight back
                for j in range(H):
                    carry[b, j] += g_rec[b, j]
                    da[b, j] = zero
                    if keep:
                        keep_h[b, j] = carry[b, j]
                continue
            for j in range(H):
                g = g_rec[b, j] + carry[b, j] + d_out[b, j]  # ∂E/∂s_t
                sv = s[b, j]
                slope = (one if sv > zero else zero) if relu else one - sv * sv
                da[b, j] = g * slope  # ∂E/∂a_t
                carry[b, j] = zero
                if keep:
                    keep_h[b, j] = g

    @_jit
    def _rows_running(real, t, b0, b1):
        """1 + the last of rows b0:b1 real at step t (b0 if none): the rows after it are
        padding there, so the time loops leave them out of the step's product and gate
        kernel and carry their state. With the rows sorted longest first (as
        :mod:`bptt.nn.batch_order` sorts a masked batch) each step then computes only the
        sequences still running, as PyTorch's packed sequences do."""
        e = b1
        while e > b0 and not real[t, e - 1]:
            e -= 1
        return e

    @_jit
    def _lstm_skip_rows(t, b0, b1, gates, h, c, tanh_c):
        """Rows b0:b1 of step t, all padding, not computed: h and C carried, the gates and
        tanh(C) kept zero (their values at padding are never read)."""
        for b in range(b0, b1):
            for j in range(h.shape[2]):
                h[t + 1, b, j], c[t + 1, b, j], tanh_c[t, b, j] = h[t, b, j], c[t, b, j], 0
            for j in range(gates.shape[2]):
                gates[t, b, j] = 0


# --------------------------------------------------------------------------- dispatch


def real_steps(mask: np.ndarray | None, T: int, B: int) -> np.ndarray:
    """(T, B) booleans, True at real steps: the mask time-major, or all True."""
    if mask is None:
        return np.ones((T, B), dtype=bool)  # (T, B)
    return np.ascontiguousarray(np.asarray(mask, dtype=bool).T)  # (T, B)


def rows_running(real_t: np.ndarray) -> int:
    """1 + the last real row of a step's real (B,) (0 if none): the rows after it are padding."""
    real_rows = np.flatnonzero(real_t)
    return int(real_rows[-1]) + 1 if real_rows.size else 0


def lstm_step_forward(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out) -> None:
    """One LSTM step: z (B, 4H) in: x_t's projection; out: i, f, g, o.

    rec (B, 4H) = weight_hh h_{t-1}; bias (4H,) = bias_ih + bias_hh, added here
    rather than in a pass of its own over all steps; writes C_t, tanh(C_t), h_t
    (B, H) each.
    """
    if JIT:
        _lstm_forward_jit(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out)
    else:
        _lstm_forward_np(z, rec, bias, c_prev, h_prev, real, c_out, tanh_c_out, h_out)


def lstm_step_backward(
    gates, c_prev, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h=None, keep_c=None
) -> None:
    """One LSTM BPTT step: ∂E/∂h_t = dh_rec + carry + d_out in; dz (B, 4H) out.

    dc (B, H) enters as the belt's ∂E/∂C_t from step t+1 and leaves as ∂E/∂C_{t-1}.
    keep_h, keep_c (B, H): where to store ∂E/∂h_t and ∂E/∂C_t, or None.
    """
    if JIT:
        if keep_h is None:
            keep_h = keep_c = np.empty((1, 1), dtype=dc.dtype)  # (1, 1) never written
            keep = False
        else:
            keep = True
        _lstm_backward_jit(
            gates, c_prev, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c, keep
        )
    else:
        _lstm_backward_np(gates, c_prev, tanh_c, d_out, dh_rec, carry, dc, real, dz, keep_h, keep_c)


def gru_step_forward(a, c, h_prev, real, gates, hn, h_out) -> None:
    """One GRU step: a, c (B, 3H) input and hidden parts; writes r, z, n, c_t^n and h_t."""
    if JIT:
        _gru_forward_jit(a, c, h_prev, real, gates, hn, h_out)
    else:
        _gru_forward_np(a, c, h_prev, real, gates, hn, h_out)


def gru_step_backward(gates, hn, h_prev, d_out, g_rec, carry, real, da, dc, keep_h=None) -> None:
    """One GRU BPTT step: ∂E/∂h_t = g_rec + carry + d_out in; da, dc (B, 3H) out.

    carry (B, H) leaves holding the direct path g z_t to h_{t-1} (g at padding).
    """
    if JIT:
        keep = keep_h is not None
        if not keep:
            keep_h = np.empty((1, 1), dtype=h_prev.dtype)  # (1, 1) never written
        _gru_backward_jit(gates, hn, h_prev, d_out, g_rec, carry, real, da, dc, keep_h, keep)
    else:
        _gru_backward_np(gates, hn, h_prev, d_out, g_rec, carry, real, da, dc, keep_h)


def rnn_step_forward(a, rec, s_prev, real, relu: bool, s_out) -> None:
    """One RNN step: s_t = tanh(a + rec) (relu if asked), padding carries s_{t-1}."""
    if JIT:
        _rnn_forward_jit(a, rec, s_prev, real, relu, s_out)
    else:
        _rnn_forward_np(a, rec, s_prev, real, relu, s_out)


def rnn_step_backward(s, d_out, g_rec, carry, real, relu: bool, da, keep_h=None) -> None:
    """One RNN BPTT step: ∂E/∂s_t = g_rec + carry + d_out in; da (B, H) = ∂E/∂a_t out."""
    if JIT:
        keep = keep_h is not None
        if not keep:
            keep_h = np.empty((1, 1), dtype=s.dtype)  # (1, 1) never written
        _rnn_backward_jit(s, d_out, g_rec, carry, real, relu, da, keep_h, keep)
    else:
        _rnn_backward_np(s, d_out, g_rec, carry, real, relu, da, keep_h)
