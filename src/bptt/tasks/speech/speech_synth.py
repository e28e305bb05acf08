"""Spoken audio made on the spot: real speech engines, many voices, a split by voice.

No speech corpus can be downloaded here, so the speech tasks speak their own:
Debian's ``espeak-ng`` (formant synthesis), ``flite`` (diphone and statistical
parametric voices) and Festival's ``text2wave`` (diphone and HTS voices) say any text,
which is resampled to 16 kHz mono float32
(:func:`bptt.data.audio.resample`) and mixed with white or pink noise at a given
signal-to-noise ratio.

Voices. An espeak-ng voice is an accent (a language file: ``en-us``,
``en-gb-scotland``...) with a variant (a speaker: formants, pitch range,
breath, roughness: ``m3``, ``f2``, ``whisper``, ``klatt4``...), named
``en-us+m3``; a flite voice is ``flite:slt``, a Festival voice
``festival:kal_diphone``. Festival's diphone voices take the rate (``Duration_Stretch``)
and pitch (the target f0 mean); its HTS voice ignores both, so its rate and pitch are
varied together by resampling (a speed factor 175 / rate, as a tape played faster).
Every clip draws a speaking rate
and a pitch as well, so even one voice never says a word twice the same way.

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
speaker; Festival's as ``festival:kal``, ``festival:ked``, ``festival:slt``: a speaker
id names its engine, except espeak-ng's, whose ids are kept so that no voice changes
split). Note that flite's kal and slt and Festival's kal_diphone and slt_arctic_hts
are built from the same recordings (Kevin Lenzo's diphones, CMU ARCTIC's slt): across
engines the recordings may repeat, the synthesis method does not. With espeak-ng 1.51's
101 variants this puts 19 variants (including
the female f1, f2, f3) in test, 9 in validation and 73 in train; a hash keeps
each family's split when a new espeak-ng adds variants. Accents are not
speakers and are shared by all splits: a test voice is an accent the model has
heard, spoken by a speaker it has never heard under any accent.

Held-out engine (:func:`engine_voices`): train on two engines and test on the third.
Training voices: every voice of the training engines outside the validation split;
validation voices: the training engines' validation split (with espeak-ng held out,
flite and Festival have no validation speaker, so validation is other clips of the
training voices); test voices: every voice of the held-out engine, which no training
or validation clip uses. :func:`draw_voice` draws the engine first, then the voice,
so that an engine of 5 voices weighs as much as one of 800.

Corpora. A :class:`ClipSpec` (text, voice, rate, pitch, noise, seed) fixes a
clip; :mod:`bptt.tasks.speech.speech_corpus` turns a list of them into a cached folder
of WAV files and transcripts, synthesised once.

Shapes: N samples (16 kHz).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from bptt.data.audio import SAMPLE_RATE, decode_wav, resample
from bptt.errors import BpttError

GENERATOR_VERSION = 1  # bump when a change makes the same spec sound different
ENGINES = ("espeak-ng", "flite", "festival")
SPLITS = ("train", "validation", "test")
# espeak-ng's English accents (its "gmw/" language files; the "mb/" ones need MBROLA).
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")  # fmt: skip
# flite's general-domain voices (awb_time speaks only clock times; kal is kal16 at 8 kHz).
FLITE_VOICES = ("awb", "kal", "kal16", "rms", "slt")
# Festival's English voices (Debian: festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts).
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
RATE_RANGE = (130, 220)  # espeak-ng -s: words per minute (its default 175)
PITCH_RANGE = (25, 75)  # espeak-ng -p: 0..99 (its default 50)
SNR_RANGE = (10.0, 30.0)  # dB of speech over the added noise
NOISES = ("white", "pink")
GAP_RANGE = (0.05, 0.35)  # seconds of silence between words spoken one by one
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
APT_HINT = {"espeak-ng": "apt-get install espeak-ng", "flite": "apt-get install flite",
            "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k "
            "festvox-us-slt-hts"}  # fmt: skip


# ---------------------------------------------------------------- engines and voices
def require_engine(engine: str) -> str:
    """The path of the program of ``engine`` ("espeak-ng", "flite" or "festival": text2wave).

    Raises:
        BpttError: naming the Debian/Ubuntu package when it is not on PATH.
    """
    if engine not in ENGINES:
        raise BpttError(f"speech engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    path = shutil.which(PROGRAMS[engine])
    if path is None:
        raise BpttError(
            f"speech synthesis needs the program '{PROGRAMS[engine]}', which is not on PATH; "
            f"install it (Debian/Ubuntu): {APT_HINT[engine]}"
        )
    return path


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BpttError(f"{what} failed: {e}") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise BpttError(f"{what} failed (exit {done.returncode}): {err}")
    return done


@cache
def engine_version(engine: str) -> str:
    """The engine's own version line (part of a corpus's cache key)."""
    exe = require_engine(engine)
    if engine == "festival":
        exe = shutil.which("festival") or exe
    flag = "-version" if engine == "flite" else "--version"
    return _run([exe, flag], f"{engine} {flag}").stdout.decode(errors="replace").strip()


@cache
def _espeak_variants() -> tuple[str, ...]:
    listing = _run([require_engine("espeak-ng"), "--voices=variant"], "espeak-ng --voices")
    found = re.findall(r"!v/(.*\S)\s*$", listing.stdout.decode(errors="replace"), re.MULTILINE)
    return tuple(sorted(set(found)))


@cache
def _espeak_accents() -> tuple[str, ...]:
    listing = _run([require_engine("espeak-ng"), "--voices=en"], "espeak-ng --voices")
    files = re.findall(r"\sgmw/(\S+)", listing.stdout.decode(errors="replace"))
    installed = {f.lower() for f in files}  # gmw/en-GB-scotland is -v en-gb-scotland
    return tuple(a for a in ACCENTS if a in installed)


@cache
def _flite_voices() -> tuple[str, ...]:
    listing = _run([require_engine("flite"), "-lv"], "flite -lv").stdout.decode(errors="replace")
    installed = set(listing.split(":", 1)[-1].split())
    return tuple(v for v in FLITE_VOICES if v in installed)


@cache
def _festival_voices() -> tuple[str, ...]:
    require_engine("festival")
    exe = shutil.which("festival")
    if exe is None:
        raise BpttError(f"Festival's voices are listed by 'festival', which is not on PATH; "
                        f"install it (Debian/Ubuntu): {APT_HINT['festival']}")  # fmt: skip
    try:
        done = subprocess.run([exe, "--pipe"], input=b"(print (voice.list))\n",
                              capture_output=True, timeout=60, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BpttError(f"festival (listing voices) failed: {e}") from None
    installed = set(done.stdout.decode(errors="replace").strip("()\n ").split())
    return tuple(v for v in FESTIVAL_VOICES if v in installed)


def engine_of(voice_name: str) -> str:
    """The engine of a voice name: "flite:slt" -> "flite", "festival:kal_diphone" ->
    "festival", anything else (an espeak-ng accent+variant) -> "espeak-ng"."""
    head = voice_name.split(":", 1)[0] if ":" in voice_name else ""
    return head if head in ("flite", "festival") else "espeak-ng"


def speaker_of(engine: str, variant: str) -> str:
    """The speaker family a voice belongs to (the unit of the train/validation/test split)."""
    if engine == "flite":
        return "flite:" + ("kal" if variant.startswith("kal") else variant)
    if engine == "festival":  # kal_diphone -> festival:kal, cmu_us_slt_arctic_hts -> festival:slt
        return "festival:" + variant.removeprefix("cmu_us_").split("_")[0]
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
    """An engine's voice: espeak-ng ``accent+variant``, or a flite or Festival ``variant``
    (accent "")."""

    engine: str
    accent: str
    variant: str

    @property
    def name(self) -> str:
        if self.engine in ("flite", "festival"):
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
            found += [Voice(engine, a, v) for a in _espeak_accents() for v in _espeak_variants()]
        elif engine == "flite":
            found += [Voice(engine, "", v) for v in _flite_voices()]
        elif engine == "festival":
            found += [Voice(engine, "", v) for v in _festival_voices()]
        else:
            raise BpttError(f"speech engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return sorted(v for v in found if split is None or v.split == split)


def engine_voices(role: str, test_engine: str) -> list[Voice]:
    """The held-out-engine protocol's voices for ``role`` ("train", "validation", "test"):
    training and validation voices come from the engines other than ``test_engine``
    (outside and inside their validation split), test voices are every voice of
    ``test_engine``."""
    if test_engine not in ENGINES:
        raise BpttError(f"the held-out engine must be one of {', '.join(ENGINES)}; "
                        f"got {test_engine!r}")  # fmt: skip
    if role == "test":
        return voices(None, (test_engine,))
    others = tuple(e for e in ENGINES if e != test_engine)
    train = [v for v in voices(None, others) if v.split in ("train", "test")]
    if role == "validation":  # flite and Festival have no validation speaker: their own
        return voices("validation", others) or train  # voices, in other clips
    if role == "train":
        return train
    raise BpttError(f"role must be one of {', '.join(SPLITS)}; got {role!r}")


def draw_voice(pool: list[Voice], rng: np.random.Generator) -> Voice:
    """A voice of ``pool``: an engine uniformly among the pool's engines, then one of its
    voices uniformly."""
    engines = sorted({v.engine for v in pool})
    engine = engines[int(rng.integers(len(engines)))]
    own = [v for v in pool if v.engine == engine]
    return own[int(rng.integers(len(own)))]


def parse_voice(name: str) -> Voice:
    """``"en-us+m3"`` (espeak-ng accent and variant), ``"en-us"`` (the accent's own
    default voice), ``"flite:slt"`` or ``"festival:kal_diphone"`` -> a :class:`Voice`,
    checked against what is installed."""
    if name.startswith("festival:"):
        variant = name.split(":", 1)[1]
        if variant not in _festival_voices():
            raise BpttError(f"Festival voice must be one of {', '.join(_festival_voices())}; "
                            f"got {variant!r}")  # fmt: skip
        return Voice("festival", "", variant)
    if name.startswith("flite:"):
        variant = name.split(":", 1)[1]
        if variant not in _flite_voices():
            raise BpttError(
                f"flite voice must be one of {', '.join(_flite_voices())}; got {variant!r}"
            )
        return Voice("flite", "", variant)
    accent, _, variant = name.partition("+")
    if accent not in _espeak_accents():
        raise BpttError(
            f"voice {name!r}: the accent must be one of "
            f"{', '.join(_espeak_accents())}; got {accent!r}"
        )
    if variant and variant not in _espeak_variants():
        raise BpttError(
            f"voice {name!r}: no espeak-ng variant {variant!r} is installed "
            f"(espeak-ng --voices=variant lists them)"
        )
    return Voice("espeak-ng", accent, variant)


# ---------------------------------------------------------------- one clip
def digits_to_words(text: str) -> str:
    """Numerals spoken digit by digit: ``"3 1 4"`` and ``"314"`` -> "three one four"."""
    spaced = re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m.group())]} ", text)
    return " ".join(spaced.split())


def synthesize(text: str, voice: Voice, rate: int = 175, pitch: int = 50) -> np.ndarray:
    """``voice`` saying ``text``, clean: (N,) float32 at 16 kHz.

    rate: words per minute (espeak-ng ``-s``; flite and Festival diphones: duration
    stretch 175 / rate); pitch: 0..99 (espeak-ng ``-p``; flite and Festival diphones:
    mean f0 80 + 1.6·pitch Hz). Festival's HTS voice: both by one speed factor
    175 / rate · 2^((pitch - 50) / 100) applied by resampling.
    """
    if not text.strip():
        raise BpttError("there is no text to speak (got an empty string)")
    if not 80 <= rate <= 450 or not 0 <= pitch <= 99:
        raise BpttError(f"rate must be in 80..450 and pitch in 0..99; got {rate}, {pitch}")
    exe = require_engine(voice.engine)
    speed = 1.0
    if voice.engine == "espeak-ng":
        cmd = [exe, "--stdout", "-v", voice.name, "-s", str(rate), "-p", str(pitch), "--", text]
        data = _run(cmd, f"espeak-ng ({voice.name})").stdout
    elif voice.engine == "festival":
        data = _FESTIVAL_READY.pop((text, voice.variant, rate, pitch), None)
        if data is None:
            data = _festival(exe, text, voice.variant, rate, pitch)
        if voice.variant.endswith("_hts"):
            speed = rate / 175 * 2 ** ((pitch - 50) / 100)
    else:
        with tempfile.TemporaryDirectory(prefix="bptt-flite-") as tmp:
            out = Path(tmp) / "clip.wav"
            cmd = [exe, "-voice", voice.variant, "--setf", f"duration_stretch={175 / rate:.4f}",
                   "--setf", f"int_f0_target_mean={80 + 1.6 * pitch:.1f}", "-t", text,
                   "-o", str(out)]  # fmt: skip
            _run(cmd, f"flite ({voice.variant})")
            data = out.read_bytes()
    samples, rate_in = decode_wav(data, f"{voice.engine}'s output")
    if len(samples) == 0:
        raise BpttError(f"{voice.engine} ({voice.name}) produced no audio for {text!r}")
    if speed != 1.0:  # played faster: rate_in · speed read as rate_in
        return resample(samples, round(rate_in * speed / 50) * 50, SAMPLE_RATE)  # (N,)
    return resample(samples, rate_in, SAMPLE_RATE)  # (N,)


_FESTIVAL_READY: dict[tuple[str, str, int, int], bytes] = {}  # said in a batch, not yet read


def _festival_evals(variant: str, rate: int, pitch: int) -> list[str]:
    f0 = 80 + 1.6 * pitch
    return [f"(Parameter.set 'Duration_Stretch {175 / rate:.4f})",
            f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {f0 / 8:.1f}) "
            f"(model_f0_mean 170) (model_f0_std 34)))"]  # fmt: skip


def prefetch(specs) -> None:
    """Say every Festival word or text of ``specs`` (ClipSpecs) in one ``festival -b`` run
    per voice, so that :func:`synthesize` finds them ready (a Festival process takes
    about 0.5 s to start; a batch says 50 words a second)."""
    wanted = {}
    for spec in specs:
        if engine_of(spec.voice) != "festival":
            continue
        variant = spec.voice.split(":", 1)[1]
        for text in spec.text.split() if spec.by_word else [spec.text]:
            wanted.setdefault(variant, set()).add((text, spec.rate, spec.pitch))
    exe = shutil.which("festival")
    if not wanted or exe is None:
        return
    for variant, items in sorted(wanted.items()):
        items = sorted(items)
        with tempfile.TemporaryDirectory(prefix="bptt-festival-") as tmp:
            lines = [f"(voice_{variant})"]
            for i, (text, rate, pitch) in enumerate(items):
                said = text.replace("\\", " ").replace('"', " ")
                lines += _festival_evals(variant, rate, pitch)
                lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{said}")) '
                             f'"{tmp}/{i}.wav" (quote riff))')  # fmt: skip
            script = Path(tmp) / "batch.scm"
            script.write_text("\n".join(lines) + "\n", encoding="utf-8")
            try:
                subprocess.run([exe, "-b", str(script)], capture_output=True, timeout=600,
                               check=False)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired):
                continue  # synthesize() says them one by one
            for i, (text, rate, pitch) in enumerate(items):
                out = Path(tmp) / f"{i}.wav"
                if out.is_file():
                    _FESTIVAL_READY[text, variant, rate, pitch] = out.read_bytes()


def _festival(exe: str, text: str, variant: str, rate: int, pitch: int) -> bytes:
    """WAV bytes of Festival's ``text2wave`` saying ``text`` in ``variant``."""
    evals = [f"(voice_{variant})", *_festival_evals(variant, rate, pitch)]
    with tempfile.TemporaryDirectory(prefix="bptt-festival-") as tmp:
        out = Path(tmp) / "clip.wav"
        cmd = [exe, *(a for e in evals for a in ("-eval", e)), "-o", str(out)]
        try:
            done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True,
                                  timeout=60, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BpttError(f"festival ({variant}) failed: {e}") from None
        if done.returncode != 0 or not out.is_file():
            err = done.stderr.decode(errors="replace").strip()
            raise BpttError(f"festival ({variant}) failed (exit {done.returncode}): {err}")
        return out.read_bytes()


