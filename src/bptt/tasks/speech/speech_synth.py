"""Spoken audio made on the spot: a voice of a real speech engine saying any text.

No speech corpus can be downloaded here, so the speech tasks speak their own with
the engines and voices of :mod:`bptt.tasks.speech.speech_voices`; each clip is resampled to
16 kHz mono float32 (:func:`bptt.data.audio.resample`) and mixed with white or pink
noise at a given signal-to-noise ratio.

Every clip draws a speaking rate and a pitch as well, so even one voice never says a
word twice the same way; each engine takes them its own way (:func:`synthesize`).
GnuSpeech and SAM run in one node process per batch (``js/say.mjs``: :func:`prefetch`),
since node and GnuSpeech's WebAssembly take about 0.3 s to start.

Corpora. A :class:`ClipSpec` (text, voice, rate, pitch, noise, seed) fixes a
clip; :mod:`bptt.tasks.speech.speech_corpus` turns a list of them into a cached folder
of WAV files and transcripts, synthesised once.

Shapes: N samples (16 kHz).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.data.audio import SAMPLE_RATE, decode_wav, resample
from bptt.errors import BpttError
from bptt.tasks.speech.speech_engines import (
    MBROLA_VOICES,
    NPM_ENGINES,
    SAM_VOICES,
    pico_wav,
    piper_wav,
    pitch_factor,
    require_engine,
    rhvoice_wav,
    run_engine,
)
from bptt.tasks.speech.speech_npm import npm_prefix
from bptt.tasks.speech.speech_voices import Voice, engine_of, parse_voice

GENERATOR_VERSION = 1  # bump when a change makes the same spec sound different
# Bumped when a change makes one engine's specs sound different (part of its corpora's key):
# 2, Festival's HTS voice takes the rate as its speed, no longer by resampling.
ENGINE_REVISIONS = {"festival": 2}
RATE_RANGE = (130, 220)  # espeak-ng -s: words per minute (its default 175)
PITCH_RANGE = (25, 75)  # espeak-ng -p: 0..99 (its default 50)
SNR_RANGE = (10.0, 30.0)  # dB of speech over the added noise
NOISES = ("white", "pink")
GAP_RANGE = (0.05, 0.35)  # seconds of silence between words spoken one by one
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# ---------------------------------------------------------------- one clip
def digits_to_words(text: str) -> str:
    """Numerals spoken digit by digit: ``"3 1 4"`` and ``"314"`` -> "three one four"."""
    spaced = re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m.group())]} ", text)
    return " ".join(spaced.split())


def synthesize(text: str, voice: Voice, rate: int = 175, pitch: int = 50) -> np.ndarray:
    """``voice`` saying ``text``, clean: (N,) float32 at 16 kHz.

    rate: words per minute (espeak-ng ``-s``); pitch: 0..99 (espeak-ng ``-p``). flite and
    Festival's diphone voices take them as a duration stretch 175 / rate and a mean f0
    80 + 1.6·pitch Hz. Festival's HTS voice and Piper take the pitch by resampling at
    2^((pitch - 50) / 100), their speed (hts_engine's ``-r``, Piper's length scale)
    stretched to keep the rate. GnuSpeech: its tempo and its pitch offset (±4 semitones
    about its own -4); SAM: its preset speed and pitch periods scaled by 175 / rate and
    2^(-(pitch - 50) / 75); SVOX Pico and RHVoice: percents, 100 · rate / 175 and
    100 · 2^((pitch - 50) / 100); MBROLA: its front end's (espeak-ng's or Festival's).
    """
    if not text.strip():
        raise BpttError("there is no text to speak (got an empty string)")
    if not 80 <= rate <= 450 or not 0 <= pitch <= 99:
        raise BpttError(f"rate must be in 80..450 and pitch in 0..99; got {rate}, {pitch}")
    engine, variant = voice.engine, voice.variant
    if engine == "mbrola":  # its diphones, said by espeak-ng's or Festival's front end
        require_engine("mbrola")
        engine, variant = MBROLA_VOICES[variant]  # ("espeak-ng", "mb-us1"), ("festival", ...)
    exe = require_engine(engine)
    speed = 1.0
    if engine == "espeak-ng":
        name = variant if voice.engine == "mbrola" else voice.name
        cmd = [exe, "--stdout", "-v", name, "-s", str(rate), "-p", str(pitch), "--", text]
        data = run_engine(cmd, f"espeak-ng ({name})").stdout
    elif engine == "festival":
        data = _FESTIVAL_READY.get((text, variant, rate, pitch))  # a word may repeat
        if data is None:
            data = _festival(exe, text, variant, rate, pitch)
        if variant.endswith("_hts"):
            speed = pitch_factor(pitch)
    elif engine == "pico":
        data = pico_wav(exe, text, variant, rate, pitch)
    elif engine == "rhvoice":
        data = rhvoice_wav(exe, text, variant, rate, pitch)
    elif engine == "piper":  # the rate as its length scale, the pitch by resampling
        speed = pitch_factor(pitch)
        data = piper_wav(text, variant, 175 / rate * speed)
    elif voice.engine in NPM_ENGINES:
        item = (voice.engine, text, voice.variant, rate, pitch)
        data = _NODE_READY.get(item) or _node_batch(exe, [item], strict=True)[item]
    else:
        with tempfile.TemporaryDirectory(prefix="bptt-flite-") as tmp:
            out = Path(tmp) / "clip.wav"
            stretch = f"duration_stretch={175 / rate:.4f}"
            f0 = f"int_f0_target_mean={80 + 1.6 * pitch:.1f}"
            cmd = [exe, "-voice", voice.variant, "--setf", stretch, "--setf", f0]
            cmd += ["-t", text, "-o", str(out)]  # the text in, the WAV out
            run_engine(cmd, f"flite ({voice.variant})")
            data = out.read_bytes()
    samples, rate_in = decode_wav(data, f"{voice.engine}'s output")
    if len(samples) == 0:
        raise BpttError(f"{voice.engine} ({voice.name}) produced no audio for {text!r}")
    if speed != 1.0:  # played faster: rate_in · speed read as rate_in
        return resample(samples, round(rate_in * speed / 50) * 50, SAMPLE_RATE)  # (N,)
    return resample(samples, rate_in, SAMPLE_RATE)  # (N,)


_FESTIVAL_READY: dict[tuple[str, str, int, int], bytes] = {}  # said in the last prefetch


def _festival_evals(variant: str, rate: int, pitch: int) -> list[str]:
    if variant.endswith("_hts"):  # hts_engine's speed, slowed by the resampling to come
        speed = rate / 175 / pitch_factor(pitch)
        return [f"(set! hts_engine_params (append {variant}::hts_engine_params "
                f"'((\"-r\" {speed:.4f}))))"]  # fmt: skip
    f0 = 80 + 1.6 * pitch
    return [
        f"(Parameter.set 'Duration_Stretch {175 / rate:.4f})",
        f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {f0 / 8:.1f}) "
        f"(model_f0_mean 170) (model_f0_std 34)))",
    ]


# Said in the last prefetch, by (engine, text, variant, rate, pitch).
_NODE_READY: dict[tuple[str, str, str, int, int], bytes] = {}
SAY_SCRIPT = Path(__file__).with_name("js") / "say.mjs"


def _node_item(engine: str, text: str, variant: str, rate: int, pitch: int, out: str) -> dict:
    """One word of a ``js/say.mjs`` batch: the engine's own parameters for a rate and pitch."""
    if engine == "gnuspeech":
        tempo, offset = rate / 175, -4 + (pitch - 50) / 6.25
        return dict(engine=engine, text=text, voice=variant, tempo=round(tempo, 4),
                    pitch_offset=round(offset, 3), out=out)  # fmt: skip
    speed, period, throat, mouth = SAM_VOICES[variant]
    speed = min(255, max(1, round(speed * 175 / rate)))
    period = min(255, max(1, round(period * 2 ** (-(pitch - 50) / 75))))
    return dict(engine=engine, text=text, speed=speed, pitch=period, throat=throat, mouth=mouth,
                out=out)  # fmt: skip


