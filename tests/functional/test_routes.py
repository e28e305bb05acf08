"""bptt.functional.fast._routes and _threads: routes measured and cached, forced routes and
thread counts that change nothing but float rounding.

No test here asserts a time: the probe's timings only pick a route, and every
route must give the same numbers (float64 to 1e-12; float32 routes that run the
same code on more threads, bit for bit).

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.functional.fast import _gemm, _routes, _threads
from bptt.functional.gru import gru_backward, gru_forward
from bptt.functional.linear import linear_backward, linear_forward
from bptt.functional.lstm import lstm_backward, lstm_forward
from bptt.functional.reference import forced
from bptt.functional.rnn import rnn_backward, rnn_forward

compiled = pytest.mark.skipif(not _gemm.JIT, reason="numba absent or BPTT_NO_JIT set")


@pytest.fixture(autouse=True)
def fresh_routes(tmp_path, monkeypatch):
    """Each test starts with no remembered route and an empty cache directory of its own.

    The cells take the fast route here even under BPTT_REFERENCE=1: its routes are the subject.
    """
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path))
    monkeypatch.delenv("BPTT_ROUTES", raising=False)
    threads = _threads.get_num_threads()
    _routes.reset()
    with forced(False):
        yield
    _routes.reset()
    _threads.set_num_threads(threads)


def count_probes(monkeypatch) -> list[dict]:
    """Record every probe (and still run it)."""
    seen: list[dict] = []
    real = _routes.probe

    def spy(runs, **options):
        seen.append(runs)
        return real(runs, **options)

    monkeypatch.setattr(_routes, "probe", spy)
    return seen


def dw_case(dtype=np.float64):
    rng = np.random.default_rng(0)
    g = rng.standard_normal((300, 24)).astype(dtype)  # (T*B, N)
    x = rng.standard_normal((300, 10)).astype(dtype)  # (T*B, K)
    return g, x


def test_probe_result_is_stored_and_reused_from_disk(monkeypatch) -> None:
    probes = count_probes(monkeypatch)
    g, x = dw_case()
    _gemm.weight_grad(g, x)
    assert len(probes) == 1
    info, key = _routes._current()
    record = json.loads(_routes.cache_file(key).read_text())
    assert record["machine"] == info
    (entry,) = record["routes"]
    assert entry.startswith("dw|float64|") and record["routes"][entry]["route"] in ("gx", "xg")
    _routes.reset()  # a new process: the choice comes from the file, no probe
    _gemm.weight_grad(g, x)
    assert len(probes) == 1
    assert _routes.used()[entry]["source"] == "cache"


@pytest.mark.parametrize("changed", ["blas", "cpu_flags", "numpy"])
def test_cache_is_invalidated_when_its_key_changes(monkeypatch, changed) -> None:
    probes = count_probes(monkeypatch)
    g, x = dw_case()
    _gemm.weight_grad(g, x)
    real_machine = _routes.machine
    monkeypatch.setattr(_routes, "machine", lambda: {**real_machine(), changed: "other"})
    _routes.reset()
    _gemm.weight_grad(g, x)
    assert len(probes) == 2, f"a new {changed} must be measured again"


def test_the_key_names_numpys_blas_whichever_other_blas_is_loaded_first(monkeypatch) -> None:
    """SciPy's wheel brings a second OpenBLAS; listed before NumPy's in one process and
    after it in another, it must not give the two processes different cache files."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    numpys = {
        "user_api": "blas",
        "internal_api": "openblas",
        "version": "0.3.31",
        "architecture": "SkylakeX",
        "filepath": "/sp/numpy.libs/libscipy_openblas64_.so",
    }
    scipys = {**numpys, "version": "0.3.30", "filepath": "/sp/scipy.libs/libscipy_openblas.so"}
    keys = []
    for pools in ([numpys, scipys], [scipys, numpys]):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda pools=pools: pools)
        keys.append(_routes._blas())
    assert keys == ["openblas 0.3.31 SkylakeX"] * 2


