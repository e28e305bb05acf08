"""Spoken digit strings with CTC, many-to-many with Tx ≠ Ty and no alignment: audio of
"three one four one" -> "3 1 4 1".

Utterances (:func:`utterance_specs`). Each says a random string of 3 to 7 digits
(uniform length, uniform digits) in a random voice of its split, at a random rate
(130..220 words/min) and pitch (25..75), over white or pink noise at 10..30 dB
SNR (:mod:`bptt.tasks.speech.speech_synth`). Half are said in one breath by espeak-ng
(coarticulated, as ``bptt synth "3 1 4"`` says them); the other half word by word,
joined by random gaps of 0.05..0.35 s. The split is by speaker: training
utterances come from the training speakers, the validation ones (which pick the
best checkpoint) from the validation speakers, and the test ones from the test
speakers, whom the model never hears and who never choose a model. The corpora
and their features are cached (``--data``, default ~/.cache/bptt/speech).
``--test-engine`` holds an engine out (trained and validated on the other two, tested
on it), ``--augment`` adds augmented copies of the training utterances and ``--norm
pcen`` changes the normalisation, as in :mod:`bptt.tasks.speech.digits`.

Features. Normalised log-mel filterbanks (40 per 10 ms frame), their LPC-envelope kind
(lpcmel) or MFCCs with deltas (39), as in :mod:`bptt.tasks.speech.digits`, then
STACK = 4 frames side by side:

    x_s = [f_{4s}, f_{4s+1}, f_{4s+2}, f_{4s+3}]      (T // 4, 4D): one step per 40 ms

so the recurrent layers run 4 times fewer sequential steps (training is about 4
times faster) and see the same information. A digit word lasts 6 or more steps
even at the fastest rate, above CTC's need of one step per label (two for a repeat).

Model: :class:`bptt.models.ctc.CTCRecognizer`, a bidirectional stacked LSTM, a
Linear layer to C = 11 classes (blank ∅ = 0, digit d = class d + 1), log-softmax,
and the CTC loss per target label E = Σ_b E_b / Σ_b L_b.

Metrics (the hypothesis ŷ_n of utterance n against its reference y_n):

    digit error rate   DER = Σ_n edit(ŷ_n, y_n) / Σ_n |y_n|      substitutions, insertions,
                                                                deletions (Levenshtein)
    sequence accuracy  SA  = (1/N) Σ_n [ŷ_n = y_n]

decoded by best path (greedy) and by prefix beam search (``--beam``,
:func:`bptt.decode.ctc_decode`).

Shapes: N utterances, T frames, D features per frame, S steps (T // STACK),
L digits, C = 11 classes.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bptt.data.audio import (
    FEATURES,
    SAMPLE_RATE,
    dither,
    feature_size,
    features,
    read_wav,
    resample,
    stack_frames,
)
from bptt.distributed import describe_parallel
from bptt.errors import BpttError, CheckpointError, DataError
from bptt.models.ctc import CTCRecognizer
from bptt.tasks import base
from bptt.tasks._examples import Split, TaskData, describe, example_task, example_trainer, in_order
from bptt.tasks.metrics import edit_distance
from bptt.tasks.speech import speech_corpus as corpus
from bptt.tasks.speech import speech_synth as synth
from bptt.tasks.speech import speech_voices as sv
from bptt.tasks.speech.digits import (
    AUG_COPIES,
    augmented_features,
    clip_features,
    split_names,
)

LABELS = [str(d) for d in range(10)]  # label d + 1 (class d + 1) is the digit d
LENGTHS = (3, 7)  # digits per utterance, both ends included
STACK = 4  # feature frames per recurrent step (40 ms)
BY_WORD_SHARE = 0.5  # utterances said word by word with gaps (the rest in one breath)
DATA_SEED = 12  # the utterances drawn (digits, voices, rates, noise) do not follow --seed
VAL_UTTERANCES = 300  # validation: drawn from the validation speakers
TEST_UTTERANCES = 500  # test: drawn from the test speakers


# ---------------------------------------------------------------- data
def utterance_specs(
    split: str, count: int, engines: tuple[str, ...], test_engine: str = "", extra_share=1.0
) -> list[synth.ClipSpec]:
    """``count`` utterances of ``split``'s voices: LENGTHS[0]..LENGTHS[1] random digits
    as words, a random voice, rate, pitch and noise, said word by word (with gaps) or in
    one breath; the same on every run. With a ``test_engine``: the held-out-engine
    protocol's voices, drawn engine first."""
    if test_engine:
        pool = sv.engine_voices(split, test_engine, engines)
        rng = sv.draw_rng(DATA_SEED, split, engines, test_engine)
        voices = None
    else:
        pool = voices = sv.split_voices(split, engines)
        rng = sv.draw_rng(DATA_SEED, split, engines)
    specs = []
    for _ in range(count):
        n = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
        digits = rng.integers(0, 10, size=n)  # (L,)
        text = " ".join(synth.DIGIT_WORDS[d] for d in digits)
        if voices:
            voice = voices[int(rng.integers(len(voices)))]
        else:
            voice = sv.draw_voice(pool, rng, extra_share)
        by_word = bool(rng.random() < BY_WORD_SHARE)
        specs.append(synth.draw_spec(text, voice, rng, by_word=by_word))
    return specs


