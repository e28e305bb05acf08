"""The trigger task's data: 10-second clips of noise with words said at random times, and
the frame labels that mark the half second after each "activate".

Words. :mod:`bptt.tasks.speech.speech_synth` says each word once per take (espeak-ng,
a random rate and pitch, no noise, trimmed of silence, exact boundaries) into a
*word bank* per split, cached as a corpus like any other. A split's bank uses
only that split's voices, so test clips hold only speakers never heard in
training. The distractors are ordinary words and words that sound like the
trigger ("activity", "captivate", "motivate"...).

Clips, composed from a bank with NumPy (fixed by a seed per clip):

    background   white, pink or brown noise, level so the words stand
                 SNR_RANGE dB above it; half the clips add babble (a stream of
                 distractor words from other voices of the split, 12..20 dB down)
    words        0..3 triggers and 0..4 distractors, each at a random start,
                 none overlapping another (MIN_GAP apart), each word scaled to
                 the same RMS times a random gain (GAIN_DB)

Labels (the assignment's): with hop = 10 ms and a trigger ending at sample e,

    y_t = 1  if  ceil(e / hop) <= t < ceil(e / hop) + 50     (the 0.5 s after it)
    y_t = 0  otherwise                                       t: feature frame

Shapes: N samples, T frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt.data.audio import HOP_SECONDS, SAMPLE_RATE
from bptt.errors import BpttError, DataError
from bptt.tasks.speech import speech_corpus as corpus
from bptt.tasks.speech import speech_synth as synth
from bptt.tasks.speech import speech_voices as sv

TRIGGER = "activate"
# Words that share the trigger's sounds: the model must hear the whole word.
SIMILAR = tuple(
    "activity active captivate cultivate motivate activist elevate relative navigate vacate".split()
)
OTHER = tuple(
    "hello computer window music weather lights kitchen tomorrow banana station coffee seven "
    "yellow morning please garden evening number open water".split()
)
DISTRACTORS = SIMILAR + OTHER

HOP = round(HOP_SECONDS * SAMPLE_RATE)  # 160 samples per feature frame
CLIP_SECONDS = 10.0  # every clip, training included
LABEL_FRAMES = 50  # frames (0.5 s) labelled 1 after a trigger ends

DATA_SEED = 11  # the banks and clips do not follow --seed
COMPOSE_VERSION = 1  # bump when a change makes the same seed compose another clip
TAKES = {"train": (2, 4), "validation": (3, 6), "test": (3, 6)}  # per voice: triggers, others
BANK_VOICES: dict[str, int | None] = {"train": None, "validation": None, "test": None}  # None: all
TRIGGER_COUNTS, TRIGGER_ODDS = (0, 1, 2, 3), (0.15, 0.4, 0.3, 0.15)  # triggers per clip
MAX_DISTRACTORS = 4  # 0..4 distractor words per clip, uniformly
SNR_RANGE = (8.0, 30.0)  # dB of a full-level word over the background
GAIN_DB = (-6.0, 0.0)  # each word's level below full
BABBLE_ODDS, BABBLE_DB = 0.5, (-20.0, -12.0)  # share of clips with babble, its level
MIN_GAP = 0.1  # seconds between two placed words
BACKGROUNDS = ("white", "pink", "brown")
WORD_RMS = 0.05  # a full-level word's RMS (clips stay well inside [-1, 1])


# ---------------------------------------------------------------- the word bank
@dataclass
class Bank:
    """A split's spoken words: ``triggers`` (N_i,) each, ``others`` (word, (N_i,)) pairs."""

    triggers: list[np.ndarray]
    others: list[tuple[str, np.ndarray]]

    def __post_init__(self):
        if not self.triggers or not self.others:
            raise DataError(
                f"a word bank needs triggers and other words; got {len(self.triggers)} "
                f"triggers and {len(self.others)} other words"
            )


HELD_OUT_DRAWS = {"train": 400, "validation": 60, "test": 60}  # voices drawn, engine first