def test_a_file_with_another_machine_inside_is_ignored(monkeypatch) -> None:
    probes = count_probes(monkeypatch)
    g, x = dw_case()
    _gemm.weight_grad(g, x)
    info, key = _routes._current()
    path = _routes.cache_file(key)
    record = json.loads(path.read_text())
    record["machine"] = {**info, "blas": "someone else's"}
    path.write_text(json.dumps(record))
    _routes.reset()
    _gemm.weight_grad(g, x)
    assert len(probes) == 2


def test_thread_count_is_part_of_the_key(monkeypatch) -> None:
    probes = count_probes(monkeypatch)
    g, x = dw_case()
    _threads.set_num_threads(1)
    _gemm.weight_grad(g, x)
    _threads.set_num_threads(2)
    _gemm.weight_grad(g, x)
    assert len(probes) == 2
    assert {e.rsplit("|", 1)[1] for e in _routes.used()} == {"t1", "t2"}


def test_forced_route_skips_the_probe(monkeypatch) -> None:
    probes = count_probes(monkeypatch)
    monkeypatch.setenv("BPTT_ROUTES", "dw=xg")
    g, x = dw_case()
    d_w = _gemm.weight_grad(g, x)
    assert probes == [] and d_w.flags.c_contiguous
    np.testing.assert_allclose(d_w, g.T @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", ["dw=fast", "speed=blas", "dw"])
def test_bad_bptt_routes_is_a_clear_error(monkeypatch, value) -> None:
    monkeypatch.setenv("BPTT_ROUTES", value)
    with pytest.raises(BpttError, match="BPTT_ROUTES: expected"):
        _gemm.weight_grad(*dw_case())


@pytest.mark.parametrize("n", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_counts(n) -> None:
    with pytest.raises(BpttError, match="whole number >= 1"):
        _threads.set_num_threads(n)


def test_thread_count_comes_from_the_environment_else_the_affinity_mask(monkeypatch) -> None:
    for var in _threads.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_threads, "_threads", None)
    assert _threads.get_num_threads() == _threads.available_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(_threads, "_threads", None)
    assert _threads.get_num_threads() == 1
    monkeypatch.setenv("BPTT_NUM_THREADS", "3")  # bptt's own variable wins
    monkeypatch.setattr(_threads, "_threads", None)
    assert _threads.get_num_threads() == 3


QUIET = """
import json, numpy, threadpoolctl
from bptt.functional.fast import _threads
_threads.set_num_threads({n})
libs = [p for p in threadpoolctl.threadpool_info() if p.get("internal_api") == "openblas"]
import ctypes, os
timeouts = [ctypes.CDLL(p["filepath"]).openblas_thread_timeout() for p in libs]
print(json.dumps([os.environ.get("OPENBLAS_THREAD_TIMEOUT"), timeouts, len(libs)]))
"""


@pytest.mark.parametrize(
    ("n", "user", "expected"), [(2, None, "4"), (2, "12", "12"), (1, None, None)]
)
def test_threads_above_one_ask_openblas_not_to_spin_unless_the_user_said(n, user, expected) -> None:
    """OpenBLAS's spinning threads would hold the cores the compiled parallel loops need."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = user
    out = subprocess.run(
        [sys.executable, "-c", QUIET.format(n=n)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    value, timeouts, found = json.loads(out.stdout)
    assert value == expected
    if found == 0:
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    assert timeouts == [int(expected or 0)] * found  # what OpenBLAS itself now reads


@pytest.mark.skipif(_threads.numba is None, reason="numba's pool (the fast extra)")
@pytest.mark.parametrize(("user", "expected"), [(None, _threads.GOMP_SPINCOUNT), ("500", "500")])
def test_numbas_pool_starts_with_a_short_openmp_spin_unless_the_user_said(user, expected) -> None:
    """Set before numba's pool starts (GNU OpenMP reads it once, when it loads)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if user is not None:
        env["GOMP_SPINCOUNT"] = user
    code = "import os, bptt; bptt.set_num_threads(1); print(os.environ['GOMP_SPINCOUNT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


# --------------------------------------------------------------------------- same numbers


def layer_results(cell: str, dtype, B=5, T=12, D=7, H=16, masked=True) -> list[np.ndarray]:
    """Forward and backward of one cell (and a Linear on its outputs): every output and gradient."""
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, D)).astype(dtype)  # (B, T, D)
    w_ih = (0.4 * rng.standard_normal((G * H, D))).astype(dtype)  # (G*H, D)
    w_hh = (0.4 * rng.standard_normal((G * H, H))).astype(dtype)  # (G*H, H)
    b_ih, b_hh = (0.1 * rng.standard_normal((2, G * H))).astype(dtype)  # (G*H,) each
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)  # (B, H)
    d_out = rng.standard_normal((B, T, H)).astype(dtype)  # (B, T, H)
    mask = (np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]) if masked else None
    if cell == "lstm":
        out, final, cache = lstm_forward(x, (h0, h0 * 0.5), w_ih, w_hh, b_ih, b_hh, mask=mask)
        d_x, d_state, grads = lstm_backward(d_out, final, cache)
    else:
        forward, backward = {
            "rnn": (rnn_forward, rnn_backward),
            "gru": (gru_forward, gru_backward),
        }[cell]
        out, final, cache = forward(x, (h0,), w_ih, w_hh, b_ih, b_hh, mask=mask)
        d_x, d_state, grads = backward(d_out, final, cache)
    v = rng.standard_normal((3, H)).astype(dtype)  # (3, H) an output layer
    y, lin_cache = linear_forward(out, v)  # (B, T, 3)
    d_in, lin_grads = linear_backward(np.ones_like(y), lin_cache)
    return [out, *final, d_x, *d_state, *grads.values(), y, d_in, lin_grads["weight"]]


