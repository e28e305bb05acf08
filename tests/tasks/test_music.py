"""music (ABC, character level): tune splitting, the n-gram baselines, the meter check, and
`bptt train music` / sample / eval end to end on a tiny ABC file (--text)."""

import numpy as np
import pytest

from bptt.cli import main
from bptt.tasks import music

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


def test_check_tune_parses_and_counts_bars():
    _needs_music21()
    reel = "M:C|\nL:1/8\nK:D\nA2|d2fd A2FA|d2fd e2A2|d2fd A2FA|d2e2 d2:|"
    assert music.check_tune(reel) == (True, True)
    # A section's ending and the next pickup make one bar; a lone short bar does not.
    assert music.check_tune("M:2/4\nL:1/8\nK:C\nC|DEFG|A3:|B|cdef|g4|") == (True, True)
    assert music.check_tune("M:2/4\nL:1/8\nK:C\nC|DEFG|A2|B4|c4|") == (True, False)
    assert music.check_tune("K:C\nC|DEFG|") == (False, False)  # no meter header


def test_train_sample_eval_end_to_end(tmp_path, capsys):
    _needs_music21()
    path = tmp_path / "tunes.abc"
    path.write_text(ABC * 6, encoding="utf-8")  # 12 tunes: 10 trained, 2 held out
    out = tmp_path / "run"
    flags = ["--text", str(path), "--hidden-size", "16", "--embed-size", "8", "--steps", "6"]
    flags += ["--eval-every", "3", "--batch-size", "2", "--window", "16", "--out", str(out)]
    flags += ["--test-fraction", "0.15"]
    assert main(["train", "music", "--quiet", *flags]) == 0
    printed = capsys.readouterr().out
    assert "tunes: 10 training, 2 held out" in printed
    assert "unigram" in printed and "bigram" in printed and "test bits per character" in printed
    assert "100 samples:" in printed and "parse in music21" in printed

    checkpoint = str(out / "best.safetensors")
    assert main(["sample", checkpoint, "--prompt", "M:", "--length", "20"]) == 0
    assert capsys.readouterr().out.startswith("M:")
    assert main(["eval", checkpoint]) == 0
    assert "2 held-out tunes" in capsys.readouterr().out