def text_to_labels(text: str) -> np.ndarray:
    """ "three one four" -> label ids [4, 2, 5] (L,) int64: digit d is label d + 1."""
    try:
        return np.array([synth.DIGIT_WORDS.index(w) + 1 for w in text.split()], dtype=np.int64)
    except ValueError:
        raise DataError(f"a digit string's transcript must be digit words; got {text!r}") from None


def utterance_inputs(samples: np.ndarray, kind: str, k: int, dtype, norm="cmvn") -> np.ndarray:
    """16 kHz samples (N,) -> the model's input (S, k·D): normalised features, stacked."""
    return stack_frames(features(samples, kind, norm=norm), k).astype(dtype)  # (S, kD)


def prepare_data(config, progress: bool = False) -> TaskData:
    """Train/validation/test utterances of disjoint speakers: stacked feature steps and
    their digit labels."""
    engines = sv.dataset_engines("ctc-digits", config.dataset)
    if config.truncate:
        raise BpttError(
            f"ctc-digits reads utterances whole (cut, they would lose digits); "
            f"got --truncate {config.truncate}"
        )
    held_out = config.test_engine
    if held_out:
        engines = sv.held_out_engines(held_out, config.extra_engines)
    else:
        sv.parse_extra_engines(config.extra_engines, held_out)  # refused without --test-engine
    counts = {
        "train": config.max_examples or 4000,
        "validation": VAL_UTTERANCES,
        "test": TEST_UTTERANCES,
    }
    dtype = np.dtype(config.dtype)
    splits, folders, speakers, accents = {}, {}, {}, {}
    for name, count in counts.items():
        specs = utterance_specs(name, count, engines, held_out, config.extra_share)
        speakers[name] = len({sv.parse_voice(s.voice).speaker for s in specs})
        accents[name] = [sv.parse_voice(s.voice).accent for s in specs]  # "" but espeak-ng's
        clips, folders[name], _ = corpus.make_corpus(specs, config.data, progress=progress)
        feats = clip_features(clips, folders[name], config.features, config.norm)
        targets = [text_to_labels(c.text) for c in clips]
        if name == "train" and config.augment:
            feats = feats + augmented_features(clips, config)  # (T_i, D) each
            targets = targets * (1 + AUG_COPIES)
        inputs = [stack_frames(f, STACK).astype(dtype) for f in feats]  # (S_i, kD) each
        splits[name] = Split(inputs, targets)
    what = f"spoken strings of {LENGTHS[0]}..{LENGTHS[1]} digits"
    voices = split_names(config) or " and ".join(engines)
    steps = f"{config.features} x {STACK} frames a step"
    source = sv.corpus_line(what, voices, speakers, steps, folders["train"].parent)
    extra = {"features": config.features, "stack": STACK, "norm": config.norm}
    size, ordered = STACK * feature_size(config.features), (splits[s] for s in sv.SPLITS)
    return TaskData(
        *ordered, LABELS, "ctc", input_size=size, source=source, extra=extra,
        raw={"accents": accents},
    )  # fmt: skip