def _node_batch(exe: str, items: list, strict: bool = False) -> dict:
    """WAV bytes of each (engine, text, variant, rate, pitch) of ``items``, said by one node
    process (``js/say.mjs``); a word that fails is left out (``strict``: a BpttError)."""
    with tempfile.TemporaryDirectory(prefix="bptt-node-") as tmp:
        batch = [_node_item(*item, f"{tmp}/{i}.wav") for i, item in enumerate(items)]
        cmd = [exe, str(SAY_SCRIPT), str(npm_prefix())]
        try:
            done = subprocess.run(
                cmd, input=json.dumps(batch).encode(), capture_output=True, timeout=600
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BpttError(f"node ({SAY_SCRIPT.name}) failed: {e}") from None
        said = {}
        for i, item in enumerate(items):
            out = Path(tmp) / f"{i}.wav"
            if out.is_file():
                said[item] = out.read_bytes()
        if strict and len(said) < len(items):
            err = done.stderr.decode(errors="replace").strip()[-2000:]
            raise BpttError(f"{items[0][0]} failed (node exit {done.returncode}): {err}")
        return said


def prefetch(specs, workers: int = 1) -> None:
    """Say every Festival word or text of ``specs`` (ClipSpecs) in ``festival -b`` runs,
    one per voice split into ``workers`` parts run side by side, so that :func:`synthesize`
    finds them ready (a Festival process takes about 0.5 s to start; a batch says 50 words
    a second; each utterance sets its own rate and pitch, so how they are batched does not
    change a sample, and the batch's WAV is byte for byte text2wave's). They stay ready
    until the next prefetch, since a word may be said again ("nine nine")."""
    _FESTIVAL_READY.clear()
    _NODE_READY.clear()
    wanted, on_node = {}, set()
    for spec in specs:
        engine = engine_of(spec.voice)
        variant = spec.voice.split(":", 1)[-1]
        if engine == "mbrola":  # Festival's front end says some of them
            engine, variant = MBROLA_VOICES[variant]
        if engine not in ("festival", *NPM_ENGINES):
            continue
        for text in spec.text.split() if spec.by_word else [spec.text]:
            if engine == "festival":
                wanted.setdefault(variant, set()).add((text, spec.rate, spec.pitch))
            else:
                on_node.add((engine, text, variant, spec.rate, spec.pitch))
    if on_node:  # GnuSpeech and SAM: the words split into `workers` node processes
        _prefetch_node(sorted(on_node), workers)
    exe = shutil.which("festival")
    if not wanted or exe is None:
        return
    batches = []
    for variant, items in sorted(wanted.items()):
        batches += [(variant, part) for part in _parts(sorted(items), workers)]
    if len(batches) == 1:
        _festival_batch(exe, *batches[0])
        return
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda batch: _festival_batch(exe, *batch), batches))


