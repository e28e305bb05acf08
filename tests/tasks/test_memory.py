"""Long-range memory tasks: what the batches hold, the parameter budget, learning at a short
lag, the sweep's bookkeeping, and the exploding RNN with and without clipping."""

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.models.memory import N_COPY, N_SYMBOLS, MemoryModel, chrono_init_
from bptt.tasks.memory.problems import (
    RunResult,
    chance_accuracy,
    hidden_for_budget,
    make_batch,
    num_parameters,
    run_config,
    train_run,
)
from bptt.tasks.memory.sweep import (
    exploding_runs,
    longest_lags,
    markdown_table,
    single_threaded,
    sweep,
)


def test_first_symbol_batch_asks_for_the_first_symbol_at_the_last_step():
    b = make_batch("first", 7, 5, np.random.default_rng(0))
    assert b.inputs.shape == (5, 8, N_SYMBOLS) and b.mask.shape == (5, 8)
    assert (b.inputs.sum(axis=2) == 1).all()  # one-hot
    assert b.mask[:, -1].all() and not b.mask[:, :-1].any()
    np.testing.assert_array_equal(b.targets[:, -1], b.inputs[:, 0].argmax(axis=1))


def test_adding_batch_target_is_the_sum_of_the_two_marked_values():
    b = make_batch("adding", 9, 6, np.random.default_rng(1), dtype=np.float64)
    assert b.inputs.shape == (6, 10, 2)
    assert (b.inputs[:, :, 1].sum(axis=1) == 2).all() and (b.inputs[:, 0, 1] == 1).all()
    marked = (b.inputs[:, :, 0] * b.inputs[:, :, 1]).sum(axis=1)
    np.testing.assert_allclose(b.targets[:, -1], marked)


def test_copy_batch_writes_the_symbols_back_after_the_go_marker():
    lag = 4
    b = make_batch("copy", lag, 3, np.random.default_rng(2))
    T = 2 * N_COPY + lag
    ids = b.inputs.argmax(axis=2)  # (B, T)
    assert ids.shape == (3, T)
    assert (ids[:, N_COPY + lag] == N_SYMBOLS + 1).all()  # go
    np.testing.assert_array_equal(b.targets[:, -N_COPY:], ids[:, :N_COPY])
    assert b.mask.sum() == 3 * N_COPY


def test_bad_task_or_lag_is_refused():
    with pytest.raises(BpttError, match="memory task must be one of"):
        make_batch("recall", 3, 2, np.random.default_rng(0))
    with pytest.raises(BpttError, match="lag and batch size"):
        make_batch("first", 0, 2, np.random.default_rng(0))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_parameter_budget_is_shared_and_counted_right(cell):
    H = hidden_for_budget(cell, "first", 2500)
    model = MemoryModel("first", cell, H, rng=np.random.default_rng(0))
    assert model.num_parameters() == num_parameters(cell, N_SYMBOLS, H, N_SYMBOLS) <= 2500
    assert num_parameters(cell, N_SYMBOLS, H + 1, N_SYMBOLS) > 2500  # the largest that fits


def test_chrono_init_keeps_lstm_and_gru_memories_longer():
    rng = np.random.default_rng(0)
    lstm = MemoryModel("first", "lstm", 8, rng=rng, chrono=100.0).rnn
    H = 8
    b_f = lstm.params["bias_ih_l0"][H : 2 * H] + lstm.params["bias_hh_l0"][H : 2 * H]
    assert (b_f >= 0).all() and (b_f <= np.log(99)).all() and b_f.max() > 2
    np.testing.assert_allclose(lstm.params["bias_ih_l0"][:H], -b_f)
    gru = MemoryModel("first", "gru", 8, rng=rng, chrono=100.0).rnn
    assert (gru.params["bias_ih_l0"][H : 2 * H] >= 0).all()
    with pytest.raises(BpttError, match="t_max"):
        chrono_init_(lstm, 2.0, rng)


