"""The one contract every task keeps, the one trainer builder and the one checkpoint loader.

A task module ends with ``TASK = Task(...)``, a declaration the CLI reads; nothing
is discovered by ``hasattr``. What a task declares:

    name            its name on the command line and in its checkpoints
    about           one line: what it learns from what data
    preset          the :class:`~bptt.config.Config` defaults it changes, each commented
                    in the module where the preset is written
    options         the Config fields it reads beyond :data:`COMMON` (the network,
                    the optimizer and the loop, which every task reads); ``bptt train
                    TASK --help`` shows these and no others
    prepare         ``(config) -> data``: reads or generates the data and splits it
    build_model     ``(config, meta, rng=None) -> model``: the model a checkpoint's
                    metadata (vocabularies, labels, sizes) describes; training
                    builds it the same way, so a checkpoint always rebuilds
    build_trainer   ``(config, out_dir, progress_bar) -> (Trainer, summary lines)``:
                    prepare, build_model and :func:`make_trainer`
    metrics         the task's scoring function (its arguments are the family's)
    report          ``(checkpoint) -> str``: the held-out test metrics; or
    after_training  ``(config, checkpoint) -> None``: what it prints once training
                    ends, where that is more than the report (samples, baselines)
    evaluate        ``(args) -> str``: ``bptt eval``, where that is not the report

and the verbs it offers, each None where it has none: ``sample``, ``predict``
(with ``predict_formats``), ``translate``, ``transcribe``, ``compose``.

A family declares its tasks alike: :func:`bptt.tasks._examples.example_task`
(classify, tag, speech, video), :func:`bptt.tasks.text.lm.text_task` and
:func:`bptt.tasks.seq2seq.translation.seq2seq_task` read a module's ``PRESET`` and
its functions by their family's names, and take the rest as keywords.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from bptt.config import Config
from bptt.errors import BpttError, CheckpointError

# The Config fields of the network, the optimizer and the loop: every task reads them.
COMMON = tuple(
    "cell hidden_size num_layers dropout dtype "  # the network
    "batch_size optimizer lr momentum schedule clip skip_non_finite "  # the optimizer
    "steps accumulate eval_every patience seed out tensorboard watchdog".split()  # the loop
)
VERBS = ("sample", "predict", "translate", "transcribe", "compose")


@dataclass(frozen=True)
class Task:
    """One application, declared: see the module's docstring for each field."""

    name: str
    about: str
    preset: dict
    options: tuple[str, ...] | str
    prepare: Callable
    build_model: Callable
    build_trainer: Callable
    metrics: Callable | None = None
    report: Callable | None = None
    after_training: Callable | None = None
    evaluate: Callable | None = None
    sample: Callable | None = None
    predict: Callable | None = None
    predict_formats: tuple[str, ...] = ()
    translate: Callable | None = None
    transcribe: Callable | None = None
    compose: Callable | None = None

    def __post_init__(self) -> None:
        if isinstance(self.options, str):  # "text level window": the names, space-separated
            object.__setattr__(self, "options", tuple(self.options.split()))
        known = {f.name for f in fields(Config)}
        unknown = sorted((set(self.options) | set(self.preset)) - known)
        if unknown:
            raise BpttError(f"task {self.name}: not Config fields: {', '.join(unknown)}")
        outside = sorted(set(self.preset) - set(self.all_options()))
        if outside:
            raise BpttError(f"task {self.name}: preset sets fields it does not read: {outside}")
        if self.report is None and (self.after_training is None or self.evaluate is None):
            raise BpttError(f"task {self.name}: a report, or after_training and evaluate")

    def all_options(self) -> tuple[str, ...]:
        """Every Config field this task reads, in Config's order (``task`` aside)."""
        mine = set(COMMON) | set(self.options)
        return tuple(f.name for f in fields(Config) if f.name in mine)

    def config(self, **given) -> Config:
        """The run's config: Config's defaults, this task's preset, then ``given``."""
        return Config(task=self.name, **{**self.preset, **given})

    def finish(self, config: Config, checkpoint) -> None:
        """What ``bptt train`` shows once training ends: the task's own, or its report."""
        if self.after_training is not None:
            self.after_training(config, checkpoint)
        else:
            print(self.report(checkpoint))

    def evaluate_checkpoint(self, args) -> str:
        """``bptt eval``: the task's own evaluation, or its held-out report."""
        if self.evaluate is not None:
            return self.evaluate(args)
        return self.report(args.checkpoint)

    def verbs(self) -> tuple[str, ...]:
        return tuple(v for v in VERBS if getattr(self, v) is not None)


