"""ONNX export: each family's graph, run by ONNX Runtime, gives bptt's outputs to 1e-5.

Random weights, random inputs, random lengths (masks padded at the end, as the
batchers pad), random initial states; one test per family, swept over cells,
directions, layers and poolings.
"""

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from bptt.checkpoint import save_checkpoint  # noqa: E402
from bptt.cli import main  # noqa: E402
from bptt.errors import BpttError  # noqa: E402
from bptt.models import LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger  # noqa: E402
from bptt.models.seq2seq import Seq2SeqBatch  # noqa: E402
from bptt.onnx_export import (  # noqa: E402
    language_model_graph,
    seq2seq_graphs,
    sequence_model_graph,
)

TOL = 1e-5
CELLS = ("rnn", "lstm", "gru")


def session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, ["CPUExecutionProvider"])


def close(got, want, what):
    diff = np.max(np.abs(np.asarray(got, np.float64) - want))
    assert diff < TOL, f"{what}: ONNX Runtime differs from bptt by {diff:.2e} (tolerance {TOL})"


def lengths_and_mask(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)  # (B,)
    lengths[0] = T  # one full row, so the padded T is the batch's own
    return lengths.astype(np.int64), np.arange(T)[None, :] < lengths[:, None]  # (B, T)


@pytest.mark.parametrize("cell", CELLS)
def test_language_model_matches_with_and_without_a_state(cell):
    rng = np.random.default_rng(1)
    model = LanguageModel(11, 6, 8, num_layers=2, cell=cell, rng=rng)
    sess = session(language_model_graph(model))
    ids = rng.integers(0, 11, size=(3, 7))  # (B, T)
    want, _ = model.forward(ids)  # (B, T, V) from zeros
    zeros = {n: np.zeros((2, 3, 8), np.float32) for n in ("h0", "c0")[: 1 + (cell == "lstm")]}
    close(sess.run(["logits"], {"ids": ids, **zeros})[0], want, f"{cell} logits from zeros")
    state = model.forward(ids)[1]  # continue from a real state, as generation does
    state = state if isinstance(state, tuple) else (state,)
    feed = {"ids": ids, **{n: s for n, s in zip(("h0", "c0"), state, strict=False)}}
    got = sess.run(None, feed)
    want, final = model.forward(ids, state if len(state) == 2 else state[0])
    final = final if isinstance(final, tuple) else (final,)
    close(got[0], want, f"{cell} logits from a state")
    assert len(got) == 1 + len(final), [o.name for o in sess.get_outputs()]
    for g, w, n in zip(got[1:], final, ("hn", "cn"), strict=False):
        close(g, w, f"{cell} {n}")


@pytest.mark.parametrize(
    ("cell", "pooling", "bidirectional", "layers", "tokens"),
    [
        ("lstm", "last", True, 2, True),
        ("gru", "mean", True, 1, True),
        ("rnn", "max", False, 2, True),
        ("lstm", "max", True, 1, False),
        ("gru", "last", False, 2, False),
        ("rnn", "mean", True, 2, True),
    ],
)
def test_classifier_matches_on_padded_batches(cell, pooling, bidirectional, layers, tokens):
    rng = np.random.default_rng(2)
    B, T, D = 5, 9, 4
    kind = {"vocab_size": 13, "embed_size": 6} if tokens else {"input_size": D}
    model = SequenceClassifier(
        3,
        pooling,
        hidden_size=7,
        num_layers=layers,
        cell=cell,
        bidirectional=bidirectional,
        rng=rng,
        **kind,
    )
    lengths, mask = lengths_and_mask(rng, B, T)
    if tokens:
        inputs = rng.integers(0, 13, size=(B, T))  # (B, T); padded ids are anything in range
    else:
        inputs = rng.standard_normal((B, T, D)).astype(np.float32)  # (B, T, D)
    got = session(sequence_model_graph(model)).run(None, {"inputs": inputs, "lengths": lengths})
    close(got[0], model.forward(inputs, mask), f"{cell} {pooling} classifier logits")


@pytest.mark.parametrize("cell", CELLS)
def test_tagger_matches_at_every_real_step(cell):
    rng = np.random.default_rng(3)
    B, T = 4, 8
    model = SequenceTagger(
        5, vocab_size=17, embed_size=6, hidden_size=7, num_layers=2, cell=cell, rng=rng
    )
    lengths, mask = lengths_and_mask(rng, B, T)
    ids = rng.integers(0, 17, size=(B, T))  # (B, T)
    got = session(sequence_model_graph(model)).run(None, {"inputs": ids, "lengths": lengths})[0]
    want = model.forward(ids, mask)  # (B, T, C)
    close(got[mask], want[mask], f"{cell} tagger logits at real steps")


@pytest.mark.parametrize(
    ("options", "named"),
    [({"crf": True}, "a CRF head"), ({"num_shape_features": 3}, "letters or shape features")],
)
def test_a_tagger_onnx_cannot_express_is_refused_by_name(options, named):
    model = SequenceTagger(
        5, vocab_size=17, embed_size=6, hidden_size=7, rng=np.random.default_rng(4), **options
    )
    with pytest.raises(BpttError, match=f"export does not support taggers with {named}"):
        sequence_model_graph(model)


