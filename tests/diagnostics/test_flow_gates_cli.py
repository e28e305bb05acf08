"""Gate statistics (retention, saturation) and the ``bptt gradients`` / ``bptt memory`` commands."""

import csv
import json

import numpy as np
import pytest

from bptt.cli import main
from bptt.diagnostics.gates import gate_stats, retention_curve
from bptt.errors import BpttError
from bptt.nn import GRU, LSTM, RNN


def test_retention_of_a_constant_forget_gate_is_its_power():
    f = np.full((6, 2, 3), 0.8)  # (T, B, H)
    np.testing.assert_allclose(retention_curve(f), 0.8 ** np.arange(6), rtol=1e-12)
    mixed = np.concatenate([np.ones((6, 1, 1)), np.zeros((6, 1, 1))], axis=1)  # one keeps, one not
    np.testing.assert_allclose(retention_curve(mixed), [1.0] + [0.5] * 5)


@pytest.mark.parametrize(("bias", "half_life"), [(8.0, None), (-8.0, 1)])
def test_gate_stats_see_a_forget_gate_held_open_or_shut(bias, half_life):
    rng = np.random.default_rng(0)
    layer = LSTM(3, 4, dtype=np.float64, rng=rng)
    layer.params["bias_ih_l0"][4:8] = bias  # the forget block
    stats = gate_stats(layer, rng.standard_normal((2, 10, 3)))
    assert stats.half_life == half_life
    if bias > 0:
        assert stats.saturated_high["forget"] == 1.0 and stats.mean["forget"] > 0.99
    else:
        assert stats.saturated_low["forget"] == 1.0 and stats.retention[1] < 0.01
    assert set(stats.to_dict()["saturated_low"]) == {"input", "forget", "output"}


def test_gru_carry_gate_is_the_update_gate_and_an_rnn_has_none():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 3))
    stats = gate_stats(GRU(3, 4, rng=rng), x)
    assert stats.to_dict()["carry_gate"] == "update"
    assert set(stats.mean) == {"reset", "update", "new"}
    with pytest.raises(BpttError, match="LSTM or a GRU"):
        gate_stats(RNN(3, 4, rng=rng), x)


def test_bptt_gradients_writes_numbers_and_pngs(tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["gradients", "--cells", "rnn,lstm", "--lag", "4", "--examples", "2"]
    assert main([*argv, "--windows", "1,2,9", "--format", "csv", "--out", str(out)]) == 0
    with (out / "flow.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 6  # two models, k = 0..T with T = 5
    want = {"model", "k", "lag", "last_h", "full_h", "jacobian", "lag_grad_weight_hh"}
    assert want <= set(rows[0])
    assert [r["last_c"] for r in rows if r["model"].startswith("RNN")] == [""] * 6
    assert (out / "gradient_flow.png").stat().st_size > 1000
    assert (out / "truncation.png").exists()
    captured = capsys.readouterr()
    assert "RNN at init" in captured.out and "LSTM at init" in captured.out
    # progress goes to stderr, a line as each model starts and ends
    assert "[1/2] RNN at init: T = 5 steps, state size" in captured.err
    assert "[2/2] LSTM at init: done in" in captured.err and "method auto" in captured.err

    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads((out / "flow.json").read_text())
    lstm = report["LSTM at init"]
    assert lstm["gates"]["carry_gate"] == "forget" and lstm["T"] == 5
    assert [r["k"] for r in lstm["truncation"]] == [1, 2, 5]  # windows longer than T are dropped


def test_bptt_gradients_train_keeps_the_starting_model_beside_the_trained_one(tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["gradients", "--cells", "lstm", "--lag", "3", "--examples", "2", "--train"]
    assert main([*argv, "--steps", "3", "--budget", "200", "--out", str(out)]) == 0
    report = json.loads((out / "flow.json").read_text())
    init, trained = report["LSTM at init"], next(v for k, v in report.items() if "trained" in k)
    # Same architecture, different weights: training moved the flow.
    assert init["T"] == trained["T"] == 4
    assert [r["last_c"] for r in init["steps"]] != [r["last_c"] for r in trained["steps"]]
    assert "[" in capsys.readouterr().out  # the summary's [min, max] over lags


def test_bptt_gradients_reads_a_language_model_checkpoint(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    run = tmp_path / "lm"
    flags = ["--text", str(text), "--steps", "2", "--hidden-size", "8", "--embed-size", "4"]
    flags += ["--batch-size", "2", "--window", "8", "--eval-every", "2", "--sample-length", "5"]
    assert main(["train", *flags, "--out", str(run)]) == 0
    out = tmp_path / "g"
    checkpoint = str(run / "best.safetensors")
    assert main(["gradients", checkpoint, "--lag", "6", "--examples", "2", "--out", str(out)]) == 0
    ((label, flow),) = json.loads((out / "flow.json").read_text()).items()
    assert label == "LSTM best.safetensors" and flow["T"] == 6
    assert all(r["last_h"] > 0 for r in flow["steps"]) and flow["gates"]["carry_gate"] == "forget"


def test_bptt_memory_writes_the_table(tmp_path, capsys):
    out = tmp_path / "m"
    argv = ["memory", "--cells", "rnn", "--lags", "2", "--seeds", "0", "--steps", "10"]
    argv += ["--jobs", "0"]
    assert main([*argv, "--budget", "200", "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert table.startswith("| cell | hidden | params | lag 2 | longest lag learned |")
    data = json.loads((out / "results.json").read_text())
    assert data["runs"][0]["lag"] == 2 and "rnn" in data["longest_lag"]
    assert "wall time" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["memory", "--lags", "0,5"], "lags must be at least 1"),
        (["gradients", "--cells", "rnn", "--lag", "0"], "lag and batch size must be at least 1"),
    ],
)
def test_bad_sizes_give_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_cell_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["memory", "--cells", "rnn,transformer"])
    assert e.value.code == 2 and "cells must be among" in capsys.readouterr().err
