"""The main-job benchmark (benchmarks/lm_quality.py): its torch mirror trains as bptt does.

A few updates of a tiny LSTM from the same weights on the same windows must give
the same losses in both workers, and the n-gram baselines known numbers. No time
is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import math
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def lmq():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))  # it imports its sibling rnn_speed
        return importlib.import_module("lm_quality")


def quick_args(steps: int) -> argparse.Namespace:
    return argparse.Namespace(quick=True, steps=steps)


def test_ngram_baselines_on_an_alternating_text(lmq) -> None:
    train = np.array([0, 1] * 50)  # (100,) two symbols, equally often, strictly alternating
    val = np.array([0, 1, 0, 1, 0])  # (5,)
    out = lmq.ngram_bits(train, val, V=3)  # a third symbol that never occurs
    # unigram: p(0) = p(1) = 51 / 103, p(2) = 1 / 103
    assert out["unigram_bpc"] == pytest.approx(-math.log2(51 / 103), rel=1e-12)
    # bigram: the next symbol is certain up to smoothing, and k is the smallest candidate
    assert out["bigram_k"] == min(lmq.BIGRAM_KS)
    assert out["bigram_bpc"] < 0.01


def test_bptt_and_torch_workers_agree_update_by_update(lmq, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    config = lmq.make_config(quick_args(steps=3))
    job = lmq.write_job(tmp_path, config, quick=True)
    assert (job["train_symbols"], job["val_symbols"]) == (20_000, 4_000)

    b = lmq.run_bptt(tmp_path, threads=1)
    threads = torch.get_num_threads()
    try:  # one thread: torch's pool spinning beside NumPy's in one process crawls on a busy box
        t = lmq.run_torch(tmp_path, threads=1)
    finally:
        torch.set_num_threads(threads)  # leave the other tests' setting as it was

    V = job["vocab_size"]
    assert len(b["losses"]) == len(t["losses"]) == 3
    assert b["train_tokens"] == t["train_tokens"] == 3 * config.batch_size * config.window
    assert abs(b["losses"][0] - math.log(V)) < 0.1  # a fresh model is near uniform
    np.testing.assert_allclose(b["losses"], t["losses"], rtol=1e-5, err_msg="training losses")
    np.testing.assert_allclose(b["grad_norms"], t["grad_norms"], rtol=1e-4, err_msg="grad norms")
    assert b["val_bpc"] == pytest.approx(t["val_bpc"], rel=1e-5)
    # The workers' evaluations agree with each other on the same weights, too.
    assert lmq.cross_check(tmp_path, job["val_ids"], config) == pytest.approx(
        t["val_bpc"], rel=1e-5
    )
    # The updates moved the weights away from the shared start.
    with np.load(tmp_path / "init.npz") as init, np.load(tmp_path / "bptt-final.npz") as final:
        assert not np.allclose(init["rnn.weight_hh_l0"], final["rnn.weight_hh_l0"])
