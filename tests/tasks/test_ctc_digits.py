"""Digit strings with CTC: utterances of 3..7 digits from each split's own speakers whose
transcripts are their labels; edit distance and digit error rate on hand-made cases;
bptt train/eval ctc-digits and bptt transcribe end to end on a few real espeak-ng
utterances, with clear errors for the wrong checkpoint, a missing file and odd WAVs."""

import shutil
import wave

import numpy as np
import pytest

from bptt.checkpoint import save_checkpoint
from bptt.cli import main
from bptt.data.audio import SAMPLE_RATE, read_wav, resample, write_wav
from bptt.errors import BpttError, CheckpointError, DataError
from bptt.tasks.speech import ctc_digits
from bptt.tasks.speech import speech_corpus as corpus
from bptt.tasks.speech import speech_synth as synth
from bptt.tasks.speech import speech_voices as sv

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)",
)
FLAGS = ["--quiet", "--hidden-size", "8", "--num-layers", "1", "--batch-size", "2"]
FLAGS += ["--steps", "4", "--eval-every", "2", "--max-examples", "4", "--beam", "3"]


# ---------------------------------------------------------------- metrics, by hand
@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("314", "314", 0),
        ("314", "34", 1),  # a deletion
        ("34", "314", 1),  # an insertion
        ("314", "394", 1),  # a substitution
        ("12", "21", 2),  # a swap is two edits
        ("", "123", 3),
        ("123", "", 3),
        ("kitten", "sitting", 3),
    ],
)
def test_edit_distance_on_hand_made_cases(a, b, want):
    assert ctc_digits.edit_distance(a, b) == want


def test_digit_error_rate_sums_edits_over_the_references_lengths():
    hyps = [[1, 3], [4, 5, 6], [], [7, 7]]
    refs = [[1, 2, 3], [4, 5, 6], [9, 9], [7]]  # edits 1, 0, 2, 1 over 3 + 3 + 2 + 1 digits
    got = ctc_digits.error_rates(hyps, refs)
    assert got["digit_error_rate"] == pytest.approx(4 / 9)
    assert got["sequence_accuracy"] == pytest.approx(1 / 4)
    arrays = ctc_digits.error_rates([np.array([2, 1])], [np.array([2, 1])])
    assert arrays == {"digit_error_rate": 0.0, "sequence_accuracy": 1.0}
    with pytest.raises(BpttError, match="one hypothesis per reference; got 1 hypotheses for 2"):
        ctc_digits.error_rates([[1]], [[1], [2]])


def test_labels_of_a_transcript_and_frame_stacking():
    assert ctc_digits.text_to_labels("three one four zero").tolist() == [4, 2, 5, 1]
    with pytest.raises(DataError, match="must be digit words; got 'three apples'"):
        ctc_digits.text_to_labels("three apples")
    frames = np.arange(22, dtype=np.float32).reshape(11, 2)  # (T, D) = (11, 2)
    steps = ctc_digits.stack_frames(frames, 4)  # (2, 8): the last 3 frames dropped
    assert steps.shape == (2, 8) and steps[1].tolist() == list(range(8, 16))


# ---------------------------------------------------------------- data
@needs_espeak
def test_utterances_have_3_to_7_digits_and_only_their_splits_speakers():
    for split in sv.SPLITS:
        specs = ctc_digits.utterance_specs(split, 60, ("espeak-ng",))
        lengths = [len(s.text.split()) for s in specs]
        assert min(lengths) == 3 and max(lengths) == 7, lengths
        assert all(set(s.text.split()) <= set(synth.DIGIT_WORDS) for s in specs)
        assert {s.by_word for s in specs} == {True, False}  # both ways of speaking
        speakers = {sv.parse_voice(s.voice).speaker for s in specs}
        assert all(sv.split_of(sp) == split for sp in speakers), (split, speakers)
    again = ctc_digits.utterance_specs("test", 60, ("espeak-ng",))
    assert again == ctc_digits.utterance_specs("test", 60, ("espeak-ng",))  # not --seed


# ---------------------------------------------------------------- end to end
@pytest.fixture
def small_corpora(monkeypatch):
    monkeypatch.setattr(ctc_digits, "VAL_UTTERANCES", 2)
    monkeypatch.setattr(ctc_digits, "TEST_UTTERANCES", 2)