def assert_all_close(a: list, b: list, tol: float, what: str) -> None:
    """Each result within tol, relative to its largest entry (the sums' scale)."""
    for k, (p, q) in enumerate(zip(a, b, strict=True)):
        scale = max(1.0, float(np.abs(q).max()))
        np.testing.assert_allclose(p, q, rtol=0, atol=tol * scale, err_msg=f"{what}: result {k}")


ROUTE_SETS = ["dw=gx,step=blas", "dw=xg,step=blas", "dw=gx,step=blas_mt", "dw=xg,step=blas_mt"]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_forced_route_gives_the_same_float64_numbers(monkeypatch, cell) -> None:
    _threads.set_num_threads(2)  # so that blas_mt applies
    monkeypatch.setenv("BPTT_ROUTES", "default")
    reference = layer_results(cell, np.float64)
    for routes in ROUTE_SETS:
        monkeypatch.setenv("BPTT_ROUTES", routes)
        assert_all_close(layer_results(cell, np.float64), reference, 1e-12, routes)
    monkeypatch.delenv("BPTT_ROUTES")  # and whatever the probe picks
    assert_all_close(layer_results(cell, np.float64), reference, 1e-12, "probed")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_one_and_two_threads_give_the_same_float64_numbers(cell) -> None:
    _threads.set_num_threads(1)
    one = layer_results(cell, np.float64)
    _threads.set_num_threads(2)
    assert_all_close(layer_results(cell, np.float64), one, 1e-12, "threads 1 vs 2")


