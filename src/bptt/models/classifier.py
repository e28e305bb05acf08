"""The lecture's many-to-one model: a whole sequence -> one class (a review -> its sentiment).

    s_t = cell(e_t, s_{t-1})                      over the real steps t = 1..T_b of example b
    r   = s_{T_b}                                 "last": the state after the last real step
                                                  (bidirectional: [s→_{T_b}, s←_1], each
                                                  direction's final state)
        = (1/T_b) Σ_t s_t                         "mean" over real steps
        = max_t s_t                               "max" over real steps, per unit
    ŷ   = softmax(V r + c)                        V ≡ head.weight, c ≡ head.bias
    E   = mean_b -log ŷ_b[y_b]                    mean cross-entropy per example
                                                  (label smoothing ε: toward (1 - ε)
                                                  onehot(y_b) + ε / C, bptt.losses)

The gradient enters BPTT where r was read: at the final state ("last"), spread
evenly over the real steps ("mean"), or at each unit's winning step ("max").

Shapes: B batch, T time steps, E embedding, H hidden, K directions, C classes.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import softmax
from bptt.losses import cross_entropy
from bptt.models.sequence import SequenceBatch, SequenceModel
from bptt.nn import Linear

POOLINGS = ("last", "mean", "max")


class SequenceClassifier(SequenceModel):
    """Embedding (or features) -> stacked, optionally bidirectional RNN -> pooling -> Linear.

    Args:
        num_classes: C.
        pooling: how the sequence becomes one vector r: "last", "mean" or "max".
        label_smoothing: ε of the training loss (:func:`bptt.losses.cross_entropy`);
            :meth:`loss`, which evaluation reads, stays the plain cross-entropy.
        **kwargs: the encoder's (:class:`~bptt.models.sequence.SequenceModel`):
            vocab_size or input_size, embed_size, hidden_size, num_layers,
            cell, bidirectional, dropout, dtype, rng.
    """

    def __init__(
        self, num_classes: int, pooling: str = "last", label_smoothing: float = 0.0, **kwargs
    ):
        if pooling not in POOLINGS:
            raise BpttError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        rng = kwargs.get("rng")
        super().__init__(**kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise BpttError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.pooling, self.num_classes = pooling, num_classes
        self.label_smoothing = label_smoothing
        self.layers["head"] = Linear(self.features, num_classes, dtype=self.dtype, rng=rng)
        self.head = self.layers["head"]
        self._cache: dict | None = None

    def forward(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """inputs (B, T) ids or (B, T, D) features, mask (B, T) -> logits (B, C)."""
        outputs, state = self.encode(inputs, mask, training, rng)  # (B, T, K*H)
        B = outputs.shape[0]
        K, H = self.rnn.num_directions, self.rnn.hidden_size
        m = np.asarray(mask)[:, :, None]  # (B, T, 1)
        cache = {"shape": outputs.shape}
        if self.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L*K, B, H)
            r = h[-K:].transpose(1, 0, 2).reshape(B, K * H)  # (B, K*H) top layer, both ways
        elif self.pooling == "mean":
            lengths = m.sum(axis=1)  # (B, 1)
            cache["scale"] = (m / lengths[:, None, :]).astype(self.dtype)  # (B, T, 1)
            r = (outputs * cache["scale"]).sum(axis=1)  # (B, K*H)
        else:
            masked = np.where(m, outputs, -np.inf)  # (B, T, K*H)
            cache["argmax"] = masked.argmax(axis=1)[:, None, :]  # (B, 1, K*H)
            r = np.take_along_axis(outputs, cache["argmax"], axis=1)[:, 0]  # (B, K*H)
        self._cache = cache
        r = self.drop.forward(r, training=training, rng=rng)  # (B, K*H)
        return self.head.forward(r)  # (B, C)

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂logits (B, C)."""
        cache = self._cache
        B, T, KH = cache["shape"]
        K, H, L = self.rnn.num_directions, self.rnn.hidden_size, self.rnn.num_layers
        d_r = self.drop.backward(self.head.backward(d_logits))  # (B, K*H)
        d_out = np.zeros((B, T, KH), dtype=self.dtype)  # (B, T, K*H)
        d_final = None
        if self.pooling == "last":
            d_h = np.zeros((L * K, B, H), dtype=self.dtype)  # (L*K, B, H)
            d_h[-K:] = d_r.reshape(B, K, H).transpose(1, 0, 2)
            d_final = (d_h, None) if self.rnn.state_arity == 2 else d_h
        elif self.pooling == "mean":
            d_out += d_r[:, None, :] * cache["scale"]
        else:
            np.put_along_axis(d_out, cache["argmax"], d_r[:, None, :], axis=1)
        self.encode_backward(d_out, d_final)

    def loss_count(self, batch: SequenceBatch) -> int:
        """The loss is a mean per example: B terms."""
        return len(batch.targets)

    def loss_and_grads(self, batch: SequenceBatch, state=None, rng=None):
        """Mean cross-entropy per example (label-smoothed by ``label_smoothing``), its
        gradients (keyed like params), None (no state)."""
        logits = self.forward(batch.inputs, batch.mask, training=True, rng=rng)  # (B, C)
        loss, d_logits = cross_entropy(
            logits, batch.targets, reduction="mean", label_smoothing=self.label_smoothing
        )
        self.backward(d_logits)
        return loss, self.grads, None

    def loss(self, batch: SequenceBatch) -> float:
        """Summed cross-entropy (nats) over the batch's examples, without gradients."""
        loss, _ = cross_entropy(self.forward(batch.inputs, batch.mask), batch.targets)
        return loss

    def predict_proba(self, inputs, mask) -> np.ndarray:
        """Class probabilities ŷ (B, C), without dropout."""
        return softmax(self.forward(inputs, mask))  # (B, C)
