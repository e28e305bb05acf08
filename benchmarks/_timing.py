"""What the benchmark scripts share: the one timer (the seconds of each call, after one
warm-up call) and the command line of the scripts that take config names."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable


def call_times(fn: Callable[[], object], reps: int) -> list[float]:
    """Call ``fn`` once to warm up (compilation, first-touch pages), then ``reps`` times timed."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def config_names(doc: str, names: Iterable[str], default: list[str]) -> list[str]:
    """The config names on the command line (``default`` when none): ``--help`` prints the
    script's first docstring paragraph, an unknown name is refused with the choices."""
    names = list(names)
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "configs", nargs="*", metavar="CONFIG",
        help=f"any of {', '.join(names)} (default: {' '.join(default)})",
    )  # fmt: skip
    asked = parser.parse_args().configs or default
    unknown = [c for c in asked if c not in names]
    if unknown:  # (argparse's choices refuse an empty list for nargs="*")
        parser.error(f"unknown config {unknown[0]!r}; choose from {', '.join(names)}")
    return asked
