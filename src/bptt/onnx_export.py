"""Export trained models to ONNX, on ONNX's own LSTM, GRU and RNN operators.

Runtimes (ONNX Runtime, TensorRT, OpenVINO) run their fused recurrent kernels
for these operators, so the graph holds one ``LSTM``/``GRU``/``RNN`` node per
layer, both directions in one node, rather than the time loop unrolled.

The weights map from PyTorch's layout (bptt's) to ONNX's, per layer l and
direction k (k = 0 forward, 1 reverse; ONNX stacks the directions on axis 0):

    W[k] = P weight_ih_l{l}[_reverse]           (G*H, D)   ONNX W (K, G*H, D)
    R[k] = P weight_hh_l{l}[_reverse]           (G*H, H)   ONNX R (K, G*H, H)
    B[k] = [P bias_ih; P bias_hh]               (2*G*H,)   ONNX B (K, 2*G*H)

where P reorders the gate blocks:

    LSTM  bptt i, f, g, o    ->  ONNX i, o, f, c          (g ≡ c, the candidate C~_t)
    GRU   bptt r, z, n       ->  ONNX z, r, h             with linear_before_reset = 1:
          n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)), bptt's and PyTorch's form
    RNN   one block; activation Tanh or Relu

Masks become lengths: ONNX's ``sequence_lens`` (B,) holds the number of real
steps of each sequence, which must come first (padding at the end, as every
bptt batcher pads). Past its length a sequence's outputs are zero and its
state stays as it was; the reverse direction starts at the last real step.
That is bptt's masked layer, so the exported model matches it step for step;
a bptt mask (B, T) gives ``lengths = mask.sum(axis=1)``.

What each family exports (all float32, any batch size B and length T):

    language model  ids (B, T) int64, h0 (L, B, H) [, c0 (L, B, H)]
                    -> logits (B, T, V), hn [, cn]
                    zeros start a sequence; feeding hn [, cn] back continues it
                    (generation: one step at a time, T = 1).
    classifier      inputs (B, T) int64 ids or (B, T, D) float32, lengths (B,) int64
                    -> logits (B, C)     (pooling "last", "mean" or "max" as trained)
    tagger          inputs, lengths as above -> logits (B, T, C); past each
                    length only the head's bias (like bptt's: meaningless there)
    encoder-decoder two graphs, ``<name>.encoder.onnx`` and ``<name>.decoder.onnx``:
        encoder     source (B, S) int64, source_lengths (B,) int64
                    -> memory (B, S, C) [, keys (B, S, A)], h (L, B, H) [, c]  (s_0)
        decoder     prev (B,) int64, h, [c,] [memory, keys, source_lengths]
                    -> logits (B, V), h_out [, c_out] [, alpha (B, S)]   one step

Why two graphs for the encoder-decoder rather than one graph with a Loop:
decoding is a search, not a fixed computation. The same decoder step serves
greedy decoding, beam search (the caller repeats the memory per beam, as
``Memory.take`` does), sampling and teacher forcing, and it is exactly
``Seq2Seq.step``, the one step function bptt's own decoders run. A Loop would
fix greedy decoding and the length limit inside the graph.

The vocabulary, labels and config travel in the model's ``metadata_props``
(``bptt.vocab``, ``bptt.labels``, ...; JSON), so the ONNX file alone can serve.

Shapes: B batch, T (S) time (source) steps, D input features, E embedding,
H hidden units, L layers, K directions, G gates, C classes (or context size),
A attention units, V vocabulary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bptt.errors import BpttError, CheckpointError
from bptt.models import LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger

OPSET = 18  # ReduceSum and ReduceMax take their axes as an input from 18 on
IR_VERSION = 8  # the lowest that opset 18 allows: ONNX Runtime 1.14 and later load it
GATE_ORDER = {  # bptt's (PyTorch's) gate blocks, listed in ONNX's order
    "lstm": (0, 3, 1, 2),  # i f g o -> i o f c
    "gru": (1, 0, 2),  # r z n -> z r h
    "rnn": (0,),
}
ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}

# task -> family; a fixed table (a checkpoint's task is looked up, never imported by name)
FAMILIES = {
    **dict.fromkeys(("lm", "names", "music", "chorales"), "lm"),
    **dict.fromkeys(("sentiment", "ner", "dna", "activity", "digits", "trigger"), "examples"),
    **dict.fromkeys(("dates", "g2p", "de-en"), "seq2seq"),
}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise BpttError(
            "ONNX export needs the package 'onnx', which is not installed; "
            "install the extra: pip install 'bptt[onnx]'"
        ) from None
    return onnx


class _Graph:
    """Nodes and float32 initializers of one graph, built with ``onnx.helper``."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def const(self, array, name: str | None = None) -> str:
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = name or self._name("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs):
        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, **attrs))
        return names[0] if outputs == 1 else names

    def rename(self, value: str, name: str) -> str:
        """An Identity that gives ``value`` a graph output's name."""
        self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name]))
        return name

    def _name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def linear(self, x: str, layer) -> str:
        """x (..., D) -> x W^T + b (..., O): a bptt Linear."""
        y = self.op("MatMul", [x, self.const(layer.params["weight"].T)])  # (..., O)
        if "bias" in layer.params:
            y = self.op("Add", [y, self.const(layer.params["bias"])])
        return y

    def model(self, inputs, outputs, metadata: dict, name: str):
        h, onnx = self.onnx.helper, self.onnx
        graph = h.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.producer_name = "bptt"
        h.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
        onnx.checker.check_model(model)
        return model


