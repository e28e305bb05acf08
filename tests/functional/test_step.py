"""bptt.functional.fast._step: one step at B <= 3 (generation, streaming) in one compiled call.

The route must give the reference's numbers (float64 to 1e-12): the outputs, the final
state, and the backward through the cache it writes; and the same numbers on one
thread and two (bit for bit: the same sums). The layers' T = 1 calls, against the
reference and PyTorch's cells: tests/nn/test_recurrent_steps.py.

Shapes: B batch, T time steps, D input features, H hidden units, L layers, K directions.
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt.functional.fast import _routes, _step, _threads
from bptt.functional.gru import gru_backward, gru_forward
from bptt.functional.lstm import lstm_backward, lstm_forward
from bptt.functional.reference import forced
from bptt.functional.rnn import rnn_backward, rnn_forward

pytestmark = pytest.mark.skipif(not _step.JIT, reason="numba absent or BPTT_NO_JIT set")

D, H = 5, 8
CELLS = {  # name -> (forward, backward, G, state arity, extra forward kwargs)
    "lstm": (lstm_forward, lstm_backward, 4, 2, {}),
    "gru": (gru_forward, gru_backward, 3, 1, {}),
    "rnn": (rnn_forward, rnn_backward, 1, 1, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnn_forward, rnn_backward, 1, 1, {"nonlinearity": "relu"}),
}


@pytest.fixture(autouse=True)
def fresh_routes(tmp_path, monkeypatch):
    """No remembered route, a cache directory of its own, the thread count restored."""
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path))
    monkeypatch.delenv("BPTT_ROUTES", raising=False)
    threads = _threads.get_num_threads()
    _routes.reset()
    yield
    _routes.reset()
    _threads.set_num_threads(threads)


def problem(cell: str, B: int, bias: bool, dtype=np.float64, seed: int = 0):
    """x (B, 1, D), the state, the weights and an upstream gradient (B, 1, H)."""
    _, _, G, arity, _ = CELLS[cell]
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, size=shape).astype(dtype)

    x = draw(B, 1, D)  # (B, 1, D)
    state = tuple(draw(B, H) for _ in range(arity))  # (B, H) each
    weights = (
        draw(G * H, D),
        draw(G * H, H),
        *((draw(G * H), draw(G * H)) if bias else (None, None)),
    )
    return x, state, weights, draw(B, 1, H), tuple(draw(B, H) for _ in range(arity))


def run(cell: str, x, state, weights, d_out, d_final, workspace=None):
    forward, backward, _, _, kwargs = CELLS[cell]
    out, final, cache = forward(x, state, *weights, **kwargs, workspace=workspace)
    d_x, d_state, grads = backward(d_out, d_final, cache)
    return {"out": out, "final": final, "d_x": d_x, "d_state": d_state, **grads}


def assert_close(got: dict, want: dict, tol: float, what: str) -> None:
    assert got.keys() == want.keys(), what
    for name in want:
        for g, w in zip(np.atleast_1d(got[name]), np.atleast_1d(want[name]), strict=True):
            err = np.abs(np.asarray(g) - np.asarray(w)).max()
            assert err <= tol, f"{what}: {name} differs by {err:.2e} (tolerance {tol:.0e})"


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("B", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_one_step_equals_the_reference_in_float64(cell, B, bias, monkeypatch) -> None:
    calls = []
    name = cell.split("_")[0] + "_forward"
    real = getattr(_step, name)
    monkeypatch.setattr(_step, name, lambda *a: calls.append(1) or real(*a))
    args = problem(cell, B, bias)
    with forced(False):
        fast = run(cell, *args, workspace={})
    assert calls, "the one-step route was not taken"
    with forced(True):
        ref = run(cell, *args)
    assert_close(fast, ref, 1e-12, f"{cell} B={B} bias={bias}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_shared_workspace_serves_steps_and_sequences_in_turn(cell) -> None:
    """The step keeps its arrays apart from the sequence route's: either may follow the other."""
    workspace: dict = {}
    x, state, weights, d_out, d_final = problem(cell, 2, True)
    long_x = np.random.default_rng(1).uniform(-1, 1, (2, 6, D))  # (B, T, D)
    long_d = np.random.default_rng(2).uniform(-1, 1, (2, 6, H))  # (B, T, H)
    with forced(True):
        want_step = run(cell, x, state, weights, d_out, d_final)
        want_long = run(cell, long_x, state, weights, long_d, d_final)
    with forced(False):
        for _ in range(2):
            got = run(cell, x, state, weights, d_out, d_final, workspace)
            assert_close(got, want_step, 1e-12, "step")
            got = run(cell, long_x, state, weights, long_d, d_final, workspace)
            assert_close(got, want_long, 1e-12, "sequence")


