"""How many threads bptt uses, and BLAS's thread count inside the time loops.

By default bptt uses every core this process may use (``os.sched_getaffinity``),
as PyTorch does. The count comes from, first to last:

1. :func:`set_num_threads` (``bptt.set_num_threads(n)``, the CLI's ``--threads``);
2. the environment: ``BPTT_NUM_THREADS``, else ``OMP_NUM_THREADS``,
   ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (the first one set);
3. the number of CPUs in the process's affinity mask.

The count reaches three places: the large products over all steps (BLAS's
own pool, set through ``threadpoolctl`` when it is installed), the compiled
per-step product and gate kernels (numba's pool, split over the batch rows,
or below four rows over the weight's rows), and the route probe
(:mod:`bptt.functional.fast._routes`), which keys every choice by it.

OpenBLAS's threads spin for about 0.1 s after each call, waiting for more work
(``OPENBLAS_THREAD_TIMEOUT``, 2^28 cycles by default). A compiled parallel region in
that time waits for a core they hold: measured on a quiet 2-core AMD EPYC, a threaded
step product took 0.2-5.6 ms a call right after a two-thread BLAS product against
24-30 µs otherwise, and a training step of benchmarks/rnn_speed.py's lstm-c 149 ms
against 117. So when bptt runs more than one thread it asks OpenBLAS to stop spinning
(:func:`quiet_blas`: the timeout at its floor, 2^4 cycles, unless the user set
``OPENBLAS_THREAD_TIMEOUT``); its threads then sleep between calls and wake in
microseconds. numba's own pool (GNU OpenMP, numba's "omp" threading layer) does the
same the other way round: after a compiled loop its threads spin for about 1 ms
(libgomp's 300,000 spins) while the weight-gradient product runs on BLAS's two threads,
which then ran at one thread's speed (8.9 ms against 4.7 ms alone) and lstm-a's
two-thread training step took 22-23 ms; with ``GOMP_SPINCOUNT=20000`` (bptt's default,
set before numba's pool starts unless the user set it) 17-19.5 ms, with its per-step
barriers (B = 1 inference) as fast as before (three alternated runs each, same machine).

Inside a time loop, BLAS runs with one thread unless the per-step route is
``blas_mt`` (:func:`step_threads`): one step's product is small, and on a busy
machine OpenBLAS's waiting threads spin against the other processes (a training
step measured 5-8x slower with 2 BLAS threads than with 1 on a shared 2-core
machine). Whether BLAS with every thread beats the compiled kernels is measured
per shape by the route probe, not assumed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

from bptt.errors import BpttError
from bptt.functional.fast._jit import numba

ENV_VARS = ("BPTT_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_threads: int | None = None  # set by set_num_threads, else found on first use
_blas = None  # the BLAS libraries' controllers, found on first use


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1  # pragma: no cover - macOS, Windows


def _from_env() -> int | None:
    for var in ENV_VARS:
        text = os.environ.get(var, "").strip()
        if text:
            try:
                n = int(text.split(",")[0])  # OMP allows a list per nesting level
            except ValueError:
                raise BpttError(f"{var} must be a whole number of threads, got {text!r}") from None
            if n >= 1:
                return n
    return None


def get_num_threads() -> int:
    """The thread count bptt uses now (see the module docstring for where it comes from)."""
    global _threads
    if _threads is None:
        _threads = _from_env() or available_cpus()
        for lib in _controllers():  # BLAS may have counted the machine's CPUs, not the mask's
            if lib.num_threads != _threads:
                lib.set_num_threads(_threads)
        _numba_threads(_threads)
        if _threads > 1:
            quiet_blas()
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads from now on: BLAS's pool, numba's pool and the route probe's key.

    Like ``torch.set_num_threads``; it sets BLAS for the whole process (through
    ``threadpoolctl``, part of the ``fast`` extra).
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BpttError(f"the number of threads must be a whole number >= 1, got {n!r}")
    _threads = n
    for lib in _controllers():
        lib.set_num_threads(n)
    _numba_threads(n)
    if n > 1:
        quiet_blas()


# GNU OpenMP's spin before a waiting thread sleeps (libgomp's default, 300,000 spins,
# is about 1 ms here; see the module docstring).
GOMP_SPINCOUNT = "20000"


def _numba_threads(n: int) -> None:
    """numba's pool runs at most NUMBA_NUM_THREADS (fixed when numba loads).

    The first call starts numba's pool, which loads GNU OpenMP where numba's threading
    layer is "omp"; GNU OpenMP reads ``GOMP_SPINCOUNT`` then, so it is set first
    (unless the user set it).
    """
    if numba is not None:
        os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def pool_threads() -> int:
    """The threads a compiled parallel kernel would get now (bptt's count, capped by
    numba's pool) without setting numba's count: about 0.1 µs, where setting it (as
    :func:`compiled_threads` must before a parallel kernel runs) costs about 1.3 µs."""
    return 1 if numba is None else min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)


def compiled_threads() -> int:
    """The threads a compiled parallel kernel gets: bptt's count, capped by numba's pool."""
    n = pool_threads()
    if numba is not None:
        numba.set_num_threads(n)  # numba's count is per calling thread
    return n


def loop_shares(B: int) -> int:
    """Into how many shares of its B batch rows a compiled time loop splits a batch now."""
    threads = compiled_threads()
    return 1 if threads == 1 else int(batch_chunks(B, threads))


_quieted = False


def quiet_blas() -> None:
    """Make OpenBLAS's threads sleep between calls instead of spinning (once a process).

    OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` when it starts its threads; bptt sets it
    (unless set), has each loaded OpenBLAS read its environment again and stops its
    threads, which the next threaded call starts afresh with the new timeout. Other
    BLAS libraries are left as they are.
    """
    global _quieted
    if _quieted:
        return
    _quieted = True
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    for lib in _controllers():
        if lib.internal_api != "openblas":
            continue
        try:
            dynlib = getattr(lib, "dynlib", None) or ctypes.CDLL(lib.filepath)
            dynlib.openblas_read_env()
            dynlib.blas_thread_shutdown_()
        except (AttributeError, OSError):  # pragma: no cover - an OpenBLAS without them
            pass


def _controllers() -> list:
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController().select(user_api="blas").lib_controllers
        except ImportError:  # pragma: no cover - depends on the environment
            _blas = []
    return _blas


@contextlib.contextmanager
def step_threads(route: str = "") -> Iterator[None]:
    """Run a time loop's body with BLAS at one thread (or, for route ``blas_mt``, as it is).

    BLAS runs at bptt's count (:func:`get_num_threads` sets it), so at one thread
    there is nothing to change, and asking BLAS (a symbol lookup per library,
    about 0.1 ms on a busy machine) is skipped: generation calls this every step.
    """
    n = get_num_threads()
    if route == "blas_mt" or n == 1:
        yield
        return
    libs = _controllers()
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib in libs:
            lib.set_num_threads(n)


if numba is not None:

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def share(k, chunks, M):
        """Rows r0:r1 of M that share k of ``chunks`` takes (the shares differ by <= 1 row)."""
        return k * M // chunks, (k + 1) * M // chunks

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def row_chunks(M, threads, block):
        """How many shares to split M rows into: one per row ``block``, or, for a small M
        (a step's batch), one per thread while each keeps >= 4 rows (a full tile)."""
        return max((M + block - 1) // block, min(threads, M // 4), 1)

    @numba.njit(cache=True, boundscheck=False, nogil=True)
    def batch_chunks(B, threads):
        """How many shares a compiled time loop splits its B batch rows into, each running
        every step: one per thread while each keeps >= 4 rows (a full tile), else one."""
        return max(1, min(threads, B // 4))
