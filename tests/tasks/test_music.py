"""music (ABC, character level): tune splitting, the n-gram baselines, --clean-meter, labels,
conditioning (the key label changes what comes next), `bptt compose`, and
`bptt train music` / sample / eval end to end on a tiny ABC file (--text)."""

import re

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint, save_checkpoint
from bptt.cli import main
from bptt.config import Config
from bptt.data import Vocabulary
from bptt.data.vocabulary import UNK
from bptt.errors import BpttError
from bptt.tasks.text import abc_meter, lm, music

ABC = """\
% a comment
X:1
T:The First
M:6/8
L:1/8
R:jig
K:G
D|GAB d2e|dBG A2D|GAB d2e|dBA G2:|

X:2
T:No key
M:4/4
ABcd|

X:3
T:Reel
M:C|
L:1/8
K:D
A2|d2fd A2FA|d2fd e2A2|d2fd A2FA|d2e2 d2:|
"""


def test_split_tunes_keeps_meter_length_key_and_body():
    tunes = music.split_tunes(ABC)
    assert tunes == [
        "M:6/8\nL:1/8\nK:G\nD|GAB d2e|dBG A2D|GAB d2e|dBA G2:|",
        "M:C|\nL:1/8\nK:D\nA2|d2fd A2FA|d2fd e2A2|d2fd A2FA|d2e2 d2:|",
    ]  # titles and rhythm dropped; the tune without K: left out
    assert music.as_stream(["a", "b"]) == "\n\na\n\nb\n\n"


def test_ngram_baselines():
    ids = np.array([0, 1] * 50)  # (100,) strictly alternating
    bits = music.ngram_bits(ids, ids, 2)
    assert bits["unigram"] == pytest.approx(1.0)
    assert bits["bigram"] < 0.1  # the previous symbol says the next
    assert music.ngram_bits(ids, ids, 4)["unigram"] > 1.0  # unseen symbols keep a share


def _needs_music21():
    pytest.importorskip("music21", reason="the music extra (music21) is not installed")


def test_train_sample_eval_end_to_end(tmp_path, capsys, monkeypatch):
    _needs_music21()
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "cache"))  # the meter checks of --clean-meter
    path = tmp_path / "tunes.abc"
    path.write_text(ABC * 6, encoding="utf-8")  # 12 tunes: 10 trained, 2 held out
    out = tmp_path / "run"
    flags = ["--text", str(path), "--hidden-size", "16", "--embed-size", "8", "--steps", "6"]
    flags += ["--eval-every", "3", "--batch-size", "2", "--window", "16", "--out", str(out)]
    flags += ["--test-fraction", "0.15"]
    assert main(["train", "music", "--quiet", *flags]) == 0
    printed = capsys.readouterr().out
    assert "tunes: 8 training (0 dropped: bars off their meter), 2 validation" in printed
    assert "2 test (held out)" in printed
    assert "unigram" in printed and "bigram" in printed and "test bits per character" in printed
    assert "100 samples (temperature 0.5):" in printed and "parse in music21" in printed

    checkpoint = str(out / "best.safetensors")
    assert main(["sample", checkpoint, "--prompt", "M:", "--length", "20"]) == 0
    assert capsys.readouterr().out.startswith("M:")
    assert main(["eval", checkpoint]) == 0
    assert "2 held-out tunes" in capsys.readouterr().out


def test_clean_meter_drops_training_tunes_off_their_meter(tmp_path, monkeypatch):
    _needs_music21()
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "cache"))
    good = "M:2/4\nL:1/8\nK:C\nC|DEFG|A3:|B|cdef|g4|"
    bad = "M:2/4\nL:1/8\nK:C\nC|DEFG|A2|B4|c4|"  # a lone short bar inside the tune
    path = tmp_path / "tunes.abc"
    path.write_text("".join(f"X:{i}\n{good if i % 2 else bad}\n\n" for i in range(20)))
    config = Config(task="music", text=str(path), test_fraction=0.2, clean_meter=True)
    plain = music.prepare_data(Config(task="music", text=str(path), test_fraction=0.2))
    data = music.prepare_data(config)
    assert data.test == plain.test and (data.test_ids == plain.test_ids).all()  # untouched
    assert set(data.train) == {good} and data.dropped == plain.train.count(bad) > 0
    assert len(data.train) + data.dropped == len(plain.train) == 12
    assert not set(map(id, data.val)) & set(map(id, data.test)) and len(data.val) == 4
    assert data.vocab.tokens == plain.vocab.tokens  # the vocabulary of all training tunes

    def no_music21(abc):
        raise AssertionError("the cached result should be read, not checked again")

    monkeypatch.setattr(abc_meter, "check_tune", no_music21)
    again = music.prepare_data(config)
    assert again.train == data.train and again.dropped == data.dropped
    assert abc_meter.meter_cache_file().is_relative_to(tmp_path / "cache")


# -- labels, conditioning, compose ---------------------------------------------------------------


