"""A chorale melody as events and tokens, and back: the encoding :mod:`bptt.tasks.text.chorales`
trains on (its docstring says what is kept exactly, what is dropped, and why two tokens
per event), and a melody written out as an event list, MIDI, WAV and PNG. music21 is
imported only by the functions that read or write scores.

Shapes: N events.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from bptt.errors import BpttError, DataError

MODES = ("major", "minor")
HEADER = 3  # tokens after <eos> before the first event: label, meter, pickup
REST = "R"
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # spelling in C


@dataclass(frozen=True)
class Event:
    """One sounding note (``pitch`` a MIDI number) or rest (``pitch`` None)."""

    pitch: int | None
    duration: Fraction  # quarter notes, > 0
    fermata: bool = False


@dataclass(frozen=True)
class Melody:
    name: str
    mode: str  # "major" or "minor": the label
    tonic: int  # pitch class 0..11 of the key's tonic
    meter: str  # the first time signature, e.g. "4/4"
    pickup: Fraction  # quarter notes before the first full bar (0: none)
    events: tuple[Event, ...]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "mode": self.mode,
            "tonic": self.tonic,
            "meter": self.meter,
            "pickup": str(self.pickup),
            "events": [[e.pitch, str(e.duration), e.fermata] for e in self.events],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Melody:
        events = tuple(Event(p, Fraction(q), bool(f)) for p, q, f in d["events"])
        return cls(d["name"], d["mode"], int(d["tonic"]), d["meter"], Fraction(d["pickup"]), events)

    def onsets(self) -> list[Fraction]:
        """Each event's offset from the start, in quarter notes: the running sum of durations."""
        out, t = [], Fraction(0)
        for e in self.events:
            out.append(t)
            t += e.duration
        return out

    def transposed(self, semitones: int) -> Melody:
        events = tuple(
            Event(None if e.pitch is None else e.pitch + semitones, e.duration, e.fermata)
            for e in self.events
        )
        tonic = (self.tonic + semitones) % 12
        return Melody(self.name, self.mode, tonic, self.meter, self.pickup, events)

    def in_c(self) -> Melody:
        """Transposed so its tonic is C, by the smallest shift (-6..+5 semitones)."""
        shift = -self.tonic % 12
        return self.transposed(shift - 12 if shift > 5 else shift)


def _has_fermata(n) -> bool:
    return any(type(x).__name__ == "Fermata" for x in n.expressions)


def soprano(score):
    """The part named Soprano (``Soprano 1``, ``Soprano Oboe 1 Violin1``), else the first."""
    parts = list(score.parts)
    if not parts:
        raise DataError("the score has no parts")
    named = [p for p in parts if (p.partName or "").strip().lower().startswith("soprano")]
    return (named or parts)[0]


def score_key(score) -> tuple[int, str]:
    """(tonic pitch class, mode) as the score states it, else music21's key analysis."""
    from music21 import key

    stated = [k for k in score.recurse().getElementsByClass(key.Key) if k.mode in MODES]
    k = stated[0] if stated else score.analyze("key")
    if k.mode not in MODES:
        raise DataError(f"expected a major or minor key; music21 gives mode {k.mode!r}")
    return k.tonic.pitchClass, k.mode


def melody_from_score(score, name: str = "") -> Melody:
    """The soprano's events, meter, pickup and key (see the module docstring)."""
    from music21 import chord, meter, note, stream

    part = soprano(score)
    signatures = list(part.recurse().getElementsByClass(meter.TimeSignature))
    if not signatures:
        raise DataError(f"{name}: the soprano has no time signature")
    bar = Fraction(signatures[0].barDuration.quarterLength)
    measures = list(part.getElementsByClass(stream.Measure))
    first = Fraction(measures[0].duration.quarterLength) if measures else bar
    pickup = first if 0 < first < bar else Fraction(0)

    events: list[Event] = []
    end = Fraction(0)  # where the last event ends
    tied = False  # the last event is a note whose tie continues into the next one
    for n in part.flatten().notesAndRests:
        if n.duration.isGrace:
            continue  # an ornament: dropped
        if isinstance(n, chord.Chord):
            raise DataError(f"{name}: expected one note at a time in the soprano; got a chord")
        onset, q = Fraction(n.offset), Fraction(n.duration.quarterLength)
        if onset != end:
            raise DataError(
                f"{name}: expected the soprano's notes back to back; a note at "
                f"{float(onset)} follows one ending at {float(end)}"
            )
        pitch = n.pitch.midi if isinstance(n, note.Note) else None
        tie = None if n.tie is None else n.tie.type
        if tied and pitch is not None and pitch == events[-1].pitch and tie in ("stop", "continue"):
            last = events[-1]  # the tied continuation of the last note: one sounding note
            events[-1] = Event(pitch, last.duration + q, last.fermata or _has_fermata(n))
        else:
            events.append(Event(pitch, q, pitch is not None and _has_fermata(n)))
        tied = pitch is not None and tie in ("start", "continue")
        end = onset + q
    if not events:
        raise DataError(f"{name}: the soprano has no notes")
    tonic, mode = score_key(score)
    return Melody(name, mode, tonic, signatures[0].ratioString, pickup, tuple(events))


def pitch_token(pitch: int | None) -> str:
    """MIDI 60 -> "C4", 63 -> "Eb4"; a rest -> "R"."""
    return REST if pitch is None else f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def duration_token(duration: Fraction, fermata: bool) -> str:
    """1 quarter -> "q1", a dotted quarter -> "q3/2", a half under a fermata -> "q2^"."""
    return f"q{duration}" + ("^" if fermata else "")


