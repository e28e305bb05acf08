"""Which way to compute each matrix product of a step, chosen by measurement on this machine.

A recurrent layer's step has a few kinds of matrix product, and each can be
computed more than one way; which way is fastest depends on the CPU, the BLAS
build and kernel, the thread count and the shape, so it is measured, not
assumed. The kinds (``kind``) and their routes:

    proj   the input projection (T*B, D) @ (D, G*H), all steps at once
           packed    bptt's compiled kernel (functional/fast/_gemm.py), weight packed first
           blas      np.matmul, BLAS at bptt's thread count
           dot       for one to three rows (T*B < 4): a compiled loop of dot products with
                     w's rows in place (functional/fast/_dot.py)
           packed_mt, dot_mt  the same on bptt's threads: packed_mt splits a's rows, dot_mt
                     w's rows (the columns of the product)
    dx     ∂E/∂x = (T*B, G*H) @ (G*H, D): the same routes as proj
    step   one step's recurrent product, (B, H) @ (H, G*H) forward, (B, G*H) @ (G*H, H) back
           blas      np.matmul, BLAS at one thread
           blas_mt   np.matmul, BLAS at bptt's thread count
           packed    the compiled kernel, one thread (from one row where the CPU has AVX-512)
           packed_mt the compiled kernel, the batch rows split over the threads once: each
                     thread runs every step of its rows, product and gate kernel (the time
                     loops; the probe times it so)
           dot       for one to three rows (B < 4): dot products with w's rows, compiled
           dot_mt    the same with the rows of w split over the threads, a parallel region a step
           dot_team, packed_team  one to three rows, a time loop that can run as a team
                     (functional/fast/_team.py): one parallel region for all steps, each
                     thread the same hidden units every step, by dot or the packed kernel;
                     entries of such products end in "|team"
    step1  a whole step at T = 1 and B <= 3 (generation, streaming; functional/fast/_step.py),
           both products (B, D) @ (D, G*H) and (B, H) @ (H, G*H) and the gates in one call
           fused     on one thread
           fused_mt  the weight rows split over the threads, in one parallel region
    dw     the weight gradients Σ_t g_t x_tᵀ over all steps, g (T*B, N), x (T*B, K)
           gx        (N, T*B) @ (T*B, K) = g.T @ x
           xg        ((K, T*B) @ (T*B, N)).T = (x.T @ g).T, the other orientation

At the first product of a (kind, dtype, shape, threads) the probe times each
route that applies on data of that shape (the long T*B side cut to a few
hundred rows, so one probe costs milliseconds, well under a second for a whole
layer) and keeps the fastest, unless the default route is within 5% of it.
Every route computes the same product, so the choice changes results only by
float rounding (the order of the sums).

The choices are kept in memory and on disk, in
``cache_dir("routes")/routes-<key>.json`` (``$BPTT_CACHE/routes``, else
``~/.cache/bptt/routes``), where ``<key>`` hashes what makes a measurement
stale: the CPU model and its SIMD flags, the NumPy and BLAS versions, BLAS's
kernel (``OPENBLAS_CORETYPE`` changes it), numba's version and this module's
schema. A file whose key differs from the machine's is ignored, and the probe
runs again. The thread count is part of every entry.

For debugging, ``BPTT_ROUTES`` forces routes: ``BPTT_ROUTES=dw=xg,step=blas``
(a kind, ``=``, a route; a route that does not apply to a shape, such as
``packed`` for float64, leaves that shape to the probe). ``BPTT_ROUTES=default``
skips the probe and takes the routes bptt took before they were measured:
packed where it applies (else blas) for proj, dx and step, gx for dw.

Shapes: M rows of the product's left side (T*B or B), K its inner size, N its columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bptt.errors import BpttError
from bptt.functional.fast._jit import numba
from bptt.functional.fast._threads import get_num_threads

SCHEMA = 10  # bump when the routes, their kernels or the probe change: old files are then ignored
ROUTES = {
    "proj": ("packed", "blas", "dot", "packed_mt", "dot_mt"),
    "dx": ("packed", "blas", "dot", "packed_mt", "dot_mt"),
    "step": ("packed", "blas", "packed_mt", "blas_mt", "dot", "dot_mt", "dot_team", "packed_team"),
    "step1": ("fused", "fused_mt"),
    "dw": ("gx", "xg"),
}
PROBE_FLOPS = 2e8  # one probe call does about this much work (a few ms) ...
PROBE_MIN_ROWS = 256  # ... but keeps at least this many rows of the long side
PROBE_ROUNDS = 5  # each route is timed this many times, alternating; the fastest counts
PROBE_BUDGET = 0.1  # seconds of timed rounds per probe; at least 2 rounds run
# Seconds a probe round lasts at least (calls in a row): at 0.3 ms a generation step of an
# LSTM at D = H = 512 (8 MiB of weights, about 0.3 ms a call) was one call a round, and
# one probe in five picked one thread where two run 20% faster (two threads' rounds
# 355.8 µs against 355.0; the others 266-303 against 313-355).
PROBE_ROUND = 1.5e-3
MARGIN = 1.05  # another route must beat the default by 5% to replace it: no flip-flop on noise
# Kinds whose probe compares each route's median round, not its fastest: where a route may run
# a parallel region, it waits on a descheduled thread whenever another process holds a core
# (measured on a shared 2-core machine: a step at T = 1 took 17 µs a call when the other core
# was free, 15-18 ms when it was not); the fastest round would hide that.
TYPICAL = ("step1", "proj", "dx")
# Routes that run BLAS on bptt's threads. After such a call OpenBLAS's threads may spin
# for their next work (bptt asks them not to, _threads.quiet_blas, unless the user set
# OPENBLAS_THREAD_TIMEOUT), and a compiled parallel region in that time waits for a core:
# timed round by round beside them, the compiled routes would pay for BLAS's threads.
# So at more than one thread these are timed after every other route.
BLAS_THREADED = {"proj": ("blas",), "dx": ("blas",), "step": ("blas_mt",)}

_memory: dict[str, str] = {}  # entry -> route, for this process
_loaded_key: str | None = None  # the machine key the memory belongs to
_forced: dict[str, str] | None = None
_log: dict[str, dict] = {}  # entry -> {"route", "times_us", "source"} seen by this process
_decided: dict[tuple, str] = {}  # (kind, dtype, shape, routes, threads, BPTT_ROUTES) -> route


def forced() -> dict[str, str]:
    """BPTT_ROUTES parsed: {kind: route}, or {"*": "default"}; a bad value is a BpttError."""
    global _forced
    text = os.environ.get("BPTT_ROUTES", "").strip()
    if _forced is not None and _forced.get("_text") == text:
        return _forced
    result: dict[str, str] = {"_text": text}
    if text == "default":
        result["*"] = "default"
    elif text:
        for item in text.split(","):
            kind, _, route = item.strip().partition("=")
            if kind not in ROUTES or route not in ROUTES[kind]:
                choices = "; ".join(f"{k}={'|'.join(v)}" for k, v in ROUTES.items())
                raise BpttError(
                    f"BPTT_ROUTES: expected 'default' or kind=route items ({choices}), "
                    f"got {item.strip()!r}"
                )
            result[kind] = route
    _forced = result
    return result


def _cpu() -> tuple[str, str]:
    """The CPU model and a hash of its feature flags (the SIMD the kernels can use)."""
    model = flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "Model") and not model:
                    model = value.strip()
                elif name in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
                if model and flags:
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    return model or platform.processor() or platform.machine(), hashlib.sha1(
        flags.encode()
    ).hexdigest()[:12]


def _numpys_first(pool: dict) -> tuple[bool, str]:
    """Sort key of a loaded BLAS: NumPy's own (a wheel's ``numpy.libs``) first, then by path.

    Another BLAS may be loaded beside NumPy's (SciPy's wheel brings its own OpenBLAS),
    and in an order that differs from one process to the next: keyed by whichever came
    first, two processes of one machine read and wrote different cache files, and a
    benchmark's workers, started together, probed again on a crowded machine (measured:
    a step route timed 7 s a round) and kept what that probe picked."""
    path = str(pool.get("filepath", ""))
    return ("numpy.libs" not in path, path)


def _blas() -> str:
    """The name, version and run-time kernel of the BLAS NumPy calls (threadpoolctl), if known."""
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = min(pools, key=_numpys_first)
            return f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}"
    except ImportError:  # pragma: no cover - depends on the environment
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return (
            f"{blas.get('name')} {blas.get('version')} core={os.environ.get('OPENBLAS_CORETYPE')}"
        )
    except Exception:  # pragma: no cover - older NumPy
        return f"unknown core={os.environ.get('OPENBLAS_CORETYPE')}"


def machine() -> dict[str, str]:
    """What a stored measurement depends on; its hash names the cache file."""
    model, flags = _cpu()
    return {
        "cpu": model,
        "cpu_flags": flags,
        "numpy": np.__version__,
        "blas": _blas(),
        "numba": numba.__version__ if numba is not None else "none",
        "schema": str(SCHEMA),
    }


def machine_key(info: dict[str, str]) -> str:
    return hashlib.sha1(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def cache_file(key: str) -> Path:
    from bptt.data.cache import cache_dir

    return cache_dir("routes") / f"routes-{key}.json"


_machine: dict[str, str] | None = None


def _current() -> tuple[dict[str, str], str]:
    global _machine
    if _machine is None:
        _machine = machine()
    return _machine, machine_key(_machine)


def _read(path: Path, info: dict[str, str]) -> dict[str, str]:
    """The file's routes if it belongs to this machine (same key inside), else {}."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("machine") != info:
        return {}
    routes = record.get("routes", {})
    return {k: v["route"] for k, v in routes.items() if isinstance(v, dict) and "route" in v}


