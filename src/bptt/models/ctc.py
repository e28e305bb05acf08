"""The lecture's many-to-many model with Tx ≠ Ty and no alignment: audio frames -> a label
string ("3 1 4"), trained with connectionist temporal classification (CTC).

    s→_t, s←_t  = cells over the frames x_1..x_{T_b}       stacked, bidirectional by default
    z_t         = V [s→_t, s←_t] + c                       V ≡ head.weight, c ≡ head.bias
    lp_t        = log_softmax(z_t)                          (C,) classes: blank ∅ = 0, labels 1..C-1
    E_b         = -log Σ_{π: B(π) = l_b} Π_t exp(lp_t(π_t))       CTC (:mod:`bptt.functional.ctc`)
    E           = Σ_b E_b / Σ_b L_b                         mean per target label
    ∂E/∂z_t     = (softmax(z_t) - γ_t) / Σ_b L_b            γ_t the occupancy of each class

B(π) merges repeats, then drops blanks, so the network never has to say where a
label starts or ends: it emits a label's class at one or more frames and the
blank in between. A digit said twice ("1 1") needs a blank between the two.

Batch format (a :class:`~bptt.models.sequence.SequenceBatch`, as
``bptt.tasks._examples.make_batch`` builds it from a Split whose inputs are
feature arrays (T_i, D) and whose targets are int64 label arrays (L_i,), L_i >= 0):

- ``inputs`` (B, T, D) float features (or (B, T) token ids with ``vocab_size``);
- ``mask`` (B, T) bools, True at the first T_b frames of each row (real frames first);
- ``targets`` (B, S) ints: the labels l_b in 1..C-1 followed by 0 (the blank) as
  padding, so L_b = the number of nonzero entries. A label can never be 0.

Each utterance needs at least L_b + R_b frames (R_b repeated neighbours, each
needing a blank between); fewer raise a BpttError naming the utterance rather
than give an infinite loss.

A task module uses it as::

    model = CTCRecognizer(num_labels=10, input_size=D, hidden_size=128, num_layers=2,
                          rng=np.random.default_rng(seed))       # digits 0-9 -> classes 1-10
    loss, grads, _ = model.loss_and_grads(batch)                  # the trainer's contract
    ids = model.predict(features, mask)                           # best path, (L_b,) each
    ids = bptt.decode.ctc_decode(model, features, mask, beam_width=8)   # or prefix beam search
    model.to_text(ids, labels=list("0123456789"), sep=" ")        # ["3 1 4", ...]

Shapes: B batch, T frames, D features, H hidden, K directions, C classes
(blank included), S target labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import log_softmax
from bptt.functional.ctc import ctc_backward, ctc_collapse, ctc_forward, ctc_min_frames
from bptt.models.sequence import SequenceBatch, SequenceModel
from bptt.nn import Linear

BLANK = 0  # the blank's class index; labels are 1..C-1


class CTCRecognizer(SequenceModel):
    """Features -> stacked, bidirectional RNN -> Linear to C classes -> log-softmax -> CTC.

    Args:
        num_labels: the real labels (10 for digits); C = num_labels + 1 classes,
            class 0 the blank, label k the class k.
        bidirectional: True by default (a frame's label depends on the frames after it).
        **kwargs: the encoder's (:class:`~bptt.models.sequence.SequenceModel`):
            input_size (or vocab_size and embed_size), hidden_size, num_layers,
            cell, dropout, dtype, rng.
    """

    def __init__(self, num_labels: int, bidirectional: bool = True, **kwargs):
        if isinstance(num_labels, bool) or not isinstance(num_labels, int | np.integer):
            raise BpttError(f"num_labels must be an integer >= 1; got {num_labels!r}")
        if num_labels < 1:
            raise BpttError(f"num_labels must be an integer >= 1; got {num_labels}")
        rng = kwargs.get("rng")
        super().__init__(bidirectional=bidirectional, **kwargs)
        self.num_labels, self.num_classes, self.blank = int(num_labels), int(num_labels) + 1, BLANK
        self.layers["head"] = Linear(self.features, self.num_classes, dtype=self.dtype, rng=rng)
        self.head = self.layers["head"]

    # -- forward and backward --------------------------------------------------------

    def forward(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """inputs (B, T, D) features (or (B, T) ids), mask (B, T) -> logits z (B, T, C)."""
        outputs, _ = self.encode(inputs, mask, training, rng)  # (B, T, K*H)
        outputs = self.drop.forward(outputs, training=training, rng=rng)  # (B, T, K*H)
        return self.head.forward(outputs)  # (B, T, C)

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂z (B, T, C) (zero at padded frames)."""
        d_out = self.drop.backward(self.head.backward(d_logits))  # (B, T, K*H)
        self.encode_backward(d_out)

    def log_probs(self, inputs, mask) -> np.ndarray:
        """lp = log_softmax(z) (B, T, C) without dropout (padded frames: meaningless)."""
        return log_softmax(self.forward(inputs, mask))  # (B, T, C)

    # -- the loss --------------------------------------------------------------------

    def _lengths(self, batch: SequenceBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Input lengths T_b, targets (B, S) and target lengths L_b, checked."""
        mask = np.asarray(batch.mask, dtype=bool)
        targets = np.asarray(batch.targets)
        if mask.ndim != 2:
            raise BpttError(f"mask must be (B, T); got shape {mask.shape}")
        T_b = mask.sum(axis=1)  # (B,)
        if not (mask == (np.arange(mask.shape[1])[None, :] < T_b[:, None])).all():
            b = int(np.argmax((mask != (np.arange(mask.shape[1]) < T_b[:, None])).any(axis=1)))
            raise BpttError(f"mask row {b} is not real frames first, then padding")
        if targets.ndim != 2 or targets.shape[0] != mask.shape[0]:
            raise BpttError(
                f"targets must be label ids (B, S) = ({mask.shape[0]}, S) padded with 0; "
                f"got shape {targets.shape}"
            )
        if targets.size and not np.issubdtype(targets.dtype, np.integer):
            raise BpttError(f"targets must be integer label ids; got dtype {targets.dtype}")
        L_b = (targets != self.blank).sum(axis=1)  # (B,)
        prefix = np.arange(targets.shape[1])[None, :] < L_b[:, None]  # (B, S)
        if ((targets != self.blank) != prefix).any():
            b = int(np.argmax(((targets != self.blank) != prefix).any(axis=1)))
            raise BpttError(
                f"targets row {b} is {targets[b].tolist()}: labels 1..{self.num_labels} "
                f"first, then 0 (the blank) as padding, never 0 between labels"
            )
        bad = (targets < 0) | (targets >= self.num_classes)
        if bad.any():
            b, i = np.argwhere(bad)[0]
            raise BpttError(f"targets[{b}][{i}] = {targets[b, i]}: labels are 1..{self.num_labels}")
        need = ctc_min_frames(targets, L_b)  # (B,)
        short = need > T_b
        if short.any():
            b = int(np.argmax(short))
            raise BpttError(
                f"utterance {b} has {L_b[b]} labels ({need[b] - L_b[b]} repeated neighbours, "
                f"each needing a blank between) and needs at least {need[b]} frames; "
                f"it has {T_b[b]}"
            )
        return T_b, targets, L_b

    def loss_count(self, batch: SequenceBatch) -> int:
        """The loss is a mean per target label: sum_b L_b terms."""
        return int(np.count_nonzero(np.asarray(batch.targets) != self.blank))

    def loss_and_grads(self, batch: SequenceBatch, state=None, rng=None):
        """CTC loss per target label E = Σ_b E_b / Σ_b L_b, its grads (keyed like params), None."""
        T_b, targets, L_b = self._lengths(batch)
        z = self.forward(batch.inputs, batch.mask, training=True, rng=rng)  # (B, T, C)
        nll, cache = ctc_forward(log_softmax(z), targets, T_b, L_b, self.blank)
        scale = 1.0 / max(int(L_b.sum()), 1)
        d_z = ctc_backward(scale, cache, wrt="logits")  # (B, T, C) zero at padded frames
        self.backward(d_z)
        return float(nll.sum() * scale), self.grads, None

    def loss(self, batch: SequenceBatch) -> float:
        """Summed CTC loss Σ_b E_b (nats) over the batch, without gradients or dropout."""
        T_b, targets, L_b = self._lengths(batch)
        nll, _ = ctc_forward(self.log_probs(batch.inputs, batch.mask), targets, T_b, L_b)
        return float(nll.sum())

    # -- decoding (beam search: bptt.decode.ctc_decode(model, inputs, mask, beam_width)) ---

    def predict(self, inputs, mask) -> list[np.ndarray]:
        """Best-path label ids (L_b,) per utterance: argmax per real frame, then B(π)."""
        best = self.forward(inputs, mask).argmax(axis=-1)  # (B, T) argmax z = argmax lp
        lengths = np.asarray(mask).sum(axis=1)  # (B,)
        return [ctc_collapse(best[b, :n], self.blank) for b, n in enumerate(lengths)]

    def to_text(self, ids: Sequence[np.ndarray], labels: Sequence[str], sep: str = "") -> list[str]:
        """Label ids -> strings, label k written as ``labels[k - 1]``, joined by ``sep``."""
        if len(labels) != self.num_labels:
            raise BpttError(
                f"labels must name the {self.num_labels} labels (classes 1..{self.num_labels}); "
                f"got {len(labels)}"
            )
        return [sep.join(labels[k - 1] for k in row) for row in ids]
