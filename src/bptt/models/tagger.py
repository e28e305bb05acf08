"""The lecture's many-to-many model with Tx = Ty: a tag for every step (a word -> its entity tag).

    s→_t = cell→(e_t, s→_{t-1})                   left to right: sees x_1..x_t
    s←_t = cell←(e_t, s←_{t+1})                   right to left: sees x_t..x_T
    ŷ_t  = softmax(V [s→_t, s←_t] + c)            V ≡ head.weight, c ≡ head.bias
    E    = (1/N) Σ_{b, t real} -log ŷ_{b,t}[y_{b,t}]     mean per real step, N real steps

Bidirectional by default: in "Teddy Roosevelt was a great President" and
"Teddy bears are on sale" the first word's tag depends on the words after it,
which a left-to-right tagger has not read yet when it must decide.

Shapes: B batch, T time steps, E embedding, H hidden, K directions, C tags.
"""

from __future__ import annotations

import numpy as np

from bptt.functional.activations import softmax
from bptt.losses import cross_entropy
from bptt.models.sequence import SequenceBatch, SequenceModel
from bptt.nn import Linear


class SequenceTagger(SequenceModel):
    """Embedding (or features) -> stacked, bidirectional RNN -> Linear at every step.

    Args:
        num_tags: C.
        bidirectional: True by default (see the module docstring).
        **kwargs: the encoder's (:class:`~bptt.models.sequence.SequenceModel`):
            vocab_size or input_size, embed_size, hidden_size, num_layers,
            cell, dropout, dtype, rng.
    """

    def __init__(self, num_tags: int, bidirectional: bool = True, **kwargs):
        rng = kwargs.get("rng")
        super().__init__(bidirectional=bidirectional, **kwargs)
        self.num_classes = num_tags
        self.layers["head"] = Linear(self.features, num_tags, dtype=self.dtype, rng=rng)
        self.head = self.layers["head"]

    def forward(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """inputs (B, T) ids or (B, T, D) features, mask (B, T) -> logits (B, T, C)."""
        outputs, _ = self.encode(inputs, mask, training, rng)  # (B, T, K*H)
        outputs = self.drop.forward(outputs, training=training, rng=rng)  # (B, T, K*H)
        return self.head.forward(outputs)  # (B, T, C)

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂logits (B, T, C) (zero at padded steps)."""
        d_out = self.drop.backward(self.head.backward(d_logits))  # (B, T, K*H)
        self.encode_backward(d_out)

    def loss_and_grads(self, batch: SequenceBatch, state=None, rng=None):
        """Mean cross-entropy per real step, its gradients (keyed like params), None."""
        logits = self.forward(batch.inputs, batch.mask, training=True, rng=rng)  # (B, T, C)
        loss, d_logits = cross_entropy(logits, batch.targets, batch.mask, reduction="mean")
        self.backward(d_logits)
        return loss, self.grads, None

    def loss(self, batch: SequenceBatch) -> float:
        """Summed cross-entropy (nats) over the batch's real steps, without gradients."""
        logits = self.forward(batch.inputs, batch.mask)  # (B, T, C)
        return cross_entropy(logits, batch.targets, batch.mask)[0]

    def predict_proba(self, inputs, mask) -> np.ndarray:
        """Tag probabilities ŷ (B, T, C) at every step (padded steps: meaningless), no dropout."""
        return softmax(self.forward(inputs, mask))  # (B, T, C)
