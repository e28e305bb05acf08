"""Music you can hear and see: a score as ABC, MIDI, WAV and a piano-roll PNG.

A score is either ABC text (a tune from :mod:`bptt.tasks.text.music`) or a music21
stream (a chorale from :mod:`bptt.tasks.text.chorales`); both go through
:func:`to_score` and :func:`notes_of`, so every writer takes either.

- MIDI: music21 writes it (extra ``music``), with the tempo as a metronome mark.
- WAV: a small NumPy synthesiser, no external player needed. The default voice
  is a Karplus–Strong plucked string: a delay line of P = rate / f samples is
  filled with noise and fed back through a two-point average,

      y_t = ρ · (y_{t-P} + y_{t-P-1}) / 2,

  which rings at f and loses its high partials first, as a string does
  (ρ < 1 sets the decay). The other voice is a sine with its octave and twelfth,
  a 10 ms attack and an exponential decay. Each note sounds from its onset to
  its end and is faded out over its last 5 ms (no clicks); the file lasts
  exactly the score at the tempo, ``round(end_q · 60 / tempo · rate)`` samples,
  16-bit PCM mono.
- PNG: a piano roll (extra ``plot``): time in quarter notes across, MIDI pitch
  up, one bar per note, the barlines of the score drawn in grey.

MIDI, WAV and PNG show the score as played: repeats written out (:func:`performed`).

Letters: N notes, S audio samples, P delay-line length.
"""

from __future__ import annotations

import copy
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.errors import BpttError

FORMATS = ("abc", "mid", "wav", "png")
VOICES = ("pluck", "sine")
FADE_S = 0.005  # release of every note, seconds


@dataclass(frozen=True)
class Note:
    """One sounding pitch: onset and length in quarter notes, MIDI pitch (60 = middle C)."""

    start: float
    duration: float
    pitch: int
    part: int = 0  # which part (voice) of the score, 0 first

    @property
    def end(self) -> float:
        return self.start + self.duration


def _music21():
    try:
        import music21
    except ImportError:
        raise BpttError(
            "reading and writing scores needs the package music21: pip install 'bptt[music]'"
        ) from None
    return music21


def abc_document(abc: str, title: str | None = None) -> str:
    """``abc`` as a complete ABC file: an ``X:`` reference number (and ``T:`` title) first."""
    abc = abc.strip("\n") + "\n"
    if re.match(r"X:", abc):
        return abc
    head = "X:1\n" + (f"T:{title}\n" if title else "")
    return head + abc


def to_score(music):
    """A music21 stream from ABC text (a tune, with or without ``X:``) or a music21 stream."""
    m21 = _music21()
    if isinstance(music, m21.stream.Stream):
        return music
    if not isinstance(music, str):
        raise BpttError(f"a score is ABC text or a music21 stream; got {type(music).__name__}")
    if not re.search(r"(?m)^K:", music):
        raise BpttError("ABC text needs a K: (key) line before its notes; got none")
    try:
        score = m21.converter.parse(abc_document(music), format="abc")
    except Exception as e:  # music21 raises many kinds on bad ABC
        raise BpttError(
            f"the ABC text does not parse in music21: {type(e).__name__}: {e}"
        ) from None
    return score


def performed(music):
    """The score as played: repeats (``|: :|``, first and second endings) written out.
    A score whose repeat signs do not pair up is played as written."""
    m21 = _music21()
    score = to_score(music)
    try:
        return score.expandRepeats()
    except Exception:  # music21 raises several kinds on unpaired repeats
        pass
    score = score.stripTies(inPlace=False)  # a copy, its repeat signs made plain barlines
    for m in score.recurse().getElementsByClass(m21.stream.Measure):
        if isinstance(m.leftBarline, m21.bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, m21.bar.Repeat):
            m.rightBarline = m21.bar.Barline("regular")
    for site in [score, *score.recurse().getElementsByClass(m21.stream.Stream)]:
        for bracket in list(site.getElementsByClass(m21.spanner.RepeatBracket)):
            site.remove(bracket)
    return score


def notes_of(music) -> list[Note]:
    """Every sounding pitch of the score as played (:func:`performed`), tied notes merged,
    grace notes (no length) left out, sorted by onset then pitch. A chord gives one note per
    pitch; the parts are overlaid, each note keeping its part's number."""
    score = performed(music)
    try:
        score = score.stripTies(inPlace=False)
        parts = list(getattr(score, "parts", [])) or [score]
        flats = [part.flatten() for part in parts]
    except Exception as e:
        raise BpttError(f"the score cannot be read note by note: {type(e).__name__}: {e}") from None
    notes = []
    for i, (part, flat) in enumerate(zip(parts, flats, strict=True)):
        shift = float(part.getOffsetInHierarchy(score)) if part is not score else 0.0
        for el in flat.notes:
            length = float(el.quarterLength)
            if length <= 0:
                continue  # a grace note
            at = shift + float(el.offset)
            notes += [Note(at, length, int(p.midi), i) for p in el.pitches]
    return sorted(notes, key=lambda n: (n.start, n.pitch, n.part))


