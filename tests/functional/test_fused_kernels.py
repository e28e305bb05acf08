"""bptt.functional.fast._fused: the compiled and the NumPy kernels compute the same step.

Each kernel runs on the same random inputs through both paths (rows with and
without padding, with and without kept state gradients); float64 agrees to
1e-12, float32 to float32 rounding (the compiled float32 tanh is a rational
approximation). Skipped when numba is absent: then only the NumPy path exists.

Shapes: B batch, H hidden units.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bptt.functional.fast import _fused

pytest.importorskip("numba")

B, H = 5, 7
TOL = {np.float64: 1e-12, np.float32: 2e-6}


def arrays(rng: np.random.Generator, dtype, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def gates_like(rng: np.random.Generator, dtype, G: int) -> np.ndarray:
    """Post-activation gates in (0, 1) (σ) and (-1, 1) (tanh): (B, G*H)."""
    return rng.uniform(-0.99, 0.99, size=(B, G * H)).astype(dtype)  # (B, G*H)


def both(jit_fn, np_fn, make_args, dtype) -> None:
    """Run both paths on copies of the same arguments; compare every array afterwards."""
    a1, a2 = make_args(), make_args()
    jit_fn(*a1)
    np_fn(*a2)
    for k, (x, y) in enumerate(zip(a1, a2, strict=True)):
        if isinstance(x, np.ndarray):
            np.testing.assert_allclose(x, y, rtol=TOL[dtype], atol=TOL[dtype], err_msg=f"arg {k}")


REAL = [np.ones(B, dtype=bool), np.array([True, False, True, False, True])]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("real", REAL, ids=["all-real", "padded"])
def test_lstm_kernels_agree(dtype, real) -> None:
    def fwd_args():
        rng = np.random.default_rng(0)
        z, rec, bias = arrays(rng, dtype, (B, 4 * H), (B, 4 * H), (4 * H,))
        c, h, co, tco, ho = arrays(rng, dtype, *[(B, H)] * 5)
        return [z, rec, bias, c, h, real, co, tco, ho]

    both(_fused._lstm_forward_jit, _fused._lstm_forward_np, fwd_args, dtype)

    for keep in (False, True):

        def bwd_args(keep=keep):
            rng = np.random.default_rng(1)
            g = gates_like(rng, dtype, 4)
            c, tc, d_out, dh_rec, carry, dc = arrays(rng, dtype, *[(B, H)] * 6)
            dz = np.zeros((B, 4 * H), dtype=dtype)  # (B, 4H)
            kh, kc = np.zeros((B, H), dtype=dtype), np.zeros((B, H), dtype=dtype)  # (B, H) each
            return [g, c, tc, d_out, dh_rec, carry, dc, real, dz, kh, kc]

        def jit_bwd(*a, keep=keep):
            _fused._lstm_backward_jit(*a, keep)

        def np_bwd(*a, keep=keep):
            _fused._lstm_backward_np(*a[:9], *(a[9:] if keep else (None, None)))

        both(jit_bwd, np_bwd, bwd_args, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("real", REAL, ids=["all-real", "padded"])
def test_gru_kernels_agree(dtype, real) -> None:
    def fwd_args():
        rng = np.random.default_rng(2)
        a, c, gates = arrays(rng, dtype, *[(B, 3 * H)] * 3)
        h, hn, ho = arrays(rng, dtype, *[(B, H)] * 3)
        return [a, c, h, real, gates, hn, ho]

    both(_fused._gru_forward_jit, _fused._gru_forward_np, fwd_args, dtype)

    def bwd_args():
        rng = np.random.default_rng(3)
        g = gates_like(rng, dtype, 3)
        hn, h, d_out, g_rec, carry, kh = arrays(rng, dtype, *[(B, H)] * 6)
        da, dc = np.zeros((B, 3 * H), dtype=dtype), np.zeros((B, 3 * H), dtype=dtype)  # (B, 3H)
        return [g, hn, h, d_out, g_rec, carry, real, da, dc, kh]

    both(lambda *a: _fused._gru_backward_jit(*a, True), _fused._gru_backward_np, bwd_args, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("real", REAL, ids=["all-real", "padded"])
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_kernels_agree(dtype, real, relu) -> None:
    def fwd_args():
        rng = np.random.default_rng(4)
        return [*arrays(rng, dtype, *[(B, H)] * 3), real, relu, np.zeros((B, H), dtype=dtype)]

    both(_fused._rnn_forward_jit, _fused._rnn_forward_np, fwd_args, dtype)

    def bwd_args():
        rng = np.random.default_rng(5)
        s = rng.uniform(-0.99, 0.99, size=(B, H)).astype(dtype)  # (B, H)
        d_out, g_rec, carry, da, kh = arrays(rng, dtype, *[(B, H)] * 5)
        return [s, d_out, g_rec, carry, real, relu, da, kh]

    both(lambda *a: _fused._rnn_backward_jit(*a, True), _fused._rnn_backward_np, bwd_args, dtype)


def test_float32_tanh_is_within_a_few_ulp() -> None:
    x = np.linspace(-12, 12, 20_001).astype(np.float32)  # (N,)
    z = np.zeros((1, x.size), dtype=np.float32)  # (1, N)
    out = np.empty((1, x.size), dtype=np.float32)  # (1, N)
    _fused._rnn_forward_jit(x[None, :], z, z, np.ones(1, dtype=bool), False, out)
    err = np.abs(out[0].astype(np.float64) - np.tanh(x.astype(np.float64)))  # (N,)
    assert err.max() < 5e-7, f"max |tanh error| {err.max():.2e}"


@pytest.mark.parametrize("value, expected", [("1", "False"), ("0", "True"), ("", "True")])
def test_bptt_no_jit_switches_the_kernels_off(value: str, expected: str) -> None:
    env = {**os.environ, "BPTT_NO_JIT": value}
    code = "from bptt.functional.fast import _fused; print(_fused.JIT)"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == expected


@pytest.mark.skipif(not _fused.JIT, reason="BPTT_NO_JIT set: only the Python loop runs")
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_compiled_lstm_loops_equal_step_by_step(monkeypatch, masked) -> None:
    """float32 at a size that packs the product: the compiled time loops (forward and BPTT,
    with the per-step state gradients kept) against the Python loop with BLAS products."""
    from bptt.functional.fast import _gemm
    from bptt.functional.lstm import lstm_backward, lstm_forward

    Bl, T, D, Hl = 7, 10, 5, 16  # 7 rows: a 6-row and a 1-row tile
    rng = np.random.default_rng(6)
    x = rng.standard_normal((Bl, T, D)).astype(np.float32)  # (B, T, D)
    h0, c0 = (0.5 * rng.standard_normal((Bl, Hl)).astype(np.float32) for _ in range(2))
    w_ih = (0.3 * rng.standard_normal((4 * Hl, D))).astype(np.float32)  # (4H, D)
    w_hh = (0.3 * rng.standard_normal((4 * Hl, Hl))).astype(np.float32)  # (4H, H)
    b = (0.1 * rng.standard_normal(4 * Hl)).astype(np.float32)  # (4H,)
    d_out = rng.standard_normal((Bl, T, Hl)).astype(np.float32)  # (B, T, H)
    mask = (np.arange(T)[None, :] < rng.integers(1, T + 1, Bl)[:, None]) if masked else None

    def run():
        out, final, cache = lstm_forward(x, (h0, c0), w_ih, w_hh, b, b, mask=mask)
        kept: dict = {}
        d_x, d_state, grads = lstm_backward(d_out, final, cache, state_grads=kept)
        return [out, *final, d_x, *d_state, kept["h"], kept["c"], *grads.values()]

    monkeypatch.setenv("BPTT_ROUTES", "step=packed")  # not left to the probe: the test needs it
    assert _gemm.StepProduct(w_hh, Bl, T).route == "packed"  # the compiled loops run
    compiled = run()
    monkeypatch.setattr(_gemm, "MIN_STEPS", T + 1)  # too few steps: BLAS, one step at a time
    assert not _gemm.StepProduct(w_hh, Bl, T).compiled
    for k, (a, c) in enumerate(zip(compiled, run(), strict=True)):
        np.testing.assert_allclose(a, c, rtol=2e-5, atol=2e-5, err_msg=f"result {k}")
