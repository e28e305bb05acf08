"""Video models: a frame encoder in front of the recurrent classifier and tagger, and the
two order-blind baselines that share it.

Every frame x_t (an S x S image, P = S*S pixels of values 0..255) becomes a
feature vector by the same encoder, "linear", "band" or "conv":

    z_t = relu(W_f x_t / 255 + b_f)               W_f ≡ frames.weight (E, P), b_f ≡ frames.bias

    z_t = relu(max_q (W_f x_t[:, sq : sq+S/2] / 255 + b_f))   "band": W_f (E, S*S/2) reads a
                                                  full-height band of S/2 columns, slid across
                                                  the frame s = S/16 columns at a time (q < Q)

    a_t = relu(conv1(x_t / 255))                  5x5, stride 2, 8 channels:          (S/2, S/2, 8)
    a'_t = relu(conv2(a_t))                       3x3, stride 2, 16 channels:         (S/4, S/4, 16)
    z_t = relu(W_f a'_t + b_f)                    W_f ≡ frames.weight (E, P)

(the convolutions see a limb wherever it is, and the band sees a pose wherever it stands
across the frame; the linear layer sees where it is). Per frame the band costs Q = 9
products of half the linear layer's size, the convolutions far more (skinny products).

Then either the sequence models read z_1..z_T as their features
(:class:`FrameClassifier`: many-to-one, :class:`FrameTagger`: a label per frame),
or a baseline without recurrence (:class:`FramePool`) reads one summary of them:

    r = (1/T_b) Σ_t z_t                            "mean": the frames averaged (order-blind)
    r = z_m,  m = ⌊(T_b - 1)/2⌋                     "middle": one frame
    ŷ = softmax(V relu(U r + u) + c)               U ≡ hidden.weight, V ≡ head.weight

Shapes: B batch, T frames, N frames of a batch, S pixels a side, P = S*S pixels per
frame, E encoder features, H hidden, C classes, Q band positions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bptt.errors import BpttError
from bptt.functional.activations import softmax
from bptt.losses import cross_entropy
from bptt.models.base import Model
from bptt.models.classifier import SequenceClassifier
from bptt.models.sequence import SequenceBatch
from bptt.models.tagger import SequenceTagger
from bptt.nn import Conv2d, Linear

POOLS = ("mean", "middle")
ENCODERS = ("linear", "band", "conv")


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


def _relu(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    on = a > 0
    return np.where(on, a, 0).astype(a.dtype), on


class FrameEncoder:
    """The per-frame encoder, "linear", "band" or "conv" (see the module docstring); its layers
    join the model's ``layers`` (``conv1``, ``conv2``, ``frames``)."""

    def __init__(self, pixels: int, embed_size: int, kind: str, dtype, rng):
        if kind not in ENCODERS:
            raise BpttError(f"frame encoder must be one of {', '.join(ENCODERS)}; got {kind!r}")
        self.side = round(pixels**0.5)
        if kind == "conv" and (self.side**2 != pixels or self.side % 4):
            raise BpttError(
                f"the conv encoder reads square frames with a side divisible by 4; "
                f"got {pixels} pixels"
            )
        self.kind, self.dtype = kind, np.dtype(dtype)
        self.layers = {}
        if kind == "conv":
            self.layers["conv1"] = Conv2d(1, 8, 5, stride=2, dtype=dtype, rng=rng)
            self.layers["conv2"] = Conv2d(8, 16, 3, stride=2, dtype=dtype, rng=rng)
            flat = (self.side // 4) ** 2 * 16
        elif kind == "band":
            if self.side**2 != pixels or self.side < 2:
                raise BpttError(f"the band encoder reads square frames; got {pixels} pixels")
            self.band, self.stride = self.side // 2, max(1, self.side // 16)  # columns
            self.positions = (self.side - self.band) // self.stride + 1  # Q
            flat = self.side * self.band
        else:
            flat = pixels
        self.layers["frames"] = Linear(flat, embed_size, dtype=dtype, rng=rng)
        self._cache: list = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        """frames x (N, P) in [0, 1] -> features z (N, E)."""
        cache = []
        if self.kind == "conv":
            a = x.reshape(len(x), self.side, self.side, 1)  # (N, S, S, 1)
            a, on1 = _relu(self.layers["conv1"].forward(a))  # (N, S/2, S/2, 8)
            a, on2 = _relu(self.layers["conv2"].forward(a))  # (N, S/4, S/4, 16)
            cache = [on1, on2]
            x = a.reshape(len(a), -1)  # (N, S/4 * S/4 * 16)
        elif self.kind == "band":
            N, S = len(x), self.side
            view = sliding_window_view(x.reshape(N, S, S), self.band, axis=2)[:, :, :: self.stride]
            cols = view.transpose(0, 2, 1, 3).reshape(N * self.positions, -1)  # (N*Q, S*S/2)
            a = self.layers["frames"].forward(cols).reshape(N, self.positions, -1)  # (N, Q, E)
            best = a.argmax(axis=1)[:, None]  # (N, 1, E) the band each feature takes
            z, on = _relu(np.take_along_axis(a, best, axis=1)[:, 0])  # (N, E)
            self._cache = [best, on]
            return z
        z, on = _relu(self.layers["frames"].forward(x))  # (N, E)
        self._cache = [*cache, on]
        return z

    def backward(self, d_z: np.ndarray) -> None:
        """Fill the encoder's grads from ∂E/∂z (N, E)."""
        *convs, on = self._cache
        d = np.where(on, d_z, 0).astype(self.dtype)  # (N, E)
        if self.kind == "band":  # the gradient goes to the band each feature took
            d_a = np.zeros((len(d), self.positions, d.shape[1]), self.dtype)  # (N, Q, E)
            np.put_along_axis(d_a, convs[0], d[:, None], axis=1)
            self.layers["frames"].backward(d_a.reshape(-1, d.shape[1]))
            return
        d = self.layers["frames"].backward(d)  # (N, F)
        if self.kind == "conv":
            d = d.reshape(len(d), self.side // 4, self.side // 4, 16)  # (N, S/4, S/4, 16)
            for name, on_conv in zip(("conv2", "conv1"), reversed(convs), strict=True):
                d = np.where(on_conv, d, 0).astype(self.dtype)  # (N, ., ., O)
                d = self.layers[name].backward(d, need_dx=name == "conv2")  # (N, ., ., C)


class _FrameEncoding:
    """Puts the frame encoder in front of a SequenceModel's recurrent stack."""

    def _add_frames(self, pixels: int, embed_size: int, encoder: str, rng) -> None:
        self.pixels = pixels
        self.encoder = FrameEncoder(pixels, embed_size, encoder, self.dtype, rng)
        self.layers.update(self.encoder.layers)

    def encode(self, inputs, mask, training=False, rng=None):
        """frames (B, T, P), mask (B, T) -> outputs (B, T, K*H), final state."""
        x, mask = _pixels(self, inputs, mask)  # (B, T, P)
        z = np.zeros((*mask.shape, self.encoder.layers["frames"].out_features), self.dtype)
        z[mask] = self.encoder.forward(x[mask])  # (B, T, E), zero at padded frames
        self._mask = mask
        return self.rnn.forward(z, None, mask, training=training, rng=rng)  # (B, T, K*H)

    def encode_backward(self, d_outputs, d_final_state=None) -> None:
        d_z = self.rnn.backward(d_outputs, d_final_state)  # (B, T, E)
        self.encoder.backward(d_z[self._mask])


class FrameClassifier(_FrameEncoding, SequenceClassifier):
    """Frame encoder -> RNN/LSTM/GRU -> pooling -> Linear: a clip -> one action.

    Args:
        num_classes: C.
        pixels: P, pixels per frame.
        embed_size: E, the encoder's features per frame.
        pooling: "last", "mean" or "max" (see :class:`SequenceClassifier`).
        encoder: "linear", "band" or "conv".
        **kwargs: hidden_size, num_layers, cell, bidirectional, dropout, dtype, rng.
    """

    def __init__(
        self,
        num_classes: int,
        pixels: int,
        embed_size: int,
        pooling="last",
        encoder: str = "linear",
        **kwargs,
    ):
        super().__init__(num_classes, pooling, input_size=embed_size, **kwargs)
        self._add_frames(pixels, embed_size, encoder, kwargs.get("rng"))


class FrameTagger(_FrameEncoding, SequenceTagger):
    """Frame encoder -> RNN/LSTM/GRU (bidirectional by default) -> Linear: an action per frame.

    Args: as :class:`FrameClassifier` (without pooling), num_tags for num_classes.
    """

    def __init__(
        self, num_tags: int, pixels: int, embed_size: int, encoder: str = "linear", **kwargs
    ):
        super().__init__(num_tags, input_size=embed_size, **kwargs)
        self._add_frames(pixels, embed_size, encoder, kwargs.get("rng"))


class FramePool(Model):
    """The baselines: frame encoder -> one summary of the clip ("mean" or "middle") -> MLP.

    Args:
        num_classes: C.
        pixels: P.
        embed_size: E, the encoder's features per frame (as the recurrent model's).
        hidden_size: H, the MLP's hidden units.
        pool: "mean" (the frames averaged, blind to their order) or "middle" (one frame).
        encoder: "linear", "band" or "conv", as the recurrent model's.
        dtype, rng: the parameters' precision and the initialisation's Generator.
    """

    def __init__(
        self,
        num_classes: int,
        pixels: int,
        embed_size: int,
        hidden_size: int,
        pool: str = "mean",
        encoder: str = "linear",
        dtype=np.float32,
        rng=None,
    ):
        if pool not in POOLS:
            raise BpttError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        self.pool, self.pixels, self.dtype = pool, pixels, np.dtype(dtype)
        self.embed = embed_size
        self.num_classes = num_classes
        rng = np.random.default_rng() if rng is None else rng
        self.encoder = FrameEncoder(pixels, embed_size, encoder, dtype, rng)
        self.layers = {
            **self.encoder.layers,
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
            mask = np.ones((len(x), 1), dtype=bool)  # (B, 1)
            scale = np.ones((len(x), 1, 1), dtype=self.dtype)  # (B, 1, 1)
        else:
            scale = (mask / lengths[:, None])[:, :, None].astype(self.dtype)  # (B, T, 1)
        z = np.zeros((*mask.shape, self.embed), self.dtype)
        z[mask] = self.encoder.forward(x[mask])  # (B, T', E)
        r = (z * scale).sum(axis=1)  # (B, E)
        h = self.layers["hidden"].forward(r)  # (B, H)
        h_on = h > 0
        logits = self.layers["head"].forward(np.where(h_on, h, 0).astype(self.dtype))  # (B, C)
        self._cache = {"mask": mask, "scale": scale, "h_on": h_on}
        return logits

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂logits (B, C)."""
        c = self._cache
        d_h = np.where(c["h_on"], self.layers["head"].backward(d_logits), 0)  # (B, H)
        d_r = self.layers["hidden"].backward(d_h.astype(self.dtype))  # (B, E)
        d_z = (d_r[:, None, :] * c["scale"]).astype(self.dtype)  # (B, T', E)
        self.encoder.backward(d_z[c["mask"]])

    def loss_and_grads(self, batch: SequenceBatch, state=None, rng=None):
        """Mean cross-entropy per clip, its gradients (keyed like params), None (no state)."""
        logits = self.forward(batch.inputs, batch.mask)  # (B, C)
        loss, d_logits = cross_entropy(logits, batch.targets, reduction="mean")
        self.backward(d_logits)
        return loss, self.grads, None

    def predict_proba(self, inputs, mask) -> np.ndarray:
        """Class probabilities ŷ (B, C)."""
        return softmax(self.forward(inputs, mask))  # (B, C)
