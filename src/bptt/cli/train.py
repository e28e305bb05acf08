"""``bptt train``: the task's options as flags (from its Task contract), a run file, a run.

bptt train [TASK] [--flags]           train (default: lm, the character LM)
bptt train TASK --help                that task's options and its preset's defaults
bptt train TASK --print-config > run.toml    the run's settings as a TOML run file
bptt train --config run.toml [--flags]       a run from a run file (flags override it)
bptt train --resume CHECKPOINT        continue a run exactly where it stopped

Settings are applied in this order: Config's defaults, the task's preset, the run
file, the flags typed.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bptt.cli import runfile
from bptt.config import TASKS, Config
from bptt.errors import BpttError

# may change on --resume
RESUMABLE = {"steps", "eval_every", "patience", "sample_length", "tensorboard", "watchdog"}
SWITCHES = ("--quiet", "--print-config")


def flag(name: str) -> str:
    """The command-line flag of a Config field: hidden_size -> --hidden-size."""
    return "--" + name.replace("_", "-")


def _yes_no(text: str) -> bool:
    """A boolean flag's value: true/yes/1 or false/no/0."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def _flag_help(f: dataclasses.Field, default) -> str:
    """A Config field's help with its default, said once (the help may already say it)."""
    text = f.metadata["help"]
    if "(default:" in text or default is None:
        return text
    return f"{text} (default: {default})"