def test_more_rows_a_mask_or_mixed_dtypes_take_the_sequence_route() -> None:
    w = (np.zeros((4 * H, D)), np.zeros((4 * H, H)), None, None)
    assert _step.applies(np.zeros((3, 1, D)), None, w)
    assert not _step.applies(np.zeros((4, 1, D)), None, w)  # B = 4: the packed kernel's
    assert not _step.applies(np.zeros((1, 2, D)), None, w)  # T = 2
    assert not _step.applies(np.zeros((1, 1, D)), np.ones((1, 1), bool), w)
    assert not _step.applies(np.zeros((1, 1, D), np.float32), None, w)  # float64 weights


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_two_threads_give_the_numbers_of_one_bit_for_bit(cell, monkeypatch) -> None:
    _threads.set_num_threads(2)
    if _threads.compiled_threads() < 2:
        pytest.skip("numba's pool has one thread (NUMBA_NUM_THREADS=1)")
    args = problem(cell, 1, True, np.float32)
    monkeypatch.setenv("BPTT_ROUTES", "step1=fused_mt")
    with forced(False):
        two = run(cell, *args, workspace={})
    _threads.set_num_threads(1)
    with forced(False):
        one = run(cell, *args, workspace={})
    assert_close(two, one, 0.0, f"{cell} threads 2 vs 1")


def test_a_steps_route_decides_its_threads(monkeypatch) -> None:
    """fused_mt runs the products on bptt's threads, fused on one, and one thread is one."""
    w_ih, w_hh = np.zeros((64, 8), np.float32), np.zeros((64, 16), np.float32)  # (N, D), (N, H)
    _threads.set_num_threads(2)
    try:
        if _threads.compiled_threads() < 2:
            pytest.skip("numba's pool has one thread (NUMBA_NUM_THREADS=1)")
        for route, threads in (("fused_mt", 2), ("fused", 1)):
            monkeypatch.setenv("BPTT_ROUTES", f"step1={route}")
            assert _step._threads(w_ih, w_hh, 1) == threads, route
        _threads.set_num_threads(1)
        monkeypatch.setenv("BPTT_ROUTES", "step1=fused_mt")
        assert _step._threads(w_ih, w_hh, 1) == 1
    finally:
        _threads.set_num_threads(1)


def test_the_step_probe_compares_typical_rounds_not_the_luckiest(monkeypatch) -> None:
    """A route fast once and slow otherwise (a parallel region waiting on a busy core) loses
    to a steady one for kind step1; the other kinds keep comparing the fastest rounds."""
    clock = [0.0]
    monkeypatch.setattr(_routes.time, "perf_counter", lambda: clock[0])
    calls = {"steady": 0, "lucky": 0}

    def route(name, cost):
        def run(n):
            for _ in range(n):
                calls[name] += 1
                clock[0] += cost(calls[name])

        return run

    runs = {
        "steady": route("steady", lambda i: 1e-3),
        "lucky": route("lucky", lambda i: 1e-4 if i == 3 else 1e-2),  # the first timed call
    }
    lucky, typical = _routes.probe(runs), _routes.probe(runs, typical=True)
    assert min(lucky, key=lucky.get) == "lucky"
    assert min(typical, key=typical.get) == "steady"
    assert "step1" in _routes.TYPICAL and "step" not in _routes.TYPICAL


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_views_reach_the_dot_kernel_contiguous(cell, monkeypatch) -> None:
    """A step's input sliced from a longer sequence (x[:, t:t+1]) and a short sequence
    whose x_t sits beside h_{t-1} in the LSTM's buffer are strided views; the dot kernel
    compiled for a strided ``a`` does not vectorise (4x slower), so each must reach it
    contiguous. Checked on the kernel's compiled signatures, not on a time."""
    from bptt.functional.fast import _dot

    monkeypatch.setenv("BPTT_ROUTES", "proj=dot,step=dot")
    forward = CELLS[cell][0]
    for B, T in ((2, 1), (3, 1), (1, 2), (1, 3)):
        x, state, weights, _, _ = problem(cell, B, bias=True, dtype=np.float32)
        long_x = np.repeat(x, 4, axis=1)  # (B, 4, D)
        forward(long_x[:, 1 : 1 + T], state, *weights, workspace={})
    for kernel in (_dot._dot_rows, _dot._dot_jit):
        for signature in kernel.signatures:
            a = signature[0]  # (M, K), the rows multiplied
            assert a.layout == "C", f"{kernel.__name__} compiled for a {a.layout}-layout a"