def end_of(music, notes: list[Note] | None = None) -> float:
    """Length of the score as played, in quarter notes: the last note's end, or a later rest."""
    score = performed(music)
    notes = notes_of(score) if notes is None else notes
    last = max((n.end for n in notes), default=0.0)
    return max(last, float(score.highestTime))


# -- the synthesiser ------------------------------------------------------------------------


def karplus_strong(freq: float, n: int, rate: int, rng: np.random.Generator, rho=0.996):
    """``n`` samples of a plucked string at ``freq`` Hz: y_t = ρ (y_{t-P} + y_{t-P-1}) / 2."""
    P = max(2, round(rate / freq - 0.5))  # the loop delays P + 1/2 samples: f = rate / (P + 1/2)
    y = np.empty(max(n, P + 1))  # (S,)
    y[: P + 1] = rng.uniform(-1.0, 1.0, P + 1)  # the plucked delay line: noise
    y[: P + 1] -= y[: P + 1].mean()  # no DC offset
    for s in range(P + 1, len(y), P):  # one period at a time: every source sample is known
        e = min(s + P, len(y))
        y[s:e] = rho * 0.5 * (y[s - P : e - P] + y[s - P - 1 : e - P - 1])  # (e - s,)
    return y[:n]


def sine_tone(freq: float, n: int, rate: int) -> np.ndarray:
    """``n`` samples of a sine with its octave and twelfth, 10 ms attack, exponential decay."""
    t = np.arange(n) / rate  # (S,)
    tone = sum(a * np.sin(2 * np.pi * k * freq * t) for k, a in ((1, 1.0), (2, 0.3), (3, 0.1)))
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)  # (S,)
    return tone * envelope


def synthesize(
    notes: list[Note],
    tempo: float = 120.0,
    rate: int = 16000,
    voice: str = "pluck",
    seed: int = 0,
    end: float | None = None,
) -> np.ndarray:
    """Audio (S,) float in [-1, 1] of ``notes`` at ``tempo`` quarter notes per minute.

    S = round(end · 60 / tempo · rate), ``end`` (quarter notes) defaulting to the last
    note's end. Overlapping notes add; the sum is scaled to a peak of 0.9.
    """
    if voice not in VOICES:
        raise BpttError(f"voice must be one of {', '.join(VOICES)}; got {voice!r}")
    if not (tempo > 0 and np.isfinite(tempo)):
        raise BpttError(f"tempo must be a positive number of quarter notes a minute; got {tempo}")
    if not (isinstance(rate, int | np.integer) and 1000 <= rate <= 192000):
        raise BpttError(f"sample rate must be an integer in 1000..192000 Hz; got {rate!r}")
    seconds = 60.0 / tempo  # one quarter note
    end = max((n.end for n in notes), default=0.0) if end is None else end
    S = round(end * seconds * rate)
    audio = np.zeros(S)  # (S,)
    rng = np.random.default_rng(seed)
    fade = max(1, round(FADE_S * rate))
    for note in notes:
        a = round(note.start * seconds * rate)
        b = min(S, round(note.end * seconds * rate))
        if b <= a:
            continue
        freq = 440.0 * 2.0 ** ((note.pitch - 69) / 12)
        if voice == "pluck":
            tone = karplus_strong(freq, b - a, rate, rng)  # (b - a,)
        else:
            tone = sine_tone(freq, b - a, rate)  # (b - a,)
        k = min(fade, b - a)
        tone[-k:] *= np.linspace(1.0, 0.0, k)  # release: no click at the note's end
        audio[a:b] += tone
    peak = np.abs(audio).max() if S else 0.0
    return audio * (0.9 / peak) if peak > 0 else audio


