"""Trigger-word detection: clips place words without overlap, labels mark exactly the
frames after each trigger, the detection metric on hand-made sequences, the live
(causal) pipeline, and bptt train/eval/predict trigger end to end on a toy word bank
(real espeak-ng words when the engine is installed)."""

import itertools
import shutil

import numpy as np
import pytest

from bptt.cli import main
from bptt.data.audio import SAMPLE_RATE, write_wav
from bptt.errors import BpttError
from bptt.tasks.speech import speech_voices as sv
from bptt.tasks.speech import trigger as tr
from bptt.tasks.speech import trigger_clips as clips

pytest.importorskip("python_speech_features", reason="extra 'speech'")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)",
)


def toy_bank(seed: int = 0) -> clips.Bank:
    """Triggers are 1 kHz tones, other words 300 Hz tones, 0.3..0.7 s long."""
    rng = np.random.default_rng(seed)

    def tone(hz):
        t = np.arange(int(rng.uniform(0.3, 0.7) * SAMPLE_RATE)) / SAMPLE_RATE  # (N_w,)
        return np.sin(2 * np.pi * hz * t).astype(np.float32)

    return clips.Bank([tone(1000) for _ in range(5)], [(f"w{i}", tone(300)) for i in range(8)])


def test_words_never_overlap_and_each_lies_exactly_where_its_bounds_say(monkeypatch):
    monkeypatch.setattr(clips, "BABBLE_ODDS", 0.0)
    monkeypatch.setattr(clips, "SNR_RANGE", (300.0, 300.0))  # background ~1e-17: words alone
    bank, gap, n = toy_bank(), int(clips.MIN_GAP * SAMPLE_RATE), 4 * SAMPLE_RATE
    seen = 0
    for seed in range(30):
        x, words = clips.compose(bank, np.random.default_rng(seed), seconds=4.0)
        assert x.shape == (n,) and x.dtype == np.float32
        starts = [a for _, a, _ in words]
        assert starts == sorted(starts)
        for (_, _, b), (_, a2, _) in itertools.pairwise(words):
            assert a2 >= b + gap, (seed, words)  # MIN_GAP of silence between words
        covered = np.zeros(n, dtype=bool)
        for word, a, b in words:
            assert 0 <= a < b <= n
            if word == clips.TRIGGER:  # its label window stays inside the clip
                assert b + clips.LABEL_FRAMES * clips.HOP <= n
            pool = bank.triggers if word == clips.TRIGGER else [w for _, w in bank.others]
            piece = x[a:b].astype(np.float64)
            fits = [abs(np.corrcoef(piece, w)[0, 1]) for w in pool if len(w) == b - a]
            assert fits and max(fits) > 0.999, (seed, word)  # that very word, scaled
            covered[a:b] = True
            seen += word == clips.TRIGGER
        assert np.abs(x[~covered]).max() < 1e-6  # nothing else was said
    assert seen >= 20  # triggers were placed (1.5 a clip on average)


def test_labels_mark_exactly_the_50_frames_after_each_trigger():
    end = 2 * SAMPLE_RATE + 5  # 2.0003 s: the first frame starting after it is 201
    y = clips.frame_labels([end, 980 * clips.HOP], 999)
    assert y.dtype == np.int64 and y.shape == (999,)
    np.testing.assert_array_equal(np.flatnonzero(y), [*range(201, 251), *range(980, 999)])
    steps = tr.step_labels(y)  # each step of 4 frames takes its last frame's label
    assert steps.shape == (249,)
    np.testing.assert_array_equal(np.flatnonzero(steps), [*range(50, 62), *range(245, 249)])
    assert tr.step_time(50) == pytest.approx(2.03)  # frame 203 starts 30 ms after the end
    frames = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)  # (T, D)
    np.testing.assert_array_equal(tr.stack_frames(frames, 4), [np.arange(12), np.arange(12, 24)])


