"""music_render: the WAV synthesiser's length and format, MIDI and ABC written and read back,
the piano roll, the refusal to overwrite, and a music21 stream rendered like ABC text."""

import wave

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.tasks.text import music_render as mr

pytest.importorskip("music21", reason="the music extra (music21) is not installed")

# a pickup of 1/8, 3 bars of 6/8 and a last bar of 5/8: 12 quarter notes, no repeat
JIG = "M:6/8\nL:1/8\nK:G\nD|GAB d2e|dBG A2D|GAB d2e|dBA G2|]"


def test_notes_of_abc_pitches_and_durations():
    notes = mr.notes_of(JIG)
    assert [n.pitch for n in notes[:4]] == [62, 67, 69, 71]  # D4 G4 A4 B4
    assert sum(n.duration for n in notes) == pytest.approx(0.5 + 3 * 3.0 + 2.5)
    assert notes[1].start == pytest.approx(0.5)  # the bar after the one-eighth pickup
    # tied notes sound as one; a chord gives one note per pitch
    assert [(n.duration, n.pitch) for n in mr.notes_of("L:1/4\nK:C\nC-|C D|")] == [
        (2.0, 60),
        (1.0, 62),
    ]
    assert sorted(n.pitch for n in mr.notes_of("L:1/4\nK:C\n[CEG]2|")) == [60, 64, 67]
    # repeats are played: |: A :| twice, then the second ending
    played = mr.notes_of("L:1/4\nK:C\n|:C|1D:|2E|]")
    assert [n.pitch for n in played] == [60, 62, 60, 64]
    assert [n.start for n in played] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("voice", ["pluck", "sine"])
def test_wav_lasts_the_notes_at_the_tempo(tmp_path, voice):
    notes = mr.notes_of(JIG)
    tempo, rate = 90.0, 8000
    audio = mr.synthesize(notes, tempo, rate, voice)  # (S,)
    seconds = sum(n.duration for n in notes) * 60 / tempo  # monophonic, no rests
    assert audio.shape == (round(seconds * rate),)
    assert 0.5 < np.abs(audio).max() <= 0.9 + 1e-9
    path = mr.write_wav(tmp_path / "t.wav", audio, rate)
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, rate)
        assert f.getnframes() == round(seconds * rate)
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")  # (S,)
    assert np.abs(pcm.astype(float) / 32767 - audio).max() < 1e-4
    # each note sounds where it is: silence would be a bug; the 5th note (d, 1 quarter) is loud
    a, b = round(notes[4].start * 60 / tempo * rate), round(notes[4].end * 60 / tempo * rate)
    assert np.abs(audio[a:b]).max() > 0.05


def test_karplus_strong_rings_at_its_pitch():
    rate = 16000
    y = mr.karplus_strong(440.0, rate, rate, np.random.default_rng(0))  # (S,) one second
    lags = np.arange(20, 60)  # (40,) periods of 800 Hz down to 267 Hz
    corr = [np.dot(y[:-60], y[lag : lag - 60]) for lag in lags]  # (40,)
    assert lags[int(np.argmax(corr))] in (36, 37)  # one period: 16000 / 440 = 36.4 samples
    assert np.abs(y[-1600:]).max() < np.abs(y[:1600]).max()  # it decays


def test_render_writes_four_files_that_read_back(tmp_path):
    from music21 import converter

    paths = mr.render(JIG, tmp_path / "tune", tempo=100, rate=8000, title="Jig")
    assert sorted(p.name for p in paths.values()) == [
        "tune.abc",
        "tune.mid",
        "tune.png",
        "tune.wav",
    ]
    abc = paths["abc"].read_text()
    assert abc.startswith("X:1\nT:Jig\nM:6/8")
    assert [n.pitch for n in mr.notes_of(abc)] == [n.pitch for n in mr.notes_of(JIG)]
    midi = converter.parse(str(paths["mid"]))
    assert [p.midi for n in midi.flatten().notes for p in n.pitches] == [
        n.pitch for n in mr.notes_of(JIG)
    ]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with wave.open(str(paths["wav"])) as f:
        assert f.getnframes() == round(12.0 * 60 / 100 * 8000)

    with pytest.raises(BpttError, match="already exist"):  # never overwritten silently
        mr.render(JIG, tmp_path / "tune.abc")
    before = paths["wav"].stat().st_mtime_ns
    mr.render(JIG, tmp_path / "tune", formats=("wav",), force=True)
    assert paths["wav"].stat().st_mtime_ns >= before


def test_render_a_music21_stream(tmp_path):
    from music21 import note, stream

    part = stream.Part([note.Note("C4", quarterLength=1.0), note.Note("E4", quarterLength=2.0)])
    paths = mr.render(stream.Score([part]), tmp_path / "s", rate=8000)
    assert sorted(paths) == ["mid", "png", "wav"]  # no ABC for a stream
    with pytest.raises(BpttError, match="ABC output needs ABC text"):
        mr.render(stream.Score([part]), tmp_path / "s2", formats=("abc",))


def test_bad_scores_are_named():
    with pytest.raises(BpttError, match="K:"):
        mr.to_score("M:4/4\nCDEF|")
    with pytest.raises(BpttError, match="ABC text or a music21 stream"):
        mr.to_score(42)
    with pytest.raises(BpttError, match="voice must be one of"):
        mr.synthesize([], voice="organ")
