"""The voices of the speech engines and their fixed split by speaker.

The engines (espeak-ng, flite and Festival, which a held-out test may use, and the
training-only GnuSpeech, SAM, MBROLA, SVOX Pico, Piper and RHVoice) are in
:mod:`bptt.tasks.speech.speech_engines`.

Voices. An espeak-ng voice is an accent (a language file: ``en-us``,
``en-gb-scotland``...) with a variant (a speaker: formants, pitch range,
breath, roughness: ``m3``, ``f2``, ``whisper``, ``klatt4``...), named
``en-us+m3``; another engine's voice is ``<engine>:<voice>``: ``flite:slt``,
``festival:kal_diphone``, ``mbrola:us1``, ``pico:en-GB``, ``piper:joe``, ``rhvoice:alan``.

The split by voice (fixed, documented, the same on every machine). The speaker
is what must never be heard in training, so the split is made per *speaker
family*: the variant's name without a trailing number (``robosoft3`` ->
``robosoft``, ``klatt4`` -> ``klatt``: numbered variants are near copies of
one voice), except ``m1``..``m8`` and ``f1``..``f5``, which are eight and five
different speakers. A family goes to

    test        if crc32(family) mod 20 ∈ {0, 1, 2}     (~15%)
    validation  if crc32(family) mod 20 ∈ {3, 4}        (~10%)
    train       otherwise

(flite speakers as ``flite:<speaker>``, with ``kal`` and ``kal16`` one
speaker; Festival's as ``festival:kal``, ``festival:ked``, ``festival:slt``,
``festival:rab``, ``festival:don``, all five in train: a speaker id names its engine,
except espeak-ng's, whose ids are kept so that no voice changes split). Note that
flite's kal and slt and Festival's kal_diphone and slt_arctic_hts are built from the same
recordings (Kevin Lenzo's diphones, CMU ARCTIC's slt): across engines the recordings may
repeat, the synthesis method does not. With espeak-ng 1.51's 101 variants this puts 19
variants (including the female f1, f2, f3) in test, 9 in validation and 73 in train; a
hash keeps each family's split when a new espeak-ng adds variants. Accents are not
speakers and are shared by all splits: a test voice is an accent the model has
heard, spoken by a speaker it has never heard under any accent.

Held-out engine (:func:`engine_voices`): train on two engines and test on the third.
Training voices: every voice of the training engines outside the validation split,
less one voice kept for validation (:data:`VALIDATION_VOICES`: Festival's ked, or
flite's rms when Festival is held out); validation voices: the training engines'
validation split and that voice; test voices: every voice of the held-out engine,
which no training or validation clip uses. :func:`draw_voice` draws the engine first,
then the voice, so that an engine of 5 voices weighs as much as one of 800. Extra
engines (``--extra-engines gnuspeech,sam,mbrola,pico``) add their voices outside their
validation split to training only: validation and test stay the same clips, so runs with and
without them are compared on the same validation.
"""

from __future__ import annotations

import re
import shutil
import zlib
from dataclasses import dataclass

import numpy as np

from bptt.errors import BpttError
from bptt.tasks.speech.speech_engines import (
    ALL_ENGINES,
    APT_HINT,
    ENGINES,
    EXTRA_ENGINES,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    MBROLA_VOICES,
    PICO_VOICES,
    PROGRAMS,
    RHVOICE_VOICES,
    espeak_accents,
    espeak_variants,
    installed_voices,
)

SPLITS = ("train", "validation", "test")
ROLES = ("training", "validation", "test")  # each split's speakers, in a summary
# What a speech task's --dataset names: the engines whose voices it trains on ("default": espeak).
DATASETS = {
    "default": ("espeak-ng",),
    "espeak": ("espeak-ng",),
    "espeak+flite": ("espeak-ng", "flite"),
}
# The voices bptt takes from each packaged engine, installed or not (a missing one gets
# the engine's install hint).
KNOWN_VOICES = {
    "flite": FLITE_VOICES,
    "festival": FESTIVAL_VOICES,
    "mbrola": tuple(MBROLA_VOICES),
    "pico": PICO_VOICES,
    "rhvoice": RHVOICE_VOICES,
}
# Held out of training in the held-out-engine protocol, for validation: the first of a
# training engine (Festival's ked: a diphone voice; flite's rms: a statistical one).
VALIDATION_VOICES = ("festival:ked_diphone", "flite:rms")