# ---------------------------------------------------------------- metrics
def error_rates(hyps, refs) -> dict:
    """digit_error_rate Σ edit(ŷ_n, y_n) / Σ |y_n| and sequence_accuracy (share exact)."""
    if len(hyps) != len(refs):
        raise BpttError(
            f"error rates need one hypothesis per reference; got {len(hyps)} "
            f"hypotheses for {len(refs)} references"
        )
    hyps, refs = [list(h) for h in hyps], [list(r) for r in refs]
    edits = sum(edit_distance(h, r) for h, r in zip(hyps, refs, strict=True))
    exact = sum(h == r for h, r in zip(hyps, refs, strict=True))
    return {
        "digit_error_rate": float(edits) / max(sum(len(r) for r in refs), 1),
        "sequence_accuracy": float(exact) / max(len(refs), 1),
    }


def metrics(model, split: Split, beam: int = 1, batch_size: int = 64) -> dict:
    """CTC loss per target label Σ_n E_n / Σ_n |y_n|, and the digit error rate and sequence
    accuracy of best path (beam 1) or prefix beam search (width ``beam``), from one forward
    pass per batch."""
    return _scores(*decode_split(model, split, beam, batch_size), split.targets)


def _scores(hyps: list, total: float, refs: list) -> dict:
    """The metrics of hypotheses ``hyps`` whose CTC losses sum to ``total``."""
    return {"loss": total / max(sum(len(r) for r in refs), 1), **error_rates(hyps, refs)}


def decode_split(model, split: Split, beam: int = 1, batch_size: int = 64) -> tuple[list, float]:
    """(hypothesis label ids of every utterance, in the split's order; Σ_n CTC loss E_n)."""
    from bptt.decode import ctc_greedy, ctc_prefix_beam_search
    from bptt.functional.ctc import ctc_forward

    hyps: list = [None] * len(split)
    total = 0.0
    for idx, batch in in_order(split, batch_size):
        lp = model.log_probs(batch.inputs, batch.mask)  # (B, T, C)
        T_b = batch.mask.sum(axis=1)  # (B,)
        L_b = (batch.targets != model.blank).sum(axis=1)  # (B,)
        nll, _ = ctc_forward(lp, batch.targets, T_b, L_b, model.blank)  # (B,)
        total += float(nll.sum())
        if beam == 1:
            ids = ctc_greedy(lp, T_b, model.blank)
        else:
            ids = ctc_prefix_beam_search(lp, T_b, beam, model.blank)[0]
        for i, row in zip(idx, ids, strict=True):
            hyps[i] = row
    return hyps, total


# ---------------------------------------------------------------- model and training
def build_model(config, input_size: int, rng=None) -> CTCRecognizer:
    """The recognizer ``config`` describes, reading ``input_size`` features per step."""
    rng = base.seeded(config, rng)
    return CTCRecognizer(len(LABELS), input_size=input_size, **base.network(config), rng=rng)


def build_trainer(config, out_dir, progress_bar: bool = True):
    if config.head != "auto":
        raise BpttError(
            f"ctc-digits reads a label string per utterance (CTC): drop --head; "
            f"got --head {config.head}"
        )
    data = prepare_data(config, progress=progress_bar)
    rng = np.random.default_rng(config.seed)
    model = build_model(config, data.input_size, rng)
    trainer = example_trainer(config, model, data, metrics, out_dir, progress_bar, rng)
    way = "bidirectional " if config.bidirectional else ""
    epochs = config.steps * config.batch_size / len(data.train)
    summary = [
        *describe(data)[:2],
        f"labels: {' '.join(LABELS)} (classes 1..{len(LABELS)}) and the blank (class 0)",
        f"model: CTC recognizer, {way}{config.cell.upper()} {config.num_layers}x"
        f"{config.hidden_size}, {model.num_parameters():,} parameters, {config.dtype}",
        f"training: {config.steps} updates of {config.batch_size} utterances ({epochs:.1f} "
        f"epochs), {config.optimizer} lr {config.lr}, clip {config.clip}",
        *describe_parallel(config, trainer.comm, "utterances"),
    ]
    return trainer, summary


def model_from_meta(config, meta: dict, rng=None) -> CTCRecognizer:
    """The recognizer a checkpoint's metadata describes (its features and input size)."""
    extra = meta["extra"]
    if extra["features"] not in FEATURES or not isinstance(extra["stack"], int):
        raise CheckpointError(f"extra {extra!r} is not valid")
    return build_model(config, int(meta["input_size"]), rng)


def load_recognizer(path):
    """Rebuild the recognizer from a ctc-digits checkpoint alone: (model, config, metadata)."""
    refusal = "; transcribing needs a 'ctc-digits' checkpoint"
    return base.load_model(path, "ctc-digits", model_from_meta, refusal)


