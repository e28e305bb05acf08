"""The three cells as layers, and the one registry of their names.

Each cell is a :class:`~bptt.nn.recurrent.Recurrent` layer that names what is
its own: the functional forward and backward it runs, its gate count G, its
state arrays, its gates in order and the gate that carries the state on.

    cell   layer  G  state      gates (in the fused weights' order)   carry gate
    rnn    RNN    1  h          -                                     -
    lstm   LSTM   4  h, C       input, forget, candidate, output      forget
    gru    GRU    3  h          reset, update, new                    update

:data:`CELLS` maps the names to the layers; code that takes a cell by name
(a model, a config, a checkpoint's config) looks it up there with
:func:`cell_layer`, and code that holds a layer reads these attributes instead
of comparing names.
"""

from __future__ import annotations

from bptt.errors import BpttError
from bptt.functional.fast import _step as fast_step
from bptt.functional.gru import gru_backward, gru_forward
from bptt.functional.lstm import lstm_backward, lstm_forward
from bptt.functional.rnn import NONLINEARITIES, rnn_backward, rnn_forward
from bptt.nn.recurrent import Recurrent


class RNN(Recurrent):
    """The lecture's RNN, s_t = tanh(U x_t + W s_{t-1} + b) (or relu), stacked.

    See :class:`~bptt.nn.recurrent.Recurrent` for the arguments; the keyword
    ``nonlinearity`` is "tanh" (default) or "relu".
    """

    cell = "rnn"
    gates = 1
    state_names = ("h0",)
    cell_forward = staticmethod(rnn_forward)
    cell_backward = staticmethod(rnn_backward)
    cell_step = staticmethod(fast_step.rnn_forward)

    def _configure(self, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in NONLINEARITIES:
            raise BpttError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def cell_kwargs(self) -> dict[str, str]:
        return {"nonlinearity": self.nonlinearity}


class LSTM(Recurrent):
    """Long short-term memory, gates i, f, g, o; state (h, C), passed as (h0, c0).

        C_t = f_t * C_{t-1} + i_t * C~_t,   h_t = o_t * tanh(C_t)

    See :class:`~bptt.nn.recurrent.Recurrent` for the arguments and
    ``bptt.functional.lstm`` for the cell.
    """

    cell = "lstm"
    gates = 4
    state_names = ("h0", "c0")
    gate_names = ("input", "forget", "candidate", "output")
    carry_gate = "forget"
    cell_forward = staticmethod(lstm_forward)
    cell_backward = staticmethod(lstm_backward)
    cell_step = staticmethod(fast_step.lstm_forward)


class GRU(Recurrent):
    """Gated recurrent unit, gates r, z, n, reset applied after the hidden product.

        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    See :class:`~bptt.nn.recurrent.Recurrent` for the arguments and
    ``bptt.functional.gru`` for the cell.
    """

    cell = "gru"
    gates = 3
    state_names = ("h0",)
    gate_names = ("reset", "update", "new")
    carry_gate = "update"
    cell_forward = staticmethod(gru_forward)
    cell_backward = staticmethod(gru_backward)
    cell_step = staticmethod(fast_step.gru_forward)


# name -> layer; a fixed table: a cell named in a file is looked up here, never imported.
CELLS: dict[str, type[Recurrent]] = {layer.cell: layer for layer in (RNN, LSTM, GRU)}


def cell_layer(name: str) -> type[Recurrent]:
    """The layer class of the cell called ``name`` ("rnn", "lstm" or "gru")."""
    if name not in CELLS:
        raise BpttError(f"cell must be one of {', '.join(CELLS)}; got {name!r}")
    return CELLS[name]


def state_size(name: str, hidden_size: int) -> int:
    """S, the size of one step's whole state: H, or 2H for the LSTM's [h; C]."""
    return len(cell_layer(name).state_names) * hidden_size


def sigmoid_gates(layer: type[Recurrent] | Recurrent) -> tuple[str, ...]:
    """The gates squashed by a sigmoid: all but the candidate (LSTM g, GRU n), a tanh."""
    return tuple(n for n in layer.gate_names if n not in ("candidate", "new"))


__all__ = ["CELLS", "GRU", "LSTM", "RNN", "cell_layer", "sigmoid_gates", "state_size"]