def _tensor(name: str, elem: str, shape: list):
    onnx = _onnx()
    kind = {"float": onnx.TensorProto.FLOAT, "int64": onnx.TensorProto.INT64}[elem]
    return onnx.helper.make_tensor_value_info(name, kind, shape)


# -- the pieces every family shares ------------------------------------------------


def _recurrent(g: _Graph, layer, x: str, lengths: str | None, state) -> tuple[str, list[str]]:
    """A bptt RNN/LSTM/GRU layer as one ONNX node per stacked layer.

    Args:
        layer: the bptt layer (stacked, one or two directions).
        x: time-major inputs (T, B, D).
        lengths: (B,) int32 real steps per sequence, or None (all real).
        state: None (zeros) or the initial states, each (L*K, B, H) (h, and C).

    Returns:
        outputs (T, B, K*H) (zero past each length) and the final states, each (L*K, B, H).
    """
    cell = layer.cell  # "rnn", "lstm" or "gru"; the layers' own names (bptt.nn.CELLS)
    K, H, L = layer.num_directions, layer.hidden_size, layer.num_layers
    order = GATE_ORDER[cell]
    p = layer.params
    attrs: dict = {"hidden_size": H, "direction": "bidirectional" if K == 2 else "forward"}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    if cell == "rnn":
        attrs["activations"] = [{"tanh": "Tanh", "relu": "Relu"}[layer.nonlinearity]] * K
    finals: list[list[str]] = [[] for _ in range(layer.state_arity)]
    for l in range(L):
        W, R, Bias = [], [], []
        for k in range(K):
            sfx = f"_l{l}" + ("_reverse" if k else "")

            def blocks(a, order=order):  # (G*H, ...) in bptt's gate order -> ONNX's
                return np.concatenate([a[i * H : (i + 1) * H] for i in order])

            W.append(blocks(p["weight_ih" + sfx]))  # (G*H, D)
            R.append(blocks(p["weight_hh" + sfx]))  # (G*H, H)
            if layer.bias:
                b_ih, b_hh = blocks(p["bias_ih" + sfx]), blocks(p["bias_hh" + sfx])
                Bias.append(np.concatenate([b_ih, b_hh]))  # (2*G*H,)
        inputs = [x, g.const(np.stack(W)), g.const(np.stack(R))]  # (K, G*H, D), (K, G*H, H)
        inputs += [g.const(np.stack(Bias)) if Bias else "", lengths or ""]  # (K, 2*G*H)
        if state is not None:
            rows = g.ints(l * K), g.ints((l + 1) * K), g.ints(0)
            inputs += [g.op("Slice", [s, *rows]) for s in state]  # (K, B, H) each
        n_out = 1 + layer.state_arity
        y, *final = g.op(ONNX_OP[cell], inputs, outputs=n_out, **attrs)  # Y (T, K, B, H)
        for f, out in zip(finals, final, strict=True):
            f.append(out)  # (K, B, H)
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (T, B, K, H)
        x = g.op("Reshape", [y, g.ints(0, 0, K * H)])  # (T, B, K*H)
    final = [f[0] if L == 1 else g.op("Concat", f, axis=0) for f in finals]  # (L*K, B, H)
    return x, final


def _embed_time_major(g: _Graph, embedding, inputs: str) -> str:
    """ids (B, T) -> E[ids] (T, B, E), or features (B, T, D) -> (T, B, D)."""
    if embedding is not None:
        inputs = g.op("Gather", [g.const(embedding.params["weight"]), inputs], axis=0)
    return g.op("Transpose", [inputs], perm=[1, 0, 2])


