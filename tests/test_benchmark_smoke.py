"""The speed benchmark's bptt worker runs and speaks JSON (no timing is asserted); every
benchmark script answers --help."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rnn_speed.py"


def run_worker(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--worker", "bptt", "--threads", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bptt_worker_quick_emits_valid_json(mode: str) -> None:
    proc = run_worker("--config", "lstm-tiny", "--mode", mode, "--quick")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert (result["lib"], result["config"], result["mode"]) == ("bptt", "lstm-tiny", mode)
    assert result["n"] == len(result["times_s"]) == 2
    assert all(t > 0 for t in result["times_s"])
    assert result["min_s"] <= result["median_s"] <= result["max_s"]
    assert result["rss_peak_mb"] > 0
    assert result["env"]["OPENBLAS_NUM_THREADS"] == "1"
    # The checksums the parent compares with torch: finite, and gradients only when training.
    expected = {"out_sq", "dx_sq", "grads_sq"} if mode == "train" else {"out_sq"}
    assert set(result["check"]) == expected
    assert all(math.isfinite(v) and v > 0 for v in result["check"].values())


def test_worker_rejects_an_unknown_config() -> None:
    proc = run_worker("--config", "lstm-nope", "--mode", "train", "--quick")
    assert proc.returncode != 0
    assert "lstm-nope" in proc.stderr and "lstm-a" in proc.stderr


def test_worker_server_times_one_slot_per_request() -> None:
    """--serve: "ready" once set up, then one JSON slot per "run" line, until stdin closes."""
    cmd = [sys.executable, str(SCRIPT), "--worker", "bptt", "--threads", "1"]
    cmd += ["--config", "lstm-tiny", "--mode", "train", "--quick", "--serve"]
    proc = subprocess.run(cmd, input="run\nrun\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert lines[0] == {"ready": True}
    assert len(lines) == 3
    for slot in lines[1:]:
        assert (slot["lib"], slot["config"], slot["mode"]) == ("bptt", "lstm-tiny", "train")
        assert slot["n"] == len(slot["times_s"]) == 2 and slot["check"]["grads_sq"] > 0


@pytest.fixture(scope="module")
def rnn_speed():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(SCRIPT.parent))  # it imports its sibling _timing
        return importlib.import_module("rnn_speed")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_workers_share_the_last_cpus_unless_told_otherwise(rnn_speed, monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert rnn_speed.worker_cpus("auto", threads=1) == [3]
    assert rnn_speed.worker_cpus("auto", threads=2) == [2, 3]
    assert rnn_speed.worker_cpus("auto", threads=4) is None  # every CPU: nothing to pin
    assert rnn_speed.worker_cpus("all", threads=1) is None
    assert rnn_speed.worker_cpus("2,0", threads=2) == [0, 2]
    with pytest.raises(SystemExit, match="may only use CPUs"):
        rnn_speed.worker_cpus("5", threads=1)
    with pytest.raises(SystemExit, match="comma list"):
        rnn_speed.worker_cpus("first", threads=1)


def test_median_interval_takes_binomial_order_statistics(rnn_speed) -> None:
    # n = 30: P(Bin(30, 1/2) <= 9) = 0.021 <= 0.025 < P(<= 10) = 0.049, so the 10th smallest
    # and the 10th largest; n = 5: even the extremes cover only 1 - 2/32, so all of it.
    assert rnn_speed.median_ci([float(v) for v in range(30, 0, -1)]) == (10.0, 21.0)
    assert rnn_speed.median_ci([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0)
    assert rnn_speed.median_ci([7.0]) == (7.0, 7.0)


def worker_check(lib: str, config: str, mode: str) -> dict:
    cmd = [sys.executable, str(SCRIPT), "--worker", lib, "--threads", "1"]
    proc = subprocess.run(
        [*cmd, "--config", config, "--mode", mode, "--quick"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["check"]


@pytest.mark.parametrize(
    "config, mode",
    [("lstm-tiny", "infer"), ("gru-tiny", "infer"), ("lstm-tiny-f", "infer"),
     ("lstm-tiny-gen", "gen"), ("rnn-tiny-gen", "gen")],
)  # fmt: skip
def test_competitors_compute_what_bptt_computes(config: str, mode: str) -> None:
    """ONNX Runtime (weights mapped to its gate order) and torch (the cells for generation)
    give bptt's outputs: the table's check column, here at tiny sizes."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    mine = worker_check("bptt", config, mode)["out_sq"]
    for lib in ("torch", "ort"):
        theirs = worker_check(lib, config, mode)["out_sq"]
        assert abs(theirs - mine) <= 1e-5 * mine, f"{lib}: {theirs} vs bptt {mine}"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads read from /proc")
def test_the_next_slot_waits_until_the_last_workers_threads_sleep(rnn_speed) -> None:
    """A worker still spinning (as ONNX Runtime's pool does after a run) is waited for:
    checked at once, it would still be running (0.3 s of spinning)."""
    spin = "import time\nt = time.time()\nwhile time.time() - t < 0.3: pass\ntime.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", spin])
    try:
        rnn_speed.wait_quiet(proc.pid, limit_s=20)
        assert rnn_speed.running_threads(proc.pid) == 0 and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    "script",
    sorted(p.name for p in SCRIPT.parent.glob("*.py") if not p.name.startswith("_")),
)
def test_every_benchmark_script_answers_help(script: str) -> None:
    """``--help`` prints the script's usage (it measures nothing): a script that read its
    arguments from sys.argv by hand once answered it with a KeyError."""
    cmd = [sys.executable, str(SCRIPT.parent / script), "--help"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:"), proc.stdout[:200]
