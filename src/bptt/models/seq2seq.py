"""The lecture's encoder-decoder: many-to-many with Tx ≠ Ty, trained end to end by BPTT.

An encoder reads the source, a decoder writes the target one symbol at a time:

    h_1..h_S, s_enc = encoder(E_src[x_1..x_S])           stacked, K = 1 or 2 directions
    s_0      = s_enc                     when K = 1 (the decoder starts where the encoder ended)
             = tanh(W_b [s_enc→; s_enc←] + b_b)          when K = 2 (the bridge, per layer;
                                                         the LSTM's C gets its own linear bridge)
    for t = 1..T (one step at a time; y_0 = <bos>):
        c_t  = attention(s_{t-1}, h_1..h_S)              s_{t-1}: the top layer's h; skipped
                                                         without attention
        s_t  = cell([E_tgt[y_{t-1}]; c_t], s_{t-1})      stacked, one direction
        ŷ_t  = softmax(V [s_t; c_t] + b)                 V ≡ head.weight
    E = mean over real target symbols of -log ŷ_t[y_t]   masked past each target's <eos>

Training feeds the true previous symbol (teacher forcing); decoding feeds the
model's own choice. Both run :meth:`Seq2Seq.step_core`, the one step function,
so the equations are written once. The backward pass runs the steps in
reverse with the functional cells' BPTT at T = 1 per step (and per layer),
carries ∂E/∂s_{t-1} back, sums ∂E/∂h_s over the steps (through the context and
the keys), then runs the encoder's BPTT, so the gradient is exact through
both networks (checked against finite differences and PyTorch in the tests).

Shapes: B batch, S source length, T target length, E embedding width, H
hidden units (encoder per direction, decoder), L layers, K encoder directions,
C = K*H the encoder output (context) size, A attention units, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt.errors import BpttError
from bptt.losses import cross_entropy
from bptt.models.base import Model
from bptt.nn import Embedding, Linear, cell_layer
from bptt.nn.attention import Attention, check_source_mask

ATTENTION = ("additive", "dot", "none")

State = tuple[np.ndarray, ...]  # (h,) or (h, C), each (L, B, H)


@dataclass
class Seq2SeqBatch:
    """Sources and teacher-forced targets, padded at the end, with masks.

    ``target_in`` is ``<bos> y_1 .. y_n`` and ``target_out`` is ``y_1 .. y_n <eos>``,
    so the loss is masked past each target's ``<eos>``.
    """

    source: np.ndarray  # (B, S) ints
    source_mask: np.ndarray  # (B, S) bool
    target_in: np.ndarray  # (B, T) ints
    target_out: np.ndarray  # (B, T) ints
    target_mask: np.ndarray  # (B, T) bool
    carry_state: bool = False  # sentences are independent: no state crosses batches

    @property
    def num_tokens(self) -> int:
        return int(self.target_mask.sum())


@dataclass
class Memory:
    """What the decoder reads at every step: the encoder outputs, their keys, the mask."""

    values: np.ndarray  # (B, S, C) h_1..h_S
    keys: np.ndarray | None  # (B, S, A) W_k h_s, None without attention
    mask: np.ndarray  # (B, S) True at real source positions
    cache: dict | None = None  # what the backward pass needs of the key projection and bridge

    def take(self, rows: np.ndarray) -> Memory:
        """The memory of the sources ``rows`` (R,), e.g. each one repeated per beam."""
        keys = None if self.keys is None else self.keys[rows]  # (R, S, A)
        return Memory(self.values[rows], keys, self.mask[rows])  # (R, S, C)


class Seq2Seq(Model):
    """Encoder-decoder over ids, with additive, dot or no attention.

    Args:
        source_vocab_size, target_vocab_size: V_src, V_tgt.
        embed_size: E, both embeddings.
        hidden_size: H, per encoder direction and in the decoder.
        num_layers: L, encoder and decoder alike.
        cell: "rnn", "lstm" or "gru", encoder and decoder alike.
        bidirectional: K = 2 encoder directions (bridged into the decoder).
        attention: "additive" (Bahdanau), "dot" (Luong) or "none".
        attention_size: A, the additive score's units.
        dropout: between the encoder's layers (training only).
        dtype: float32 or float64.
        rng: Generator for the initialisation.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        attention: str = "additive",
        attention_size: int = 64,
        dropout: float = 0.0,
        dtype=np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        Layer = cell_layer(cell)  # a BpttError for an unknown cell
        if attention not in ATTENTION:
            raise BpttError(f"attention must be one of {ATTENTION}, got {attention!r}")
        rng = np.random.default_rng() if rng is None else rng
        self.cell, self.attention_kind = cell, attention
        self.dtype = np.dtype(dtype)
        H, L, K = hidden_size, num_layers, 2 if bidirectional else 1
        self.hidden_size, self.num_layers, self.num_directions = H, L, K
        C = K * H if attention != "none" else 0  # context size fed to the decoder
        self.layers = {
            "source_embedding": Embedding(source_vocab_size, embed_size, dtype=dtype, rng=rng),
            "encoder": Layer(embed_size, H, L, bidirectional, dropout, dtype=dtype, rng=rng),
            "target_embedding": Embedding(target_vocab_size, embed_size, dtype=dtype, rng=rng),
            "decoder": Layer(embed_size + C, H, L, dtype=dtype, rng=rng),
            "head": Linear(H + C, target_vocab_size, dtype=dtype, rng=rng),
        }
        if K == 2:
            self.layers["bridge_h"] = Linear(K * H, H, dtype=dtype, rng=rng)
            if len(Layer.state_names) == 2:  # the LSTM's C is bridged too
                self.layers["bridge_c"] = Linear(K * H, H, dtype=dtype, rng=rng)
        if attention != "none":
            self.layers["attention"] = Attention(attention, H, K * H, attention_size, dtype, rng)
        self.encoder, self.decoder = self.layers["encoder"], self.layers["decoder"]
        self.head = self.layers["head"]
        self.target_vocab_size = target_vocab_size

    # -- the encoder and the bridge --------------------------------------------------

    def encode(
        self, source: np.ndarray, source_mask: np.ndarray, training: bool = False, rng=None
    ) -> tuple[Memory, State]:
        """source (B, S) ids, mask (B, S) -> the decoder's memory and its first state s_0."""
        source = np.asarray(source)
        if source.ndim != 2:
            raise BpttError(f"source must be (B, S) ids, got shape {source.shape}")
        check_source_mask(source_mask, *source.shape)
        e = self.layers["source_embedding"].forward(source)  # (B, S, E)
        values, final = self.encoder.forward(e, None, source_mask, training=training, rng=rng)
        final = final if isinstance(final, tuple) else (final,)  # each (L*K, B, H)
        keys, cache = None, {}
        if "attention" in self.layers:
            keys, cache["keys"] = self.layers["attention"].project_keys(values)  # (B, S, A)
        state = self._bridge(final)
        cache["bridged"] = state
        return Memory(values, keys, source_mask, cache), state

    def _bridge(self, final: State) -> State:
        """The encoder's final state (L*K, B, H) -> the decoder's first state (L, B, H)."""
        if self.num_directions == 1:
            return tuple(f.copy() for f in final)
        L, H = self.num_layers, self.hidden_size
        out = []
        for name, f in zip(("bridge_h", "bridge_c"), final, strict=False):
            joined = f.reshape(L, 2, -1, H).transpose(0, 2, 1, 3).reshape(L, -1, 2 * H)  # (L,B,2H)
            s = self.layers[name].forward(joined)  # (L, B, H)
            out.append(np.tanh(s) if name == "bridge_h" else s)  # h in (-1, 1) like a cell's
        return tuple(out)

    def _bridge_backward(self, d_state: State, bridged: State) -> State:
        """∂E/∂s_0 (L, B, H) each -> ∂E/∂(encoder final state) (L*K, B, H) each."""
        if self.num_directions == 1:
            return d_state
        L, H = self.num_layers, self.hidden_size
        out = []
        for name, d, s in zip(("bridge_h", "bridge_c"), d_state, bridged, strict=False):
            if name == "bridge_h":
                d = d * (1.0 - s * s)  # (L, B, H) through the tanh
            d_joined = self.layers[name].backward(d)  # (L, B, 2H)
            out.append(d_joined.reshape(L, -1, 2, H).transpose(0, 2, 1, 3).reshape(2 * L, -1, H))
        return tuple(out)

    # -- one decoder step (training and decoding) -----------------------------------

    def step_core(
        self, e: np.ndarray, state: State, memory: Memory
    ) -> tuple[np.ndarray, State, np.ndarray | None, dict]:
        """c_t = attention(s_{t-1}), s_t = cell([e; c_t], s_{t-1}); returns [s_t; c_t].

        Args:
            e: E_tgt[y_{t-1}] (B, E).
            state: s_{t-1}, tuple of (L, B, H).
            memory: from :meth:`encode`.

        Returns:
            o_t = [s_t; c_t] (B, H + C) (just s_t without attention), s_t, the
            attention weights α (B, S) (None without attention), and the cache
            for :meth:`step_core_backward`.
        """
        cache: dict = {}
        alpha = None
        x = e  # (B, E)
        if memory.keys is not None:
            ctx, alpha, cache["attention"] = self.layers["attention"].step(
                state[0][-1], memory.keys, memory.values, memory.mask
            )  # (B, C), (B, S)
            x = np.concatenate([e, ctx], axis=-1)  # (B, E + C)
        decoder = self.decoder
        new_state = tuple(np.empty_like(s) for s in state)  # (L, B, H) each
        inp = x[:, None, :]  # (B, 1, D_l) one time step
        cache["cells"] = []
        for l in range(self.num_layers):
            inp, final, c = decoder.cell_forward(
                inp, tuple(s[l] for s in state), *decoder.cell_weights(l), **decoder.cell_kwargs()
            )  # inp: (B, 1, H)
            for n, f in zip(new_state, final, strict=True):
                n[l] = f
            cache["cells"].append(c)
        o = inp[:, 0] if alpha is None else np.concatenate([inp[:, 0], ctx], axis=-1)  # (B, H+C)
        return o, new_state, alpha, cache

    def step_core_backward(
        self, d_o: np.ndarray, d_state: State, cache: dict, grads: dict
    ) -> tuple[np.ndarray, State, np.ndarray | None, np.ndarray | None]:
        """Reverse one :meth:`step_core`, adding weight gradients into ``grads``.

        Args:
            d_o: ∂E/∂o_t (B, H + C).
            d_state: ∂E/∂s_t from the later steps, tuple of (L, B, H).
            cache: from :meth:`step_core`.
            grads: {"decoder": {...}, "attention": {...}} accumulated in place.

        Returns:
            ∂E/∂e (B, E), ∂E/∂s_{t-1} (tuple of (L, B, H)), and ∂E/∂keys
            (B, S, A) and ∂E/∂values (B, S, C) from this step (None without attention).
        """
        H, E = self.hidden_size, self.layers["target_embedding"].embedding_dim
        cell_backward = self.decoder.cell_backward
        d_prev = tuple(np.empty_like(d) for d in d_state)  # (L, B, H) each
        d_inp = d_o[:, None, :H]  # (B, 1, H) into the top layer's output
        for l in range(self.num_layers - 1, -1, -1):
            d_inp, d_s0, g = cell_backward(
                np.ascontiguousarray(d_inp), tuple(d[l] for d in d_state), cache["cells"][l]
            )  # d_inp: (B, 1, D_l)
            for dp, d in zip(d_prev, d_s0, strict=True):
                dp[l] = d
            dec = grads["decoder"]
            for k, v in g.items():
                key = f"{k}_l{l}"
                dec[key] = v if key not in dec else dec[key] + v
        d_e = d_inp[:, 0, :E]  # (B, E)
        if "attention" not in cache:
            return d_e, d_prev, None, None
        d_ctx = d_o[:, H:] + d_inp[:, 0, E:]  # (B, C) from the head and from the cell's input
        d_q, d_keys, d_values, g = self.layers["attention"].step_backward(d_ctx, cache["attention"])
        d_prev[0][-1] += d_q  # the query was s_{t-1}'s top layer
        att = grads["attention"]
        for k, v in g.items():
            att[k] = v if k not in att else att[k] + v
        return d_e, d_prev, d_keys, d_values

    def step(
        self, prev: np.ndarray, state: State, memory: Memory
    ) -> tuple[np.ndarray, State, np.ndarray | None]:
        """One decoding step: previous ids (B,) -> logits (B, V), s_t, α (B, S) or None."""
        e = self.layers["target_embedding"].forward(np.asarray(prev))  # (B, E)
        o, state, alpha, _ = self.step_core(e, state, memory)  # (B, H + C)
        return self.head.forward(o), state, alpha  # (B, V)

    # -- training ------------------------------------------------------------------

    def forward(self, batch: Seq2SeqBatch, training: bool = False, rng=None):
        """Teacher-forced logits (B, T, V), the attention weights (B, T, S) or None, caches."""
        memory, state = self.encode(batch.source, batch.source_mask, training, rng)
        e = self.layers["target_embedding"].forward(batch.target_in)  # (B, T, E)
        T = batch.target_in.shape[1]
        outs, alphas, caches = [], [], []
        for t in range(T):
            o, state, alpha, cache = self.step_core(e[:, t], state, memory)
            outs.append(o)
            alphas.append(alpha)
            caches.append(cache)
        logits = self.head.forward(np.stack(outs, axis=1))  # (B, T, V)
        attn = None if memory.keys is None else np.stack(alphas, axis=1)  # (B, T, S)
        return logits, attn, (memory, caches)

    def backward(self, d_logits: np.ndarray, memory: Memory, caches: list[dict]) -> None:
        """BPTT through the decoder's steps, the attention, the bridge and the encoder."""
        d_outs = self.head.backward(d_logits)  # (B, T, H + C)
        B, T, _ = d_outs.shape
        L, H = self.num_layers, self.hidden_size
        grads: dict = {"decoder": {}, "attention": {}}
        arity = self.decoder.state_arity  # (h,) or (h, C)
        d_state = tuple(np.zeros((L, B, H), dtype=self.dtype) for _ in range(arity))  # (L, B, H)
        d_e = np.empty((B, T, self.layers["target_embedding"].embedding_dim), dtype=self.dtype)
        d_keys = d_values = None
        for t in range(T - 1, -1, -1):
            d_e[:, t], d_state, dk, dv = self.step_core_backward(
                d_outs[:, t], d_state, caches[t], grads
            )
            if dk is not None:
                d_keys = dk if d_keys is None else d_keys + dk  # (B, S, A)
                d_values = dv if d_values is None else d_values + dv  # (B, S, C)
        self.layers["target_embedding"].backward(d_e)
        self.decoder.grads = grads["decoder"]
        d_enc_out = np.zeros_like(memory.values)  # (B, S, C)
        if "attention" in self.layers:
            att = self.layers["attention"]
            d_through_keys, g = att.project_keys_backward(d_keys, memory.cache["keys"])
            att.grads = {**grads["attention"], "weight_key": g["weight"]}
            d_enc_out += d_values + d_through_keys
        d_final = self._bridge_backward(d_state, memory.cache["bridged"])
        d_src = self.encoder.backward(d_enc_out, d_final if len(d_final) > 1 else d_final[0])
        self.layers["source_embedding"].backward(d_src)

    def loss_and_grads(self, batch: Seq2SeqBatch, state=None, rng=None):
        """Mean cross-entropy per real target symbol, its gradients (keyed like params), None."""
        logits, _, (memory, caches) = self.forward(batch, training=rng is not None, rng=rng)
        loss, d_logits = cross_entropy(
            logits, batch.target_out, batch.target_mask, reduction="mean"
        )
        self.backward(d_logits, memory, caches)
        return loss, self.grads, None

    def loss(self, batch: Seq2SeqBatch) -> float:
        """Summed cross-entropy (nats) over the real target symbols, without gradients."""
        logits, _, _ = self.forward(batch)
        return cross_entropy(logits, batch.target_out, batch.target_mask, reduction="sum")[0]