def test_adding_model_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    model = MemoryModel("adding", "gru", 4, dtype=np.float64, rng=rng)
    batch = make_batch("adding", 4, 3, rng, dtype=np.float64)
    _, grads, _ = model.loss_and_grads(batch)
    w = model.params["head.weight"]
    eps, (i, j) = 1e-6, (0, 2)
    w[i, j] += eps
    up = model._loss(model.forward(batch.inputs), batch)[0]
    w[i, j] -= 2 * eps
    down = model._loss(model.forward(batch.inputs), batch)[0]
    w[i, j] += eps
    assert grads["head.weight"][i, j] == pytest.approx((up - down) / (2 * eps), rel=1e-6)


def test_a_short_lag_is_learned_well_above_chance():
    result, model = train_run("first", "gru", 3, seed=0, budget=600, steps=300, threshold=0.99)
    assert result.accuracy > 0.9 > chance_accuracy("first") + 0.5
    assert result.updates <= 300 and result.hidden_size == model.rnn.hidden_size


def _r(cell, lag, seed, acc):
    return RunResult("first", cell, lag, seed, 8, 100, acc, 10, 0.1)


def test_longest_lag_is_per_seed_then_averaged_and_zero_when_nothing_learned():
    results = [
        _r("rnn", 5, 0, 1.0),
        _r("rnn", 10, 0, 0.5),
        _r("rnn", 5, 1, 0.97),
        _r("rnn", 10, 1, 0.96),
        _r("lstm", 5, 0, 0.2),
        _r("lstm", 10, 0, 0.3),
    ]
    got = longest_lags(results, 0.95)
    assert got["rnn"] == {"per_seed": [5, 10], "mean": 7.5}
    assert got["lstm"] == {"per_seed": [0], "mean": 0.0}
    table = markdown_table(results, 0.95)
    assert "| RNN |" in table and "**7.5** (5, 10)" in table and "0.73 (1/2)" in table


def test_a_tiny_sweep_runs_in_worker_processes():
    seen = []
    results = sweep(
        "first",
        ["rnn"],
        [2],
        [0, 1],
        jobs=2,
        progress=seen.append,
        budget=300,
        steps=20,
        eval_every=10,
    )
    assert [(r.cell, r.lag, r.seed) for r in results] == [("rnn", 2, 0), ("rnn", 2, 1)]
    assert len(seen) == 2 and all(0 <= r.accuracy <= 1 for r in results)


@pytest.mark.slow  # 800 updates at T = 21: about 20 s on a quiet core
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exploding_rnn_diverges_without_clipping_and_trains_with_it(seed):
    logs = single_threaded(exploding_runs, radius=2.0, lag=20, steps=400, lr=0.5, seed=seed)
    free, clipped = logs["no clipping"], logs["clipping"]
    assert free["diverged_at"] is not None and "over 5 times" in free["reason"]
    assert len(free["loss"]) == free["diverged_at"]  # the log stops at the step it happened
    assert clipped["diverged_at"] is None and any(clipped["clipped"])
    assert min(clipped["loss"]) < 0.2 * clipped["loss"][0]  # it learns (with spikes on the way)
    assert clipped["accuracy"] > 2 * chance_accuracy("first")


def test_exploding_rnn_without_clipping_is_stopped_at_the_update_it_diverged():
    """The quick version: a huge learning rate, no clipping; the log ends where it happened."""
    logs = exploding_runs(radius=2.0, lag=5, steps=60, lr=5.0, seed=0)
    free = logs["no clipping"]
    assert free["diverged_at"] is not None and len(free["loss"]) == free["diverged_at"]
    assert f"at update {free['diverged_at']}" in free["reason"]
    assert logs["clipping"]["clipped"][0]  # the same first gradient is clipped


def test_a_run_config_holds_the_run_defaults_and_what_is_given():
    config = run_config("gru", lr=0.5, dtype=np.float64, optimizer="sgd")
    assert (config.cell, config.lr, config.dtype, config.optimizer) == (
        "gru",
        0.5,
        "float64",
        "sgd",
    )
    assert (config.schedule, config.steps, config.clip) == ("constant", 1000, 1.0)
    with pytest.raises(BpttError, match="optimizer must be one of"):
        run_config("gru", optimizer="lbfgs")