def bank_specs(
    split: str, engines: tuple[str, ...] = ("espeak-ng",), test_engine: str = "", extra_share=1.0
) -> list[synth.ClipSpec]:
    """Per voice of ``split`` (BANK_VOICES[split] of them, a fixed shuffle; None: all):
    TAKES[split] triggers and distractors, each a single word with exact bounds. With a
    ``test_engine``: HELD_OUT_DRAWS[split] voices of the held-out-engine protocol
    (:func:`bptt.tasks.speech.speech_synth.engine_voices`), drawn engine first, so the hard
    negatives (SIMILAR) are said by every training engine."""
    if test_engine:
        pool = sv.engine_voices(split, test_engine, engines)
        rng = sv.draw_rng(DATA_SEED, split, engines, test_engine)
        draws = range(HELD_OUT_DRAWS[split])
        voices = (sv.draw_voice(pool, rng, extra_share) for _ in draws)
        return [s for voice in voices for s in _takes(split, voice, rng)]
    voices = sv.split_voices(split, engines)
    rng = sv.draw_rng(DATA_SEED, split, engines)
    order = rng.permutation(len(voices))[: BANK_VOICES[split]]  # (V',)
    return [s for v in order for s in _takes(split, voices[v], rng)]


def _takes(split: str, voice: sv.Voice, rng: np.random.Generator) -> list[synth.ClipSpec]:
    """TAKES[split] single words said by ``voice``: the triggers, then distractors drawn."""
    n_trigger, n_other = TAKES[split]
    words = [TRIGGER] * n_trigger + list(rng.choice(DISTRACTORS, n_other, replace=False))
    return [synth.draw_spec(str(w), voice, rng, by_word=True, snr_range=None) for w in words]


def load_bank(
    split: str, engines=("espeak-ng",), folder=None, progress=False, test_engine="", extra_share=1.0
) -> Bank:
    """The bank of ``split``, synthesised once (:func:`.speech_corpus.make_corpus`)."""
    specs = bank_specs(split, engines, test_engine, extra_share)
    clips, _, _ = corpus.make_corpus(specs, folder, progress=progress)
    triggers, others = [], []
    for clip in clips:
        if len(clip.words) != 1:
            raise DataError(f"'{clip.path}': a bank clip holds one word, found {len(clip.words)}")
        word, a, b = clip.words[0]
        audio = clip.audio()[a:b]  # (N_w,) the word exactly
        if len(audio) < HOP:
            continue  # an engine said nothing audible
        (triggers.append(audio) if word == TRIGGER else others.append((word, audio)))
    return Bank(triggers, others)


def bank_for(split: str, engines, folder=None, progress=False, test_engine="", extra_share=1.0):
    """(the bank's cache key, a function that loads the bank, how many speakers it has):
    the clips of a split are cached under the key, so the bank is read only to compose."""
    specs = bank_specs(split, engines, test_engine, extra_share)
    speakers = len({sv.parse_voice(s.voice).speaker for s in specs})
    load = lambda: load_bank(split, engines, folder, progress, test_engine, extra_share)  # noqa: E731
    return corpus.corpus_key(specs), load, speakers


def augment_bank(bank: Bank, parts: tuple[str, ...], seed: int) -> Bank:
    """``bank`` with every word through the audio ``parts`` of :mod:`bptt.data.augment`
    (word i drawn from (seed, i, 9); babble of the bank's other words); the words stay
    single words, so their bounds in a composed clip stay exact."""
    from bptt.data.augment import augment_audio

    others = [a for _, a in bank.others]
    words = [(TRIGGER, a) for a in bank.triggers] + bank.others
    out = []
    for i, (word, audio) in enumerate(words):
        rng = np.random.default_rng([seed, i, 9])
        crowd = [others[j] for j in rng.integers(len(others), size=8)]
        out.append((word, augment_audio(audio, parts, rng, crowd)))  # (N_i',)
    return Bank([a for w, a in out if w == TRIGGER], [(w, a) for w, a in out if w != TRIGGER])