def held_out_report(path) -> str:
    """Digit error rate and sequence accuracy on the test speakers, greedy and beam."""
    model, config, _ = load_recognizer(path)
    data = prepare_data(replace(config, augment=""))  # test only: no augmenting
    digits = sum(len(t) for t in data.test.targets)
    where = f"the held-out engine {config.test_engine}" if config.test_engine else "unseen speakers"
    lines = [f"test ({len(data.test)} utterances, {digits} digits, {where}):"]
    refs, greedy = data.test.targets, []
    for beam in dict.fromkeys((1, config.beam)):
        hyps, total = decode_split(model, data.test, beam)
        greedy = hyps if beam == 1 else greedy
        m = _scores(hyps, total, refs)
        how = "greedy (best path)" if beam == 1 else f"prefix beam search, width {beam}"
        lines.append(
            f"  {how}: digit error rate {m['digit_error_rate']:.4f}, sequence "
            f"accuracy {m['sequence_accuracy']:.4f}, loss {m['loss']:.4f}"
        )
    edits = [edit_distance(list(h), list(r)) for h, r in zip(greedy, refs, strict=True)]
    sizes = [len(r) for r in refs]
    what = "greedy digit error rate (digits)"
    if accents := sv.by_accent(edits, sizes, data.raw["accents"]["test"], what):
        lines.append(f"  {accents.removeprefix(' | ')}")
    return "\n".join(lines)


# ---------------------------------------------------------------- transcribe
def transcribe(path, wav, beam: int = 1) -> str:
    """The digits heard in the WAV file ``wav`` by the checkpoint at ``path``, as "4 0 7 1".

    Any sample rate is resampled to 16 kHz; several channels are mixed down to one;
    then 0.25 s of silence is added at each end and white noise 30 dB below the
    signal (:func:`bptt.data.audio.dither`), as every training clip holds noise.
    """
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise BpttError(f"beam width must be an integer >= 1; got {beam!r}")
    model, config, meta = load_recognizer(path)
    wav = Path(wav)
    if not wav.is_file():
        raise BpttError(
            f"transcribe reads a WAV file (bptt synth makes one); '{wav}' is not a file"
        )
    try:
        samples, rate = read_wav(wav)
    except DataError as e:
        raise BpttError(str(e)) from None
    if rate != SAMPLE_RATE:
        print(f"note: '{wav}' is at {rate} Hz; resampled to {SAMPLE_RATE} Hz", file=sys.stderr)
        samples = resample(samples, rate, SAMPLE_RATE)  # (N',)
    k = meta["extra"]["stack"]
    if len(samples) < SAMPLE_RATE // 10:
        raise BpttError(
            f"'{wav}' holds {len(samples) / SAMPLE_RATE:.3f} s of audio; "
            f"a digit string needs at least 0.1 s"
        )
    norm = meta["extra"].get("norm", "cmvn")
    samples = dither(samples)  # (N + 2·pad,)
    x = utterance_inputs(samples, meta["extra"]["features"], k, np.dtype(config.dtype), norm)[None]
    from bptt.decode import ctc_decode

    ids = ctc_decode(model, x, np.ones(x.shape[:2], dtype=bool), beam)  # [(L,)]
    return model.to_text(ids, LABELS, sep=" ")[0]


PRESET = {
    "out": "runs/ctc-digits",
    "hidden_size": 128,  # per direction; validation DER 0.03 against 0.05 with 64 (docs)
    "num_layers": 2,  # layer 2 reads both directions of layer 1
    "bidirectional": True,  # a digit's class is clearest once its word has ended
    "max_examples": 4000,  # training utterances of 3..7 digits (~20,000 digits)
    "batch_size": 32,
    "lr": 3e-3,
    "steps": 800,  # 6.4 epochs: ~4 minutes on a busy core, test DER ~1%
    "eval_every": 200,  # each evaluation reads the 300 validation utterances
    "beam": 8,  # prefix beam search's width in the test report, beside greedy
}

TASK = example_task(
    sys.modules[__name__],
    "ctc-digits",
    "dataset data test_engine extra_engines extra_share features max_examples truncate norm "
    "augment beam",
    build_model=model_from_meta,
    transcribe=transcribe,
    predict=None,
)
