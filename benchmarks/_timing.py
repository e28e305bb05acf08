"""The benchmark scripts' one timer: the seconds of each call, after one warm-up call."""

from __future__ import annotations

import time
from collections.abc import Callable


def call_times(fn: Callable[[], object], reps: int) -> list[float]:
    """Call ``fn`` once to warm up (compilation, first-touch pages), then ``reps`` times timed."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times
