"""Does an ABC tune keep its meter: music21 parses it, and every bar lasts what ``M:`` says.

:func:`check_tune` checks one tune; :func:`keeps_meter` checks many on worker
processes and caches each answer under the tune's SHA-256, since music21 takes
~50 ms a tune. The music task (:mod:`bptt.tasks.text.music`) uses it to clean its
training tunes (``--clean-meter``) and to score sampled tunes.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bptt.data.cache import cache_dir

HEADER = re.compile(r"M:[^\n]*\n(L:\d+/\d+\n)?K:[^\n]*\n")  # the kept header; L: may be absent
CHECK_VERSION = 1  # of check_tune: a new version re-checks the cached training tunes


def meter_cache_file() -> Path:
    """$BPTT_CACHE/music, else $XDG_CACHE_HOME/bptt/music, else ~/.cache/bptt/music; one JSON
    file (tune's SHA-256 -> keeps its meter) per check version and music21 version."""
    import music21

    return cache_dir("music") / f"meter-v{CHECK_VERSION}-music21-{music21.__version__}.json"


def _keeps(abc: str) -> bool:
    parses, meter = check_tune(abc)
    return parses and meter


def keeps_meter(tunes: list[str], processes: int = 2, chunk: int = 1000) -> list[bool]:
    """Whether each tune parses and keeps its meter (:func:`check_tune`), cached per tune.

    music21 takes ~50 ms a tune (~5 minutes for the 11,644 training tunes on 2
    processes, once); the cache is written after every ``chunk`` new tunes.
    """
    path = meter_cache_file()
    cache = json.loads(path.read_text()) if path.exists() else {}
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in tunes]
    todo = sorted({k: t for k, t in zip(keys, tunes, strict=True) if k not in cache}.items())
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        texts = [t for _, t in part]
        if processes > 1 and len(part) > 1:
            with ProcessPoolExecutor(processes) as pool:
                results = list(pool.map(_keeps, texts, chunksize=16))
        else:
            results = [_keeps(t) for t in texts]
        cache.update({k: ok for (k, _), ok in zip(part, results, strict=True)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    return [cache[k] for k in keys]


def bars_keep_meter(lengths, full, sections=(), eps: float = 1e-6) -> bool:
    """Whether bars of these lengths keep their meter (``full``: each bar's meter length).

    ``sections``: indices of the bars that begin a section (after a repeat sign or
    a double barline; bar 0 always does). A section's first bar may be short (a
    pickup, or anacrusis) and its last bars may be short (its end); inside a
    section a bar lasts its meter, or a run of short bars adds up to exactly one
    full bar (``A2 :| GA | B2B2``, or a bar cut by a barline at a line's end).
    At least two bars must be full. Any other length breaks the meter.
    """
    starts = {0, *sections}
    whole, run = 0, 0.0  # full bars; length of the run of short bars since the last full one
    for i, (n, f) in enumerate(zip(lengths, full, strict=True)):
        if i in starts:
            run = 0.0  # the previous section's short last bars end here
        if run == 0.0 and abs(n - f) < eps:
            whole += 1
        elif n > f + eps:
            return False
        elif i in starts:
            continue  # a pickup
        else:
            run += n
            if abs(run - f) < eps:
                run = 0.0
            elif run > f + eps:
                return False
    return whole >= 2  # a short run left at the end is the tune's last bar(s)


def _section_starts(measures) -> list[int]:
    """Indices of the measures that begin a section: after a repeat sign, a double or final
    barline, or at a start-repeat."""
    starts = []
    for i in range(1, len(measures)):
        right, left = measures[i - 1].rightBarline, measures[i].leftBarline
        if (right is not None and right.type != "regular") or left is not None:
            starts.append(i)
    return starts


def check_tune(abc: str) -> tuple[bool, bool]:
    """(parses in music21, keeps its meter): see :func:`bars_keep_meter`, checked in each part
    (voice) with the meter in force in each bar. music21 cuts an overfull bar in two and
    gives the pieces meters of their own (3/8 inside 6/8): a meter the text never wrote
    breaks the meter. A free-meter tune (``M:none``) has no meter to keep: it parses or
    not, but never counts as keeping its meter."""
    from music21 import converter, meter, stream

    if not HEADER.match(abc) or re.search(r"\d{3,}", abc):
        return False, False  # no M/K header, or a note 100+ units long: music21 may hang
    plain = re.sub(r'"[^"\n]*"', "", abc)  # chord symbols and annotations take no time, and
    try:  # music21 misreads some ("\">\"d" loses a note)
        score = converter.parse("X:1\n" + plain, format="abc")
        parts = list(score.parts) or [score]
        bars = [list(p.recurse().getElementsByClass(stream.Measure)) for p in parts]
    except Exception:  # music21 raises many kinds on bad ABC: all mean "does not parse"
        return False, False
    changes = bool(re.search(r"\[M:|\nM:", abc[HEADER.match(abc).end() :]))  # in the body
    for measures in bars:
        full, ts, first = [], None, None
        for m in measures:
            found = m.getElementsByClass(meter.TimeSignature)
            if found and first is not None and not changes:
                if found[0].ratioString != first.ratioString:
                    return True, False  # music21 cut an overfull bar with a meter of its own
            ts = found[0] if found else ts
            first = ts if first is None else first
            full.append(None if ts is None else float(ts.barDuration.quarterLength))
        if not measures or None in full:
            return True, False
        lengths = [float(m.duration.quarterLength) for m in measures]
        if not bars_keep_meter(lengths, full, _section_starts(measures)):
            return True, False
    return True, True