def to_tokens(melody: Melody) -> list[str]:
    """label, meter, pickup, then pitch and duration of each event (no <eos>)."""
    out = [melody.mode, f"meter:{melody.meter}", f"pickup:{melody.pickup}"]
    for e in melody.events:
        out += [pitch_token(e.pitch), duration_token(e.duration, e.fermata)]
    return out


PITCHES = {f"{n}{o}": 12 * (o + 1) + i for o in range(-1, 10) for i, n in enumerate(NAMES)}


def _parse_pitch(token: str) -> int | None:
    if token == REST:
        return None
    if token not in PITCHES:
        raise BpttError(f"expected a pitch token such as C4, Eb4 or R; got {token!r}")
    return PITCHES[token]


def _parse_duration(token: str) -> tuple[Fraction, bool]:
    fermata = token.endswith("^")
    body = token[1:-1] if fermata else token[1:]
    try:
        duration = Fraction(body) if token.startswith("q") else None
    except (ValueError, ZeroDivisionError):
        duration = None
    if duration is None or duration <= 0:
        raise BpttError(f"expected a duration token such as q1, q3/2 or q2^; got {token!r}")
    return duration, fermata


def from_tokens(tokens: list[str], name: str = "") -> Melody:
    """The inverse of :func:`to_tokens` (the tonic is C: tokens carry the mode only)."""
    if len(tokens) < HEADER + 2 or (len(tokens) - HEADER) % 2:
        raise BpttError(
            f"expected label, meter, pickup and (pitch, duration) pairs; got {len(tokens)} tokens"
        )
    mode, meter_token, pickup_token = tokens[:HEADER]
    if mode not in MODES:
        raise BpttError(f"expected the label major or minor first; got {mode!r}")
    if not meter_token.startswith("meter:") or not pickup_token.startswith("pickup:"):
        raise BpttError(f"expected meter:N/D then pickup:Q; got {meter_token!r} {pickup_token!r}")
    try:
        pickup = Fraction(pickup_token[len("pickup:") :])
    except (ValueError, ZeroDivisionError):
        raise BpttError(
            f"expected pickup:Q with Q a number of quarters; got {pickup_token!r}"
        ) from None
    events = []
    for p, d in zip(tokens[HEADER::2], tokens[HEADER + 1 :: 2], strict=True):
        duration, fermata = _parse_duration(d)
        events.append(Event(_parse_pitch(p), duration, fermata))
    return Melody(name, mode, 0, meter_token[len("meter:") :], pickup, tuple(events))


def to_part(melody: Melody):
    """A music21 Part: measures from the meter and pickup, a note that crosses a bar line
    split into tied notes (the fermata on the first), key and time signature in bar one."""
    from music21 import expressions, key, meter, note, stream, tie

    ts = meter.TimeSignature(melody.meter)
    bar = Fraction(ts.barDuration.quarterLength)
    part = stream.Part()
    number = 0 if melody.pickup else 1
    measure = stream.Measure(number=number)
    measure.append(ts)
    measure.append(key.Key(NAMES[melody.tonic].replace("b", "-"), melody.mode))
    if melody.pickup:
        measure.paddingLeft = float(bar - melody.pickup)
    t, bar_end = Fraction(0), melody.pickup or bar
    for e in melody.events:
        pieces, left, u, end = [], e.duration, t, bar_end  # the event cut at bar lines
        while left > 0:
            q = min(left, end - u)
            pieces.append(q)
            left, u = left - q, u + q
            end = end + bar if u == end else end
        for i, q in enumerate(pieces):
            n = note.Rest(quarterLength=q) if e.pitch is None else note.Note(e.pitch)
            n.duration.quarterLength = q
            if e.pitch is not None and len(pieces) > 1:
                kind = "start" if i == 0 else "stop" if i == len(pieces) - 1 else "continue"
                n.tie = tie.Tie(kind)
            if e.fermata and i == 0:
                n.expressions.append(expressions.Fermata())
            measure.append(n)
            t += q
            if t == bar_end:  # the bar is full: the next piece starts the next one
                part.append(measure)
                number, bar_end = number + 1, bar_end + bar
                measure = stream.Measure(number=number)
    if measure.notesAndRests:
        part.append(measure)
    return part


def event_list(melody: Melody) -> str:
    """One line per event: onset and duration (quarter notes), pitch, fermata."""
    lines = [
        f"# {melody.name or 'melody'}: {NAMES[melody.tonic]} {melody.mode}, "
        f"meter {melody.meter}, pickup {melody.pickup}",
        "# onset  duration  pitch  fermata",
    ]
    for t, e in zip(melody.onsets(), melody.events, strict=True):
        mark = "fermata" if e.fermata else ""
        lines.append(f"{t!s:>7}  {e.duration!s:>8}  {pitch_token(e.pitch):>5}  {mark}")
    return "\n".join(lines) + "\n"


def write_melody(melody: Melody, stem: Path) -> list[Path]:
    """``stem.txt`` (the event list) and, through :mod:`bptt.tasks.text.music_render`, ``stem.mid``,
    ``stem.wav`` and ``stem.png`` (the PNG only where matplotlib is installed)."""
    import importlib.util

    from bptt.tasks.text import music_render

    stem.parent.mkdir(parents=True, exist_ok=True)
    text = stem.with_name(stem.name + ".txt")
    text.write_text(event_list(melody), encoding="utf-8")
    formats = ("mid", "wav") + (("png",) if importlib.util.find_spec("matplotlib") else ())
    title = f"{melody.name}: {melody.mode}, {melody.meter}"
    paths = music_render.render(to_part(melody), stem, formats, title=title, force=True)
    return [text, *paths.values()]
