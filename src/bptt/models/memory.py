"""The network of the long-range memory problems (:mod:`bptt.tasks.memory.problems`).

:class:`MemoryModel`: one recurrent layer (RNN, LSTM or GRU) and a Linear head at
every step, scored only at the steps the problem marks; its gated cells' biases
start from :func:`chrono_init_`. :func:`task_sizes` gives each problem's input and
output sizes; :class:`MemoryBatch` is what it reads.

Shapes: B batch, T time steps, D input features, H hidden units, O outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bptt.errors import BpttError
from bptt.losses import cross_entropy
from bptt.models.base import Model
from bptt.nn import GRU, LSTM, Linear, cell_layer, forget_bias_

TASKS = ("first", "adding", "copy")
N_SYMBOLS = 4  # K symbols to remember (first, copy)
N_COPY = 3  # N symbols of the copy task
ADDING_TOLERANCE = 0.04  # |prediction - sum| that counts as solved (H&S 1997)


@dataclass
class MemoryBatch:
    """Inputs (B, T, D), targets (B, T) (class ids, or floats for ``adding``), and
    ``mask`` (B, T): True at the steps that are scored."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    carry_state: bool = False  # every batch is a fresh set of sequences

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())


def task_sizes(task: str) -> tuple[int, int]:
    """(D input features, O outputs) of a task."""
    sizes = {"first": (N_SYMBOLS, N_SYMBOLS), "adding": (2, 1)}
    sizes["copy"] = (N_SYMBOLS + 2, N_SYMBOLS)  # symbols, blank, go
    if task not in sizes:
        raise BpttError(f"memory task must be one of {', '.join(TASKS)}; got {task!r}")
    return sizes[task]


def chrono_init_(layer: LSTM | GRU, t_max: float, rng: np.random.Generator) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018) of a gated layer's biases, in place.

    LSTM: b_f = log(u), b_i = -b_f; GRU: b_z = log(u) (z is the GRU's keep gate);
    u ~ U(1, t_max - 1) per unit. The gates then start out keeping their memory
    for between one and about t_max steps, instead of about two (σ(0) = 1/2).
    The biases sit in ``bias_ih``; the matching parts of ``bias_hh`` are zeroed.
    """
    if t_max <= 2:
        raise BpttError(f"chrono t_max must be above 2; got {t_max}")
    H = layer.hidden_size
    keep = np.log(rng.uniform(1.0, t_max - 1.0, H))  # (H,)
    b_ih, b_hh = layer.params["bias_ih_l0"], layer.params["bias_hh_l0"]  # (G*H,) each
    b_ih[H : 2 * H] = keep  # LSTM f, GRU z: the second block of both
    b_hh[H : 2 * H] = 0.0
    if isinstance(layer, LSTM):
        b_ih[:H] = -keep  # input gate closed as much as the forget gate is open
        b_hh[:H] = 0.0


class MemoryModel(Model):
    """A one-layer recurrent network with a Linear head at every step, scored at masked steps.

        s_t = cell(x_t, s_{t-1}),   y_t = V s_t + c
        E   = mean over scored steps of -log softmax(y_t)[target]  (or (y_t - target)², adding)

    The gated cells' biases start from :func:`chrono_init_` with t_max = ``chrono``
    (the published recipe for long memories; the RNN has no gate to set); with
    ``chrono=None`` the LSTM's forget bias is 1 (Gers et al. 2000) and the GRU's is as drawn.
    """

    def __init__(
        self,
        task: str,
        cell: str,
        hidden_size: int,
        dtype=np.float32,
        rng=None,
        chrono: float | None = 200.0,
        nonlinearity: str = "tanh",
    ):
        layer = cell_layer(cell)  # the cell's layer, looked up in bptt.nn.CELLS
        rng = np.random.default_rng() if rng is None else rng
        D, O = task_sizes(task)
        self.task, self.cell = task, cell
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.layers = {
            "rnn": layer(D, hidden_size, dtype=dtype, rng=rng, **extra),
            "head": Linear(hidden_size, O, dtype=dtype, rng=rng),
        }
        self.rnn, self.head = self.layers["rnn"], self.layers["head"]
        if cell != "rnn" and chrono is not None:
            chrono_init_(self.rnn, chrono, rng)
        elif cell == "lstm":
            forget_bias_(self.rnn, 1.0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (B, T, D) -> outputs y (B, T, O)."""
        s, _ = self.rnn.forward(x)  # (B, T, H)
        return self.head.forward(s)  # (B, T, O)

    def _loss(self, y: np.ndarray, batch: MemoryBatch) -> tuple[float, np.ndarray]:
        if self.task != "adding":
            return cross_entropy(y, batch.targets, batch.mask, reduction="mean")
        n = max(batch.num_tokens, 1)
        err = (y[:, :, 0] - batch.targets) * batch.mask  # (B, T) zero where unscored
        d_y = (2.0 / n * err)[:, :, None].astype(y.dtype)  # (B, T, 1)
        return float(np.sum(err * err) / n), d_y

    def loss_and_grads(self, batch: MemoryBatch, state=None, rng=None):
        """Mean loss per scored step, its gradients keyed like ``params``, and no carried state."""
        loss, d_y = self._loss(self.forward(batch.inputs), batch)
        self.rnn.backward(self.head.backward(d_y))
        return loss, self.grads, None

    def recurrent_io(self, batch: MemoryBatch) -> tuple[Any, np.ndarray, np.ndarray, None]:
        """(layer, x, ∂E/∂s (B, T, H), None) for :mod:`bptt.diagnostics.flow`."""
        _, d_y = self._loss(self.forward(batch.inputs), batch)
        return self.rnn, batch.inputs, self.head.backward(d_y), None

    def accuracy(self, batch: MemoryBatch) -> float:
        """Share of scored steps answered right (adding: within ``ADDING_TOLERANCE``)."""
        y = self.forward(batch.inputs)  # (B, T, O)
        if self.task == "adding":
            right = np.abs(y[:, :, 0] - batch.targets) < ADDING_TOLERANCE  # (B, T)
        else:
            right = y.argmax(axis=-1) == batch.targets  # (B, T)
        return float(right[batch.mask].mean())
