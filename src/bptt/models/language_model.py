"""The lecture's language model: many-to-many, Tx = Ty, one symbol ahead.

    e_t = E[x_t]                             embedding of symbol x_t (the one-hot x⟨t⟩ times E)
    s_t = cell(e_t, s_{t-1})                 RNN, LSTM or GRU, stacked
    ŷ_t = softmax(V s_t + c)                 V ≡ head.weight, c ≡ head.bias
    E   = mean_t -log ŷ_t[x_{t+1}]           per symbol; × 1/ln 2 gives bits per character

Shapes: B batch, T time steps, E embedding, H hidden, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt.losses import cross_entropy
from bptt.models.base import Model
from bptt.nn import Dropout, Embedding, Linear, cell_layer


@dataclass
class LMBatch:
    """One TBPTT window: inputs and next-symbol targets, (B, T) ints each.

    ``carry_state`` says the window continues the previous one, so the trainer
    passes the previous final state in (without backpropagating into it).
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray | None = None
    carry_state: bool = True

    @property
    def num_tokens(self) -> int:
        return int(self.targets.size if self.mask is None else self.mask.sum())


class LanguageModel(Model):
    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ):
        rng = np.random.default_rng() if rng is None else rng
        self.cell = cell
        self.layers = {
            "embedding": Embedding(vocab_size, embed_size, dtype=dtype, rng=rng),
            "rnn": cell_layer(cell)(
                embed_size, hidden_size, num_layers, dropout=dropout, dtype=dtype, rng=rng
            ),
            "head": Linear(hidden_size, vocab_size, dtype=dtype, rng=rng),
        }
        self.embedding, self.rnn, self.head = self.layers.values()
        self.drop = Dropout(dropout)

    def forward(self, ids, state=None, training=False, rng=None):
        """ids (B, T) -> logits (B, T, V), final recurrent state."""
        e = self.embedding.forward(ids)  # (B, T, E)
        s, state = self.rnn.forward(e, state, training=training, rng=rng)  # (B, T, H)
        s = self.drop.forward(s, training=training, rng=rng)  # (B, T, H)
        return self.head.forward(s), state  # (B, T, V)

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂logits (B, T, V)."""
        d_s = self.head.backward(d_logits)  # (B, T, H)
        d_s = self.drop.backward(d_s)  # (B, T, H)
        d_e = self.rnn.backward(d_s)  # (B, T, E)
        self.embedding.backward(d_e)

    def loss_and_grads(self, batch: LMBatch, state=None, rng=None):
        """Mean cross-entropy per symbol, its gradients (keyed like params), the final state."""
        logits, state = self.forward(batch.inputs, state, training=True, rng=rng)
        loss, d_logits = cross_entropy(logits, batch.targets, batch.mask, reduction="mean")
        self.backward(d_logits)
        return loss, self.grads, state

    def loss(self, batch: LMBatch, state=None):
        """Summed cross-entropy (nats) and the final state, without gradients (evaluation)."""
        logits, state = self.forward(batch.inputs, state)
        loss, _ = cross_entropy(logits, batch.targets, batch.mask, reduction="sum")
        return loss, state

    def step(self, ids: np.ndarray, state=None):
        """One step of generation: ids (B,) -> logits (B, V), state; the training forward, T = 1."""
        logits, state = self.forward(ids[:, None], state)  # (B, 1, V)
        return logits[:, 0], state