DOT_SETS = ["proj=dot,step=dot", "proj=dot,step=dot_mt", "proj=blas,step=dot_mt"]


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("B", "T"), [(1, 12), (3, 12), (1, 1), (2, 3)])
def test_dot_routes_for_few_rows_give_the_same_float64_numbers(monkeypatch, cell, B, T) -> None:
    """B < 4 (generation, streaming): the compiled dot products, on one thread or two."""
    _threads.set_num_threads(2)
    if _threads.compiled_threads() < 2:
        pytest.skip("numba's pool has one thread here (NUMBA_NUM_THREADS=1)")
    monkeypatch.setenv("BPTT_ROUTES", "proj=blas,step=blas")
    reference = layer_results(cell, np.float64, B=B, T=T)
    assert _gemm.StepProduct(np.zeros((16, 4)), B, T).route == "blas"
    for routes in DOT_SETS:
        monkeypatch.setenv("BPTT_ROUTES", routes)
        step = routes.partition("step=")[2]
        assert _gemm.StepProduct(np.zeros((16, 4)), B, T).route == step  # forced, so it runs
        assert_all_close(layer_results(cell, np.float64, B=B, T=T), reference, 1e-12, routes)


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("B", [1, 2, 3])
def test_packed_route_for_few_rows_gives_the_dot_routes_numbers(monkeypatch, cell, B) -> None:
    """B < 4 on AVX-512: the packed kernel's tiles of eight panels, a route the probe may
    pick. float32 (the packed kernel's only dtype): both routes within float32 rounding of
    the float64 results (the RNN's growing gradients make the two differ by about 1e-5)."""
    H = 48  # 4H = 192: twelve panels, a tile of eight, then pairs; GRU nine: eight and one
    if not _gemm.thin_usable(np.float32, H, B):
        pytest.skip("no AVX-512 here: the packed route starts at four rows")
    exact = layer_results(cell, np.float64, B=B, T=12, H=H)
    for step in ("dot", "packed"):
        monkeypatch.setenv("BPTT_ROUTES", f"proj=blas,step={step}")
        assert _gemm.StepProduct(np.zeros((4 * H, H), np.float32), B, 12).route == step
        assert_all_close(layer_results(cell, np.float32, B=B, T=12, H=H), exact, 5e-5, step)


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B", [1, 2])  # one row: the LSTM's gate kernel runs outside a region
def test_dot_on_two_threads_equals_dot_on_one_bit_for_bit(monkeypatch, cell, dtype, B) -> None:
    """dot_mt splits the rows of w (H = 18: 4*H is no multiple of 8); each sum is the same.
    ∂E/∂x's route is forced too: left to the probe, two threads may pick another route."""
    monkeypatch.setenv("BPTT_ROUTES", "proj=dot,step=dot,dx=dot")
    _threads.set_num_threads(1)
    one = layer_results(cell, dtype, B=B, T=10, H=18)
    _threads.set_num_threads(2)
    if _threads.compiled_threads() < 2:
        pytest.skip("numba's pool has one thread here (NUMBA_NUM_THREADS=1)")
    monkeypatch.setenv("BPTT_ROUTES", "proj=dot,step=dot_mt,dx=dot")
    two = layer_results(cell, dtype, B=B, T=10, H=18)
    for k, (p, q) in enumerate(zip(two, one, strict=True)):
        np.testing.assert_array_equal(p, q, err_msg=f"result {k}")


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("step", ["packed", "packed_mt"])
def test_backward_loops_read_the_upstream_gradient_contiguous(monkeypatch, cell, step) -> None:
    """∂E/∂outputs arrives batch-first (B, T, H); its time-major transposed view, handed to
    the compiled backward loops, had numba compile their gate kernels for a strided
    layout, whose loops do not vectorise (the LSTM's: 1.03 against 0.67 ms at T = 100,
    B = 32, H = 128). Checked on the step functions' compiled signatures, not on a time."""
    from bptt.functional.fast import _gru_rnn_loops, _time_loops

    monkeypatch.setenv("BPTT_ROUTES", f"proj=packed,dx=packed,step={step}")
    _threads.set_num_threads(2 if step == "packed_mt" else 1)
    layer_results(cell, np.float32, B=5, T=12, H=16)
    kernel, arrays_at, d_out_at = {  # the step function, its arrays tuple, d_out in it
        "lstm": (_time_loops._lstm_backward_rows, 3, 3),
        "gru": (_gru_rnn_loops._gru_backward_rows, 5, 3),
        "rnn": (_gru_rnn_loops._rnn_backward_rows, 5, 1),
    }[cell]
    assert kernel.signatures, f"{kernel.__name__} never ran"
    for signature in kernel.signatures:
        d_out = signature[arrays_at][d_out_at]
        assert d_out.layout == "C", f"{kernel.__name__} compiled for a {d_out.layout}-layout d_out"


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("B", [5, 2])  # 2: AVX-512's tiles of one to three rows (else skipped)
def test_packed_route_with_a_padded_panel_gives_the_float64_numbers(monkeypatch, cell, B) -> None:
    """H = 10: no cell's G*H (10, 40, 30) is a multiple of 16, so every packed product
    (projection, per-step, ∂E/∂x) ends in a zero-padded panel; float32 within rounding
    of the float64 results, forward and backward."""
    H = 10
    if not (_gemm.usable(np.float32, H, B) or _gemm.thin_usable(np.float32, H, B)):
        pytest.skip("no AVX-512 here: the packed route starts at four rows")
    monkeypatch.setenv("BPTT_ROUTES", "proj=packed,dx=packed,step=packed")
    assert _gemm.StepProduct(np.zeros((3 * H, H), np.float32), B, 12).route == "packed"
    exact = layer_results(cell, np.float64, B=B, T=12, H=H)
    assert_all_close(layer_results(cell, np.float32, B=B, T=12, H=H), exact, 5e-5, "packed")


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("H", [32, 10])  # 10: every G*H ends in a zero-padded panel
def test_packed_on_two_threads_equals_packed_on_one_bit_for_bit(
    monkeypatch, cell, masked, H
) -> None:
    """The compiled kernels split columns and rows over threads; each number is the same sum."""
    B, T, D = 9, 12, 7  # 9 rows: two row shares of unequal size (4, 5), tiles 4 and 4, 1
    monkeypatch.setenv("BPTT_ROUTES", "proj=packed,dx=packed,dw=gx,step=packed")
    _threads.set_num_threads(1)
    one = layer_results(cell, np.float32, B, T, D, H, masked)
    _threads.set_num_threads(2)
    if _threads.compiled_threads() < 2:
        pytest.skip("numba's pool has one thread here (NUMBA_NUM_THREADS=1)")
    monkeypatch.setenv("BPTT_ROUTES", "proj=packed,dx=packed,dw=gx,step=packed_mt")
    assert _gemm.StepProduct(np.zeros((4 * H, H), np.float32), B, T).route == "packed_mt"
    two = layer_results(cell, np.float32, B, T, D, H, masked)
    for k, (p, q) in enumerate(zip(two, one, strict=True)):
        np.testing.assert_array_equal(p, q, err_msg=f"result {k}")