def engine_of(voice_name: str) -> str:
    """The engine of a voice name: "flite:slt" -> "flite", "festival:kal_diphone" ->
    "festival", anything else (an espeak-ng accent+variant) -> "espeak-ng"."""
    head = voice_name.split(":", 1)[0] if ":" in voice_name else ""
    return head if head in ALL_ENGINES else "espeak-ng"


def speaker_of(engine: str, variant: str) -> str:
    """The speaker family a voice belongs to (the unit of the train/validation/test split)."""
    if engine == "flite":
        return "flite:" + ("kal" if variant.startswith("kal") else variant)
    if engine == "festival":  # kal_diphone -> festival:kal, cmu_us_slt_arctic_hts -> festival:slt
        return "festival:" + variant.removeprefix("cmu_us_").split("_")[0]
    if engine == "mbrola":  # one speaker through either front end: us1, us1-festival
        return "mbrola:" + variant.removesuffix("-festival")
    if engine in EXTRA_ENGINES:  # each voice its own speaker: gnuspeech:female, pico:en-gb
        return f"{engine}:{variant.lower()}"
    if not variant:
        return "espeak-ng:default"  # an accent's own voice (never in voices())
    if re.fullmatch(r"[mf]\d+", variant):
        return variant  # m1..m8, f1..f5: different speakers
    return variant.rstrip("0123456789").lower()  # robosoft3 -> robosoft: near copies


def split_of(speaker: str) -> str:
    """ "train", "validation" or "test": fixed by crc32 of the speaker family (see above)."""
    bucket = zlib.crc32(speaker.encode("utf-8")) % 20
    return "test" if bucket < 3 else "validation" if bucket < 5 else "train"


@dataclass(frozen=True, order=True)
class Voice:
    """An engine's voice: espeak-ng ``accent+variant``, or another engine's ``variant``
    (accent "")."""

    engine: str
    accent: str
    variant: str

    @property
    def name(self) -> str:
        if self.engine != "espeak-ng":
            return f"{self.engine}:{self.variant}"
        return f"{self.accent}+{self.variant}" if self.variant else self.accent

    @property
    def speaker(self) -> str:
        return speaker_of(self.engine, self.variant)

    @property
    def split(self) -> str:
        """The voice's split; "none" for an accent's own default voice (in no corpus)."""
        return split_of(self.speaker) if self.variant else "none"


def installed_engines() -> tuple[str, ...]:
    """The engines of :data:`ENGINES` whose program is on PATH."""
    return tuple(e for e in ENGINES if shutil.which(PROGRAMS[e]))


def voices(split: str | None = None, engines: tuple[str, ...] = ("espeak-ng",)) -> list[Voice]:
    """The installed voices of ``engines`` in ``split`` ("train", "validation", "test";
    None: all), sorted. espeak-ng gives every accent with every variant."""
    if split is not None and split not in SPLITS:
        raise BpttError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    found = []
    for engine in engines:
        if engine == "espeak-ng":
            found += [Voice(engine, a, v) for a in espeak_accents() for v in espeak_variants()]
        else:
            found += [Voice(engine, "", v) for v in installed_voices(engine)]
    return sorted(v for v in found if split is None or v.split == split)