@needs_espeak
def test_train_eval_and_transcribe_end_to_end(tmp_path, small_corpora, capsys):
    pytest.importorskip("python_speech_features", reason="extra 'speech'")
    out, data = tmp_path / "run", tmp_path / "speech"
    assert main(["train", "ctc-digits", *FLAGS, "--out", str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "train 4, validation 2, test 2" in printed and "160 features per step" in printed
    assert "strings of 3..7 digits" in printed and "CTC recognizer, bidirectional LSTM" in printed
    report = printed[printed.index("test (2 utterances") :].strip()
    assert "unseen speakers" in report
    assert "greedy (best path): digit error rate" in report
    assert "prefix beam search, width 3: digit error rate" in report
    assert "by accent, greedy digit error rate (digits): en" in report  # espeak-ng's voices
    corpora = sorted(p for p in data.iterdir() if p.is_dir())
    clips = [c for folder in corpora for c in corpus.read_corpus(folder)]
    assert len(corpora) == 3 and len(clips) == 8  # one cached corpus per split
    assert {c.spec.by_word for c in clips} == {True, False}
    for clip in clips:  # what each utterance says is its label string, 3..7 digits
        labels = ctc_digits.text_to_labels(clip.text)  # (L,)
        assert " ".join(synth.DIGIT_WORDS[k - 1] for k in labels) == clip.spec.text
        assert 3 <= len(labels) <= 7
        audio = clip.audio()  # (N,)
        if clip.spec.by_word:  # each digit word lies where the transcript says, in order
            assert [w for w, _, _ in clip.words] == clip.text.split()
            assert all(0 < a < b <= len(audio) for _, a, b in clip.words)
        x = ctc_digits.utterance_inputs(audio, "logmel", 4, np.float32)  # (S, 160)
        assert x.shape[1] == 160 and x.shape[0] >= 2 * len(labels)  # room for CTC's paths
    best = out / "best.safetensors"
    assert best.is_file() and (out / "latest.safetensors").is_file()
    assert main(["eval", str(best)]) == 0
    assert capsys.readouterr().out.strip() == report  # the same test numbers again

    wav = tmp_path / "x.wav"
    test_voice = sv.voices("test")[0].name
    assert main(["synth", "4 0 7 1", "--voice", test_voice, "--out", str(wav)]) == 0
    capsys.readouterr()
    for beam in ("1", "4"):
        assert main(["transcribe", str(best), str(wav), "--beam", beam]) == 0
        heard = capsys.readouterr().out.strip()  # a tiny model: any digits, maybe none
        assert heard == "" or all(d in ctc_digits.LABELS for d in heard.split(" ")), heard

    samples, rate = read_wav(wav)
    slow = tmp_path / "8k.wav"  # another rate: resampled, with a note
    write_wav(slow, resample(samples, rate, 8000), rate=8000)
    assert main(["transcribe", str(best), str(slow)]) == 0
    captured = capsys.readouterr()
    assert "is at 8000 Hz; resampled to 16000 Hz" in captured.err
    stereo = tmp_path / "stereo.wav"  # two channels: mixed down to one
    pcm = np.round(samples * 32768.0).astype("<i2")  # (N,) the file's own 16-bit samples
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.stack([pcm, pcm], axis=1).tobytes())
    assert main(["transcribe", str(best), str(stereo)]) == 0
    assert capsys.readouterr().out.strip() == ctc_digits.transcribe(best, wav)  # same audio

    assert main(["transcribe", str(best), str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav' is not a file" in capsys.readouterr().err
    text = tmp_path / "not.wav"
    text.write_text("hello")
    assert main(["transcribe", str(best), str(text)]) == 2
    assert "is not a WAV file" in capsys.readouterr().err
    assert main(["transcribe", str(best), str(wav), "--beam", "0"]) == 2
    assert "beam width must be an integer >= 1; got 0" in capsys.readouterr().err


def test_transcribe_refuses_a_checkpoint_of_another_task(tmp_path, capsys):
    other = tmp_path / "lm.safetensors"
    save_checkpoint(other, {"model.w": np.zeros(2, np.float32)}, {"task": "lm"})
    wav = write_wav(tmp_path / "x.wav", np.zeros(SAMPLE_RATE, np.float32))
    with pytest.raises(CheckpointError, match="is for task 'lm'; transcribing needs a 'ctc-dig"):
        ctc_digits.transcribe(other, wav)
    assert main(["transcribe", str(other), str(wav)]) == 2
    assert "transcribing needs a 'ctc-digits' checkpoint" in capsys.readouterr().err
