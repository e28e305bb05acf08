"""Isolated spoken digits: the clips of each split come from that split's speakers only,
and bptt train/eval/predict digits run end to end on a few real espeak-ng clips; bptt synth
writes a valid WAV of plausible length."""

import shutil

import numpy as np
import pytest

from bptt.cli import main
from bptt.data.audio import SAMPLE_RATE, read_wav
from bptt.tasks.speech import digits
from bptt.tasks.speech import speech_voices as sv

pytest.importorskip("python_speech_features", reason="extra 'speech'")
pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)",
)

FLAGS = ["--quiet", "--hidden-size", "8", "--batch-size", "4", "--steps", "6"]
FLAGS += ["--eval-every", "3", "--max-examples", "10"]


def test_each_split_speaks_with_its_own_speakers_only():
    for split in sv.SPLITS:
        specs = digits.clip_specs(split, 30, ("espeak-ng",))
        assert [s.text for s in specs[:10]] == digits.LABELS  # clip i says digit i mod 10
        speakers = {sv.parse_voice(s.voice).speaker for s in specs}
        assert all(sv.split_of(sp) == split for sp in speakers), (split, speakers)
    again = digits.clip_specs("train", 30, ("espeak-ng",))
    assert again == digits.clip_specs("train", 30, ("espeak-ng",))  # fixed, not --seed


def test_augmented_copies_are_the_same_with_one_or_several_workers(monkeypatch):
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    sounds = [(0.1 * rng.standard_normal(4000 + 500 * i)).astype(np.float32) for i in range(6)]
    clips = [SimpleNamespace(audio=lambda x=x: x) for x in sounds]
    config = SimpleNamespace(augment="all", seed=3, features="logmel", norm="cmvn")
    runs = []
    for workers in (1, 2):
        monkeypatch.setattr(digits, "AUG_WORKERS", workers)
        runs.append(digits.augmented_features(clips, config, copies=2))
    assert len(runs[0]) == 12 and all(f.shape[1] == 40 for f in runs[0])
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    assert not np.array_equal(runs[0][0], runs[0][6][: len(runs[0][0])])  # copies differ


def test_end_to_end_train_eval_and_predict_a_synthesised_wav(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(digits, "VAL_CLIPS", 5)
    monkeypatch.setattr(digits, "TEST_CLIPS", 5)
    out, data = tmp_path / "run", tmp_path / "speech"
    assert main(["train", "digits", *FLAGS, "--out", str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "train 10, validation 5, test 5" in printed and "40 features per step" in printed
    line = next(s for s in printed.splitlines() if s.startswith("test ("))
    assert "unseen speakers" in line and "majority class" in line and "worst speaker" in line
    assert "| by accent, error (clips): en" in line  # espeak-ng's test voices have accents
    assert len(list(data.iterdir())) == 3  # one cached corpus per split, with its features
    assert all((c / "features-logmel.npz").is_file() for c in data.iterdir())
    assert main(["eval", str(out / "best.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == line

    wav = tmp_path / "seven.wav"
    assert main(["synth", "7", "--voice", "en-us+f2", "--out", str(wav)]) == 0
    assert "'seven'" in capsys.readouterr().out
    assert main(["predict", str(out / "best.safetensors"), str(wav)]) == 0
    label, p = capsys.readouterr().out.split()
    assert label in digits.LABELS and 0.1 <= float(p) <= 1.0
    assert main(["predict", str(out / "best.safetensors"), "seven"]) == 2
    assert "predicts from a WAV file" in capsys.readouterr().err


def test_synth_writes_a_16_khz_wav_of_plausible_length(tmp_path, capsys):
    one, five = tmp_path / "one.wav", tmp_path / "five.wav"
    assert main(["synth", "3", "--out", str(one)]) == 0
    assert main(["synth", "3 1 4 1 5", "--voice", "en-gb-scotland+m2", "--snr", "20",
                 "--out", str(five)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "'three one four one five'" in printed and "en-gb-scotland+m2 (train split)" in printed
    (x1, r1), (x5, r5) = read_wav(one), read_wav(five)
    assert r1 == r5 == SAMPLE_RATE
    assert 0.3 < len(x1) / r1 < 1.5 and 1.2 < len(x5) / r5 < 5.0 and len(x5) > 2.5 * len(x1)
    assert np.abs(x5).max() > 0.1  # speech, not silence


def test_synth_by_word_prints_the_spans_and_refuses_bad_input(tmp_path, capsys):
    wav = tmp_path / "w.wav"
    assert main(["synth", "2 9", "--by-word", "--out", str(wav)]) == 0
    spans = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [s[0] for s in spans] == ["two", "nine"]
    assert 0 < float(spans[0][1]) < float(spans[0][2]) <= float(spans[1][1]) < float(spans[1][2])
    assert float(spans[1][2]) <= len(read_wav(wav)[0]) / SAMPLE_RATE
    assert main(["synth", "1", "--voice", "fr+m3", "--out", str(wav)]) == 2
    assert "the accent must be one of en, en-us" in capsys.readouterr().err
    assert main(["synth", "--out", str(wav)]) == 2
    assert "synth needs a text" in capsys.readouterr().err


@pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("text2wave") is None,
    reason="the held-out-engine protocol needs flite and Festival (apt-get install flite "
    "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts; .ci/run installs them)",
)
def test_held_out_engine_clips_never_train_on_the_test_engine():
    from bptt.tasks.speech import ctc_digits

    for held_out in sv.ENGINES:
        for make in (digits.clip_specs, ctc_digits.utterance_specs):
            engines = {
                split: {sv.engine_of(s.voice) for s in make(split, 60, (), held_out)}
                for split in sv.SPLITS
            }
            assert engines["test"] == {held_out}
            assert held_out not in engines["train"] | engines["validation"]
            assert len(engines["train"]) == 2  # both training engines, drawn engine first
        again = digits.clip_specs("train", 20, (), held_out)
        assert again == digits.clip_specs("train", 20, (), held_out)  # fixed, not --seed
