"""What tasks/base.py gives every task beyond the contract: the network's keywords."""

import numpy as np

from bptt.config import Config
from bptt.models.ctc import CTCRecognizer
from bptt.tasks import base


def test_network_is_the_configs_recurrent_layer_as_the_models_take_it():
    config = Config(cell="gru", hidden_size=12, num_layers=2, bidirectional=True, dtype="float64")
    net = base.network(config)
    assert net == {
        "hidden_size": 12,
        "num_layers": 2,
        "cell": "gru",
        "bidirectional": True,
        "dropout": 0.0,
        "dtype": np.dtype("float64"),
    }
    model = CTCRecognizer(3, input_size=4, rng=np.random.default_rng(0), **net)
    assert (model.rnn.cell, model.rnn.hidden_size, model.rnn.num_layers) == ("gru", 12, 2)
    assert model.rnn.num_directions == 2 and model.dtype == np.float64
