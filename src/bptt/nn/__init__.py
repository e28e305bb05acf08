"""Parameter holders over ``bptt.functional``: params and grads are dicts with the same keys.

Every layer has ``params`` and ``grads`` (same keys, PyTorch's names),
``forward(...)`` that keeps what ``backward(...)`` needs, ``backward(d_out)``
that returns the input gradient and replaces ``grads``, and
``state_dict()``/``load_state_dict()``.
"""

from bptt.nn.attention import Attention
from bptt.nn.cells import CELLS, GRU, LSTM, RNN, cell_layer
from bptt.nn.conv import Conv1d, Conv2d
from bptt.nn.crf import CRF
from bptt.nn.init import (
    forget_bias_,
    orthogonal,
    orthogonal_recurrent_,
    uniform,
    uniform_default,
    xavier_uniform,
)
from bptt.nn.layer import Layer
from bptt.nn.linear import Dropout, Embedding, Linear
from bptt.nn.recurrent import Recurrent

__all__ = [
    "CELLS",
    "CRF",
    "GRU",
    "LSTM",
    "RNN",
    "Attention",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "Embedding",
    "Layer",
    "Linear",
    "Recurrent",
    "cell_layer",
    "forget_bias_",
    "orthogonal",
    "orthogonal_recurrent_",
    "uniform",
    "uniform_default",
    "xavier_uniform",
]