def add_parser(sub, task_name: str = "lm") -> None:
    """``train`` with the flags of ``task_name``'s options, their defaults its preset's."""
    from bptt.tasks import get

    task = get(task_name)
    others = "; 'bptt train TASK --help' shows another task's" if task.name == "lm" else ""
    description = (
        f"Train {task.name}: {task.about}. The defaults shown are the {task.name} preset's"
        f"{others}. Tasks: {', '.join(TASKS)}."
    )
    p = sub.add_parser("train", help="train a model", description=description)
    p.add_argument(
        "task",
        nargs="?",
        default=None,
        choices=TASKS,
        help="the application (default: lm, the character language model)",
    )
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved here")
    p.add_argument(
        "--config",
        metavar="TOML",
        help="read the run's settings from this run file (flags typed override it)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the run's settings as a TOML run file and stop",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    options = set(task.all_options())
    for f in dataclasses.fields(Config):
        if f.name not in options:
            continue
        kind = {bool: _yes_no, int: int, float: float}.get(type(f.default), str)
        p.add_argument(
            flag(f.name),
            dest=f.name,
            type=kind,
            choices=f.metadata.get("choices"),
            default=argparse.SUPPRESS,  # only what the user typed overrides presets
            help=_flag_help(f, task.preset.get(f.name, f.default)),
        )


class _Lenient(argparse.ArgumentParser):
    """A first look at the command line that prints nothing: the full parser reports."""

    def error(self, message: str):
        raise ValueError(message)


def task_named_by(argv: list[str]) -> str:
    """The task a ``train`` command line is about, before its flags are known: the
    checkpoint's with --resume, else the one typed, else the run file's, else lm.
    Refuses a flag that is another task's option, naming the tasks it belongs to."""
    pre = _Lenient(add_help=False, allow_abbrev=False)
    pre.add_argument("task", nargs="?")
    for name in ("--resume", "--config", "--threads"):
        pre.add_argument(name)
    for name in (*SWITCHES, "-h", "--help"):
        pre.add_argument(name, action="store_true")
    names = [f.name for f in dataclasses.fields(Config) if f.name != "task"]
    for name in names:
        pre.add_argument(flag(name), dest=name)
    try:
        known, _ = pre.parse_known_args(argv)
    except ValueError:  # the full parser says what is wrong
        return "lm"
    if known.task is not None and known.task not in TASKS:
        return "lm"  # the full parser names the bad choice
    task = known.task if known.task is not None else "lm"
    if known.resume:
        try:
            task = saved_config(known.resume).task
        except BpttError:
            return "lm"  # the run says what is wrong with the checkpoint
    elif known.config and known.task is None:
        task = runfile.read(known.config).get("task", "lm")
    _refuse_others(task, [n for n in names if getattr(known, n) is not None])
    return task


def _refuse_others(task_name: str, given: list[str]) -> None:
    from bptt.tasks import TASK_MODULES, get

    mine = set(get(task_name).all_options())
    for name in given:
        if name not in mine:
            users = [t for t in TASK_MODULES if name in get(t).all_options()]
            raise BpttError(
                f"{flag(name)} is not an option of task {task_name} (it is one of "
                f"{', '.join(users)}); see 'bptt train {task_name} --help'"
            )


def _given(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(Config)} - {"task"}
    return {k: v for k, v in vars(args).items() if k in names}


def _run_file(path, task) -> dict:
    """A run file's settings for ``task``: the fields it names, checked to be its options."""
    settings = runfile.read(path)
    if settings.pop("task", task.name) != task.name:
        raise BpttError(
            f"the run file '{path}' is for another task than {task.name}; "
            f"leave the TASK out to use its own"
        )
    others = sorted(set(settings) - set(task.all_options()))
    if others:
        raise BpttError(
            f"the run file '{path}' sets {', '.join(others)}, not options of task {task.name}"
        )
    return settings


def config_of(args: argparse.Namespace):
    """The run's (task, config, out folder or None for a resumed run)."""
    from bptt.tasks import get

    given = _given(args)
    if args.resume:
        config = saved_config(args.resume)
        fixed = sorted(
            k for k, v in given.items() if k not in RESUMABLE and v != getattr(config, k)
        )
        if fixed:
            raise BpttError(
                f"--resume keeps the run's settings; these cannot change: "
                f"{', '.join(map(flag, fixed))} "
                f"(only {', '.join(map(flag, sorted(RESUMABLE)))} can)"
            )
        return get(config.task), dataclasses.replace(config, **given)
    task_name = args.task
    if task_name is None:  # none typed: the run file's, or the character LM
        task_name = runfile.read(args.config).get("task", "lm") if args.config else "lm"
    task = get(task_name)
    from_file = _run_file(args.config, task) if args.config else {}
    return task, task.config(**{**from_file, **given})


def train(args: argparse.Namespace) -> int:
    from bptt.diagnostics.plots import plot_history
    from bptt.train import BEST, LATEST

    task, config = config_of(args)
    if args.print_config:
        print(runfile.write(config, task.all_options(), task.about), end="")
        return 0
    out = Path(args.resume).parent if args.resume else fresh_folder(Path(config.out))
    trainer, summary = task.build_trainer(config, out, progress_bar=not args.quiet)
    trainer.tensorboard = config.tensorboard
    if not trainer.comm.is_root:  # data parallel (mpirun): rank 0 alone prints and samples
        if args.resume:
            trainer.resume(args.resume)
        trainer.run()
        return 0
    print("\n".join(summary))
    if args.resume:
        trainer.resume(args.resume)
        print(f"resumed from {args.resume} at update {trainer.progress.step}")
    progress = trainer.run()
    best = next(h for h in progress.history if h["step"] == progress.best_step)
    shown = ", ".join(f"{k[4:]} {v:.4f}" for k, v in best.items() if k.startswith("val_"))
    print(f"best validation (update {progress.best_step}): {shown}")
    print(f"checkpoints: {out / BEST} (best), {out / LATEST} (latest)")
    png = plot_history(out / "metrics.jsonl", out / "training.png")
    print(f"metrics: {out / 'metrics.jsonl'}" + (f", plot: {png}" if png else ""))
    task.finish(config, out / BEST)
    return 0


def saved_config(path) -> Config:
    from bptt.checkpoint import load_checkpoint

    _, meta = load_checkpoint(path)
    if "config" not in meta:
        raise BpttError(f"checkpoint '{path}' has no config in its metadata")
    try:
        return Config.from_dict(meta["config"])  # names are looked up in fixed tables
    except BpttError as e:
        raise BpttError(f"checkpoint '{path}': metadata field 'config': {e}") from None


def fresh_folder(out: Path) -> Path:
    """``out``, or ``out-2``, ``out-3``...: a new run never overwrites an earlier one's files."""
    candidate, n = out, 1
    while (candidate / "latest.safetensors").exists() or (candidate / "metrics.jsonl").exists():
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    if candidate != out:
        print(f"{out} holds an earlier run; writing to {candidate}")
    return candidate
