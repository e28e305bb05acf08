"""One to many: Bach chorale melodies as events, an LSTM event language model.

The corpus is the 371 four-part chorales in music21's corpus (extra ``music``;
the iterator lists a few twice, kept once), or the scores named in ``--text FILE``
(one music21 corpus name such as ``bach/bwv269`` or a score path per line). Of each
we keep the soprano (the part named Soprano, else the first part):

    melody  = label, meter, pickup, e_1 ... e_N
    e_n     = (pitch or rest, duration, fermata)       one sounding note or rest

**Events.** Tied notes are merged into one sounding note (a tie is how notation
writes a note across a bar line; the bar lines come back from the meter and the
pickup). Grace notes are dropped. The pitch is a MIDI number (the spelling,
F# or Gb, is dropped); the duration is an exact fraction of a quarter note; a
fermata (the end of a chorale phrase) is kept as a mark on the duration.

**Dropped** (not in the encoding, so not in the round trip): lyrics, dynamics,
ornaments and grace notes, articulations, slurs, the pitch spelling, the three
lower voices and instruments, and meter changes (4 of the 371 chorales change
meter; their notes still round-trip, their later bar lines are drawn in the first
meter). **Kept exactly**: every sounding note's and rest's onset, pitch and
duration, which notes carry a fermata, the meter, the pickup, and so the bars
and the ties of every chorale that keeps one meter and full bars.

**Tokens.** Two tokens per event, the pitch then the duration::

    <eos> minor meter:4/4 pickup:1  G4 q1  G4 q1  A4 q1  B4 q3/2  C5 q1/2 ... G4 q2^ <eos>

One token per event (pitch x duration) would be the same probability model
written as one softmax, but of 236 combinations, 92 seen fewer than 5 times in the
~13,000 training events; two tokens share what a pitch does across durations and
what a duration does across pitches, and by the chain rule the event's
probability is exact, p(e_n) = p(pitch_n | past) p(dur_n | pitch_n, past), so
"negative log-likelihood per event" is the sum of the two tokens' and stays
comparable with any one-token-per-event model.

**Key.** Each melody is transposed so that its tonic is C (the nearest C, within
a tritone), as given by the key the score states (music21's key analysis where
it states none); the label is the mode, ``major`` or ``minor``, the first token,
so the network reads it into its state before any note (the lecture's "genre ->
music"). Test likelihoods are of melodies in C, given their mode.

**Split.** Several chorales harmonise the same hymn tune, so the split is by tune:
two melodies are one tune when the edit distance of their interval sequences
(rests dropped, repeated notes merged) is under ``SAME_TUNE`` of the longer's
length (:mod:`bptt.tasks.text.tune_split`), and tunes (connected groups) are shuffled
with the seed and held out whole: ``--test-fraction`` for the test,
``--val-fraction`` for validation (model choice), the rest for training.

**Metric.** Negative log-likelihood per event of the held-out melodies given
their label, meter and pickup, the end of the melody counting as one more event,
in nats and bits, beside n-gram models of the same tokens fitted on the training
melodies only (add-one unigram; interpolated Kneser-Ney 2- to 7-grams).

Shapes: B batch (melodies), T tokens, V vocabulary, N events, M melodies.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.config import Config
from bptt.data import Vocabulary, read_text
from bptt.data.cache import cache_dir
from bptt.data.vocabulary import EOS, UNK
from bptt.decode import sample_next
from bptt.errors import BpttError, DataError
from bptt.models.language_model import LMBatch
from bptt.tasks import metrics
from bptt.tasks.text import lm
from bptt.tasks.text.chorale_events import (  # the encoding, in a module of its own
    HEADER,
    MODES,
    PITCHES,
    REST,
    Melody,
    event_list,
    from_tokens,
    melody_from_score,
    to_tokens,
    write_melody,
)
from bptt.tasks.text.tune_split import split_by_tune
from bptt.train import Trainer

SOURCE = "the soprano of music21's Bach chorales (corpus.chorales.Iterator)"
ENCODING_VERSION = 1  # part of the cache key: bump when the encoding changes
ORDERS = (2, 3, 4, 5, 6, 7)  # n-gram baselines beside the unigram


# ---------------------------------------------------------------- the corpus, cached


def cache_file() -> Path:
    """$BPTT_CACHE/chorales, else $XDG_CACHE_HOME/bptt/chorales, else ~/.cache/bptt/chorales;
    one JSON file per encoding version and music21 version."""
    import music21

    name = f"melodies-v{ENCODING_VERSION}-music21-{music21.__version__}.json"
    return cache_dir("chorales") / name


def _music21():
    try:
        import music21
    except ImportError:
        raise DataError("chorales needs the package music21 (pip install 'bptt[music]')") from None
    return music21


def score_names(text: str | None = None) -> list[str]:
    """The chorales of music21's corpus (each once), or the lines of ``text``: corpus names
    (``bach/bwv269``) or score paths; blank lines and ``#`` comments skipped."""
    if text is None:
        from music21 import corpus

        return list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))
    lines = [x.strip() for x in read_text(text).splitlines()]
    names = list(dict.fromkeys(x for x in lines if x and not x.startswith("#")))
    if not names:
        raise DataError(f"{text}: expected score names or paths, one per line; got none")
    return names