def add_noise(
    samples: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white"
) -> np.ndarray:
    """``samples`` (N,) plus noise n scaled so that 10 log10(mean x² / mean n²) = snr_db.

    "white": flat spectrum; "pink": power ∝ 1/f (the rfft of white noise scaled by
    1/√f), which masks speech's low formants more.
    """
    if colour not in NOISES:
        raise BpttError(f"noise must be one of {', '.join(NOISES)}; got {colour!r}")
    x = np.asarray(samples, dtype=np.float64)  # (N,)
    noise = rng.standard_normal(len(x))  # (N,)
    if colour == "pink" and len(x) > 1:
        spectrum = np.fft.rfft(noise)  # (N//2+1,)
        f = np.arange(len(spectrum), dtype=np.float64)  # (N//2+1,)
        spectrum[1:] /= np.sqrt(f[1:])
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=len(x))  # (N,)
    power = float(np.mean(x**2))
    scale = np.sqrt(power / 10 ** (snr_db / 10) / max(float(np.mean(noise**2)), 1e-30))
    return (x + scale * noise).astype(np.float32)  # (N,)


def trim(samples: np.ndarray, threshold: float = 0.03) -> np.ndarray:
    """``samples`` without the leading and trailing 10 ms frames whose RMS is below
    ``threshold`` times the loudest frame's (the engines' silence around a word)."""
    hop = SAMPLE_RATE // 100
    n = len(samples) // hop
    if n == 0:
        return samples
    frames = np.asarray(samples[: n * hop], dtype=np.float64).reshape(n, hop)  # (F, hop)
    rms = np.sqrt((frames**2).mean(axis=1))  # (F,)
    loud = np.flatnonzero(rms >= threshold * rms.max())
    if len(loud) == 0:
        return samples[:0]
    return samples[loud[0] * hop : (loud[-1] + 1) * hop]


