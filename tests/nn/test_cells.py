"""bptt.nn.cells: the one registry of cell names, and what each cell layer names."""

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.functional.gru import gru_forward
from bptt.functional.lstm import lstm_forward
from bptt.functional.rnn import rnn_forward
from bptt.nn import CELLS, GRU, LSTM, RNN, cell_layer
from bptt.nn.cells import sigmoid_gates, state_size


def test_the_registry_names_each_layer_and_its_functional_pair():
    assert CELLS == {"rnn": RNN, "lstm": LSTM, "gru": GRU}
    assert [c.cell for c in CELLS.values()] == ["rnn", "lstm", "gru"]
    assert [c.cell_forward for c in CELLS.values()] == [rnn_forward, lstm_forward, gru_forward]
    assert [c.gates for c in CELLS.values()] == [1, 4, 3]
    assert [len(c.state_names) for c in CELLS.values()] == [1, 2, 1]
    assert [c.carry_gate for c in CELLS.values()] == [None, "forget", "update"]
    assert sigmoid_gates(LSTM) == ("input", "forget", "output")
    assert sigmoid_gates(GRU) == ("reset", "update")
    assert [state_size(n, 5) for n in CELLS] == [5, 10, 5]


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_a_layer_runs_the_pair_it_names(name):
    rng = np.random.default_rng(0)
    layer = cell_layer(name)(3, 4, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 5, 3))  # (B, T, D)
    assert layer.params["weight_hh_l0"].shape == (layer.gates * 4, 4)
    out, _ = layer.forward(x)
    state = tuple(np.zeros((2, 4)) for _ in layer.state_names)  # (B, H) each
    direct, _, _ = layer.cell_forward(x, state, *layer.cell_weights(), **layer.cell_kwargs())
    np.testing.assert_array_equal(out, direct)


def test_an_unknown_cell_is_named():
    with pytest.raises(BpttError, match=r"cell must be one of rnn, lstm, gru; got 'os\.system'"):
        cell_layer("os.system")


def test_only_the_rnn_takes_a_nonlinearity():
    assert RNN(3, 4, nonlinearity="relu").cell_kwargs() == {"nonlinearity": "relu"}
    with pytest.raises(TypeError, match=r"LSTM\(\) got an unexpected keyword argument 'nonl"):
        LSTM(3, 4, nonlinearity="relu")