TEAM_CASES = [  # (route on one thread, team route on two, dtype, H)
    ("proj=dot,step=dot", "proj=dot,step=dot_team", np.float64, 40),
    ("proj=dot,step=dot", "proj=dot,step=dot_team", np.float32, 40),
    ("proj=packed,step=packed", "proj=packed,step=packed_team", np.float32, 48),
]


@compiled
@pytest.mark.parametrize(
    ("one", "team", "dtype", "H"), TEAM_CASES, ids=["dot64", "dot32", "packed"]
)
@pytest.mark.parametrize("B", [1, 2, 3])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_team_routes_equal_their_one_thread_routes_bit_for_bit(
    monkeypatch, one, team, dtype, H, B, masked
) -> None:
    """The LSTM forward as a team (one parallel region, each thread its hidden units, all
    meeting each step; packed_team also makes the input projection) gives the one-thread
    route's outputs and final state bit for bit. dot at H = 40: five runs of 8 units a
    gate, split 16 | 24 (a split at 20 would cut a run, and its sums would differ);
    packed at H = 48: three panels a gate, split 16 | 32 (one panel, a pair)."""
    T = 9
    if "packed" in team and not _gemm.thin_usable(np.float32, 4 * H, B):
        pytest.skip("no AVX-512 here: the packed route starts at four rows")
    monkeypatch.setenv("BPTT_ROUTES", one)
    _threads.set_num_threads(1)
    reference = layer_results("lstm", dtype, B=B, T=T, H=H, masked=masked)
    _threads.set_num_threads(2)
    if _threads.compiled_threads() < 2:
        pytest.skip("numba's pool has one thread here (NUMBA_NUM_THREADS=1)")
    monkeypatch.setenv("BPTT_ROUTES", team)
    step = team.partition("step=")[2]
    assert _gemm.StepProduct(np.zeros((4 * H, H), dtype), B, T, groups=4).route == step
    results = layer_results("lstm", dtype, B=B, T=T, H=H, masked=masked)
    for k in range(3):  # outputs, h_T, c_T: the forward, which the team ran
        np.testing.assert_array_equal(results[k], reference[k], err_msg=f"result {k}")
    tol = 1e-12 if dtype == np.float64 else 5e-5  # the backward: whatever route the probe picks
    assert_all_close(results, reference, tol, team)


