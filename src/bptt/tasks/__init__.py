"""One module per application: data loading, model preset, metric.

Each task module offers ``build_trainer(config, out_dir, progress_bar) ->
(trainer, summary lines)`` and either ``held_out_report(checkpoint) -> str`` (its
test metrics, printed after training and by ``bptt eval``) or its own
``after_training(config, best_checkpoint)`` and ``evaluate_checkpoint(args) -> str``.
Tasks are found in a fixed table, never imported by a name read from a file.
"""

from __future__ import annotations

import importlib
from types import ModuleType

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


def task_module(name: str) -> ModuleType:
    if name not in TASK_MODULES:
        raise BpttError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASK_MODULES))}")
    return importlib.import_module(TASK_MODULES[name])


def after_training(task: ModuleType, config, checkpoint) -> None:
    """What a task shows once training ends: its own, or its held-out report."""
    if hasattr(task, "after_training"):
        task.after_training(config, checkpoint)
    else:
        print(task.held_out_report(checkpoint))


def evaluate_checkpoint(task: ModuleType, args) -> str:
    """``bptt eval``: the task's own evaluation, or its held-out report."""
    if hasattr(task, "evaluate_checkpoint"):
        return task.evaluate_checkpoint(args)
    return task.held_out_report(args.checkpoint)
