"""BLAS threads for the per-step loop: one by default.

The recurrent product of one step is small ((B, H) @ (H, G*H)); splitting it
over threads costs a synchronisation per step, and when other processes hold
the cores OpenBLAS's waiting threads spin against them (measured on a shared
2-core machine: a training step 5-8x slower with 2 threads than with 1). The
large products over all steps (input projection, weight gradients) keep the
caller's setting; only the time loops run inside :func:`step_threads`.

``BPTT_STEP_THREADS`` sets the count inside the loop (default 1; 0 leaves
BLAS alone). It needs ``threadpoolctl`` (part of the ``fast`` extra); without
it the loop uses whatever BLAS is set to.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_STEP_THREADS = int(os.environ.get("BPTT_STEP_THREADS", "1") or 0)
_blas = None  # the BLAS libraries' controllers, found on first use


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
def step_threads() -> Iterator[None]:
    """Run the body with BLAS limited to ``BPTT_STEP_THREADS`` threads, then restore."""
    if _STEP_THREADS <= 0:
        yield
        return
    changed = []
    for lib in _controllers():
        n = lib.num_threads
        if n > _STEP_THREADS:
            lib.set_num_threads(_STEP_THREADS)
            changed.append((lib, n))
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)