def _write(path: Path, info: dict[str, str], entry: str, record: dict) -> None:
    """Add one entry to the file: read, merge, write to a temporary file, rename (atomic)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        old: dict = {}
        try:
            old = json.loads(path.read_text())
            if old.get("machine") != info:
                old = {}
        except (OSError, ValueError):
            pass
        routes = old.get("routes", {}) if isinstance(old, dict) else {}
        routes[entry] = record
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".routes-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"machine": info, "routes": routes}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:  # a read-only home: the choice still holds for this process
        pass


def reset() -> None:
    """Forget the routes this process knows (the next product reads the disk or probes)."""
    global _loaded_key, _machine, _forced
    _memory.clear()
    _log.clear()
    _decided.clear()
    _loaded_key = _machine = _forced = None


def _bucket(n: int) -> int:
    """The long T*B side, rounded up to a power of two: one probe serves similar lengths."""
    return 1 << max(0, int(n - 1).bit_length())


def entry_name(kind: str, dtype, M: int, K: int, N: int, threads: int, team=False) -> str:
    """The cache's name for a product. ``team``: its loop can run as a team (other routes
    than a same-shape product whose loop cannot, such as a square RNN's backward)."""
    if kind != "step":
        M = _bucket(M)
    return f"{kind}|{np.dtype(dtype).name}|{M}x{K}x{N}|t{threads}" + ("|team" if team else "")