def test_labels_are_checked():
    assert music.check_label("K", "dm") == "Dm"
    assert music.check_label("K", "E minor") == "E minor"
    assert music.check_label("M", "C|") == "C|"
    for field, bad in (("K", "H"), ("K", "Gx"), ("M", "7/3"), ("M", "6-8"), ("L", "1/3")):
        with pytest.raises(BpttError, match=f"{field}: expected"):
            music.check_label(field, bad)


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A tiny LSTM trained 150 updates (~2 s) on tunes whose key says their notes:
    K:G tunes use G A B only, K:Dm tunes D E F only."""
    rng = np.random.default_rng(0)
    tunes = []
    for i in range(60):
        key, notes = ("G", "GAB") if i % 2 == 0 else ("Dm", "DEF")
        bars = ["".join(rng.choice(list(notes), 4)) for _ in range(4)]
        tunes.append(f"M:2/4\nL:1/8\nK:{key}\n" + "|".join(bars) + "|]")
    stream = music.as_stream(tunes)
    vocab = Vocabulary.from_text(stream, level="char", specials=(UNK,))
    ids = vocab.encode(stream)  # (N,)
    config = Config(
        task="music",
        hidden_size=32,
        embed_size=8,
        batch_size=8,
        window=32,
        steps=150,
        lr=1e-2,
        eval_every=150,
    )
    out = tmp_path_factory.mktemp("toy")
    trainer, _ = lm.text_trainer(config, out, "music", vocab, ids, ids[:200], progress_bar=False)
    trainer.run()
    return trainer.model, vocab, out / "best.safetensors"


def _next_char(model, vocab, text):
    logits, _ = model.forward(vocab.encode(text)[None, :])  # (1, P, V)
    z = logits[0, -1].astype(np.float64)  # (V,)
    p = np.exp(z - z.max())  # (V,)
    return p / p.sum()


def test_conditioning_on_the_key_changes_the_next_note(toy_model):
    model, vocab, _ = toy_model
    share = {}
    for key in ("G", "Dm"):  # the header is the label, fed as the first steps
        p = _next_char(model, vocab, music.SEP + f"M:2/4\nL:1/8\nK:{key}\n")  # (V,)
        share[key] = {notes: sum(p[vocab.index(c)] for c in notes) for notes in ("GAB", "DEF")}
    assert share["G"]["GAB"] > 0.6 and share["G"]["DEF"] < 0.2, share
    assert share["Dm"]["DEF"] > 0.6 and share["Dm"]["GAB"] < 0.2, share
    # ... and the sampled tunes follow their label
    for key, notes in (("G", "GAB"), ("Dm", "DEF")):
        tunes = music.compose(
            model, vocab, 8, meter="2/4", key=key, unit="1/8", bars=4, rng=np.random.default_rng(0)
        )
        assert all(t.startswith(f"M:2/4\nL:1/8\nK:{key}\n") for t in tunes)
        body = "".join(t.split("\n", 3)[3] for t in tunes)
        letters = [c for c in body if c.isalpha()]
        assert np.mean([c in notes for c in letters]) > 0.8, (key, body)


def test_compose_bars_prompt_and_nothing(toy_model):
    model, vocab, _ = toy_model
    tunes = music.compose(
        model, vocab, 4, key="G", meter="2/4", prompt="GG", bars=3, rng=np.random.default_rng(1)
    )
    for t in tunes:
        body = t.split("\n", 3)[3]
        assert body.startswith("GG")
        assert body.count("|") == 3 and body.endswith("|]"), body
    free = music.compose(model, vocab, 4, rng=np.random.default_rng(2))  # from nothing
    assert all(t.startswith("M:") for t in free)
    sampled_unit = music.compose(model, vocab, 4, key="Dm", rng=np.random.default_rng(2))
    assert all(re.match(r"M:[^\n]*\nL:[^\n]*\nK:Dm\n", t) for t in sampled_unit)
    a = music.compose(model, vocab, 2, key="G", rng=np.random.default_rng(3))
    assert a == music.compose(model, vocab, 2, key="G", rng=np.random.default_rng(3))
    with pytest.raises(BpttError, match="never saw"):
        music.compose(model, vocab, 1, prompt="xyz")


def test_compose_cli_end_to_end(toy_model, tmp_path, capsys):
    _needs_music21()
    pytest.importorskip("matplotlib")
    _, _, checkpoint = toy_model
    out = tmp_path / "tune"
    flags = ["--bars", "4", "--key", "G", "--meter", "2/4", "--rate", "8000", "--tries", "4"]
    assert main(["compose", str(checkpoint), *flags, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "K:G" in printed and "wrote" in printed
    for ext in ("abc", "mid", "wav", "png"):
        assert (tmp_path / f"tune.{ext}").stat().st_size > 0
    abc = (tmp_path / "tune.abc").read_text()
    assert abc.startswith("X:1\nT:") and "\nM:2/4\n" in abc and "\nK:G\n" in abc

    # never overwritten silently; bad labels and checkpoints of other tasks are named
    assert main(["compose", str(checkpoint), *flags, "--out", str(out)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert main(["compose", str(checkpoint), "--key", "H", "--out", str(tmp_path / "b")]) == 2
    assert "K: expected a key" in capsys.readouterr().err
    tensors, meta = load_checkpoint(checkpoint)
    save_checkpoint(tmp_path / "lm.safetensors", tensors, {**meta, "task": "lm"})
    assert main(["compose", str(tmp_path / "lm.safetensors"), "--out", str(tmp_path / "c")]) == 2
    assert "compose needs a music model" in capsys.readouterr().err
