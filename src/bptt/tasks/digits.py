"""Isolated spoken digits, many-to-one: a clip of someone saying "seven" -> 7.

The clips are synthesised (:mod:`bptt.tasks.speech_synth`): espeak-ng says
"zero".."nine" in many voices (an accent with a speaker variant), at a random
rate (130..220 words/min) and pitch (25..75), over white or pink noise at
10..30 dB SNR. The split is by speaker: training clips come from the training
speakers only, the validation clips (which pick the best checkpoint) from the
validation speakers, and the test clips from the test speakers, whom the model
never hears (19 espeak-ng variants, among them the female f1, f2, f3, under
each of the 8 accents). ``--dataset espeak+flite`` adds flite's voices (all of
them fall in the training split).

Each clip becomes normalised log-mel filterbanks (40 per 10 ms frame) or MFCCs
with deltas (39), :func:`bptt.data.audio.features`, read by the classifier of
:mod:`bptt.models.classifier`. Metric: accuracy, beside the majority class.

The corpora are cached (``--data``, default ~/.cache/bptt/speech), with their
features, so a second run reads instead of speaking.

Shapes: N samples, T frames, D features per frame, C = 10 classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bptt.data.audio import feature_size, features, read_wav
from bptt.errors import BpttError, DataError
from bptt.tasks import speech_corpus as corpus
from bptt.tasks import speech_synth as synth
from bptt.tasks._examples import (
    Split,
    TaskData,
    class_metrics,
    format_metrics,
    load_model,
    make_trainer,
    predict,
)

LABELS = list(synth.DIGIT_WORDS)  # class c is the digit c
DATASETS = {"default": ("espeak-ng",), "espeak": ("espeak-ng",),
            "espeak+flite": ("espeak-ng", "flite")}  # fmt: skip
DATA_SEED = 10  # the clips drawn (voices, rates, pitches, noise) do not follow --seed
VAL_CLIPS = 600  # validation: drawn from the validation speakers
TEST_CLIPS = None  # test: every test voice says every digit once (None), or this many clips


def clip_specs(split: str, count: int, engines: tuple[str, ...]) -> list[synth.ClipSpec]:
    """``count`` clips of ``split``'s voices: clip i says digit i mod 10, each voice in turn
    (shuffled), with a random rate, pitch and noise; the same on every run."""
    voices = synth.voices(split, engines)
    if not voices:
        raise BpttError(f"no installed voice falls in the {split} split of {', '.join(engines)}")
    rng = np.random.default_rng([DATA_SEED, synth.SPLITS.index(split), len(engines)])
    order = rng.permutation(len(voices))  # (V,)
    specs = []
    for i in range(count):
        voice = voices[order[(i // len(LABELS)) % len(voices)]]
        specs.append(synth.draw_spec(LABELS[i % len(LABELS)], voice, rng))
    return specs


def clip_features(clips: list[corpus.Clip], folder: Path, kind: str) -> list[np.ndarray]:
    """Features (T_i, D) of every clip, computed once and kept beside the corpus."""
    path = folder / f"features-{kind}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            lengths, flat = saved["lengths"], saved["features"]  # (N,), (ΣT_i, D)
        if len(lengths) == len(clips):
            return np.split(flat, np.cumsum(lengths)[:-1])
    feats = [features(clip.audio(), kind) for clip in clips]  # (T_i, D) each
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, lengths=np.array([len(f) for f in feats]), features=np.concatenate(feats))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache still gives the features
    return feats


def prepare_data(config, vocab=None, progress: bool = False) -> TaskData:
    """Train/validation/test clips of disjoint speakers, as normalised feature sequences."""
    if config.dataset not in DATASETS:
        raise BpttError(f"digits reads --dataset {' or '.join(list(DATASETS)[1:])}; "
                        f"got {config.dataset!r}")  # fmt: skip
    engines = DATASETS[config.dataset]
    n_test = TEST_CLIPS or len(LABELS) * len(synth.voices("test", engines))
    counts = {"train": config.max_examples or 6000, "validation": VAL_CLIPS, "test": n_test}
    dtype = np.dtype(config.dtype)
    splits, folders, speakers_of = {}, {}, {}
    for name, count in counts.items():
        specs = clip_specs(name, count, engines)
        speakers_of[name] = [synth.parse_voice(s.voice).speaker for s in specs]
        clips, folders[name], _ = corpus.make_corpus(specs, config.data, progress=progress)
        feats = clip_features(clips, folders[name], config.features)
        inputs = [f.astype(dtype)[: config.truncate or None] for f in feats]
        splits[name] = Split(inputs, [LABELS.index(c.text) for c in clips])
    speakers = {s: len({v.speaker for v in synth.voices(s, engines)}) for s in counts}
    return TaskData(
        splits["train"],
        splits["validation"],
        splits["test"],
        LABELS,
        "class",
        input_size=feature_size(config.features),
        source=f"spoken digits, {' and '.join(engines)} ({speakers['train']} training, "
        f"{speakers['validation']} validation, {speakers['test']} test speakers), "
        f"{config.features} features, cached in {folders['train'].parent}",
        extra={"features": config.features},
        raw={"speakers": speakers_of},
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
    data = prepare_data(config)
    majority = np.bincount(np.array(data.train.targets), minlength=len(data.labels)).argmax()
    baseline = float(np.mean(np.array(data.test.targets) == majority))
    probs = predict(model, data.test)
    hits = np.array([np.argmax(p) == y for p, y in zip(probs, data.test.targets, strict=True)])
    speakers = np.array(data.raw["speakers"]["test"])  # (N,)
    by_speaker = {s: float(hits[speakers == s].mean()) for s in sorted(set(speakers))}
    worst = min(by_speaker, key=by_speaker.get)
    return (
        f"test ({len(data.test)} clips, {len(by_speaker)} unseen speakers): "
        f"{format_metrics(metrics(model, data.test))} "
        f"| majority class ({data.labels[majority]}): accuracy {baseline:.4f} "
        f"| worst speaker {worst}: accuracy {by_speaker[worst]:.4f}"
    )


def predict_checkpoint(path, text: str) -> str:
    """The digit spoken in a WAV file (any rate; resampled to 16 kHz) and its probability."""
    from bptt.data.audio import SAMPLE_RATE, resample

    model, config, meta, _ = load_model(path, "digits")
    if not str(text).lower().endswith(".wav") or not Path(text).is_file():
        raise BpttError(f"digits predicts from a WAV file (bptt synth makes one); got {text!r}")
    try:
        samples, rate = read_wav(text)
    except DataError as e:
        raise BpttError(str(e)) from None
    x = features(resample(samples, rate, SAMPLE_RATE), meta["extra"]["features"])  # (T, D)
    x = x.astype(np.dtype(config.dtype))[None]  # (1, T, D)
    probs = model.predict_proba(x, np.ones(x.shape[:2], dtype=bool))[0]  # (C,)
    best = int(np.argmax(probs))
    return f"{meta['labels'][best]} {probs[best]:.2f}"