def _prefetch_node(items: list, workers: int) -> None:
    """Say ``items`` (engine, text, variant, rate, pitch) in ``workers`` node processes
    side by side, into _NODE_READY."""
    exe = ""
    for engine in sorted({item[0] for item in items}):
        exe = require_engine(engine)  # node, with the engine's npm package installed once
    parts = _parts(items, workers)
    with ThreadPoolExecutor(len(parts)) as pool:
        for said in pool.map(lambda part: _node_batch(exe, part), parts):
            _NODE_READY.update(said)


def _parts(items: list, workers: int) -> list[list]:
    """``items`` cut into at most ``workers`` runs of nearly equal length, in order."""
    size = -(-len(items) // max(1, workers))
    return [items[at : at + size] for at in range(0, len(items), size)]


def _festival_batch(exe: str, variant: str, items: list[tuple[str, int, int]]) -> None:
    """Say ``items`` (text, rate, pitch) in ``variant`` in one ``festival -b`` run, into
    _FESTIVAL_READY (left out on a failure: :func:`synthesize` then says them one by one)."""
    with tempfile.TemporaryDirectory(prefix="bptt-festival-") as tmp:
        lines = [f"(voice_{variant})"]
        for i, (text, rate, pitch) in enumerate(items):
            said = text.replace("\\", " ").replace('"', " ")
            lines += _festival_evals(variant, rate, pitch)
            lines.append(
                f'(utt.save.wave (utt.synth (Utterance Text "{said}")) '
                f'"{tmp}/{i}.wav" (quote riff))'
            )
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            subprocess.run([exe, "-b", str(script)], capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return
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
            done = subprocess.run(
                cmd, input=text.encode("utf-8"), capture_output=True, timeout=60, check=False
            )
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
    voice: str  # Voice.name: "en-us+m3", "flite:slt", "festival:kal_diphone", "sam:elf"...
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