def make_trainer(
    config: Config, model, batches, evaluate, out_dir, progress_bar: bool, rng, metadata: dict, comm
):
    """The one place a :class:`~bptt.train.Trainer` is built from a task's config.

    ``batches`` and ``evaluate(model) -> dict`` are the task's; the loop's settings
    (steps, clipping, evaluation, the metric monitored, patience, accumulation, TensorBoard)
    are the config's.
    ``metadata`` is what :func:`load_model` needs to rebuild the model (the config is added).
    """
    from bptt.train import Trainer, build_optimizer

    optimizer, schedule = build_optimizer(config)
    return Trainer(
        model,
        optimizer,
        schedule,
        batches,
        evaluate,
        steps=config.steps,
        out_dir=out_dir,
        rng=rng,
        clip=config.clip,
        eval_every=config.eval_every,
        patience=config.patience,
        metadata={"task": config.task, "config": config.to_dict(), **metadata},
        progress_bar=progress_bar,
        skip_non_finite=config.skip_non_finite,
        comm=comm,
        tensorboard=config.tensorboard,
        accumulate=config.accumulate,
        monitor=config.monitor,
    )


def load_model(path, tasks, build: Callable, refusal: str = "") -> tuple[object, Config, dict]:
    """The one way back from a checkpoint to a model: ``(model, config, metadata)``.

    ``tasks`` are the task names whose checkpoints ``build(config, meta) -> model``
    can rebuild (``refusal`` ends the error for another task's); the weights are then loaded
    into it. Every failure is a :class:`CheckpointError` naming the file.
    """
    from bptt.checkpoint import load_checkpoint, require_fields

    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    tensors, meta = load_checkpoint(path)
    if meta.get("task") not in tasks:
        refusal = refusal or f", not {', '.join(repr(t) for t in tasks)}"
        raise CheckpointError(f"checkpoint '{path}' is for task {meta.get('task')!r}{refusal}")
    require_fields(path, meta, {"config": dict})
    try:
        config = Config.from_dict(meta["config"])  # names are looked up in fixed tables
    except BpttError as e:
        raise CheckpointError(f"checkpoint '{path}': metadata field 'config': {e}") from None
    try:
        model = build(config, meta)
    except KeyError as e:
        raise CheckpointError(f"checkpoint '{path}' lacks the metadata field {e}") from None
    except BpttError as e:  # a message about the file already names it
        if str(e).startswith(f"checkpoint '{path}'"):
            raise
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except Exception as e:
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    return model, config, meta


def network(config: Config) -> dict:
    """The recurrent network ``config`` describes, as the models take it by keyword:
    hidden_size, num_layers, cell, bidirectional, dropout and dtype."""
    names = ("hidden_size", "num_layers", "cell", "bidirectional", "dropout")
    return {**{name: getattr(config, name) for name in names}, "dtype": np.dtype(config.dtype)}


def seeded(config: Config, rng) -> np.random.Generator:
    """``rng``, or a generator of the config's seed."""
    return np.random.default_rng(config.seed) if rng is None else rng


def about(module) -> str:
    """What a task module learns, in one line: its docstring's first paragraph, joined."""
    first = (module.__doc__ or module.__name__).strip().split("\n\n")[0]
    return " ".join(first.split()).rstrip(".")
