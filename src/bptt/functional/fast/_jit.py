"""Whether the compiled kernels run: numba (the optional ``fast`` extra) present, BPTT_NO_JIT unset.

One flag for the whole package, read once at import: ``_fused`` (the per-step
gate math), ``_gemm`` (the packed per-step product) and ``_time_loops`` (the
LSTM's loops over time) take their compiled path only when :data:`JIT` is True,
and their NumPy path otherwise.
"""

from __future__ import annotations

import os
import sys

try:  # the optional ``fast`` extra
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

#: True when the compiled kernels are in use (numba importable and BPTT_NO_JIT unset).
JIT = numba is not None and os.environ.get("BPTT_NO_JIT", "") in ("", "0")

_told = False


def tell_slow_path() -> None:
    """Say once per process, at the first recurrent call without numba, how to get the fast path.

    Only when numba is missing: BPTT_NO_JIT=1 is a deliberate choice and stays quiet.
    """
    global _told
    if numba is None and not _told:
        _told = True
        print(
            "bptt: numba is not installed, so recurrent layers run their NumPy path "
            "(about 2x slower; see README, Benchmarks). For the compiled kernels: "
            "pip install 'bptt[fast]'",
            file=sys.stderr,
        )


_compiling_told = False


def _tell_first_compile(event) -> None:
    """Say once per process, at the first bptt kernel numba compiles (not one it loads
    from its cache), that the first run on a machine compiles: the character language
    model's first update then takes about 90 s on 2 cores (AMD EPYC), the later ones
    30 ms, with no word of why. Only to a terminal: a log or a test's captured stderr
    stays as it was."""
    global _compiling_told
    module = getattr(event.data["dispatcher"].py_func, "__module__", "") or ""
    if _compiling_told or not module.startswith("bptt."):
        return
    _compiling_told = True
    if sys.stderr.isatty():
        print(
            "bptt: compiling its kernels for this CPU, once (a minute or two; numba keeps "
            "them in __pycache__ beside bptt's code for every later run)",
            file=sys.stderr,
        )


if JIT:
    from numba.core import event as _event

    class _FirstCompile(_event.Listener):
        def on_start(self, event) -> None:
            _tell_first_compile(event)

        def on_end(self, event) -> None:
            pass

    _event.register("numba:compile", _FirstCompile())