def choose(
    kind: str,
    dtype,
    M: int,
    K: int,
    N: int,
    candidates: Callable[[], dict[str, Callable[[int], object]]],
    applies: tuple[str, ...],
) -> str:
    """The route for this product: forced, remembered, read from disk, or probed now.

    ``applies`` lists the routes that can compute this shape, the default first;
    ``candidates()`` builds, only when a probe runs, {route: run} where ``run(n)``
    computes the product n times by that route on probe data of this shape.
    """
    if len(applies) == 1:
        return applies[0]
    fast = (kind, dtype, M, K, N, applies, get_num_threads(), os.environ.get("BPTT_ROUTES"))
    route = _decided.get(fast)
    if route is None:
        route = _decided[fast] = _choose(kind, dtype, M, K, N, candidates, applies)
    return route


def _choose(kind, dtype, M, K, N, candidates, applies) -> str:
    force = forced()
    if force.get("*") == "default":
        return applies[0]
    if force.get(kind) in applies:
        return force[kind]
    global _loaded_key
    threads = get_num_threads()
    info, key = _current()
    if _loaded_key != key:
        _memory.clear()
        _memory.update(_read(cache_file(key), info))
        _loaded_key = key
    entry = entry_name(kind, dtype, M, K, N, threads, any(r.endswith("_team") for r in applies))
    route = _memory.get(entry)
    if route in applies:
        _log.setdefault(entry, {"route": route, "source": "cache"})
        return route
    runs = candidates()
    late = BLAS_THREADED.get(kind, ()) if threads > 1 else ()
    times = probe({r: runs[r] for r in applies}, typical=kind in TYPICAL, late=late)
    route = min(times, key=times.get)
    if times[applies[0]] <= MARGIN * times[route]:  # a tie keeps the default
        route = applies[0]
    _memory[entry] = route
    record = {"route": route, "times_us": {r: round(t * 1e6, 1) for r, t in times.items()}}
    _log[entry] = {**record, "source": "probe"}
    _write(cache_file(key), info, entry, record)
    return route


def probe(
    runs: dict[str, Callable[[int], object]], typical: bool = False, late: tuple[str, ...] = ()
) -> dict[str, float]:
    """Seconds per call of each route; ``run(n)`` makes n calls. Each route is warmed
    (twice: compiled code, pools, first-touch pages), then timed in PROBE_ROUNDS
    alternating rounds of enough calls to last about PROBE_ROUND (fewer rounds once they
    have taken PROBE_BUDGET seconds); the fastest round counts, or with ``typical`` the
    median round. The routes named in ``late`` are warmed and timed after all the others."""
    early = {name: run for name, run in runs.items() if name not in late}
    times = _rounds(early, typical)
    times.update(_rounds({name: runs[name] for name in runs if name not in early}, typical))
    return times


def _rounds(runs: dict[str, Callable[[int], object]], typical: bool) -> dict[str, float]:
    reps = {}
    for name, run in runs.items():
        run(1)
        t0 = time.perf_counter()
        run(1)
        once = time.perf_counter() - t0
        reps[name] = max(1, min(64, int(PROBE_ROUND / max(once, 1e-7))))
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    start = time.perf_counter()
    for k in range(PROBE_ROUNDS):
        if k >= 2 and time.perf_counter() - start > PROBE_BUDGET:
            break
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(reps[name])
            rounds[name].append((time.perf_counter() - t0) / reps[name])
    pick = statistics.median if typical else min
    return {name: pick(ts) for name, ts in rounds.items()}


def probe_rows(M: int, K: int, N: int) -> int:
    """Rows of the long side a probe uses: about PROBE_FLOPS of work, at least PROBE_MIN_ROWS."""
    return int(min(M, max(PROBE_MIN_ROWS, PROBE_FLOPS / (2 * max(1, K * N)))))


def used() -> dict[str, dict]:
    """Every route this process chose: {entry: {"route", "source", "times_us"?}}."""
    return dict(_log)
