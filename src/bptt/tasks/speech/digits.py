"""Isolated spoken digits, many-to-one: a clip of someone saying "seven" -> 7.

The clips are synthesised (:mod:`bptt.tasks.speech.speech_synth`): espeak-ng says
"zero".."nine" in many voices (an accent with a speaker variant), at a random
rate (130..220 words/min) and pitch (25..75), over white or pink noise at
10..30 dB SNR. The split is by speaker: training clips come from the training
speakers only, the validation clips (which pick the best checkpoint) from the
validation speakers, and the test clips from the test speakers, whom the model
never hears (19 espeak-ng variants, among them the female f1, f2, f3, under
each of the 8 accents). ``--dataset espeak+flite`` adds flite's voices (all of
them fall in the training split).

Each clip becomes normalised log-mel filterbanks (40 per 10 ms frame), the log-mel of
its LPC envelope (``--features lpcmel``, 40) or MFCCs with deltas (39),
:func:`bptt.data.audio.features`, read by the classifier of
:mod:`bptt.models.classifier`. Metric: accuracy, beside the majority class.

Held-out engine (``--test-engine festival``, or flite or espeak-ng): training and
validation clips come from the other two engines (an engine drawn uniformly, then one
of its voices: :func:`bptt.tasks.speech.speech_synth.engine_voices`), the HELD_OUT_TEST test
clips from every voice of the held-out engine, which the model never hears.

Augmentation (``--augment speed,reverb,...`` or ``all``; :mod:`bptt.data.augment`):
the training split holds each clip as synthesised and AUG_COPIES more copies through
the chosen augmentations, drawn from ``--seed``; validation and test clips are never
augmented. ``--norm pcen`` normalises the features by per-channel energy
normalisation instead of the mean and variance alone.

The corpora are cached (``--data``, default ~/.cache/bptt/speech), with their
features, so a second run reads instead of speaking.

Shapes: N samples, T frames, D features per frame, C = 10 classes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bptt.data.audio import feature_size, features
from bptt.errors import BpttError
from bptt.tasks._examples import (
    Split,
    TaskData,
    best_label,
    class_metrics,
    example_task,
    format_metrics,
    load_model,
    make_trainer,
    predict,
    predict_one,
)
from bptt.tasks.speech import speech_corpus as corpus
from bptt.tasks.speech import speech_synth as synth
from bptt.tasks.speech import speech_voices as sv

LABELS = list(synth.DIGIT_WORDS)  # class c is the digit c
DATA_SEED = 10  # the clips drawn (voices, rates, pitches, noise) do not follow --seed
VAL_CLIPS = 600  # validation: drawn from the validation speakers
TEST_CLIPS = None  # test: every test voice says every digit once (None), or this many clips
HELD_OUT_TEST = 400  # test clips of the held-out engine (its few voices, many rates and pitches)
AUG_COPIES = 1  # augmented copies of each training clip (beside the clip itself)


def clip_specs(
    split: str, count: int, engines: tuple[str, ...], test_engine: str = "", extra_share=1.0
) -> list[synth.ClipSpec]:
    """``count`` clips of ``split``'s voices: clip i says digit i mod 10, each voice in turn
    (shuffled), with a random rate, pitch and noise; the same on every run. With a
    ``test_engine``, the voices are the held-out-engine protocol's, drawn engine first."""
    if test_engine:
        pool = sv.engine_voices(split, test_engine, engines)
        rng = sv.draw_rng(DATA_SEED, split, engines, test_engine)
        return [
            synth.draw_spec(LABELS[i % len(LABELS)], sv.draw_voice(pool, rng, extra_share), rng)
            for i in range(count)
        ]
    voices = sv.split_voices(split, engines)
    rng = sv.draw_rng(DATA_SEED, split, engines)
    order = rng.permutation(len(voices))  # (V,)
    specs = []
    for i in range(count):
        voice = voices[order[(i // len(LABELS)) % len(voices)]]
        specs.append(synth.draw_spec(LABELS[i % len(LABELS)], voice, rng))
    return specs


def clip_features(
    clips: list[corpus.Clip], folder: Path, kind: str, norm: str = "cmvn"
) -> list[np.ndarray]:
    """Features (T_i, D) of every clip, computed once and kept beside the corpus."""
    path = folder / (f"features-{kind}.npz" if norm == "cmvn" else f"features-{kind}-{norm}.npz")
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            lengths, flat = saved["lengths"], saved["features"]  # (N,), (ΣT_i, D)
        if len(lengths) == len(clips):
            return np.split(flat, np.cumsum(lengths)[:-1])
    feats = [features(clip.audio(), kind, norm=norm) for clip in clips]  # (T_i, D) each
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, lengths=np.array([len(f) for f in feats]), features=np.concatenate(feats))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache still gives the features
    return feats


AUG_WORKERS = int(os.environ.get("BPTT_AUG_WORKERS", 0)) or os.cpu_count() or 1
_AUDIO: list[np.ndarray] = []  # the clips being augmented, shared with forked workers


def _augment_clip(job) -> np.ndarray:
    """Features (T, D) of copy c of clip i through ``parts`` (a worker's task)."""
    from bptt.data import augment

    c, i, seed, parts, kind, norm = job
    rng = np.random.default_rng([seed, c, i, 7])
    others = [_AUDIO[j] for j in rng.integers(len(_AUDIO), size=8)]
    y = augment.augment_audio(_AUDIO[i], parts, rng, others)  # (N',)
    warp = augment.warp_factor(parts, rng) if kind != "mfcc" else 1.0
    f = features(y, kind, norm=norm, warp=warp)  # (T, D)
    return augment.spec_augment(f, rng) if "specaugment" in parts else f


def augmented_features(clips: list[corpus.Clip], config, copies: int = AUG_COPIES) -> list:
    """``copies`` augmented feature sequences (T_i, D) of each clip, in clip order per
    copy, through ``config.augment``'s parts (:mod:`bptt.data.augment`), drawn from
    ``config.seed``; babble is made of other clips of the same list. Clip i's copy c
    draws from (seed, c, i), so AUG_WORKERS forked processes (environment variable
    BPTT_AUG_WORKERS; default: the CPU count) give the same features as one."""
    import multiprocessing

    from bptt.data import augment

    parts = augment.parse_parts(config.augment)
    _AUDIO[:] = [clip.audio() for clip in clips]  # (N_i,) each
    jobs = [
        (c, i, config.seed, parts, config.features, config.norm)
        for c in range(copies)
        for i in range(len(clips))
    ]
    try:
        if AUG_WORKERS > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(AUG_WORKERS) as pool:
                return pool.map(_augment_clip, jobs, chunksize=64)
        return [_augment_clip(job) for job in jobs]
    finally:
        _AUDIO.clear()


def split_names(config) -> str:
    """Which voices the splits hold, for the summary line."""
    if config.test_engine:
        engines = sv.held_out_engines(config.test_engine, config.extra_engines)
        others = sv.training_engine_names(config.test_engine, engines)
        return f"trained on {' and '.join(others)}, tested on {config.test_engine} (held out)"
    return ""


def prepare_data(config, vocab=None, progress: bool = False) -> TaskData:
    """Train/validation/test clips of disjoint speakers, as normalised feature sequences."""
    engines = sv.dataset_engines("digits", config.dataset)
    held_out = config.test_engine
    if held_out:
        n_test = HELD_OUT_TEST
        engines = sv.held_out_engines(held_out, config.extra_engines)
    else:
        sv.parse_extra_engines(config.extra_engines, held_out)  # refused without --test-engine
        n_test = TEST_CLIPS or len(LABELS) * len(sv.voices("test", engines))
    counts = {"train": config.max_examples or 6000, "validation": VAL_CLIPS, "test": n_test}
    dtype = np.dtype(config.dtype)
    splits, folders, speakers_of, accents_of = {}, {}, {}, {}
    for name, count in counts.items():
        specs = clip_specs(name, count, engines, held_out, config.extra_share)
        voices_said = [sv.parse_voice(s.voice) for s in specs]
        speakers_of[name] = [v.speaker for v in voices_said]
        accents_of[name] = [v.accent for v in voices_said]  # espeak-ng's; "" for the others
        clips, folders[name], _ = corpus.make_corpus(specs, config.data, progress=progress)
        feats = clip_features(clips, folders[name], config.features, config.norm)
        targets = [LABELS.index(c.text) for c in clips]
        if name == "train" and config.augment:
            feats = feats + augmented_features(clips, config)
            targets = targets * (1 + AUG_COPIES)
        inputs = [f.astype(dtype)[: config.truncate or None] for f in feats]
        splits[name] = Split(inputs, targets)
    speakers = {s: len(set(speakers_of[s])) for s in counts}
    voices = split_names(config) or " and ".join(engines)
    features = f"{config.features} features"
    source = sv.corpus_line("spoken digits", voices, speakers, features, folders["train"].parent)
    return TaskData(
        *(splits[s] for s in sv.SPLITS),
        LABELS,
        "class",
        input_size=feature_size(config.features),
        source=source,
        extra={"features": config.features, "norm": config.norm},
        raw={"speakers": speakers_of, "accents": accents_of},
    )


metrics = class_metrics  # loss and accuracy


def build_trainer(config, out_dir, progress_bar: bool = True):
    if config.head == "tags":
        raise BpttError("digits gives one class per clip: --head class (or auto)")
    data = prepare_data(config, progress=progress_bar)
    return make_trainer(config, out_dir, progress_bar, data, metrics)


def held_out_report(path) -> str:
    """Test accuracy on the unseen speakers of the checkpoint at ``path``, beside the
    majority class's."""
    model, config, _, _ = load_model(path, "digits")
    data = prepare_data(replace(config, augment=""))  # test only: no augmenting
    majority = np.bincount(np.array(data.train.targets), minlength=len(data.labels)).argmax()
    baseline = float(np.mean(np.array(data.test.targets) == majority))
    probs = predict(model, data.test)
    hits = np.array([np.argmax(p) == y for p, y in zip(probs, data.test.targets, strict=True)])
    speakers = np.array(data.raw["speakers"]["test"])  # (N,)
    by_speaker = {s: float(hits[speakers == s].mean()) for s in sorted(set(speakers))}
    worst = min(by_speaker, key=by_speaker.get)
    ones = np.ones(len(hits), int)  # (N,): a clip each
    accents = sv.by_accent(~hits, ones, data.raw["accents"]["test"], "error (clips)")
    return (
        f"test ({len(data.test)} clips, {len(by_speaker)} unseen speakers"
        f"{f' of the held-out engine {config.test_engine}' if config.test_engine else ''}): "
        f"{format_metrics(metrics(model, data.test, probs))} "
        f"| majority class ({data.labels[majority]}): accuracy {baseline:.4f} "
        f"| worst speaker {worst}: accuracy {by_speaker[worst]:.4f}"
        f"{accents}"
    )


def predict_checkpoint(path, text: str) -> str:
    """The digit spoken in a WAV file (any rate; resampled to 16 kHz) and its probability."""
    from bptt.data.audio import SAMPLE_RATE, resample

    model, config, meta, _ = load_model(path, "digits")
    samples, rate = corpus.read_wav_file(text, "digits predicts from")
    norm = meta["extra"].get("norm", "cmvn")
    x = features(resample(samples, rate, SAMPLE_RATE), meta["extra"]["features"], norm=norm)
    probs = predict_one(model, x.astype(np.dtype(config.dtype)))  # (C,)
    return best_label(probs, meta["labels"])


PRESET = {
    "out": "runs/digits",
    "hidden_size": 64,  # per direction: 10 words need little memory
    "bidirectional": True,  # a word's end ("six"/"seven") and start both tell
    "pooling": "max",  # the frames that say the word most clearly decide (over mean: docs)
    "max_examples": 6000,  # training clips: about every training voice says every digit
    "batch_size": 32,
    "lr": 5e-3,
    "steps": 1500,  # 8 epochs of 6,000 clips
    "eval_every": 250,  # each evaluation reads the 600 validation clips
}

TASK = example_task(
    sys.modules[__name__],
    "digits",
    "dataset data test_engine extra_engines extra_share features max_examples truncate norm "
    "augment pooling label_smoothing",
)