def test_labels_of_composed_clips_follow_their_triggers():
    counts = []
    for seed in range(6):
        x, words = clips.compose(toy_bank(), np.random.default_rng(seed), seconds=5.0)
        ends = [b for w, _, b in words if w == clips.TRIGGER]
        y = clips.frame_labels(ends, len(tr.raw_features(x, "logmel")))  # (T,)
        assert y.sum() == clips.LABEL_FRAMES * len(ends)  # windows never overlap
        for e in ends:
            first = -(-e // clips.HOP)
            assert y[first - 1] == 0 and y[first : first + 50].all()
        counts.append(len(ends))
    assert max(counts) >= 2


def test_detections_are_matched_once_within_the_window():
    S = 100  # steps of 40 ms; step s is at (4s + 3) * 10 ms
    p = np.zeros(S)
    p[25:30] = 0.9  # 1.03 s: 0.03 s after the trigger ending at 1.0 s -> TP
    p[31:33] = 0.8  # 1.27 s: the same trigger again -> false alarm
    p[60:62] = 0.7  # 2.43 s: before 3.0 - 0.1 -> false alarm; the trigger at 3.0 s is missed
    p[70] = 0.4  # below the threshold
    assert tr.detections(p, 0.5) == pytest.approx([1.03, 1.27, 2.43])
    assert tr.match(tr.detections(p, 0.5), [1.0, 3.0]) == (1, 2, 1)
    assert tr.match(tr.detections(p, 0.35), [1.0, 3.0]) == (1, 3, 1)
    assert tr.match([0.95, 1.2], [1.0]) == (1, 1, 0)  # one trigger is counted once
    assert tr.match([0.9], [1.0]) == (1, 0, 0)  # 0.1 s early: inside
    assert tr.match([0.89], [1.0]) == (0, 1, 1)  # earlier: outside
    assert tr.match([1.5], [1.0]) == (1, 0, 0) and tr.match([1.51], [1.0]) == (0, 1, 1)
    assert tr.match([1.2, 1.3], [1.0, 1.1]) == (2, 0, 0)  # each to its own trigger
    assert tr.match([], [1.0]) == (0, 0, 1) and tr.match([2.0], []) == (0, 1, 0)

    y = np.zeros(S, dtype=np.int64)
    y[23:35] = 1  # 12 labelled steps after 1.0 s
    y[72:84] = 1  # 12 after 3.0 s
    split = tr.TriggerSplit([np.zeros((S, 1))], [y], [[1.0, 3.0]], [5])
    s = tr.scores([p], split, 0.5)
    assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((1 / 3, 1 / 2, 2 / 5))
    assert s["false_alarms_per_min"] == pytest.approx(2 / (S * 0.04 / 60))
    # predicted on: 25..29, 31, 32, 60, 61 (9 steps), of which 25..29, 31, 32 are labelled
    assert (s["frame_precision"], s["frame_recall"]) == pytest.approx((7 / 9, 7 / 24))
    assert s["frame_f1"] == pytest.approx(2 * 7 / (9 + 24))


def test_a_hold_drops_short_runs_and_fires_at_the_holds_last_step():
    p = np.zeros(100)
    p[25:30] = 0.9  # 5 steps from 25: kept by holds 1..5, fires at step 25 + hold - 1
    p[40] = 0.8  # a 1-step blip: only hold 1 keeps it
    p[98:] = 0.7  # 2 steps at the clip's end
    assert tr.detections(p, 0.5) == pytest.approx([1.03, 1.63, 3.95])
    assert tr.detections(p, 0.5, hold=2) == pytest.approx([1.07, 3.99])
    assert tr.detections(p, 0.5, hold=3) == pytest.approx([1.11])
    assert tr.detections(p, 0.5, hold=6) == []
    assert tr.detections(np.zeros(0), 0.5, hold=2) == []


def test_the_budget_choice_trades_validation_f1_for_fewer_false_alarms():
    S = 100
    y = np.zeros(S, dtype=np.int64)
    y[23:35] = 1
    p = np.zeros(S)
    p[25:30] = 0.9  # the trigger ending at 1.0 s: a 5-step run
    p[60] = 0.95  # a one-step false alarm on the mixed clip
    val = tr.TriggerSplit([np.zeros((S, 1))], [y], [[1.0]], [3])
    neg = np.zeros(S)
    neg[10] = neg[50] = 0.99  # blips on negatives-only audio: 2 in 4 s = 30 a minute
    t, hold, f1, fa = tr.budget_choice([p], val, [neg], S * 0.04 / 60)
    assert hold == 2 and f1 == 1.0 and fa == 0.0  # the blips go, the trigger stays
    assert t == 0.1  # the best F1 ties over every threshold below 0.9: the first
    neg[10:14] = 0.99  # a 4-step false alarm no hold drops: none within the budget
    t, hold, f1, fa = tr.budget_choice([p], val, [neg], S * 0.04 / 60)
    assert fa == pytest.approx(15.0) and hold == 2  # the fewest false alarms


def test_an_augmented_bank_keeps_its_words_one_by_one_and_follows_its_seed():
    bank = toy_bank()
    a = clips.augment_bank(bank, ("speed", "gain"), seed=3)
    b = clips.augment_bank(bank, ("speed", "gain"), seed=3)
    c = clips.augment_bank(bank, ("speed", "gain"), seed=4)
    assert len(a.triggers) == len(bank.triggers) and [w for w, _ in a.others] == [
        w for w, _ in bank.others
    ]
    assert all(np.array_equal(x, y) for x, y in zip(a.triggers, b.triggers, strict=True))
    assert not all(len(x) == len(y) and np.allclose(x, y)
                   for x, y in zip(a.triggers, c.triggers, strict=True))  # fmt: skip
    assert all(len(x) != len(y) for x, y in zip(a.triggers, bank.triggers, strict=True))


def test_pcen_features_of_a_prefix_are_the_prefix_of_the_features():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3 * SAMPLE_RATE).astype(np.float32)  # (N,)
    whole = tr.raw_features(x, "logmel", norm="pcen")  # (T, 40)
    head = tr.raw_features(x[:SAMPLE_RATE], "logmel", norm="pcen")  # (T', 40)
    n = len(head) - 1  # the prefix's last frame is zero-padded
    assert np.allclose(head[:n], whole[:n], atol=1e-5)  # causal: the detector stays live
    assert not np.allclose(whole, tr.raw_features(x, "logmel"))
    with pytest.raises(BpttError, match="--norm pcen reads log-mel"):
        tr.raw_features(x, "mfcc", norm="pcen")


