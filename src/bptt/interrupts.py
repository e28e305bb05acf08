"""Ctrl-C during training: finish the update in progress, save, say how to resume.

One SIGINT counter serves both moments. In the training loop (``hold=False``) the
first Ctrl-C is only counted, so the update in progress finishes and is saved; a
second raises :class:`KeyboardInterrupt` at once (nothing half-done is saved).
Around the last save (``hold=True``) every Ctrl-C is only counted, so the save runs
to its end. Only the main thread receives signals; elsewhere the block counts nothing.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from bptt.errors import TrainingInterrupted


class CtrlC:
    """Count SIGINTs inside a ``with`` block (``count``); see the module docstring."""

    def __init__(self, hold: bool = False):
        self.hold = hold

    def __enter__(self):
        self.count, self.previous = 0, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if not self.hold and self.count > 1:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> bool:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def resume_hint(what: str, path: Path, step: int) -> TrainingInterrupted:
    """The one line an interrupted run ends with: what was saved and the command to go on."""
    return TrainingInterrupted(
        f"{what} {path} (update {step}); continue with: bptt train --resume {path}",
        saved=path,
        step=step,
    )
