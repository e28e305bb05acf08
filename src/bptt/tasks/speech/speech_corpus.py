"""Corpora of synthesised clips, cached on disk: synthesised once, read every time after.

:func:`make_corpus` turns a list of :class:`~bptt.tasks.speech.speech_synth.ClipSpec`
(text, voice, rate, pitch, noise, seed: everything that fixes a clip) into a
folder of 16 kHz WAV files and a ``transcripts.tsv``, under a cache folder keyed
by a hash of the specs, the generator's version and the engine's version, so a
second run reads instead of re-synthesising. The folder is built under a
temporary name and renamed into place in one step. :func:`read_corpus` reads
such a folder back as :class:`Clip` objects.

The clips themselves are made by :mod:`bptt.tasks.speech.speech_synth`
(:func:`~bptt.tasks.speech.speech_synth.render`).

Shapes: N samples (16 kHz).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bptt.data.audio import SAMPLE_RATE, read_wav, write_wav
from bptt.data.cache import cache_dir
from bptt.errors import BpttError, DataError
from bptt.tasks.speech.speech_engines import engine_version
from bptt.tasks.speech.speech_synth import (
    ENGINE_REVISIONS,
    GENERATOR_VERSION,
    ClipSpec,
    prefetch,
    render,
)
from bptt.tasks.speech.speech_voices import engine_of


@dataclass
class Clip:
    """One clip of a corpus: its WAV file, transcript and how it was made."""

    path: Path
    spec: ClipSpec
    words: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.spec.text

    def audio(self) -> np.ndarray:
        samples, rate = read_wav(self.path)
        if rate != SAMPLE_RATE:
            raise DataError(f"'{self.path}' is at {rate} Hz; the corpus is at {SAMPLE_RATE} Hz")
        return samples  # (N,)


def cache_root(folder=None) -> Path:
    """Where corpora are kept: ``folder``, else $BPTT_CACHE/speech, else
    $XDG_CACHE_HOME/bptt/speech, else ~/.cache/bptt/speech."""
    return Path(folder).expanduser() if folder else cache_dir("speech")


def corpus_key(specs: list[ClipSpec]) -> str:
    """A hash of the specs, the generator's version and the engines' versions (with bptt's
    revision of how it drives an engine, where there is one)."""
    engines = sorted({engine_of(s.voice) for s in specs})
    versions = {e: engine_version(e) for e in engines}
    for e in set(engines) & set(ENGINE_REVISIONS):  # only the revised engines' keys move
        versions[e] += f"; bptt revision {ENGINE_REVISIONS[e]}"
    head = {"generator": GENERATOR_VERSION, "engines": versions}
    blob = json.dumps([head, [asdict(s) for s in specs]], sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


CHUNK = 500  # clips synthesised per batch (Festival's words are said in one run a batch)
TSV_FIELDS = tuple("file text voice rate pitch snr_db noise seed by_word words".split())


def read_wav_file(path, reader: str) -> tuple[np.ndarray, int]:
    """The samples (N,) and rate of the WAV file a user named, for ``reader`` (e.g.
    "digits predicts from"); a BpttError says what was expected otherwise."""
    if not str(path).lower().endswith(".wav") or not Path(path).is_file():
        raise BpttError(f"{reader} a WAV file (bptt synth makes one); got {str(path)!r}")
    try:
        return read_wav(path)
    except DataError as e:
        raise BpttError(str(e)) from None


def _row(name: str, spec: ClipSpec, words) -> str:
    bounds = " ".join(f"{w}:{a}:{b}" for w, a, b in words)
    snr = "" if spec.snr_db is None else repr(spec.snr_db)
    numbers = (str(n) for n in (spec.rate, spec.pitch))
    said = (str(spec.seed), str(int(spec.by_word)), bounds)
    cells = [name, spec.text, spec.voice, *numbers, snr, spec.noise, *said]
    return "\t".join(cells)


def read_corpus(folder) -> list[Clip]:
    """The clips listed in ``folder``/transcripts.tsv (as :func:`make_corpus` writes it)."""
    folder = Path(folder)
    path = folder / "transcripts.tsv"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror}") from None
    if not lines or tuple(lines[0].split("\t")) != TSV_FIELDS:
        raise DataError(f"'{path}' must start with the header {' '.join(TSV_FIELDS)}")
    clips = []
    for n, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) != len(TSV_FIELDS):
            raise DataError(
                f"{path}:{n}: expected {len(TSV_FIELDS)} tab-separated fields, got {len(cells)}"
            )
        name, text, voice, rate, pitch, snr, noise, seed, by_word, bounds = cells
        try:
            spec = ClipSpec(
                text,
                voice,
                int(rate),
                int(pitch),
                float(snr) if snr else None,
                noise,
                int(seed),
                bool(int(by_word)),
            )
            words = [(w, int(a), int(b)) for w, a, b in (t.rsplit(":", 2) for t in bounds.split())]
        except ValueError:
            raise DataError(f"{path}:{n}: a number field does not parse") from None
        clips.append(Clip(folder / name, spec, words))
    return clips


def make_corpus(
    specs: list[ClipSpec], folder=None, workers: int = 2, progress: bool = False
) -> tuple[list[Clip], Path, bool]:
    """The clips of ``specs`` as 16 kHz WAV files with ``transcripts.tsv``, synthesised once.

    Args:
        specs: what to say, in order; clip i is ``clips/{i:06d}.wav``.
        folder: the cache root (default :func:`cache_root`); the corpus is its
            subfolder named by :func:`corpus_key`.
        workers: synthesis threads (each clip is an engine process; 2 suit 2 cores), also
            the Festival batches said side by side.
        progress: show a progress bar while synthesising.

    Returns:
        (clips, the corpus folder, whether it was read from the cache).
    """
    if not specs:
        raise BpttError("a corpus needs at least one clip spec; got none")
    bad = next((s.text for s in specs if re.search(r"[\t\n\r]", s.text)), None)
    if bad is not None:
        raise BpttError(f"a corpus text must be one line without tabs; got {bad!r}")
    root = cache_root(folder)
    final = root / corpus_key(specs)
    if (final / "transcripts.tsv").is_file():
        return read_corpus(final), final, True
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    except OSError as e:
        raise BpttError(f"cannot create the speech cache folder '{root}': {e.strerror}") from None
    try:
        (tmp / "clips").mkdir()
        names = [f"clips/{i:06d}.wav" for i in range(len(specs))]

        def one(i: int):
            samples, words = render(specs[i])
            write_wav(tmp / names[i], samples)
            return words

        bounds = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(specs), desc="synthesising", unit="clip")
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for at in range(0, len(specs), CHUNK):  # Festival's words said in one batch
                prefetch(specs[at : at + CHUNK], workers)
                bounds += pool.map(one, range(at, min(at + CHUNK, len(specs))))
                if bar is not None:
                    bar.update(min(CHUNK, len(specs) - at))
        if bar is not None:
            bar.close()
        rows = [_row(n, s, w) for n, s, w in zip(names, specs, bounds, strict=True)]
        (tmp / "transcripts.tsv").write_text(
            "\t".join(TSV_FIELDS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8"
        )
        try:
            os.rename(tmp, final)  # atomic: the corpus appears whole or not at all
        except OSError:
            if not (final / "transcripts.tsv").is_file():  # not a racing writer's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_corpus(final), final, False