def parse_extra_engines(text: str, test_engine: str) -> tuple[str, ...]:
    """``--extra-engines`` ("gnuspeech,sam,mbrola,pico"; "": none) -> the training-only
    engines, in the order of :data:`EXTRA_ENGINES`; they join the held-out-engine protocol
    only."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXTRA_ENGINES]
    if unknown:
        raise BpttError(
            f"--extra-engines takes {', '.join(EXTRA_ENGINES)} (comma-separated); "
            f"got {', '.join(map(repr, unknown))}"
        )
    if names and not test_engine:
        raise BpttError(
            "--extra-engines adds training voices to the held-out-engine protocol; "
            "give --test-engine too (e.g. --test-engine festival)"
        )
    return tuple(e for e in EXTRA_ENGINES if e in names)


def held_out_engines(test_engine: str, extra: str = "") -> tuple[str, ...]:
    """Every engine of a held-out-engine run: the three test engines and the extra
    training-only ones that ``extra`` (``--extra-engines``) names."""
    return ENGINES + parse_extra_engines(extra, test_engine)


def training_engine_names(test_engine: str, engines: tuple[str, ...]) -> list[str]:
    """The engines a held-out-engine run trains on: every engine of ``engines`` but
    ``test_engine`` (for a summary line)."""
    return [e for e in engines if e != test_engine]


def dataset_engines(task: str, dataset: str) -> tuple[str, ...]:
    """The engines a task's ``--dataset`` names (see :data:`DATASETS`)."""
    if dataset not in DATASETS:
        choices = " or ".join(list(DATASETS)[1:])
        raise BpttError(f"{task} reads --dataset {choices}; got {dataset!r}")
    return DATASETS[dataset]


def split_voices(split: str, engines: tuple[str, ...]) -> list[Voice]:
    """:func:`voices` of ``split``, at least one (a BpttError names the split otherwise)."""
    found = voices(split, engines)
    if not found:
        raise BpttError(f"no installed voice falls in the {split} split of {', '.join(engines)}")
    return found


def draw_rng(seed: int, split: str, engines: tuple[str, ...], test_engine: str = ""):
    """The generator a task's ``split`` draws its clips from, the same on every run: one
    stream per engine set, and the held-out-engine protocol's own with a ``test_engine``."""
    stream = 100 + ENGINES.index(test_engine) if test_engine else len(engines)
    return np.random.default_rng([seed, SPLITS.index(split), stream])


def corpus_line(what: str, voices: str, speakers: dict, features: str, folder=None) -> str:
    """A speech task's data in one line for its summary: what is said, by which voices (and
    how many speakers each split holds), read as which features, cached where."""
    counts = [f"{speakers[s]} {role}" for s, role in zip(SPLITS, ROLES, strict=True)]
    cached = "" if folder is None else f", cached in {folder}"
    return f"{what}, {voices} ({', '.join(counts)} speakers), {features}{cached}"


def by_accent(errors, sizes, accents: list[str], what: str) -> str:
    """A report's accent part, ``" | by accent, <what>: en-029 0.2376 (362), ..."``:
    Σ errors / Σ sizes of each espeak-ng accent, worst first, and each one's Σ sizes
    ("" when no voice has an accent). An accent changes how a word is said, not only how
    a voice sounds, so a held-out espeak-ng test is also a test of accents that no other
    engine speaks."""
    errors, sizes, accents = np.asarray(errors), np.asarray(sizes), np.array(accents)  # (N,)
    rate = {a: errors[accents == a].sum() / sizes[accents == a].sum() for a in set(accents) if a}
    worst = sorted(rate, key=lambda a: (-rate[a], a))
    cells = [f"{a} {rate[a]:.4f} ({sizes[accents == a].sum()})" for a in worst]
    return f" | by accent, {what}: {', '.join(cells)}" if cells else ""