def _mask(g: _Graph, lengths: str, like: str) -> str:
    """lengths (B,) and a (B, T, ...) tensor -> the mask (B, T), True at real steps."""
    T = g.op("Gather", [g.op("Shape", [like]), g.const(np.int64(1))], axis=0)  # scalar
    steps = g.op("Range", [g.const(np.int64(0)), T, g.const(np.int64(1))])  # (T,)
    return g.op(
        "Less",
        [g.op("Unsqueeze", [steps, g.ints(0)]), g.op("Unsqueeze", [lengths, g.ints(1)])],
    )  # (B, T)


def _metadata(meta: dict, keys: tuple[str, ...]) -> dict:
    return {f"bptt.{k}": meta[k] for k in keys if meta.get(k) is not None}


# -- the families ------------------------------------------------------------------


def language_model_graph(model: LanguageModel, meta: dict | None = None):
    """The language model as an ONNX ModelProto (see the module docstring)."""
    g = _Graph()
    rnn = model.rnn
    L, H, V = rnn.num_layers * rnn.num_directions, rnn.hidden_size, model.head.out_features
    names = ("h0", "c0")[: rnn.state_arity]
    x = _embed_time_major(g, model.embedding, "ids")  # (T, B, E)
    y, final = _recurrent(g, rnn, x, None, list(names))  # (T, B, H)
    logits = g.linear(g.op("Transpose", [y], perm=[1, 0, 2]), model.head)  # (B, T, V)
    outputs = [g.rename(logits, "logits")]
    outputs += [g.rename(f, n.replace("0", "n")) for f, n in zip(final, names, strict=True)]
    inputs = [_tensor("ids", "int64", ["B", "T"])]
    inputs += [_tensor(n, "float", [L, "B", H]) for n in names]
    out = [_tensor("logits", "float", ["B", "T", V])]
    out += [_tensor(n.replace("0", "n"), "float", [L, "B", H]) for n in names]
    return g.model(inputs, out, _metadata(meta or {}, ("task", "config", "vocab")), "bptt_lm")


def sequence_model_graph(model: SequenceClassifier | SequenceTagger, meta: dict | None = None):
    """A classifier (logits (B, C)) or a tagger (logits (B, T, C)) as an ONNX ModelProto."""
    if isinstance(model, SequenceTagger) and (model.packed or model.crf is not None):
        # Letters, shape features and Viterbi decoding have no ONNX operator to map to.
        has = {"letters or shape features": model.packed, "a CRF head": model.crf is not None}
        parts = [name for name, on in has.items() if on]
        raise BpttError(f"export does not support taggers with {' or '.join(parts)} yet")
    g = _Graph()
    rnn, C = model.rnn, model.head.out_features
    K, H = rnn.num_directions, rnn.hidden_size
    lengths = g.op("Cast", ["lengths"], to=_onnx().TensorProto.INT32)  # (B,)
    x = _embed_time_major(g, model.embedding, "inputs")  # (T, B, E)
    y, final = _recurrent(g, rnn, x, lengths, None)  # (T, B, K*H)
    y = g.op("Transpose", [y], perm=[1, 0, 2])  # (B, T, K*H)
    mask = g.op("Unsqueeze", [_mask(g, "lengths", "inputs"), g.ints(2)])  # (B, T, 1)
    y = g.op("Where", [mask, y, g.const(np.float32(0))])  # (B, T, K*H) zero past the end
    if isinstance(model, SequenceTagger):
        logits, shape = g.linear(y, model.head), ["B", "T", C]  # (B, T, C)
    else:
        if model.pooling == "last":  # the top layer's final state, both directions
            top = g.op("Slice", [final[0], g.ints(-K), g.ints(2**62), g.ints(0)])  # (K, B, H)
            r = g.op("Transpose", [top], perm=[1, 0, 2])  # (B, K, H)
            r = g.op("Reshape", [r, g.ints(0, K * H)])  # (B, K*H)
        elif model.pooling == "mean":
            n = g.op("Cast", [g.op("Unsqueeze", ["lengths", g.ints(1)])], to=1)  # (B, 1) float
            r = g.op("Div", [g.op("ReduceSum", [y, g.ints(1)], keepdims=0), n])  # (B, K*H)
        else:
            low = g.op("Where", [mask, y, g.const(np.float32(-np.inf))])  # (B, T, K*H)
            r = g.op("ReduceMax", [low, g.ints(1)], keepdims=0)  # (B, K*H)
        logits, shape = g.linear(r, model.head), ["B", C]  # (B, C)
    if model.embedding is not None:
        inputs = [_tensor("inputs", "int64", ["B", "T"])]
    else:
        inputs = [_tensor("inputs", "float", ["B", "T", model.input_size])]
    inputs.append(_tensor("lengths", "int64", ["B"]))
    g.rename(logits, "logits")
    keys = ("task", "config", "vocab", "labels", "head", "input_size")
    outputs = [_tensor("logits", "float", shape)]
    return g.model(inputs, outputs, _metadata(meta or {}, keys), "bptt_" + type(model).__name__)