def test_the_tagger_must_read_one_way(tmp_path, capsys):
    flags = ["--quiet", "--out", str(tmp_path), "--bidirectional", "yes"]
    assert main(["train", "trigger", *flags]) == 2
    assert "drop --bidirectional" in capsys.readouterr().err


@pytest.fixture
def toy_data(monkeypatch, tmp_path):
    """Small clip sets of 3 s composed from :func:`toy_bank`, cached under tmp_path."""
    calls = []

    def bank_for(split, engines, folder=None, progress=False, test_engine="", extra_share=1.0):
        def load():
            calls.append(split)
            return toy_bank(sv.SPLITS.index(split))

        return f"toy-{split}", load, 1

    monkeypatch.setattr(clips, "bank_for", bank_for)
    monkeypatch.setattr(clips, "CLIP_SECONDS", 3.0)
    monkeypatch.setattr(tr, "CLIPS", {"train": 12, "validation": 4, "test": 4})
    monkeypatch.setattr(tr, "NEGATIVE_CLIPS", 3)
    return calls


def test_end_to_end_train_eval_predict_and_the_model_runs_live(toy_data, tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    flags = ["--quiet", "--hidden-size", "8", "--batch-size", "4", "--steps", "4"]
    flags += ["--max-examples", "12", "--eval-every", "2", "--data", str(cache), "--out", str(out)]
    assert main(["train", "trigger", *flags]) == 0
    printed = capsys.readouterr().out
    # test and validation: and their negatives-only clips
    assert sorted(toy_data) == ["test", "test", "train", "validation", "validation"]
    assert "train 18, validation 4, test 4" in printed and "160 features per step" in printed
    assert "tagger, GRU 2x8" in printed  # one direction
    report = printed[printed.index("test (4 clips of 3 s") :].strip()
    assert "threshold 0.50: detection precision" in report and "frame precision" in report
    assert "negatives only (3 clips, 0 min, no trigger" in report and "per hour" in report
    assert (out / "best.safetensors").is_file()
    assert len(list((cache / "trigger").glob("*.npz"))) == 6  # and the negatives-only sets

    toy_data.clear()
    assert main(["eval", str(out / "best.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == report
    assert toy_data == []  # the clips came from the cache: no bank was loaded

    x, _ = clips.compose(toy_bank(), np.random.default_rng(0), seconds=3.0)
    _, p = tr.detect(out / "best.safetensors", x)
    _, p_head = tr.detect(out / "best.safetensors", x[: 2 * SAMPLE_RATE])
    assert p.shape == (74,) and len(p_head) == 49
    np.testing.assert_allclose(p_head, p[:49], rtol=1e-5, atol=1e-6)  # the future is not read
    wav = write_wav(tmp_path / "clip.wav", x)
    assert main(["predict", str(out / "best.safetensors"), str(wav)]) == 0
    said = capsys.readouterr().out.strip()
    assert said.startswith("no 'activate' heard") or said.endswith("s")


@needs_espeak
def test_a_real_word_bank_holds_only_its_splits_speakers(monkeypatch, tmp_path):
    monkeypatch.setattr(clips, "BANK_VOICES", {"train": 1, "validation": 1, "test": 1})
    monkeypatch.setattr(clips, "TAKES", {**clips.TAKES, "test": (1, 2)})
    specs = clips.bank_specs("test")
    assert len(specs) == sum(clips.TAKES["test"])
    assert {sv.parse_voice(s.voice).split for s in specs} == {"test"}
    assert [s.text for s in specs].count(clips.TRIGGER) == clips.TAKES["test"][0]
    bank = clips.load_bank("test", folder=tmp_path)
    assert len(bank.triggers) == clips.TAKES["test"][0]
    for audio in [*bank.triggers, *(a for _, a in bank.others)]:
        assert 0.2 < len(audio) / SAMPLE_RATE < 1.5 and np.abs(audio).max() > 0.05
    with pytest.raises(BpttError, match="trigger reads --dataset"):
        from bptt.config import Config

        tr.prepare_data(Config(task="trigger", dataset="imdb"))


def test_hard_negatives_add_clips_without_a_trigger_to_training_only(toy_data, tmp_path):
    from bptt.config import Config

    def clip_sets(**kw):
        return tr.raw_split(
            "train", Config(task="trigger", max_examples=12, data=str(tmp_path), **kw)
        )

    (more, more_words), _ = clip_sets(hard_negatives=0.5)  # nothing cached yet
    assert toy_data == ["train"]  # the bank is read once for both clip sets
    (feats, words), _ = clip_sets()
    assert len(feats) == len(words) == 12 and len(more) == len(more_words) == 12 + 6
    assert all(np.array_equal(a, b) for a, b in zip(feats, more[:12], strict=False))
    assert all(clips.TRIGGER not in [w for w, _, _ in ws] for ws in more_words[12:])
    assert all(ws for ws in more_words[12:])  # words said (as many as fit 3 s)
    (most, _), _ = clip_sets(hard_negatives=2.0)
    assert len(most) == 12 + 24
    hard = Config(task="trigger", max_examples=12, data=str(tmp_path), hard_negatives=2.0)
    (val, _), _ = tr.raw_split("validation", hard)
    assert len(val) == tr.CLIPS["validation"]  # validation and test stay as they are
    with pytest.raises(BpttError, match="hard_negatives must be in"):
        Config(task="trigger", hard_negatives=-0.5)


def test_negatives_only_clips_hold_no_trigger_and_half_sound_alikes():
    bank = toy_bank()
    bank.others += [("activity", bank.others[0][1]), ("motivate", bank.others[0][1])]
    for seed in range(5):
        _, words = clips.compose(bank, np.random.default_rng(seed), 10.0, negatives_only=True)
        said = [w for w, _, _ in words]
        assert clips.TRIGGER not in said
        assert len(said) == clips.MAX_DISTRACTORS
        assert sum(w in clips.SIMILAR for w in said) >= clips.MAX_DISTRACTORS // 2
