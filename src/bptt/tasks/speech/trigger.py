"""Trigger-word detection, many-to-many with Tx = Ty: mark the half second after "activate".

As in the deeplearning.ai assignment: 10-second clips of background noise with
the trigger word and other words said at random, non-overlapping times; a
UNIDIRECTIONAL recurrent tagger reads the clip frame by frame and says, at
every step, whether the trigger word has just ended, so it can run live.

Data (:mod:`bptt.tasks.speech.trigger_clips`): a word bank per split, spoken only by
that split's voices, so test clips hold only speakers never heard in training;
clips composed from it over noise, the words at random free places; and frame
labels, 1 for the 50 frames (0.5 s) after each trigger ends and 0 elsewhere (y_t).

Features: 40 log-mel filterbanks (or 39 MFCCs) per 10 ms frame
(:mod:`bptt.data.audio`), normalised with the TRAINING clips' mean and spread
per coefficient, not per utterance: a live detector cannot see a clip's future
to normalise it (``--norm pcen``: per-channel energy normalisation of the mel energies
first, which is causal too: a channel's level and an engine's spectral tilt weigh less).
Frames are then stacked STACK = 4 at a time,

    x_s = [f_{4s}, f_{4s+1}, f_{4s+2}, f_{4s+3}]      (T/4, 4D): one step per 40 ms
    y_s = y_{4s+3}                                     the label of its last frame

so a 10-second clip is 249 recurrent steps instead of 999 (4 times fewer
sequential steps to train through, the same information).

Model: :class:`bptt.models.tagger.SequenceTagger` with one direction and C = 2
(p_s = ŷ_s[1], the probability that the trigger just ended).

Metric, on held-out clips of unseen speakers. A detection is a maximal run of
steps with p_s >= threshold; its time is the start of the last frame of its
first step, (4s + 3) · 10 ms. It is correct if that time lies in
[e - EARLY, e + LATE] (0.1 s before to 0.5 s after a trigger's end e) of a
trigger not yet matched; each trigger is matched at most once, so

    precision = TP / detections          recall = TP / triggers

and a second detection of one trigger is a false alarm. Beside these: the
frame (step) precision, recall and F1 of p_s >= threshold against y_s. A detection
may also have to *hold*, stay above the threshold for ``hold`` steps, firing at the
last of them (:func:`detections`); the report picks a threshold and hold on
validation within a false-alarm budget (:func:`budget_choice`).

Shapes: N samples, T frames, D features per frame, S steps (T // STACK), C = 2.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from bptt.data.audio import (
    HOP_SECONDS,
    SAMPLE_RATE,
    feature_size,
    log_mel,
    mfcc,
    pcen,
    stack_frames,
)
from bptt.data.augment import parse_parts
from bptt.errors import BpttError
from bptt.tasks._examples import (
    Split,
    TaskData,
    example_task,
    load_model,
    make_trainer,
    mean_loss,
    predict,
    predict_one,
)
from bptt.tasks.speech import speech_corpus as corpus
from bptt.tasks.speech import speech_voices as sv
from bptt.tasks.speech import trigger_clips as clips

LABELS = ["background", "after-trigger"]

STACK = 4  # feature frames per recurrent step
EARLY, LATE = 0.1, 0.5  # a detection may start this long before / after a trigger's end (s)
CLIPS = {"train": 2000, "validation": 200, "test": 300}  # train: --max-examples overrides


# ---------------------------------------------------------------- features and steps
def raw_features(samples, kind: str, warp: float = 1.0, norm: str = "cmvn") -> np.ndarray:
    """Features (T, D) float32 before the training clips' normalisation: log-mel (D = 40;
    ``warp``: its VTLP factor; ``norm`` "pcen": per-channel energy normalisation of the
    mel energies instead of their log, causal like the detector) or MFCCs with deltas (39)."""
    if kind not in ("logmel", "mfcc") or norm not in ("cmvn", "pcen"):
        raise BpttError(
            f"features must be logmel or mfcc, norm cmvn or pcen; got {kind!r}, {norm!r}"
        )
    if norm == "pcen" and kind != "logmel":
        raise BpttError("--norm pcen reads log-mel features: --features logmel")
    f = log_mel(samples, warp=warp) if kind == "logmel" else mfcc(samples)  # (T, D)
    if norm == "pcen":
        f = pcen(np.exp(f))  # (T, D)
    return f.astype(np.float32)


def step_labels(labels: np.ndarray, k: int = STACK) -> np.ndarray:
    """Frame labels (T,) -> step labels (T // k,): the label of each step's last frame."""
    s = len(labels) // k
    return labels[k - 1 : s * k : k].copy()  # (S,)


def step_time(s, k: int = STACK):
    """Seconds at which step ``s``'s last frame starts: (k·s + k - 1) · hop."""
    return (np.asarray(s) * k + k - 1) * HOP_SECONDS


# ---------------------------------------------------------------- the metric
def detections(
    probs: np.ndarray, threshold: float = 0.5, k: int = STACK, hold: int = 1
) -> list[float]:
    """Times (s) of the maximal runs of steps with probs >= threshold that last at least
    ``hold`` steps (probs (S,)): each fires at its ``hold``-th step, so live, a run shorter
    than ``hold`` steps (a blip) is no detection; ``hold`` 1: every run, at its start."""
    on = np.concatenate([[False], np.asarray(probs) >= threshold, [False]])  # (S + 2,)
    edges = np.flatnonzero(on[1:] != on[:-1]).reshape(-1, 2)  # (R, 2): [start, end) of runs
    starts = edges[edges[:, 1] - edges[:, 0] >= hold, 0]  # (R',)
    return [float(t) for t in step_time(starts + hold - 1, k)]


def match(detected, trigger_ends, early: float = EARLY, late: float = LATE):
    """(TP, FP, FN) of detection times against trigger end times (both seconds): a
    detection at d is a TP if e - early <= d <= e + late for a trigger e not yet matched
    (the earliest such), else a false alarm; an unmatched trigger is a miss."""
    free = sorted(float(e) for e in trigger_ends)
    tp = 0
    for d in sorted(detected):
        hit = next((e for e in free if e - early <= d <= e + late), None)
        if hit is not None:
            free.remove(hit)
            tp += 1
    return tp, len(detected) - tp, len(free)


def scores(probs, split: TriggerSplit, threshold: float = 0.5, hold: int = 1) -> dict:
    """Detection (with :func:`detections`' ``hold``) and frame (step) precision, recall,
    F1 over the clips of ``split``."""
    tp = fp = fn = ftp = n_pred = n_true = 0
    for p, y, ends in zip(probs, split.targets, split.ends, strict=True):
        a, b, c = match(detections(p, threshold, STACK, hold), ends)
        tp, fp, fn = tp + a, fp + b, fn + c
        on = p >= threshold  # (S,)
        ftp += int((on & (y == 1)).sum())
        n_pred, n_true = n_pred + int(on.sum()), n_true + int(y.sum())
    minutes = sum(len(y) for y in split.targets) * STACK * HOP_SECONDS / 60
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "false_alarms_per_min": fp / max(minutes, 1e-9),
        "frame_precision": _ratio(ftp, n_pred),
        "frame_recall": _ratio(ftp, n_true),
        "frame_f1": _ratio(2 * ftp, n_pred + n_true),
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


# ---------------------------------------------------------------- clip sets, cached
@dataclass
class TriggerSplit(Split):
    """A :class:`Split` of clips with each clip's trigger end times (s) and word count."""

    ends: list = field(default_factory=list)
    num_words: list = field(default_factory=list)


def clip_set(
    split: str,
    count: int,
    bank_key: str,
    bank,
    kind: str,
    folder=None,
    negatives_only=False,
    parts: tuple[str, ...] = (),
    seed: int = 0,
    norm: str = "cmvn",
):
    """``count`` composed clips of ``split`` as raw features, cached beside the corpora.

    ``bank`` is a :class:`~bptt.tasks.speech.trigger_clips.Bank` or a function returning one
    (called only when the clips are not cached). Clip i is
    :func:`~bptt.tasks.speech.trigger_clips.compose` with the Generator seeded by (DATA_SEED,
    split, i), so a clip does not depend on how many are made. ``parts``: augmentations
    (:mod:`bptt.data.augment`), drawn from ``seed``: every word of the bank goes through
    the audio parts (:func:`~bptt.tasks.speech.trigger_clips.augment_bank`), and each clip's
    log-mel features through a VTLP warp ("vtlp"); the clips are other draws (seeded by
    (DATA_SEED, split, i, seed, 1)) than the plain ones.

    Returns:
        (features [(T_i, D)], words [[(word, start, end)]]).
    """
    head = dict(version=clips.COMPOSE_VERSION, bank=bank_key, split=split, count=count)
    head.update(seconds=clips.CLIP_SECONDS, features=kind, label_frames=clips.LABEL_FRAMES)
    if negatives_only:
        head["negatives_only"] = True
    if parts:
        head["augment"], head["seed"] = list(parts), seed
    if norm != "cmvn":
        head["norm"] = norm
    key = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    path = corpus.cache_root(folder) / "trigger" / f"{split}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            lengths, flat = saved["lengths"], saved["features"]  # (N,), (ΣT_i, D)
            words = json.loads(str(saved["words"]))
        return np.split(flat, np.cumsum(lengths)[:-1]), [[tuple(w) for w in ws] for ws in words]
    bank = bank() if callable(bank) else bank
    if parts:
        from bptt.data.augment import warp_factor

        bank = clips.augment_bank(bank, parts, seed)
    feats, words = [], []
    for i in range(count):
        rng = np.random.default_rng([clips.DATA_SEED, sv.SPLITS.index(split), i])
        if negatives_only:
            rng = np.random.default_rng([clips.DATA_SEED, sv.SPLITS.index(split), i, 99])
        if parts:
            rng = np.random.default_rng([clips.DATA_SEED, sv.SPLITS.index(split), i, seed, 1])
        samples, placed = clips.compose(bank, rng, clips.CLIP_SECONDS, negatives_only)  # (N,)
        warp = warp_factor(parts, rng) if parts and kind == "logmel" else 1.0
        feats.append(raw_features(samples, kind, warp, norm))  # (T_i, D)
        words.append(placed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        lengths, said = np.array([len(f) for f in feats]), np.array(json.dumps(words))
        np.savez(tmp, lengths=lengths, features=np.concatenate(feats), words=said)
        os.replace(tmp, path)  # the cache file appears whole or not at all
    except OSError:
        pass  # a read-only cache still gives the clips
    return feats, words


def _split(feats, words, mean, std, dtype, k: int = STACK) -> TriggerSplit:
    inputs, targets, ends, counts = [], [], [], []
    for f, ws in zip(feats, words, strict=True):
        trig = [e for w, _, e in ws if w == clips.TRIGGER]
        inputs.append(stack_frames(((f - mean) / std).astype(dtype), k))  # (S, k·D)
        targets.append(step_labels(clips.frame_labels(trig, len(f)), k))  # (S,)
        ends.append([e / SAMPLE_RATE for e in trig])
        counts.append(len(ws))
    return TriggerSplit(inputs, targets, ends, counts)


NEGATIVE_CLIPS = 120  # negatives-only test clips (20 minutes): false alarms per hour


def raw_split(name: str, config, progress: bool = False, negatives_only: bool = False):
    """The clips of split ``name`` as :func:`clip_set` gives them, and its speaker count;
    with ``config.augment``, the training split holds as many augmented clips again, and
    with ``config.hard_negatives`` h, h times as many negatives-only clips too."""
    engines = sv.dataset_engines("trigger", config.dataset)
    if config.test_engine or config.extra_engines:  # the extra engines train, never test
        engines = sv.held_out_engines(config.test_engine, config.extra_engines)
    if config.truncate:
        raise BpttError(
            f"trigger reads {clips.CLIP_SECONDS:g}-second clips whole; "
            f"got --truncate {config.truncate}"
        )
    count = (config.max_examples or CLIPS["train"]) if name == "train" else CLIPS[name]
    if negatives_only:
        count = NEGATIVE_CLIPS
    held, share = config.test_engine, config.extra_share
    key, bank, speakers = clips.bank_for(name, engines, config.data, progress, held, share)
    bank = functools.cache(bank) if callable(bank) else bank  # read once for every clip set
    of_split = (name, count, key, bank, config.features, config.data)
    feats = clip_set(*of_split, negatives_only, norm=config.norm)
    parts = parse_parts(config.augment) if name == "train" and not negatives_only else ()
    parts = tuple(p for p in parts if p != "specaugment")  # a time mask could hide a trigger
    if parts:
        more = clip_set(*of_split, False, parts, config.seed, config.norm)
        feats = (feats[0] + more[0], feats[1] + more[1])
    if name == "train" and not negatives_only and config.hard_negatives:
        # Hard negatives: sound-alikes with no trigger to anchor them (from the plain bank).
        of_hard = (name, round(count * config.hard_negatives), *of_split[2:])
        more = clip_set(*of_hard, True, norm=config.norm)
        feats = (feats[0] + more[0], feats[1] + more[1])
    return feats, speakers


def prepare_data(config, progress: bool = False) -> TaskData:
    """Train/validation/test clips of disjoint speakers, normalised with the training
    clips' statistics, stacked STACK frames a step, with step labels."""
    raw, speakers = {}, {}
    for name in sv.SPLITS:
        raw[name], speakers[name] = raw_split(name, config, progress)
    engines = sv.DATASETS[config.dataset]
    if config.test_engine:
        held = config.test_engine
        every = sv.held_out_engines(held, config.extra_engines)
        engines = (*sv.training_engine_names(held, every), f"{held} (held out, test)")
    stacked = np.concatenate(raw["train"][0])  # (ΣT_i, D)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-5  # (D,)
    del stacked
    dtype = np.dtype(config.dtype)
    splits = {name: _split(*raw.pop(name), mean, std, dtype) for name in sv.SPLITS}
    extra = {"features": config.features, "norm": config.norm, "stack": STACK}
    extra |= {"mean": mean.tolist(), "std": std.tolist(), "trigger": clips.TRIGGER}
    words = f"{clips.TRIGGER!r} and {len(clips.DISTRACTORS)} other words over noise"
    what = f"{clips.CLIP_SECONDS:g}-second clips: {words}"
    steps = f"{config.features} x {STACK} frames a step"
    source = sv.corpus_line(what, " and ".join(engines), speakers, steps)
    size = STACK * feature_size(config.features)
    return TaskData(*splits.values(), LABELS, "tags", input_size=size, source=source, extra=extra)


# ---------------------------------------------------------------- training and reports
def metrics(model, split: TriggerSplit, threshold: float = 0.5) -> dict:
    probs = predict(model, split)  # (S_i, 2) each
    p1 = [p[:, 1] for p in probs]
    return {"loss": mean_loss(probs, split), **scores(p1, split, threshold)}


def build_trainer(config, out_dir, progress_bar: bool = True):
    if config.bidirectional:
        raise BpttError("trigger runs live, so its model reads one way: drop --bidirectional")
    if config.head == "class":
        raise BpttError("trigger tags every step: --head tags (or auto)")
    data = prepare_data(config, progress=progress_bar)
    return make_trainer(config, out_dir, progress_bar, data, metrics)


THRESHOLDS = np.round(np.arange(0.1, 0.95, 0.05), 2)
HOLDS = (1, 2, 3, 4)  # steps a detection must last (40 ms each): the false-alarm budget's choice
FA_BUDGET = 2.0  # false alarms a minute on negatives-only validation clips (issue 23's bar)


def budget_choice(p_val, val, p_neg, minutes: float) -> tuple[float, int, float, float]:
    """(threshold, hold, validation F1, false alarms/min) with the best validation F1 among
    those whose false alarms on the negatives-only validation clips (``p_neg``, ``minutes``
    long) stay within FA_BUDGET a minute; none within: the fewest false alarms."""
    found = []
    for h in HOLDS:
        for t in THRESHOLDS:
            fa = sum(len(detections(p, t, STACK, h)) for p in p_neg) / minutes
            found.append((float(t), h, scores(p_val, val, t, h)["f1"], fa))
    return max(found, key=lambda c: (c[3] <= FA_BUDGET, c[2] if c[3] <= FA_BUDGET else -c[3]))


def held_out_report(path) -> str:
    """Detection and frame scores on the test clips (unseen speakers) at threshold 0.5, at
    the threshold with the best detection F1 on the validation clips, and at the threshold
    and hold that :func:`budget_choice` picks on validation (within FA_BUDGET)."""
    model, config, meta, _ = load_model(path, "trigger")
    extra, dtype = meta["extra"], np.dtype(config.dtype)
    mean, std = np.array(extra["mean"]), np.array(extra["std"])  # (D,): the training clips'
    val, test, val_neg, neg = (
        _split(*raw_split(name, config, negatives_only=n)[0], mean, std, dtype, extra["stack"])
        for n in (False, True)
        for name in ("validation", "test")
    )
    p_val = [p[:, 1] for p in predict(model, val)]
    best = max(THRESHOLDS, key=lambda t: scores(p_val, val, t)["f1"])
    minutes = len(val_neg) * clips.CLIP_SECONDS / 60
    t_b, hold, vf, vfa = budget_choice(
        p_val, val, [p[:, 1] for p in predict(model, val_neg)], minutes
    )
    points = ((0.5, 1, ""), (float(best), 1, " (best detection F1 on validation)"))
    why = f"best validation F1 within {FA_BUDGET:g} FA/min: {vf:.4f}, {vfa:.2f}/min"
    points += ((t_b, hold, f", hold {hold} ({why})"),)
    probs = predict(model, test)
    p1 = [p[:, 1] for p in probs]
    n_trig, words = sum(len(e) for e in test.ends), sum(test.num_words)
    who = f"held-out engine {config.test_engine}" if config.test_engine else "unseen speakers"
    lines = [
        f"test ({len(test)} clips of {clips.CLIP_SECONDS:g} s, {who}, {n_trig} "
        f"triggers among {words} words): loss {mean_loss(probs, test):.4f}"
    ]
    for t, h, why in points:
        s = scores(p1, test, t, h)
        lines.append(
            f"  threshold {t:.2f}{why}: detection precision {s['precision']:.4f}, recall "
            f"{s['recall']:.4f}, F1 {s['f1']:.4f}, {s['false_alarms_per_min']:.2f} false "
            f"alarms/min | frame precision {s['frame_precision']:.4f}, recall "
            f"{s['frame_recall']:.4f}, F1 {s['frame_f1']:.4f}"
        )
    lines.append(f"  a detector firing at every word's end: precision {_ratio(n_trig, words):.4f}")
    p_neg = [p[:, 1] for p in predict(model, neg)]
    hours = len(neg) * clips.CLIP_SECONDS / 3600
    for t, h in dict.fromkeys((t, h) for t, h, _ in points):
        fa = sum(len(detections(p, t, extra["stack"], h)) for p in p_neg)
        lines.append(
            f"  negatives only ({len(neg)} clips, {hours * 60:.0f} min, no trigger, half "
            f"the words sound-alikes), threshold {t:.2f}, hold {h}: {fa} false alarms, "
            f"{fa / hours:.1f} per hour ({fa / hours / 60:.2f} per minute)"
        )
    return "\n".join(lines)


def detect(path, samples, rate: int = SAMPLE_RATE, threshold: float = 0.5):
    """Run the checkpoint at ``path`` over ``samples`` (N,) left to right: (detection
    times (s), step probabilities (S,))."""
    from bptt.data.audio import resample

    model, config, meta, _ = load_model(path, "trigger")
    extra = meta["extra"]
    f = raw_features(
        resample(samples, rate, SAMPLE_RATE), extra["features"], norm=extra.get("norm", "cmvn")
    )  # (T, D)
    f = (f - np.array(extra["mean"])) / np.array(extra["std"])  # (T, D)
    x = stack_frames(f.astype(np.dtype(config.dtype)), extra["stack"])  # (S, kD)
    if len(x) == 0:
        raise BpttError(f"the clip is too short: it needs at least {extra['stack']} frames")
    p = predict_one(model, x)[:, 1]  # (S,) P(after-trigger) at each step
    return detections(p, threshold, extra["stack"]), p


def predict_checkpoint(path, text: str) -> str:
    """The times at which the trigger word ends in a WAV file (any rate)."""
    samples, rate = corpus.read_wav_file(text, "trigger reads")
    found, p = detect(path, samples, rate)
    if not found:
        return f"no {clips.TRIGGER!r} heard (highest probability {p.max():.2f})"
    return " ".join(f"{t:.2f}s" for t in found)


PRESET = {
    "out": "runs/trigger",
    "cell": "gru",  # as in the assignment; 3 gates instead of 4
    "hidden_size": 64,  # one direction only: the detector runs live
    "num_layers": 2,  # a second layer halves the false alarms on unheard voices (docs)
    "bidirectional": False,  # must not read the future (build_trainer refuses True)
    "max_examples": 2000,  # 10-second training clips (5.6 hours), 249 steps each
    "hard_negatives": 0.5,  # and 1,000 clips of sound-alikes without a trigger
    "batch_size": 32,
    "lr": 5e-3,
    "steps": 1500,  # 24 epochs
    "eval_every": 250,  # each evaluation reads the 200 validation clips
}

TASK = example_task(
    sys.modules[__name__],
    "trigger",
    "dataset data test_engine extra_engines extra_share features max_examples truncate norm "
    "augment hard_negatives",
)