def seq2seq_graphs(model: Seq2Seq, meta: dict | None = None):
    """The encoder-decoder as two ONNX ModelProtos: (encoder, one decoder step)."""
    return _encoder_graph(model, meta or {}), _decoder_graph(model, meta or {})


def _encoder_graph(model: Seq2Seq, meta: dict):
    g = _Graph()
    L, H, K = model.num_layers, model.hidden_size, model.num_directions
    C = K * H
    names = ("h", "c")[: model.encoder.state_arity]
    lengths = g.op("Cast", ["source_lengths"], to=_onnx().TensorProto.INT32)  # (B,)
    x = _embed_time_major(g, model.layers["source_embedding"], "source")  # (S, B, E)
    y, final = _recurrent(g, model.encoder, x, lengths, None)  # (S, B, K*H)
    values = g.op("Transpose", [y], perm=[1, 0, 2])  # (B, S, K*H)
    outputs = [_tensor("memory", "float", ["B", "S", C])]
    g.rename(values, "memory")
    if "attention" in model.layers:
        att = model.layers["attention"]
        g.rename(g.op("MatMul", [values, g.const(att.params["weight_key"].T)]), "keys")  # (B,S,A)
        outputs.append(_tensor("keys", "float", ["B", "S", att.attention_size]))
    for n, name, f in zip(names, ("bridge_h", "bridge_c"), final, strict=False):
        if K == 2:  # s_0 = tanh(W_b [s_enc→; s_enc←] + b_b) per layer (C: no tanh)
            f = g.op("Reshape", [f, g.ints(L, 2, -1, H)])  # (L, 2, B, H)
            f = g.op("Transpose", [f], perm=[0, 2, 1, 3])  # (L, B, 2, H)
            f = g.linear(g.op("Reshape", [f, g.ints(L, -1, 2 * H)]), model.layers[name])
            f = g.op("Tanh", [f]) if name == "bridge_h" else f  # (L, B, H)
        g.rename(f, n)
        outputs.append(_tensor(n, "float", [L, "B", H]))
    inputs = [_tensor("source", "int64", ["B", "S"]), _tensor("source_lengths", "int64", ["B"])]
    keys = ("task", "config", "source_vocab", "target_vocab")
    return g.model(inputs, outputs, _metadata(meta, keys), "bptt_seq2seq_encoder")