def engine_voices(role: str, test_engine: str, extra: tuple[str, ...] = ()) -> list[Voice]:
    """The held-out-engine protocol's voices for ``role`` ("train", "validation", "test"):
    training and validation voices come from the engines other than ``test_engine``,
    test voices are every voice of ``test_engine``. Validation holds the training
    engines' validation split and the first voice of :data:`VALIDATION_VOICES` of a
    training engine, which no training clip uses: a voice unheard in training, so that
    choices made on validation favour what carries over to an unheard voice. The
    ``extra`` engines (of :data:`EXTRA_ENGINES`; others in it are ignored, so a task may
    pass its whole engine list) add their voices outside their validation split to
    training, and nothing to validation or test; MBROLA's only those whose front end is
    not the test engine's (its voices said by Festival when espeak-ng is tested, and the
    other way round), and Piper's (espeak-ng's phonemes) not when espeak-ng is tested."""
    extra = tuple(e for e in extra if e in EXTRA_ENGINES)
    if test_engine not in ENGINES:
        raise BpttError(
            f"the held-out engine must be one of {', '.join(ENGINES)}; got {test_engine!r}"
        )
    if role == "test":
        return voices(None, (test_engine,))
    others = tuple(e for e in ENGINES if e != test_engine)
    kept = [v for v in voices(None, others) if v.split in ("train", "test")]
    held = next((n for n in VALIDATION_VOICES if engine_of(n) in others), "")
    if role == "validation":  # a voice no training clip uses, of another synthesis method
        return voices("validation", others) + [v for v in kept if v.name == held]
    if role == "train":
        installed = [v for v in voices(None, extra) if v.split != "validation"]
        added = [v for v in installed if front_end(v) != test_engine]
        for engine in extra:
            if any(v.engine == engine for v in added):
                continue
            if any(v.engine == engine for v in installed):  # all said by the tested front end
                raise BpttError(
                    f"--extra-engines {engine}: its installed voices read {test_engine}'s "
                    f"front end (its phonemes), so they cannot train a model tested on "
                    f"{test_engine}; leave it out"
                    + (
                        f" or give it the other front end: {APT_HINT[engine]}"
                        if engine == "mbrola"
                        else ""
                    )
                )
            raise BpttError(
                f"--extra-engines {engine} has no installed voice to train a model tested "
                f"on {test_engine}; install: {APT_HINT[engine]}"
            )
        return [v for v in kept if v.name != held] + added
    raise BpttError(f"role must be one of {', '.join(SPLITS)}; got {role!r}")


def front_end(voice: Voice) -> str:
    """The engine whose front end (text to phonemes, durations, intonation) says ``voice``:
    its own, but MBROLA's, which espeak-ng or Festival drives, and Piper's, which reads
    espeak-ng's phonemes (its own model gives their durations and pitch)."""
    if voice.engine == "piper":
        return "espeak-ng"
    return MBROLA_VOICES[voice.variant][0] if voice.engine == "mbrola" else voice.engine


def draw_voice(pool: list[Voice], rng: np.random.Generator, extra_share: float = 1.0) -> Voice:
    """A voice of ``pool``: an engine among the pool's engines, then one of its voices
    uniformly. The engines are equally likely, but for the training-only ones
    (EXTRA_ENGINES), each ``extra_share`` times as likely as another (``--extra-share``)."""
    engines = sorted({v.engine for v in pool})
    weights = np.array([extra_share if e in EXTRA_ENGINES else 1.0 for e in engines])  # (E,)
    if np.all(weights == 1.0):  # the draw every earlier corpus was made with
        engine = engines[int(rng.integers(len(engines)))]
    else:
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
    own = [v for v in pool if v.engine == engine]
    return own[int(rng.integers(len(own)))]


def parse_voice(name: str) -> Voice:
    """``"en-us+m3"`` (espeak-ng accent and variant), ``"en-us"`` (the accent's own
    default voice), ``"flite:slt"``, ``"festival:kal_diphone"``, ``"gnuspeech:female"``,
    ``"sam:elf"``, ``"mbrola:us1"``, ``"pico:en-GB"`` or ``"piper:joe"`` -> a
    :class:`Voice`, checked against what is installed (an npm engine's voices are its
    package's)."""
    engine, colon, variant = name.partition(":")
    if colon and engine in ALL_ENGINES and engine != "espeak-ng":
        installed = installed_voices(engine)
        if variant not in installed:
            who = "Festival" if engine == "festival" else engine
            if variant in KNOWN_VOICES.get(engine, ()):  # a voice bptt uses, not installed here
                raise BpttError(
                    f"{who} voice {variant!r} is not installed (installed: "
                    f"{', '.join(installed) or 'none'}); {APT_HINT[engine]}"
                )
            raise BpttError(f"{who} voice must be one of {', '.join(installed)}; got {variant!r}")
        return Voice(engine, "", variant)
    accent, _, variant = name.partition("+")
    if accent not in espeak_accents():
        raise BpttError(
            f"voice {name!r}: the accent must be one of "
            f"{', '.join(espeak_accents())}; got {accent!r}"
        )
    if variant and variant not in espeak_variants():
        raise BpttError(
            f"voice {name!r}: no espeak-ng variant {variant!r} is installed "
            f"(espeak-ng --voices=variant lists them)"
        )
    return Voice("espeak-ng", accent, variant)