@compiled
def test_team_routes_apply_only_where_a_thread_can_own_whole_runs_of_units(monkeypatch) -> None:
    """dot_team needs N/groups a multiple of 8 (the one-thread walk's runs), packed_team of
    16 (a panel), and both a loop that can split its columns (groups) and two threads."""
    _threads.set_num_threads(2)
    if _threads.compiled_threads() < 2:
        pytest.skip("numba's pool has one thread here (NUMBA_NUM_THREADS=1)")
    monkeypatch.setenv("BPTT_ROUTES", "step=dot_team")
    assert _gemm.StepProduct(np.zeros((4 * 24, 24)), 1, 10, groups=4).route == "dot_team"
    for w, groups in [(np.zeros((4 * 20, 20)), 4), (np.zeros((4 * 24, 24)), 0)]:
        assert _gemm.StepProduct(w, 1, 10, groups=groups).route != "dot_team"
    _threads.set_num_threads(1)
    assert _gemm.StepProduct(np.zeros((4 * 24, 24)), 1, 10, groups=4).route != "dot_team"


TEAM_ALONE = """
import numba, numpy as np, bptt
from bptt.functional.fast import _team
from bptt.functional.fast._time_loops import _lstm_forward_steps_jit, _lstm_forward_steps_team
bptt.set_num_threads(1)  # numba's pool: one thread, so the region's chunks run one by one
T, B, H = 7, 2, 16
rng = np.random.default_rng(3)
w = rng.standard_normal((4 * H, H)) * 0.3
g0 = rng.standard_normal((T, B, 4 * H))
bias, real = rng.standard_normal(4 * H), np.ones((T, B), bool)
runs = []
for team in (False, True):
    gates, h, c = g0.copy(), np.zeros((T + 1, B, H)), np.zeros((T + 1, B, H))
    tanh_c, rec, none = np.empty((T, B, H)), np.empty((B, 4 * H)), np.empty((0, H, 16))
    if team:  # three parts a step, on a pool of one thread
        x, empty = np.empty((0, H)), np.empty((0, H, 16))
        flags = _team.flags(T + 1, 3)
        _lstm_forward_steps_team(none, w, gates, rec, bias, h, c, tanh_c, real, 3, flags, x, empty)
        claims = flags[:T, 0 : 3 * _team.LINE : _team.LINE]  # (T, 3) each part's claims
        assert (flags[:T, -_team.LINE] == 3).all() and (claims >= 1).all()
    else:
        _lstm_forward_steps_jit(none, w, gates, rec, bias, h, c, tanh_c, real)
    runs.append(h)
assert np.array_equal(runs[0], runs[1])
print("ok")
"""