def _parse(name: str) -> Melody:
    from music21 import converter, corpus

    try:
        score = converter.parse(name) if Path(name).is_file() else corpus.parse(name)
    except Exception as e:  # music21 raises many kinds for a missing or unreadable score
        raise DataError(
            f"cannot read the score {name!r}: expected a music21 corpus name or a "
            f"score file ({type(e).__name__}: {e})"
        ) from None
    return melody_from_score(score, name)


def load_melodies(text: str | None = None) -> list[Melody]:
    """Melodies of the corpus (or of ``--text``), in its order; corpus scores are parsed once
    (~0.3 s each) and kept in :func:`cache_file`."""
    _music21()
    names = score_names(text)
    path = cache_file()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    melodies, new = [], {}
    for name in names:
        if name in cached and not Path(name).is_file():
            melodies.append(Melody.from_dict(cached[name]))
        else:
            melodies.append(_parse(name))
            if not Path(name).is_file():  # a file may change; a corpus score does not
                new[name] = melodies[-1].to_dict()
    if new:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({**cached, **new}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # no cache: the next run parses again
    return melodies


# ---------------------------------------------------------------- n-gram baselines


def events_of(sequences: list[np.ndarray]) -> int:
    """Events scored in these sequences, each melody's end counting as one: (len - 3) / 2."""
    return sum((len(s) - HEADER) // 2 for s in sequences)


# ---------------------------------------------------------------- the data and the model


@dataclass
class ChoraleData:
    vocab: Vocabulary
    train: list[Melody]
    val: list[Melody]
    test: list[Melody]
    source: str

    def ids(self, melodies: list[Melody]) -> list[np.ndarray]:
        """<eos> label meter pickup p_1 d_1 ... p_N d_N <eos> per melody, as ids (2N+5,)."""
        return [self.vocab.encode([EOS, *to_tokens(m), EOS]) for m in melodies]

    def stream(self, melodies: list[Melody]) -> np.ndarray:
        """The melodies one after another, each between <eos> tokens (one stream of ids)."""
        ids = self.ids(melodies)
        return np.concatenate([s[:-1] for s in ids] + [ids[-1][-1:]])  # (T,)


def prepare_data(config: Config) -> ChoraleData:
    melodies = [m.in_c() for m in load_melodies(config.text)]
    if config.max_examples:
        melodies = melodies[: config.max_examples]
    train, val, test = split_by_tune(
        melodies, config.test_fraction, config.val_fraction, config.seed
    )
    tokens = [t for m in train for t in to_tokens(m)]
    vocab = Vocabulary.from_tokens(tokens, specials=(UNK, EOS), level="word")
    return ChoraleData(vocab, train, val, test, SOURCE if config.text is None else config.text)


def event_nll(model, sequences: list[np.ndarray], batch_size: int = 32) -> dict[str, float]:
    """Nats (``loss``) and bits per event of ``model`` on whole melodies, each read from a zero
    state after its <eos>, scored from its first event to its closing <eos>."""
    total = 0.0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for k in range(0, len(order), batch_size):
        chunk = [sequences[i] for i in order[k : k + batch_size]]
        T = max(len(s) for s in chunk) - 1
        inputs = np.zeros((len(chunk), T), dtype=np.int64)  # (B, T)
        targets = np.zeros((len(chunk), T), dtype=np.int64)  # (B, T)
        mask = np.zeros((len(chunk), T), dtype=bool)  # (B, T) True from the first event on
        for b, s in enumerate(chunk):
            inputs[b, : len(s) - 1], targets[b, : len(s) - 1] = s[:-1], s[1:]
            mask[b, HEADER : len(s) - 1] = True
        loss, _ = model.loss(LMBatch(inputs, targets, mask))  # padding at the end: no effect
        total += loss
    nats = total / events_of(sequences)
    return {"loss": nats, "bits_per_event": nats / math.log(2)}


def build_trainer(config: Config, out_dir, progress_bar: bool = True) -> tuple[Trainer, list[str]]:
    """An LSTM LM on the training melodies' token stream; model choice on the validation tunes."""
    data = prepare_data(config)
    streams = data.stream(data.train), data.stream(data.val)
    trainer, lines = lm.text_trainer(
        config, out_dir, "chorales", data.vocab, *streams, progress_bar
    )
    val = data.ids(data.val)
    trainer.evaluate = lambda model: event_nll(model, val)  # per event, not per token
    train_ids = data.ids(data.train)
    modes = Counter(m.mode for m in data.train)
    summary = [
        f"data: {data.source}",
        f"melodies: {len(data.train)} training, {len(data.val)} validation, {len(data.test)} "
        f"test (whole tunes held out) | {events_of(train_ids) - len(train_ids):,} training "
        f"events, {modes['major']} major, {modes['minor']} minor | vocabulary {len(data.vocab)}",
    ]
    return trainer, summary + lines


# ---------------------------------------------------------------- generation and reports


def token_kinds(vocab: Vocabulary) -> np.ndarray:
    """(4, V) booleans: which tokens may come next at the meter, the pickup, a pitch (or the
    melody's <eos>), and a duration: the grammar of :func:`to_tokens`."""
    kinds = np.zeros((4, len(vocab)), dtype=bool)  # (4, V)
    for i, t in enumerate(vocab.tokens):
        kinds[0, i] = t.startswith("meter:")
        kinds[1, i] = t.startswith("pickup:")
        kinds[2, i] = t in PITCHES or t == REST or t == EOS
        kinds[3, i] = t.startswith("q")
    return kinds


def sample_tokens(
    model,
    vocab: Vocabulary,
    mode: str,
    n: int,
    temperature: float = 1.0,
    seed: int = 0,
    max_tokens: int = 600,
    grammar: bool = True,
    top_k: int | None = None,
) -> list[list[str]]:
    """``n`` melodies' tokens drawn from ``<eos> mode``, each up to its <eos> (or max_tokens),
    all n at once, one step at a time with the state kept; <unk> is never drawn.

    ``grammar``: draw each token among those of the kind its place needs (meter, pickup,
    pitch or <eos>, duration; :func:`token_kinds`), the model's probabilities renormalised
    over them, so every melody that ends is well-formed. Without it, the model alone decides.
    """
    if mode not in MODES:
        raise BpttError(f"the label must be one of {', '.join(MODES)}; got {mode!r}")
    rng = np.random.default_rng(seed)
    kinds = token_kinds(vocab)  # (4, V)
    prompt = np.tile(vocab.encode([EOS, mode]), (n, 1))  # (B, 2)
    logits, state = model.forward(prompt)  # (B, 2, V)
    logits = logits[:, -1]  # (B, V)
    out: list[list[str]] = [[mode] for _ in range(n)]
    done = np.zeros(n, dtype=bool)  # (B,)
    for _ in range(max_tokens):
        logits = logits.astype(np.float64)  # (B, V)
        logits[:, vocab.unk_id] = -np.inf
        if grammar:  # place k in the melody: 1 meter, 2 pickup, then pitch, duration, ...
            k = np.array([len(o) for o in out])  # (B,)
            kind = np.where(k < HEADER, k - 1, 2 + (k - HEADER) % 2)  # (B,)
            logits[~kinds[kind]] = -np.inf
        nxt = sample_next(logits, temperature, top_k, rng)  # (B,)
        for b in np.flatnonzero(~done):
            if nxt[b] == vocab.eos_id:
                done[b] = True
            else:
                out[b].append(vocab.token(int(nxt[b])))
        if done.all():
            break
        logits, state = model.step(nxt, state)
    return out


def well_formed(tokens: list[str]) -> Melody | None:
    """The melody these tokens spell (tonic C), or None if they spell none."""
    try:
        return from_tokens(tokens)
    except BpttError:
        return None


def third_shares(melodies: list[Melody]) -> tuple[float, float]:
    """Shares of notes on E (the major third of C) and on Eb (the minor third)."""
    pcs = [e.pitch % 12 for m in melodies for e in m.events if e.pitch is not None]
    n = max(1, len(pcs))
    return pcs.count(4) / n, pcs.count(3) / n


def report(model, data: ChoraleData) -> list[str]:
    """Test nats and bits per event of ``model`` beside the n-gram baselines."""
    train, val, test = data.ids(data.train), data.ids(data.val), data.ids(data.test)
    nll = event_nll(model, test)
    scores = metrics.ngram_baselines(train, (val, test), len(data.vocab), ORDERS, HEADER, events_of)
    best = min(scores, key=lambda k: scores[k][0])  # the order chosen on validation
    base = {k: v[1] for k, v in scores.items()}
    unknown = sum(int((s == data.vocab.unk_id).sum()) for s in test)
    verdict = "beats" if nll["loss"] < base[best] else "does not beat"
    shown = ", ".join(f"{k} {v:.3f}" for k, v in base.items())
    return [
        f"test: {len(data.test)} melodies, {events_of(test):,} events (each end counted as "
        f"one), {unknown} tokens not in the training vocabulary",
        f"test NLL per event: LSTM {nll['loss']:.3f} nats ({nll['bits_per_event']:.3f} bits)",
        f"n-grams (Kneser-Ney, fitted on the training melodies), nats per event: {shown}",
        f"the LSTM {verdict} the n-gram of the best validation NLL ({best}: {base[best]:.3f} "
        f"nats, {base[best] / math.log(2):.3f} bits per test event)",
    ]


def after_training(config: Config, checkpoint) -> None:
    """The test report; 100 melodies per label drawn freely (the share that is well-formed)
    and 100 in the token grammar (their thirds); three of each written as event lists, MIDI,
    WAV and PNG beside the checkpoint."""
    model, vocab, _, _ = lm.load_model(checkpoint)
    data = prepare_data(config)
    print("\n" + "\n".join(report(model, data)))
    e, eb = third_shares(data.test)
    print(f"test melodies: {e:.1%} of notes on E (major third), {eb:.1%} on Eb (minor third)")
    folder = Path(checkpoint).parent / "samples"
    written = []
    for k, mode in enumerate(MODES):
        free = sample_tokens(model, vocab, mode, 100, 1.0, config.seed + k, grammar=False)
        formed = sum(well_formed(t) is not None for t in free)
        ruled = sample_tokens(model, vocab, mode, 100, 1.0, config.seed + k)
        melodies = [m for m in map(well_formed, ruled) if m is not None]
        e, eb = third_shares(melodies)
        print(
            f"100 samples labelled {mode}: {formed} well-formed as drawn; drawn in the token "
            f"grammar, {len(melodies)} end within 600 tokens, {e:.1%} of their notes on E, "
            f"{eb:.1%} on Eb"
        )
        for i, m in enumerate(melodies[:3]):
            m = Melody(f"sample {mode} {i + 1}", m.mode, 0, m.meter, m.pickup, m.events)
            written += write_melody(m, folder / f"{mode}-{i + 1}")
            if i == 0:
                print(
                    f"--- a sampled melody (label {mode}, temperature 1.0) ---\n"
                    f"{' '.join(to_tokens(m))}"
                )
    if written:
        print(f"\nwritten: {len(written)} files in {folder} (event lists, MIDI, WAV, PNG)")


def sample_checkpoint(path, prompt=None, length=600, temperature=1.0, top_k=None, seed=0) -> str:
    """``bptt sample``: one melody drawn in the token grammar from the label ``prompt``
    (major or minor; default major), at most ``length`` tokens, as its tokens and event list."""
    model, vocab, _, _ = lm.load_model(path)
    mode = "major" if prompt is None else prompt.strip()
    if not 1 <= length <= 100_000:
        raise BpttError(f"length must be 1..100,000 tokens; got {length}")
    tokens = sample_tokens(model, vocab, mode, 1, temperature, seed, length, top_k=top_k)[0]
    melody = well_formed(tokens)
    if melody is None:
        return " ".join(tokens) + f"\n(no <eos> within {length} tokens: not a whole melody)"
    return " ".join(tokens) + "\n\n" + event_list(melody)


def evaluate_checkpoint(args) -> str:
    """``bptt eval``: the test report, or the NLL per event on the scores of ``args.text``."""
    model, vocab, config, _ = lm.load_model(args.checkpoint)
    if args.text is None:
        return "\n".join(report(model, prepare_data(config)))
    melodies = [m.in_c() for m in load_melodies(args.text)]
    ids = [vocab.encode([EOS, *to_tokens(m), EOS]) for m in melodies]
    nll = event_nll(model, ids)
    return (
        f"{args.text}: {len(melodies)} melodies, {events_of(ids):,} events, "
        f"{nll['loss']:.3f} nats ({nll['bits_per_event']:.3f} bits) per event"
    )


PRESET = {
    "out": "runs/chorales",
    "embed_size": 32,  # ~60 tokens: pitches, durations, meters, pickups, the two labels
    "hidden_size": 256,  # with dropout 0.5: val 2.54 nats/event; 128 with 0.3: 2.58-2.61
    "dropout": 0.5,  # before the output layer: ~13,000 training events overfit soon
    "batch_size": 16,  # streams of the training melodies, one after another
    "window": 64,  # ~30 events per window, the state carried on
    "lr": 3e-3,
    "steps": 700,  # ~26 epochs of ~27,000 tokens; validation is best near 500: ~3.5 minutes
    "eval_every": 100,  # each evaluation reads the 36 validation melodies (whole tunes)
    "test_fraction": 0.15,  # 52 melodies (2,591 events) never trained on
}

TASK = lm.text_task(
    sys.modules[__name__],
    "chorales",
    "text val_fraction test_fraction max_examples embed_size window",
    sample=sample_checkpoint,
)
