"""Video models: a frame encoder in front of the recurrent classifier and tagger, and the
two order-blind baselines that share it.

Every frame x_t (P pixels, values 0..255) becomes a feature vector by one linear
layer and a rectifier, the same for every frame:

    z_t = relu(W_f x_t / 255 + b_f)               W_f ≡ frames.weight (E, P), b_f ≡ frames.bias

Then either the sequence models read z_1..z_T as their features
(:class:`FrameClassifier`: many-to-one, :class:`FrameTagger`: a label per frame),
or a baseline without recurrence (:class:`FramePool`) reads one summary of them:

    r = (1/T_b) Σ_t z_t                            "mean": the frames averaged (order-blind)
    r = z_m,  m = ⌊(T_b - 1)/2⌋                     "middle": one frame
    ŷ = softmax(V relu(U r + u) + c)               U ≡ hidden.weight, V ≡ head.weight

Shapes: B batch, T frames, P pixels per frame, E encoder features, H hidden, C classes.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import softmax
from bptt.losses import cross_entropy
from bptt.models.base import Model
from bptt.models.classifier import SequenceClassifier
from bptt.models.sequence import SequenceBatch
from bptt.models.tagger import SequenceTagger
from bptt.nn import Linear

POOLS = ("mean", "middle")


def _pixels(model, inputs, mask) -> tuple[np.ndarray, np.ndarray]:
    """inputs (B, T, P) as floats in [0, 1] of the model's dtype, and mask (B, T)."""
    inputs, mask = np.asarray(inputs), np.asarray(mask)
    if inputs.ndim != 3 or inputs.shape[2] != model.pixels:
        raise BpttError(
            f"the model reads frames (B, T, {model.pixels}) of pixels; got shape {inputs.shape}"
        )
    if mask.shape != inputs.shape[:2]:
        raise BpttError(f"mask has shape {mask.shape}, inputs {inputs.shape[:2]} (B, T)")
    return inputs.astype(model.dtype) * model.dtype.type(1 / 255), mask  # (B, T, P)


class _FrameEncoding:
    """Puts z_t = relu(W_f x_t / 255 + b_f) in front of a SequenceModel's recurrent stack."""

    def _add_frames(self, pixels: int, embed_size: int, rng) -> None:
        self.pixels = pixels
        self.layers["frames"] = Linear(pixels, embed_size, dtype=self.dtype, rng=rng)
        self.frames = self.layers["frames"]

    def encode(self, inputs, mask, training=False, rng=None):
        """frames (B, T, P), mask (B, T) -> outputs (B, T, K*H), final state."""
        x, mask = _pixels(self, inputs, mask)  # (B, T, P)
        z = self.frames.forward(x)  # (B, T, E)
        self._on = z > 0  # (B, T, E)
        z = np.where(self._on, z, 0).astype(self.dtype)  # (B, T, E)
        return self.rnn.forward(z, None, mask, training=training, rng=rng)  # (B, T, K*H)

    def encode_backward(self, d_outputs, d_final_state=None) -> None:
        d_z = self.rnn.backward(d_outputs, d_final_state)  # (B, T, E)
        self.frames.backward(np.where(self._on, d_z, 0).astype(self.dtype))


class FrameClassifier(_FrameEncoding, SequenceClassifier):
    """Frame encoder -> RNN/LSTM/GRU -> pooling -> Linear: a clip -> one action.

    Args:
        num_classes: C.
        pixels: P, pixels per frame.
        embed_size: E, the encoder's features per frame.
        pooling: "last", "mean" or "max" (see :class:`SequenceClassifier`).
        **kwargs: hidden_size, num_layers, cell, bidirectional, dropout, dtype, rng.
    """

    def __init__(self, num_classes: int, pixels: int, embed_size: int, pooling="last", **kwargs):
        super().__init__(num_classes, pooling, input_size=embed_size, **kwargs)
        self._add_frames(pixels, embed_size, kwargs.get("rng"))


class FrameTagger(_FrameEncoding, SequenceTagger):
    """Frame encoder -> RNN/LSTM/GRU (bidirectional by default) -> Linear: an action per frame.

    Args: as :class:`FrameClassifier` (without pooling), num_tags for num_classes.
    """

    def __init__(self, num_tags: int, pixels: int, embed_size: int, **kwargs):
        super().__init__(num_tags, input_size=embed_size, **kwargs)
        self._add_frames(pixels, embed_size, kwargs.get("rng"))


class FramePool(Model):
    """The baselines: frame encoder -> one summary of the clip ("mean" or "middle") -> MLP.

    Args:
        num_classes: C.
        pixels: P.
        embed_size: E, the encoder's features per frame (as the recurrent model's).
        hidden_size: H, the MLP's hidden units.
        pool: "mean" (the frames averaged, blind to their order) or "middle" (one frame).
        dtype, rng: the parameters' precision and the initialisation's Generator.
    """

    def __init__(self, num_classes: int, pixels: int, embed_size: int, hidden_size: int,
                 pool: str = "mean", dtype=np.float32, rng=None):  # fmt: skip
        if pool not in POOLS:
            raise BpttError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        self.pool, self.pixels, self.dtype = pool, pixels, np.dtype(dtype)
        self.num_classes = num_classes
        rng = np.random.default_rng() if rng is None else rng
        self.layers = {
            "frames": Linear(pixels, embed_size, dtype=dtype, rng=rng),
            "hidden": Linear(embed_size, hidden_size, dtype=dtype, rng=rng),
            "head": Linear(hidden_size, num_classes, dtype=dtype, rng=rng),
        }
        self._cache: dict | None = None

    def forward(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """frames (B, T, P), mask (B, T) -> logits (B, C)."""
        x, mask = _pixels(self, inputs, mask)  # (B, T, P)
        lengths = mask.sum(axis=1)  # (B,)
        if self.pool == "middle":
            x = x[np.arange(len(x)), (lengths - 1) // 2][:, None]  # (B, 1, P)
            scale = np.ones((len(x), 1, 1), dtype=self.dtype)  # (B, 1, 1)
        else:
            scale = (mask / lengths[:, None])[:, :, None].astype(self.dtype)  # (B, T, 1)
        z = self.layers["frames"].forward(x)  # (B, T', E)
        on = z > 0
        r = (np.where(on, z, 0) * scale).sum(axis=1)  # (B, E)
        h = self.layers["hidden"].forward(r)  # (B, H)
        h_on = h > 0
        logits = self.layers["head"].forward(np.where(h_on, h, 0).astype(self.dtype))  # (B, C)
        self._cache = {"on": on, "scale": scale, "h_on": h_on}
        return logits

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂logits (B, C)."""
        c = self._cache
        d_h = np.where(c["h_on"], self.layers["head"].backward(d_logits), 0)  # (B, H)
        d_r = self.layers["hidden"].backward(d_h.astype(self.dtype))  # (B, E)
        d_z = np.where(c["on"], d_r[:, None, :] * c["scale"], 0)  # (B, T', E)
        self.layers["frames"].backward(d_z.astype(self.dtype))

    def loss_and_grads(self, batch: SequenceBatch, state=None, rng=None):
        """Mean cross-entropy per clip, its gradients (keyed like params), None (no state)."""
        logits = self.forward(batch.inputs, batch.mask)  # (B, C)
        loss, d_logits = cross_entropy(logits, batch.targets, reduction="mean")
        self.backward(d_logits)
        return loss, self.grads, None

    def predict_proba(self, inputs, mask) -> np.ndarray:
        """Class probabilities ŷ (B, C)."""
        return softmax(self.forward(inputs, mask))  # (B, C)