def _decoder_graph(model: Seq2Seq, meta: dict):
    g = _Graph()
    L, H = model.num_layers, model.hidden_size
    names = ("h", "c")[: model.decoder.state_arity]
    attention = model.layers.get("attention")
    table = g.const(model.layers["target_embedding"].params["weight"])  # (V, E)
    e = g.op("Gather", [table, "prev"], axis=0)  # (B, E)
    inputs = [_tensor("prev", "int64", ["B"])]
    inputs += [_tensor(n, "float", [L, "B", H]) for n in names]
    outputs = []
    x = e
    if attention is not None:  # c_t = attention(s_{t-1}'s top layer, h_1..h_S)
        C, A = attention.value_size, attention.attention_size
        inputs += [
            _tensor("memory", "float", ["B", "S", C]),
            _tensor("keys", "float", ["B", "S", A]),
            _tensor("source_lengths", "int64", ["B"]),
        ]
        q = g.op("Gather", ["h", g.const(np.int64(L - 1))], axis=0)  # (B, H)
        if attention.kind == "additive":  # e_s = v · tanh(W_q q + k_s)
            qp = g.op("MatMul", [q, g.const(attention.params["weight_query"].T)])  # (B, A)
            z = g.op("Tanh", [g.op("Add", ["keys", g.op("Unsqueeze", [qp, g.ints(1)])])])
            score = g.op("MatMul", [z, g.const(attention.params["v"])])  # (B, S)
        else:  # e_s = q · k_s
            qc = g.op("Unsqueeze", [q, g.ints(2)])  # (B, A, 1)
            score = g.op("Squeeze", [g.op("MatMul", ["keys", qc]), g.ints(2)])  # (B, S)
        mask = _mask(g, "source_lengths", "keys")  # (B, S)
        score = g.op("Where", [mask, score, g.const(np.float32(-np.inf))])  # (B, S)
        alpha = g.op("Softmax", [score], axis=-1)  # (B, S)
        ctx = g.op("MatMul", [g.op("Unsqueeze", [alpha, g.ints(1)]), "memory"])  # (B, 1, C)
        ctx = g.op("Squeeze", [ctx, g.ints(1)])  # (B, C)
        x = g.op("Concat", [e, ctx], axis=-1)  # (B, E + C)
    x = g.op("Unsqueeze", [x, g.ints(0)])  # (1, B, D) one time step
    y, final = _recurrent(g, model.decoder, x, None, [n for n in names])  # (1, B, H)
    o = g.op("Squeeze", [y, g.ints(0)])  # (B, H)
    if attention is not None:
        o = g.op("Concat", [o, ctx], axis=-1)  # (B, H + C)
    V = model.head.out_features
    g.rename(g.linear(o, model.head), "logits")  # (B, V)
    outputs.append(_tensor("logits", "float", ["B", V]))
    for n, f in zip(names, final, strict=True):
        g.rename(f, n + "_out")
        outputs.append(_tensor(n + "_out", "float", [L, "B", H]))
    if attention is not None:
        g.rename(alpha, "alpha")
        outputs.append(_tensor("alpha", "float", ["B", "S"]))
    keys = ("task", "config", "source_vocab", "target_vocab")
    return g.model(inputs, outputs, _metadata(meta, keys), "bptt_seq2seq_decoder_step")


# -- checkpoints -------------------------------------------------------------------


def export_checkpoint(checkpoint, out, force: bool = False) -> list[Path]:
    """Write the ONNX model(s) of a bptt checkpoint; returns the files written.

    ``out`` is the ONNX file; an encoder-decoder writes ``<out stem>.encoder.onnx``
    and ``<out stem>.decoder.onnx`` beside it instead. Existing files are
    refused unless ``force``; each file is written atomically.
    """
    from bptt.checkpoint import load_checkpoint

    _onnx()  # the missing extra is named before any work
    out = Path(out)
    if out.suffix != ".onnx":
        raise BpttError(f"the output must be a .onnx file; got '{out}'")
    _, meta = load_checkpoint(checkpoint)
    task = meta.get("task")
    family = FAMILIES.get(task)
    if family is None:
        raise CheckpointError(
            f"checkpoint '{checkpoint}' is a {task!r} model, which cannot be exported; "
            f"export supports the tasks {', '.join(sorted(FAMILIES))}"
        )
    if family == "seq2seq":
        stem = out.with_suffix("")
        paths = [stem.with_name(f"{stem.name}.{part}.onnx") for part in ("encoder", "decoder")]
    else:
        paths = [out]
    taken = [str(p) for p in paths if p.exists()]
    if taken and not force:
        raise BpttError(f"{', '.join(taken)} already exists; pass --force to overwrite")
    if family == "lm":
        from bptt.tasks.text import lm

        model, _, _, meta = lm.load_model(checkpoint)
        protos = [language_model_graph(model, meta)]
    elif family == "examples":
        from bptt.tasks._examples import load_model

        model, _, meta, _ = load_model(checkpoint, task)
        protos = [sequence_model_graph(model, meta)]
    else:
        from bptt.tasks.seq2seq import translation

        model, *_ = translation.load_model(checkpoint)
        protos = list(seq2seq_graphs(model, meta))
    from bptt.checkpoint import write_atomically

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BpttError(f"cannot create the folder '{out.parent}': {e.strerror or e}") from None
    for proto, path in zip(protos, paths, strict=True):
        write_atomically(path, proto.SerializeToString(), what="ONNX model")
    return paths


def describe(path: str | os.PathLike[str]) -> str:
    """One line per graph input and output: 'ids int64 [B, T]'."""
    onnx = _onnx()
    graph = onnx.load(str(path)).graph

    def line(v):
        t = v.type.tensor_type
        dims = ", ".join(d.dim_param or str(d.dim_value) for d in t.shape.dim)
        return f"{v.name} {onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)} [{dims}]"

    inputs = ", ".join(line(v) for v in graph.input)
    return f"in: {inputs}; out: " + ", ".join(line(v) for v in graph.output)