def write_wav(path, audio: np.ndarray, rate: int = 16000) -> Path:
    """``audio`` (S,) in [-1, 1] as a 16-bit PCM mono WAV file."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise BpttError(f"audio must be mono, shape (S,); got shape {audio.shape}")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")  # (S,)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(pcm.tobytes())
    return Path(path)


# -- MIDI, ABC, piano roll --------------------------------------------------------------------


def write_midi(music, path, tempo: float = 120.0) -> Path:
    """The score as played, a standard MIDI file (music21) at ``tempo`` quarter notes a minute:
    one track per part holding exactly the notes the WAV plays (:func:`notes_of`), with the
    score's first key and time signature."""
    m21 = _music21()
    score = to_score(music)
    notes = notes_of(score)
    out = m21.stream.Score()
    signatures = [
        next(iter(score.recurse().getElementsByClass(kind)), None)
        for kind in (m21.meter.TimeSignature, m21.key.KeySignature)
    ]
    for i in sorted({n.part for n in notes}):
        part = m21.stream.Part()
        if i == 0:
            part.insert(0, m21.tempo.MetronomeMark(number=tempo, referent=1.0))
        for sign in signatures:
            if sign is not None:
                part.insert(0, copy.deepcopy(sign))
        for n in notes:
            if n.part == i:
                part.insert(n.start, m21.note.Note(n.pitch, quarterLength=n.duration))
        out.insert(0, part)
    try:
        out.write("midi", fp=str(path))
    except Exception as e:
        raise BpttError(f"music21 could not write MIDI: {type(e).__name__}: {e}") from None
    return Path(path)


def write_abc(abc: str, path, title: str | None = None) -> Path:
    Path(path).write_text(abc_document(abc, title), encoding="utf-8")
    return Path(path)


def _barlines(score) -> list[float]:
    """Onsets (quarter notes) of the measures of the score's first part."""
    m21 = _music21()
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    measures = parts[0].recurse().getElementsByClass(m21.stream.Measure)
    return sorted({float(m.getOffsetInHierarchy(score)) for m in measures})


def piano_roll(music, path, title: str | None = None) -> Path:
    """A PNG of the score: one bar per note, time across, MIDI pitch up, barlines in grey."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BpttError("the piano roll needs matplotlib: pip install 'bptt[plot]'") from None
    score = performed(music)
    notes = notes_of(score)
    if not notes:
        raise BpttError("the score has no notes to draw")
    end = end_of(score, notes)
    low, high = min(n.pitch for n in notes) - 2, max(n.pitch for n in notes) + 2
    fig, ax = plt.subplots(figsize=(min(24.0, 4.0 + end / 4), 4.0))
    for x in _barlines(score):
        ax.axvline(x, color="0.8", linewidth=0.8, zorder=0)
    for n in notes:
        color = plt.cm.tab10(n.part % 10)  # one colour per part (voice)
        box = plt.Rectangle((n.start, n.pitch - 0.4), n.duration, 0.8, fc=color, ec="black", lw=0.4)
        ax.add_patch(box)
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    ticks = list(range(low, high + 1))
    ax.set_yticks(ticks, [f"{names[p % 12]}{p // 12 - 1}" for p in ticks], fontsize=7)
    ax.set_xlim(0, end)
    ax.set_ylim(low - 0.5, high + 0.5)
    ax.set_xlabel("time (quarter notes); grey lines: barlines")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def output_paths(out, formats) -> dict[str, Path]:
    """``out`` (a stem such as ``tune``, or ``tune.abc``) -> {format: tune.<format>}."""
    out = Path(out)
    if out.suffix.lstrip(".") in FORMATS:
        out = out.with_suffix("")
    return {f: out.with_name(f"{out.name}.{f}") for f in formats}


def render(
    music,
    out,
    formats=None,
    tempo: float = 120.0,
    rate: int = 16000,
    voice: str = "pluck",
    title: str | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Write the score as ``out.abc`` (ABC text only), ``out.mid``, ``out.wav`` and ``out.png``.

    ``formats`` picks among ``FORMATS`` (default: all that apply). Nothing is
    written if one of the files already exists, unless ``force``.
    """
    m21 = _music21()
    is_text = isinstance(music, str)
    formats = tuple(f for f in FORMATS if is_text or f != "abc") if formats is None else formats
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BpttError(f"formats must be among {', '.join(FORMATS)}; got {', '.join(bad)}")
    if "abc" in formats and not is_text:
        raise BpttError("ABC output needs ABC text; a music21 stream is written as mid, wav, png")
    paths = output_paths(out, formats)
    there = [str(p) for p in paths.values() if p.exists()]
    if there and not force:
        raise BpttError(f"{', '.join(there)} already exist(s); choose another --out or --force")
    score = performed(music)  # parse once, before anything is written
    if not isinstance(score, m21.stream.Stream) or not notes_of(score):
        raise BpttError("the score has no notes to render")
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    for fmt, path in paths.items():
        if fmt == "abc":
            write_abc(music, path, title)
        elif fmt == "mid":
            write_midi(score, path, tempo)
        elif fmt == "wav":
            notes = notes_of(score)
            write_wav(path, synthesize(notes, tempo, rate, voice, end=end_of(score, notes)), rate)
        else:
            piano_roll(score, path, title)
    return paths