@pytest.mark.parametrize(
    ("cell", "attention", "bidirectional", "layers"),
    [
        ("lstm", "additive", True, 2),
        ("gru", "dot", True, 1),
        ("rnn", "none", False, 2),
        ("lstm", "dot", False, 1),
        ("gru", "additive", False, 2),
    ],
)
def test_encoder_decoder_matches_step_by_step(cell, attention, bidirectional, layers):
    rng = np.random.default_rng(4)
    B, S, T = 4, 7, 5
    model = Seq2Seq(12, 10, 6, 8, layers, cell, bidirectional, attention, attention_size=5, rng=rng)
    src_lengths, src_mask = lengths_and_mask(rng, B, S)
    source = rng.integers(0, 12, size=(B, S))  # (B, S)
    target_in = rng.integers(0, 10, size=(B, T))  # (B, T) teacher forcing
    batch = Seq2SeqBatch(source, src_mask, target_in, target_in, np.ones((B, T), bool))
    want_logits, want_alpha, _ = model.forward(batch)  # (B, T, V), (B, T, S)
    encoder, decoder = (session(p) for p in seq2seq_graphs(model))
    enc = dict(
        zip(
            [o.name for o in encoder.get_outputs()],
            encoder.run(None, {"source": source, "source_lengths": src_lengths}),
            strict=True,
        )
    )
    memory, state = model.encode(source, src_mask)
    close(enc["memory"], memory.values, f"{cell} encoder outputs at real steps")
    names = ("h", "c")[: len(state)]
    for n, s in zip(names, state, strict=True):
        close(enc[n], s, f"{cell} bridged s_0 ({n})")
    feed = {n: enc[n] for n in names}
    if attention != "none":
        feed |= {"memory": enc["memory"], "keys": enc["keys"], "source_lengths": src_lengths}
    for t in range(T):
        out = decoder.run(None, {**feed, "prev": target_in[:, t]})
        close(out[0], want_logits[:, t], f"{cell} {attention} decoder logits at step {t}")
        if attention != "none":
            close(out[-1], want_alpha[:, t], f"{cell} {attention} attention at step {t}")
        feed |= {n: out[1 + i] for i, n in enumerate(names)}


def test_the_command_exports_a_trained_model_and_refuses_to_overwrite(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    flags = ["--text", str(corpus), "--out", str(tmp_path / "run"), "--hidden-size", "8"]
    flags += ["--embed-size", "4", "--batch-size", "2", "--window", "8", "--steps", "2"]
    assert main(["train", "--quiet", *flags, "--sample-length", "5"]) == 0
    ckpt, out = str(tmp_path / "run" / "best.safetensors"), tmp_path / "new" / "lm.onnx"
    assert main(["export", ckpt, str(out)]) == 0
    assert "ids int64 [B, T]" in capsys.readouterr().out
    model = onnx.load(str(out))
    assert {p.key for p in model.metadata_props} >= {"bptt.vocab", "bptt.config"}
    before = out.read_bytes()
    assert main(["export", ckpt, str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_an_unsupported_checkpoint_gets_a_one_line_error(tmp_path, capsys):
    ckpt = tmp_path / "ctc.safetensors"
    save_checkpoint(ckpt, {"model.w": np.zeros(2, np.float32)}, {"task": "ctc-digits"})
    assert main(["export", str(ckpt), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'ctc-digits' model, which cannot be exported" in err and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_checkpoints_of_a_classifier_and_an_encoder_decoder_export_as_trained(tmp_path):
    """The checkpoint route: each family's loader rebuilds the model, the graph matches it."""
    from bptt.config import Config
    from bptt.data.vocabulary import Vocabulary
    from bptt.onnx_export import export_checkpoint
    from bptt.tasks._examples import build_model
    from bptt.tasks.seq2seq import translation

    rng = np.random.default_rng(5)
    config = Config(task="activity", hidden_size=6, cell="gru", bidirectional=True)
    model = build_model(config, "class", 4, None, 3, rng)
    meta = {
        "task": "activity",
        "config": config.to_dict(),
        "vocab": None,
        "labels": list("abcd"),
        "head": "class",
        "input_size": 3,
    }
    tensors = {f"model.{k}": v for k, v in model.params.items()}
    save_checkpoint(tmp_path / "act.safetensors", tensors, meta)
    [path] = export_checkpoint(tmp_path / "act.safetensors", tmp_path / "act.onnx")
    lengths, mask = lengths_and_mask(rng, 3, 6)
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)  # (B, T, D)
    got = ort.InferenceSession(str(path)).run(None, {"inputs": x, "lengths": lengths})[0]
    close(got, model.forward(x, mask), "activity checkpoint logits")

    config = Config(task="dates", hidden_size=6, embed_size=4, attention_size=5)
    sv, tv = Vocabulary.from_text("monday 1 may"), Vocabulary.from_text("2024-05-01")
    model = translation.build_model(config, sv, tv, rng)
    meta = {
        "task": "dates",
        "config": config.to_dict(),
        "source_vocab": sv.to_dict(),
        "target_vocab": tv.to_dict(),
    }
    tensors = {f"model.{k}": v for k, v in model.params.items()}
    save_checkpoint(tmp_path / "dates.safetensors", tensors, meta)
    paths = export_checkpoint(tmp_path / "dates.safetensors", tmp_path / "dates.onnx")
    assert [p.name for p in paths] == ["dates.encoder.onnx", "dates.decoder.onnx"]
    source = rng.integers(0, len(sv), size=(2, 5))  # (B, S)
    lengths, mask = lengths_and_mask(rng, 2, 5)
    memory = ort.InferenceSession(str(paths[0])).run(
        ["memory"], {"source": source, "source_lengths": lengths}
    )[0]
    close(memory, model.encode(source, mask)[0].values, "dates checkpoint encoder outputs")


def test_without_the_onnx_package_the_error_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    assert main(["export", str(tmp_path / "any.safetensors"), str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'bptt[onnx]'" in capsys.readouterr().err