# ---------------------------------------------------------------- composing a clip
def background(n: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Noise (n,) of RMS 1: "white" (flat), "pink" (power ∝ 1/f) or "brown" (∝ 1/f²)."""
    if kind not in BACKGROUNDS:
        raise BpttError(f"background must be one of {', '.join(BACKGROUNDS)}; got {kind!r}")
    noise = rng.standard_normal(n)  # (n,)
    if kind != "white":
        spectrum = np.fft.rfft(noise)  # (n//2+1,)
        f = np.arange(1, len(spectrum), dtype=np.float64)  # (n//2,)
        spectrum[1:] /= np.sqrt(f) if kind == "pink" else f
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=n)  # (n,)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-30)  # (n,)


def place(lengths, n_samples: int, rng: np.random.Generator, tail=None) -> list[int | None]:
    """Random starts for words of ``lengths`` samples in a clip of ``n_samples``, no two
    closer than MIN_GAP; word i must end ``tail[i]`` samples before the clip's end.
    A word that does not fit after 50 tries gets None (it is left out)."""
    tail = [0] * len(lengths) if tail is None else tail
    gap = int(MIN_GAP * SAMPLE_RATE)
    taken: list[tuple[int, int]] = []
    starts: list[int | None] = []
    for length, after in zip(lengths, tail, strict=True):
        latest = n_samples - length - after
        start = None
        for _ in range(50 if latest >= 0 else 0):
            s = int(rng.integers(0, latest + 1))
            if all(s + length + gap <= a or s >= b + gap for a, b in taken):
                start = s
                break
        if start is not None:
            taken.append((start, start + length))
        starts.append(start)
    return starts


def compose(
    bank: Bank, rng: np.random.Generator, seconds: float = CLIP_SECONDS, negatives_only=False
):
    """A clip: background, babble (sometimes) and words at random free places;
    ``negatives_only``: no trigger, and MAX_DISTRACTORS other words, half of them
    SIMILAR to the trigger when the bank has them (the audio of a false-alarm test).

    Returns:
        (samples (N,) float32, words [(word, start, end)] sorted by start: the word is
        at samples[start:end]).
    """
    n = round(seconds * SAMPLE_RATE)
    n_trigger = int(rng.choice(TRIGGER_COUNTS, p=TRIGGER_ODDS))
    n_other = int(rng.integers(0, MAX_DISTRACTORS + 1))
    if negatives_only:
        n_trigger, n_other = 0, MAX_DISTRACTORS
    chosen = [(TRIGGER, bank.triggers[i]) for i in rng.integers(len(bank.triggers), size=n_trigger)]
    hard = [i for i, (w, _) in enumerate(bank.others) if w in SIMILAR]
    for j in range(n_other):
        pool = hard if negatives_only and hard and j % 2 == 0 else range(len(bank.others))
        chosen.append(bank.others[pool[int(rng.integers(len(pool)))]])
    order = rng.permutation(len(chosen))  # triggers and others in random turn
    chosen = [chosen[i] for i in order]
    label = LABEL_FRAMES * HOP  # a trigger's label window stays inside the clip
    tail = [label if w == TRIGGER else 0 for w, _ in chosen]
    starts = place([len(a) for _, a in chosen], n, rng, tail)

    snr = rng.uniform(*SNR_RANGE)
    clip = background(n, rng, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])  # (N,)
    clip *= WORD_RMS * 10 ** (-snr / 20)
    if rng.random() < BABBLE_ODDS:
        clip += _babble(bank, n, rng) * (WORD_RMS * 10 ** (rng.uniform(*BABBLE_DB) / 20))
    words = []
    for (word, audio), start in zip(chosen, starts, strict=True):
        if start is None:
            continue
        gain = WORD_RMS * 10 ** (rng.uniform(*GAIN_DB) / 20) / _rms(audio)
        clip[start : start + len(audio)] += gain * audio
        words.append((word, start, start + len(audio)))
    return clip.astype(np.float32), sorted(words, key=lambda w: w[1])


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-12)


def _babble(bank: Bank, n: int, rng: np.random.Generator) -> np.ndarray:
    """Distractor words one after another (gaps of 0..0.3 s) over the clip, each RMS 1."""
    out, at = np.zeros(n), int(rng.integers(0, SAMPLE_RATE // 2))  # (N,)
    while at < n:
        _, audio = bank.others[int(rng.integers(len(bank.others)))]
        piece = audio[: n - at] / _rms(audio)  # (≤ N_w,)
        out[at : at + len(piece)] += piece
        at += len(audio) + int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    return out  # (N,)


# ---------------------------------------------------------------- frame labels
def frame_labels(trigger_ends, num_frames: int) -> np.ndarray:
    """(T,) int64: 1 at the LABEL_FRAMES frames from ceil(e / hop) on, for each trigger end
    e (samples), 0 elsewhere (see the module docstring)."""
    y = np.zeros(num_frames, dtype=np.int64)  # (T,)
    for e in trigger_ends:
        first = -(-int(e) // HOP)  # ceil(e / hop)
        y[first : first + LABEL_FRAMES] = 1
    return y
