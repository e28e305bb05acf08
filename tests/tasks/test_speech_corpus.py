"""The corpus cache: a corpus of real espeak-ng clips is written once as 16 kHz WAV files
with a transcripts.tsv, leaves no temporary folder, and is read back, not synthesised
again, on the second call."""

import shutil

import numpy as np
import pytest

from bptt.data.audio import SAMPLE_RATE, read_wav
from bptt.tasks.speech import speech_corpus as corpus
from bptt.tasks.speech import speech_synth as synth
from bptt.tasks.speech import speech_voices as sv

pytest.importorskip("scipy", reason="extra 'speech'")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)",
)


@needs_espeak
def test_corpus_writes_wavs_and_transcripts_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    voices = sv.voices("train")
    specs = [synth.draw_spec(w, voices[i * 37], rng) for i, w in enumerate(["one", "two", "oh"])]
    clips, folder, cached = corpus.make_corpus(specs, tmp_path)
    assert not cached and folder.parent == tmp_path and len(clips) == 3
    for clip, spec in zip(clips, specs, strict=True):
        samples, rate = read_wav(clip.path)
        assert rate == SAMPLE_RATE and 0.2 < len(samples) / rate < 1.5
        assert clip.spec == spec
    assert (folder / "transcripts.tsv").read_text().splitlines()[1].split("\t")[1] == "one"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary folder left

    def no_synthesis(*args, **kwargs):
        raise AssertionError("a cached corpus was synthesised again")

    monkeypatch.setattr(corpus, "render", no_synthesis)
    again, folder2, cached2 = corpus.make_corpus(specs, tmp_path)
    assert cached2 and folder2 == folder and [c.spec for c in again] == specs
    np.testing.assert_array_equal(again[1].audio(), clips[1].audio())


def test_an_engines_revision_moves_only_its_own_corpora(monkeypatch):
    """A change in how bptt drives one engine (ENGINE_REVISIONS) makes its corpora anew and
    keeps every other engine's."""
    monkeypatch.setattr(corpus, "engine_version", lambda engine: f"{engine} 1.0")
    rng = np.random.default_rng(0)
    festival = [synth.draw_spec("one", sv.Voice("festival", "", "kal_diphone"), rng)]
    flite = [synth.draw_spec("one", sv.Voice("flite", "", "slt"), rng)]
    before = {
        e: corpus.corpus_key(specs) for e, specs in (("festival", festival), ("flite", flite))
    }
    revised = {**synth.ENGINE_REVISIONS, "festival": synth.ENGINE_REVISIONS["festival"] + 1}
    monkeypatch.setattr(corpus, "ENGINE_REVISIONS", revised)
    assert corpus.corpus_key(festival) != before["festival"]
    assert corpus.corpus_key(flite) == before["flite"]
