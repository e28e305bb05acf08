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
    "lm": "bptt.tasks.text.lm",
    "sentiment": "bptt.tasks.classify.sentiment",
    "ner": "bptt.tasks.classify.ner",
    "dna": "bptt.tasks.classify.dna",
    "activity": "bptt.tasks.classify.activity",
    "dates": "bptt.tasks.seq2seq.dates",
    "g2p": "bptt.tasks.seq2seq.g2p",
    "de-en": "bptt.tasks.seq2seq.de_en",
    "names": "bptt.tasks.text.names",
    "music": "bptt.tasks.text.music",
    "chorales": "bptt.tasks.text.chorales",
    "digits": "bptt.tasks.speech.digits",
    "ctc-digits": "bptt.tasks.speech.ctc_digits",
    "trigger": "bptt.tasks.speech.trigger",
    "video": "bptt.tasks.video.video",
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