@compiled
def test_a_team_alone_runs_every_part_itself_and_never_waits() -> None:
    """On a pool of one thread the team's chunks run one after another: the first claims
    and computes every part of every step, the others find them claimed and finished.
    A plain barrier would hang here; the subprocess's timeout turns a hang into a failure."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", TEAM_ALONE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


@compiled
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_routes_agree_to_float32_rounding(monkeypatch, cell) -> None:
    _threads.set_num_threads(2)
    monkeypatch.setenv("BPTT_ROUTES", "proj=blas,dx=blas,dw=gx,step=blas")
    reference = layer_results(cell, np.float32, H=32)
    for routes in ["proj=packed,dx=packed,dw=xg,step=packed", "step=packed_mt", "step=blas_mt"]:
        monkeypatch.setenv("BPTT_ROUTES", routes)
        assert_all_close(layer_results(cell, np.float32, H=32), reference, 1e-5, routes)


def test_cli_threads_flag_sets_the_count_and_rejects_zero(capsys) -> None:
    from bptt import cli

    assert cli.main(["sample", "no-such.ckpt", "--threads", "0"]) == 2
    assert "whole number >= 1, got 0" in capsys.readouterr().err
    cli.main(["sample", "no-such.ckpt", "--threads", "1"])  # fails later: no such checkpoint
    assert _threads.get_num_threads() == 1


def test_without_numba_the_first_call_says_how_to_get_the_fast_path(monkeypatch, capsys) -> None:
    from bptt.functional.fast import _jit

    monkeypatch.setattr(_jit, "numba", None)
    monkeypatch.setattr(_jit, "_told", False)
    for _ in range(2):
        layer_results("rnn", np.float64)
    err = capsys.readouterr().err
    assert err.count("pip install 'bptt[fast]'") == 1, err


def test_with_numba_or_bptt_no_jit_nothing_is_said(monkeypatch, capsys) -> None:
    from bptt.functional.fast import _jit

    monkeypatch.setattr(_jit, "_told", False)
    if _jit.numba is None:
        pytest.skip("numba absent: the notice is expected here")
    layer_results("gru", np.float64)
    assert "bptt[fast]" not in capsys.readouterr().err


@compiled
@pytest.mark.parametrize("module", ["bptt.functional.fast.probe_for_test", "elsewhere"])
@pytest.mark.parametrize("tty", [True, False])
def test_the_first_kernel_compiled_says_so_once_to_a_terminal(monkeypatch, module, tty) -> None:
    """A kernel numba compiles (not one it loads from its cache) in a bptt module: one
    line to a terminal's stderr, the first time only; nothing for another package's
    kernels, nothing to a log or a captured stream. Two fresh functions are compiled
    through numba's own event, so the listener's wiring is checked too."""
    import io

    import numba

    from bptt.functional.fast import _jit

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return tty

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(_jit, "_compiling_told", False)
    for n in (1, 2):

        def kernel(x):
            return x + 1

        kernel.__module__ = module  # as if defined there
        assert numba.njit(kernel)(n) == n + 1  # compiled here: a new function, no cache
    said = err.getvalue().count("bptt: compiling its kernels for this CPU, once")
    assert said == (1 if tty and module.startswith("bptt.") else 0), err.getvalue()


CELL_FUNCTIONS = {  # cell: forward, backward, gates G, state arrays
    "lstm": (lstm_forward, lstm_backward, 4, 2),
    "gru": (gru_forward, gru_backward, 3, 1),
    "rnn": (rnn_forward, rnn_backward, 1, 1),
}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("H", [16, 10])  # G*H a multiple of 16, or a padded panel
def test_float64_inputs_with_float32_weights_run_as_the_reference_runs_them(cell, H) -> None:
    """The cell functions take mixed dtypes as NumPy promotes them: float64 inputs with
    float32 weights compute in float64, each weight's gradient in its weight's dtype.
    The fast route (whose packed kernel is float32 only, and failed to compile for
    float64 rows) must give the reference's dtypes and numbers."""
    forward, backward, G, arity = CELL_FUNCTIONS[cell]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 12, 7))  # (B, T, D) float64
    w_ih = rng.standard_normal((G * H, 7)).astype(np.float32)  # (G*H, D)
    w_hh = (0.3 * rng.standard_normal((G * H, H))).astype(np.float32)  # (G*H, H)
    b_ih = (0.1 * rng.standard_normal(G * H)).astype(np.float32)  # (G*H,)
    state = tuple(np.zeros((5, H), np.float32) for _ in range(arity))  # (B, H) each
    results = []
    for reference in (False, True):
        with forced(reference):
            out, final, cache = forward(x, state, w_ih, w_hh, b_ih, None)
            d_x, d_state, grads = backward(np.ones_like(out), None, cache)
        results.append([out, *final, d_x, *d_state, *grads.values()])
    for k, (fast, ref) in enumerate(zip(*results, strict=True)):
        assert fast.dtype == ref.dtype, f"result {k}: {fast.dtype} against {ref.dtype}"
        tol = 1e-12 if fast.dtype == np.float64 else 1e-5
        np.testing.assert_allclose(fast, ref, rtol=0, atol=tol * max(1, np.abs(ref).max()))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_state_given_as_lists_runs_on_the_fast_route(cell) -> None:
    """The checks take a state of nested lists; the fast route (the default) makes it an
    array of the inputs' and weights' dtype, float32 here: the outputs of that array."""
    forward, _, G, arity = CELL_FUNCTIONS[cell]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)  # (B, T, D)
    w_ih = rng.standard_normal((G * 4, 3)).astype(np.float32)  # (G*H, D)
    w_hh = (0.3 * rng.standard_normal((G * 4, 4))).astype(np.float32)  # (G*H, H)
    state = tuple([[0.1] * 4] * 2 for _ in range(arity))  # (B, H) lists
    arrays = tuple(np.asarray(s, dtype=np.float32) for s in state)  # (B, H) each
    with forced(False):
        got = forward(x, state, w_ih, w_hh, None, None)[0]
        want = forward(x, arrays, w_ih, w_hh, None, None)[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@compiled
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("route, threads", [("packed", 1), ("packed_mt", 2), ("blas", 1)])
def test_rows_past_their_sequence_are_left_out_and_carry_their_state(
    monkeypatch, cell, route, threads
):
    """Lengths longest first: at each step the rows after the last real one are left out of
    the product and the gate kernel (their state carried, their gate gradients zero), on
    the compiled loops and the Python one; the numbers match the reference loop that
    computes them all."""
    monkeypatch.setenv("BPTT_ROUTES", f"step={route}")
    _threads.set_num_threads(threads)
    forward, backward, G, n_states = CELL_FUNCTIONS[cell]
    B, T, D, H = 8, 12, 5, 16  # T >= MIN_STEPS, so the packed routes apply
    rng = np.random.default_rng(3)
    lengths = np.array([12, 12, 9, 6, 4, 2, 1, 1])  # (B,) longest first
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    f32 = np.float32
    x = rng.standard_normal((B, T, D)).astype(f32)
    state = tuple(0.5 * rng.standard_normal((B, H)).astype(f32) for _ in range(n_states))
    weights = [0.3 * rng.standard_normal(s).astype(f32) for s in ((G * H, D), (G * H, H))]
    biases = [0.1 * rng.standard_normal(G * H).astype(f32) for _ in range(2)]
    d_out = rng.standard_normal((B, T, H)).astype(f32)
    d_final = tuple(rng.standard_normal((B, H)).astype(f32) for _ in range(n_states))
    runs = []
    for reference in (False, True):
        with forced(reference):
            out, final, cache = forward(x, state, *weights, *biases, mask=mask)
            kept: dict = {}
            d_x, d_state, grads = backward(d_out, d_final, cache, state_grads=kept)
        runs.append([out, *final, d_x, *d_state, *grads.values(), *kept.values()])
        if not reference:
            assert route in _routes._decided.values()  # the route asked for ran
            if "gates" in cache:  # left out: kept zero
                assert cache["gates"][1:, 6:].max() == 0
    for fast, ref in zip(*runs, strict=True):
        np.testing.assert_allclose(fast, ref, rtol=2e-4, atol=2e-5)
