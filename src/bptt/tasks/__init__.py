"""The applications: one module each, declaring its :class:`~bptt.tasks.base.Task`.

A task module ends with ``TASK = Task(...)``: its name, preset, options, how it
prepares its data, builds and trains its model, reports, and which verbs
(sample, predict, translate, transcribe, compose) it offers. Tasks are found in
a fixed table, never imported by a name read from a file.
"""

from __future__ import annotations

import importlib

from bptt.config import TASKS
from bptt.errors import BpttError

# name -> module; a fixed table (a checkpoint's "task" is looked up here, never imported).
TASK_MODULES = {
    "lm": "bptt.tasks.lm",
    "sentiment": "bptt.tasks.sentiment",
    "ner": "bptt.tasks.ner",
    "dna": "bptt.tasks.dna",
    "activity": "bptt.tasks.activity",
    "dates": "bptt.tasks.dates",
    "g2p": "bptt.tasks.g2p",
    "de-en": "bptt.tasks.de_en",
    "names": "bptt.tasks.names",
    "music": "bptt.tasks.music",
    "chorales": "bptt.tasks.chorales",
    "digits": "bptt.tasks.digits",
    "ctc-digits": "bptt.tasks.ctc_digits",
    "trigger": "bptt.tasks.trigger",
    "video": "bptt.tasks.video",
}
if tuple(TASK_MODULES) != TASKS:  # two lists of one set of names: they must agree
    raise ImportError("bptt.config.TASKS and bptt.tasks.TASK_MODULES name different tasks")


def get(name: str):
    """The :class:`~bptt.tasks.base.Task` called ``name`` (its module imported now)."""
    if name not in TASK_MODULES:
        raise BpttError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASK_MODULES))}")
    return importlib.import_module(TASK_MODULES[name]).TASK


def preset(name: str) -> dict:
    """The Config defaults the task ``name`` changes."""
    return dict(get(name).preset)