def speak_words(
    words: list[str],
    voice: Voice,
    rate: int,
    pitch: int,
    rng: np.random.Generator,
    gap: tuple[float, float] = GAP_RANGE,
) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Each word said on its own, trimmed of silence and joined by random gaps (drawn
    uniformly from ``gap`` seconds, also before the first and after the last word).

    Returns:
        (samples (N,) float32 at 16 kHz, [(word, start, end)] sample offsets: the
        word is samples[start:end], exactly).
    """
    if not words:
        raise BpttError("speak_words needs at least one word; got none")
    pieces, bounds, at = [], [], 0
    for word in words:
        silence = np.zeros(int(rng.uniform(*gap) * SAMPLE_RATE), dtype=np.float32)
        spoken = trim(synthesize(word, voice, rate, pitch))  # (N_w,)
        pieces += [silence, spoken]
        bounds.append((word, at + len(silence), at + len(silence) + len(spoken)))
        at += len(silence) + len(spoken)
    pieces.append(np.zeros(int(rng.uniform(*gap) * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(pieces), bounds  # (N,)


@dataclass(frozen=True)
class ClipSpec:
    """Everything that fixes one clip: the same spec always gives the same samples.

    ``snr_db`` None: no noise. ``by_word``: each word said alone and joined by
    random gaps (:func:`speak_words`), which gives exact word boundaries.
    """

    text: str
    voice: str  # Voice.name: "en-us+m3", "flite:slt" or "festival:kal_diphone"
    rate: int = 175
    pitch: int = 50
    snr_db: float | None = None
    noise: str = "white"
    seed: int = 0
    by_word: bool = False


def draw_spec(
    text: str,
    voice: Voice,
    rng: np.random.Generator,
    by_word: bool = False,
    snr_range: tuple[float, float] | None = SNR_RANGE,
) -> ClipSpec:
    """A spec with a random rate (RATE_RANGE), pitch (PITCH_RANGE), SNR (``snr_range``;
    None: clean), noise colour and noise seed."""
    rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    snr = None if snr_range is None else round(float(rng.uniform(*snr_range)), 2)
    noise = NOISES[int(rng.integers(len(NOISES)))]
    seed = int(rng.integers(2**31))
    return ClipSpec(text, voice.name, rate, pitch, snr, noise, seed, by_word)


def render(spec: ClipSpec) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """The clip a spec describes: (samples (N,) float32 at 16 kHz, word boundaries, [] unless
    ``spec.by_word``)."""
    voice, rng = parse_voice(spec.voice), np.random.default_rng(spec.seed)
    if spec.by_word:
        samples, bounds = speak_words(spec.text.split(), voice, spec.rate, spec.pitch, rng)
    else:
        samples, bounds = synthesize(spec.text, voice, spec.rate, spec.pitch), []
    if spec.snr_db is not None:
        samples = add_noise(samples, spec.snr_db, rng, spec.noise)
    return samples, bounds


def speak(
    text: str,
    voice: Voice | str,
    rng: np.random.Generator,
    by_word: bool = False,
    snr_range: tuple[float, float] | None = SNR_RANGE,
):
    """``voice`` saying ``text`` at a random rate, pitch and noise: (samples (N,) float32 at
    16 kHz, word boundaries [(word, start, end)] or [], the :class:`ClipSpec` used)."""
    voice = parse_voice(voice) if isinstance(voice, str) else voice
    spec = draw_spec(text, voice, rng, by_word, snr_range)
    samples, bounds = render(spec)
    return samples, bounds, spec
