"""The lecture's many-to-many model with Tx = Ty: a tag for every step (a word -> its entity tag).

    s→_t = cell→(e_t, s→_{t-1})                   left to right: sees x_1..x_t
    s←_t = cell←(e_t, s←_{t+1})                   right to left: sees x_t..x_T
    o_t  = V [s→_t, s←_t] + c                     V ≡ head.weight, c ≡ head.bias
    ŷ_t  = softmax(o_t)                           the softmax head: a tag per step on its own
    E    = (1/N) Σ_{b, t real} -log ŷ_{b,t}[y_{b,t}]     mean per real step, N real steps

Bidirectional by default: in "Teddy Roosevelt was a great President" and
"Teddy bears are on sale" the first word's tag depends on the words after it,
which a left-to-right tagger has not read yet when it must decide.

The CRF head (``crf=True``, Lample et al. 2016) reads the o_t as emission scores
and adds learned scores for each pair of neighbouring tags (:mod:`bptt.functional.crf`):

    E    = (1/N) Σ_b [log Z_b - s_b(y_b)]         the whole tag sequence's likelihood
    ŷ    = argmax_y s(y)                           decoded by Viterbi

so "I-PER after O" can be learned to be (almost) impossible instead of hoped for.

Word features (``char_vocab_size`` and/or ``num_shape_features``, Lample et al.;
Ma and Hovy 2016): each word is also read letter by letter, so a word never seen
in training still gets a vector from its spelling ("Granger" looks like a name):

    e_t  = [E[w_t]; h→_chars(w_t); h←_chars(w_t); f_t]    dropout on e_t in training
    h→_chars, h← = the final states of a character BiLSTM over the word's letters
    f_t  = 0/1 shape features (capitalised, all caps, digits, @, #, URL, ...)

or, with ``char_encoder="cnn"`` (Ma and Hovy 2016), a convolution of width 3 over
the letters' embeddings c_1..c_n (zero beyond the word), max-pooled over them:

    e_t  = [E[w_t]; tanh(max_j (K * c)_j + b); f_t]          Hc filters, K ≡ char_conv.weight

one matrix product for all letters of all words, where the BiLSTM takes W steps.

The inputs are then one integer array (B, T, P) per batch, P = 1 + F + W:
``[..., 0]`` the word id, ``[..., 1:1+F]`` the shape features, ``[..., 1+F:]``
the first W character ids of the word (0 pads, 1 is an unknown character).
Word dropout replaces a training word's id by ``<unk>`` with probability
``word_dropout``, so the model learns to tag from the letters and the context
alone, as it must for unknown words.

Shapes: B batch, T time steps, E embedding, H hidden, K directions, C tags,
N real words of a batch, W letters per word, Ec letter embedding, Hc letter hidden
units per direction, F shape features, P = 1 + F + W.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import softmax
from bptt.losses import cross_entropy
from bptt.models.sequence import SequenceBatch, SequenceModel
from bptt.nn import CRF, LSTM, Conv1d, Dropout, Embedding, Linear

CHAR_PAD, CHAR_UNK = 0, 1  # the character ids every character table starts with
CHAR_ENCODERS = ("lstm", "cnn")


class SequenceTagger(SequenceModel):
    """Embedding (or features) -> stacked, bidirectional RNN -> Linear at every step
    -> softmax per step, or a CRF over the whole sequence.

    Args:
        num_tags: C.
        bidirectional: True by default (see the module docstring).
        crf: a CRF head instead of the softmax per step.
        char_vocab_size: letters (with the pad and unknown ids 0 and 1) of the
            character BiLSTM; None: no characters.
        char_embed_size: Ec. char_hidden_size: Hc per direction (cnn: Hc filters).
        char_encoder: "lstm" (a BiLSTM, 2Hc numbers per word) or "cnn" (Hc).
        num_shape_features: F 0/1 features per word given in the inputs.
        word_dropout: probability of reading a training word as ``unk_id``.
        embed_dropout: dropout on e_t (the word's whole input vector) in training.
        unk_id: the vocabulary's ``<unk>`` id (needed when word_dropout > 0).
        **kwargs: the encoder's (:class:`~bptt.models.sequence.SequenceModel`):
            vocab_size or input_size, embed_size, hidden_size, num_layers,
            cell, dropout, dtype, rng.
    """

    def __init__(
        self,
        num_tags: int,
        bidirectional: bool = True,
        crf: bool = False,
        char_vocab_size: int | None = None,
        char_embed_size: int = 25,
        char_hidden_size: int = 25,
        char_encoder: str = "lstm",
        num_shape_features: int = 0,
        word_dropout: float = 0.0,
        embed_dropout: float = 0.0,
        unk_id: int | None = None,
        **kwargs,
    ):
        rng = kwargs.get("rng")
        dtype = kwargs.get("dtype", np.float32)
        self.packed = char_vocab_size is not None or num_shape_features > 0
        if self.packed and kwargs.get("vocab_size") is None:
            raise BpttError("characters and shape features need word inputs (a vocab_size)")
        if word_dropout > 0 and unk_id is None:
            raise BpttError("word_dropout needs the vocabulary's <unk> id (unk_id); got None")
        if char_encoder not in CHAR_ENCODERS:
            raise BpttError(
                f"char_encoder must be one of {', '.join(CHAR_ENCODERS)}; got {char_encoder!r}"
            )
        chars = 0 if char_vocab_size is None else char_hidden_size
        chars *= 2 if char_encoder == "lstm" else 1
        super().__init__(
            bidirectional=bidirectional, extra_input=chars + num_shape_features, **kwargs
        )
        self.num_classes = num_tags
        self.num_shape_features, self.unk_id = num_shape_features, unk_id
        self.word_dropout = word_dropout
        self.embed_drop = Dropout(embed_dropout)
        if char_vocab_size is not None:
            self.layers["char_embedding"] = Embedding(
                char_vocab_size, char_embed_size, dtype=dtype, rng=rng
            )
            if char_encoder == "lstm":
                self.layers["char_rnn"] = LSTM(
                    char_embed_size, char_hidden_size, 1, True, dtype=dtype, rng=rng
                )
            else:
                self.layers["char_conv"] = Conv1d(
                    char_embed_size, char_hidden_size, 3, dtype=dtype, rng=rng
                )
        self.layers["head"] = Linear(self.features, num_tags, dtype=self.dtype, rng=rng)
        self.head = self.layers["head"]
        if crf:
            self.layers["crf"] = CRF(num_tags, dtype=dtype, rng=rng)
        self.crf = self.layers.get("crf")
        self._embed_cache: dict | None = None

    # -- the input of each step ----------------------------------------------

    def _check(self, inputs, mask):
        if not self.packed:
            return super()._check(inputs, mask)
        inputs, mask = np.asarray(inputs), np.asarray(mask)
        if inputs.ndim != 3 or inputs.dtype.kind not in "iu":
            raise BpttError(
                f"the model reads words with their letters as integers (B, T, P); "
                f"got {inputs.dtype} {inputs.shape}"
            )
        if mask.shape != inputs.shape[:2]:
            raise BpttError(f"mask has shape {mask.shape}, inputs {inputs.shape[:2]} (B, T)")
        return inputs, mask

    def embed(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """e_t = [E[w_t]; letters; shape], dropped out in training (module docstring)."""
        if not self.packed:
            return super().embed(inputs, mask, training, rng)
        F = self.num_shape_features
        words = np.where(mask, inputs[..., 0], 0)  # (B, T)
        if training and self.word_dropout > 0:
            drop = rng.random(words.shape) < self.word_dropout  # (B, T)
            words = np.where(drop & mask, self.unk_id, words)
        parts = [self.embedding.forward(words)]  # (B, T, E)
        self._embed_cache = {"mask": mask}
        if "char_embedding" in self.layers:
            parts.append(self._read_letters(inputs[..., 1 + F :], mask))  # (B, T, 2Hc or Hc)
        if F:
            parts.append((inputs[..., 1 : 1 + F] * mask[..., None]).astype(self.dtype))  # (B,T,F)
        x = np.concatenate(parts, axis=-1)  # (B, T, E + 2Hc + F)
        return self.embed_drop.forward(x, training=training, rng=rng)

    def _read_letters(self, letters, mask) -> np.ndarray:
        """Each real word's vector from its letters (B, T, 2Hc) or (B, T, Hc) for the cnn."""
        chars = letters[mask]  # (N, W) the real words' letters
        char_mask = chars != CHAR_PAD  # (N, W) a prefix of each row
        char_mask[:, 0] = True  # every word has a letter (an empty one reads as padding)
        longest = int(char_mask.sum(axis=1).max()) if len(chars) else 1
        chars, char_mask = chars[:, :longest], char_mask[:, :longest]  # (N, W') no idle steps
        c = self.layers["char_embedding"].forward(chars)  # (N, W', Ec)
        cache = self._embed_cache
        cache["shape"] = chars.shape
        if "char_rnn" in self.layers:
            _, (h, _) = self.layers["char_rnn"].forward(c, None, char_mask)  # (2, N, Hc)
            h = np.concatenate([h[0], h[1]], axis=1)  # (N, 2Hc) forward, reverse
        else:
            c = c * char_mask[..., None]  # (N, W', Ec) zero beyond the word, as at its start
            y = self.layers["char_conv"].forward(c)  # (N, W', Hc)
            at = np.where(char_mask[..., None], y, -np.inf).argmax(axis=1)[:, None]  # (N,1,Hc)
            h = np.tanh(np.take_along_axis(y, at, axis=1)[:, 0])  # (N, Hc)
            cache.update(char_mask=char_mask, at=at, h=h)
        per_word = np.zeros((*mask.shape, h.shape[1]), dtype=self.dtype)  # (B, T, 2Hc or Hc)
        per_word[mask] = h
        return per_word

    def embed_backward(self, d_x) -> None:
        if not self.packed:
            return super().embed_backward(d_x)
        d_x = self.embed_drop.backward(d_x)  # (B, T, E + 2Hc + F)
        E = self.embedding.embedding_dim
        self.embedding.backward(np.ascontiguousarray(d_x[..., :E]))
        cache = self._embed_cache
        N, W = cache.get("shape", (0, 0))
        if "char_rnn" in self.layers:
            rnn = self.layers["char_rnn"]
            Hc = rnn.hidden_size
            d_h = d_x[..., E : E + 2 * Hc][cache["mask"]]  # (N, 2Hc)
            d_final = np.stack([d_h[:, :Hc], d_h[:, Hc:]])  # (2, N, Hc)
            zeros = np.zeros((N, W, 2 * Hc), dtype=self.dtype)  # (N, W, 2Hc) no per-letter use
            self.layers["char_embedding"].backward(rnn.backward(zeros, (d_final, None)))
        elif "char_conv" in self.layers:
            conv = self.layers["char_conv"]
            Hc, h = conv.out_channels, cache["h"]
            d_max = d_x[..., E : E + Hc][cache["mask"]] * (1 - h * h)  # (N, Hc) through tanh
            d_y = np.zeros((N, W, Hc), dtype=self.dtype)  # (N, W', Hc) only the maxima
            np.put_along_axis(d_y, cache["at"], d_max[:, None], axis=1)
            d_c = conv.backward(d_y) * cache["char_mask"][..., None]  # (N, W', Ec)
            self.layers["char_embedding"].backward(d_c)
        return None

    # -- the head --------------------------------------------------------------

    def forward(self, inputs, mask, training=False, rng=None) -> np.ndarray:
        """inputs (B, T) ids, (B, T, D) features or (B, T, P) words with letters, mask (B, T)
        -> logits or emission scores (B, T, C)."""
        outputs, _ = self.encode(inputs, mask, training, rng)  # (B, T, K*H)
        outputs = self.drop.forward(outputs, training=training, rng=rng)  # (B, T, K*H)
        return self.head.forward(outputs)  # (B, T, C)

    def backward(self, d_logits: np.ndarray) -> None:
        """Fill every layer's grads from ∂E/∂logits (B, T, C) (zero at padded steps)."""
        d_out = self.drop.backward(self.head.backward(d_logits))  # (B, T, K*H)
        self.encode_backward(d_out)

    def _loss(self, logits, batch: SequenceBatch, reduction: str):
        """(loss, ∂loss/∂logits) by the head: summed or mean per real step."""
        if self.crf is None:
            return cross_entropy(logits, batch.targets, batch.mask, reduction=reduction)
        nll = self.crf.forward(logits, batch.targets, batch.mask)  # (B,)
        scale = 1.0 / batch.num_tokens if reduction == "mean" else 1.0
        d_logits = self.crf.backward(np.full(len(nll), scale)).astype(self.dtype)  # (B, T, C)
        return float(nll.sum()) * scale, d_logits

    def loss_and_grads(self, batch: SequenceBatch, state=None, rng=None):
        """Mean loss per real step, its gradients (keyed like params), None."""
        logits = self.forward(batch.inputs, batch.mask, training=True, rng=rng)  # (B, T, C)
        loss, d_logits = self._loss(logits, batch, "mean")
        self.backward(d_logits)
        return loss, self.grads, None

    def loss(self, batch: SequenceBatch) -> float:
        """Summed loss (nats) over the batch, without gradients: the cross-entropy of every
        real step, or the CRF's -log p(y | x) of every sentence."""
        logits = self.forward(batch.inputs, batch.mask)  # (B, T, C)
        if self.crf is None:
            return cross_entropy(logits, batch.targets, batch.mask)[0]
        return float(self.crf.forward(logits, batch.targets, batch.mask).sum())

    def predict_proba(self, inputs, mask) -> np.ndarray:
        """Tag probabilities (B, T, C) at every step (padded steps: meaningless), no dropout:
        the softmax, or the CRF's marginals p(y_t = j | x)."""
        logits = self.forward(inputs, mask)  # (B, T, C)
        return softmax(logits) if self.crf is None else self.crf.marginals(logits, mask)

    def predict_tags(self, inputs, mask) -> np.ndarray:
        """The best tags (B, T) ints: argmax per step, or the CRF's Viterbi path."""
        logits = self.forward(inputs, mask)  # (B, T, C)
        if self.crf is None:
            return np.argmax(logits, axis=-1)
        return self.crf.decode(logits, np.asarray(mask, dtype=bool))
