"""What the classifier and the tagger share: padded batches and the recurrent encoder.

Both read a batch of B sequences padded to T steps, with a mask True at real
steps, either as token indices or as real-valued features:

    e_t = E[x_t]                   token ids (B, T) -> embeddings (B, T, E)
    e_t = x_t                      or features (B, T, D) as they are
    s_t = cell(e_t, s_{t-1})       RNN, LSTM or GRU, stacked, one or two directions:
                                   outputs (B, T, K*H), zero at padded steps

A padded step leaves the state unchanged and gets zero gradient (see
:mod:`bptt.nn.recurrent`), so padding and bucketing cannot change a prediction.

Shapes: B batch, T time steps, D input features, E embedding, H hidden units,
K directions, C classes (or tags).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt.errors import BpttError
from bptt.models.base import Model
from bptt.nn import Dropout, Embedding, cell_layer


@dataclass
class SequenceBatch:
    """B padded examples: inputs, a mask and the targets.

    Attributes:
        inputs: token ids (B, T) ints, or features (B, T, D) floats.
        mask: (B, T) bools, True at real steps; every row has at least one.
        targets: one class per example (B,), or one tag per step (B, T)
            (any value at padded steps).
        carry_state: always False: examples are independent (the trainer's
            contract; only TBPTT windows continue each other).
    """

    inputs: np.ndarray
    mask: np.ndarray
    targets: np.ndarray
    carry_state: bool = False

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())


class SequenceModel(Model):
    """An input layer (embedding or none) and a recurrent stack; subclasses add a head.

    Args:
        vocab_size: V, for token-id inputs; give exactly one of ``vocab_size``
            and ``input_size``.
        input_size: D, for real-valued feature inputs.
        embed_size: E, width of the embedding (token inputs only).
        hidden_size: H, units per direction.
        num_layers: L, stacked recurrent layers.
        cell: "rnn", "lstm" or "gru".
        bidirectional: K = 2 (a forward and a reverse cell per layer).
        dropout: between recurrent layers and before the head.
        dtype: float32 or float64.
        rng: Generator for the initialisation.
        extra_input: features a subclass's :meth:`embed` adds to each step's
            embedding (characters, word shape); the recurrent layer reads E + this.
    """

    def __init__(
        self,
        vocab_size: int | None = None,
        input_size: int | None = None,
        embed_size: int = 64,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
        extra_input: int = 0,
    ):
        if (vocab_size is None) == (input_size is None):
            raise BpttError(
                f"give exactly one of vocab_size (token inputs) and input_size (features); "
                f"got vocab_size={vocab_size}, input_size={input_size}"
            )
        Layer = cell_layer(cell)  # a BpttError for an unknown cell
        rng = np.random.default_rng() if rng is None else rng
        self.cell, self.dtype = cell, np.dtype(dtype)
        self.vocab_size, self.input_size = vocab_size, input_size
        self.layers = {}
        if vocab_size is not None:
            self.layers["embedding"] = Embedding(vocab_size, embed_size, dtype=dtype, rng=rng)
        rnn_in = (embed_size if vocab_size is not None else input_size) + extra_input
        self.layers["rnn"] = Layer(
            rnn_in, hidden_size, num_layers, bidirectional, dropout, dtype=dtype, rng=rng
        )
        self.rnn = self.layers["rnn"]
        self.embedding = self.layers.get("embedding")
        self.drop = Dropout(dropout)
        self.features = self.rnn.num_directions * hidden_size  # K*H, what the head reads

    def _check(self, inputs, mask) -> tuple[np.ndarray, np.ndarray]:
        inputs, mask = np.asarray(inputs), np.asarray(mask)
        want = 2 if self.embedding is not None else 3
        what = "token ids (B, T)" if want == 2 else f"features (B, T, {self.input_size})"
        if inputs.ndim != want:
            raise BpttError(f"the model reads {what}; got an array of shape {inputs.shape}")
        if mask.shape != inputs.shape[:2]:
            raise BpttError(f"mask has shape {mask.shape}, inputs {inputs.shape[:2]} (B, T)")
        return inputs, mask

    def encode(self, inputs, mask, training=False, rng=None):
        """inputs (B, T) or (B, T, D), mask (B, T) -> outputs (B, T, K*H), final state."""
        inputs, mask = self._check(inputs, mask)
        x = self.embed(inputs, mask, training, rng)  # (B, T, E) or (B, T, D)
        return self.rnn.forward(x, None, mask, training=training, rng=rng)  # (B, T, K*H)

    def embed(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """What the recurrent layer reads at each step: e_t = E[x_t], or the features x_t."""
        if self.embedding is None:
            return inputs  # (B, T, D)
        # Padded ids may be anything in range; the recurrent layer ignores those steps.
        return self.embedding.forward(np.where(mask, inputs, 0))  # (B, T, E)

    def embed_backward(self, d_x) -> None:
        """Fill the grads of what :meth:`embed` used from ∂E/∂x (B, T, E)."""
        if self.embedding is not None:
            self.embedding.backward(d_x)

    def encode_backward(self, d_outputs, d_final_state=None) -> None:
        """Fill the recurrent layer's and the embedding's grads from ∂E/∂outputs, ∂E/∂final."""
        d_x = self.rnn.backward(d_outputs, d_final_state)  # (B, T, E)
        self.embed_backward(d_x)
