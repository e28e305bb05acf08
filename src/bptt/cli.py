"""The ``bptt`` command: parses, builds, calls. No logic of its own.

bptt train [lm|sentiment|ner|dna|activity|dates|g2p|de-en] [--flags]
bptt train [lm] [--flags]          train (default: the character LM on the built-in corpus)
bptt train --resume CHECKPOINT     continue a run exactly where it stopped
bptt sample CHECKPOINT --prompt "The " --length 300 --temperature 0.8
bptt predict CHECKPOINT "a sentence"  the class and its probability, or the entities
bptt eval CHECKPOINT --text FILE   bits per character on any text (seq2seq: test metrics)
bptt translate CHECKPOINT "tuesday 25 september 1984" --beam 5 [--plot-attention out.png]
bptt gradients [CHECKPOINT] --cells rnn,lstm,gru   gradient flow through time: numbers and PNGs
bptt memory --lags 5,10,20,50,100  long-range memory sweep: the longest lag each cell learns
bptt compose CHECKPOINT --bars 16 --key G --meter 6/8 --out tune   .abc .mid .wav .png of a tune
bptt synth "3 1 4 1 5" --voice en-us+f2 --out pi.wav   speak a text into a 16 kHz WAV file
bptt transcribe CHECKPOINT pi.wav [--beam 8]   the digits a ctc-digits model hears in a WAV
bptt export CHECKPOINT model.onnx  the model as ONNX (LSTM/GRU/RNN operators) for ONNX Runtime
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from bptt.config import PRESETS, Config
from bptt.errors import BpttError, TrainingInterrupted

# may change on --resume
_RESUMABLE = {"steps", "eval_every", "patience", "sample_length", "tensorboard", "watchdog"}


def _yes_no(text: str) -> bool:
    """A boolean flag's value: true/yes/1 or false/no/0."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


class _Parser(argparse.ArgumentParser):
    """argparse with the house's one-line errors: ``bptt: error: ...``, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"bptt: error: {message} (see '{self.prog} --help')\n")


def flag(name: str) -> str:
    """The command-line flag of a Config field: hidden_size -> --hidden-size."""
    return "--" + name.replace("_", "-")


def _flag_help(f: dataclasses.Field, default) -> str:
    """A Config field's help with its default, said once (the help may already say it)."""
    text = f.metadata["help"]
    if "(default:" in text or default is None:
        return text
    return f"{text} (default: {default})"


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Config):
        if f.name == "task":
            continue
        kind = {bool: _yes_no, int: int, float: float}.get(type(f.default), str)
        p.add_argument(
            flag(f.name),
            dest=f.name,
            type=kind,
            choices=f.metadata.get("choices"),
            default=argparse.SUPPRESS,  # only what the user typed overrides presets
            help=_flag_help(f, f.default),
        )


class _TaskHelp(argparse.Action):
    """``bptt train TASK --help``: the defaults shown are that task's preset, not the LM's."""

    def __init__(
        self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None
    ):
        super().__init__(option_strings, dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        task = getattr(namespace, "task", None) or "lm"
        preset = PRESETS.get(task, {})
        fields = {f.name: f for f in dataclasses.fields(Config)}
        for action in parser._actions:
            f = fields.get(action.dest)
            if f is not None and f.name != "task":
                action.help = _flag_help(f, preset.get(f.name, f.default))
        parser.description = f"Train a model. The defaults shown are the {task} preset's" + (
            "." if task != "lm" else "; 'bptt train TASK --help' shows another task's."
        )
        parser.print_help()
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bptt", description="Recurrent networks with hand-written BPTT.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model", add_help=False)
    p.add_argument("-h", "--help", action=_TaskHelp,
                   help="show this help (after a TASK: that task's defaults) and exit")  # fmt: skip
    p.add_argument("task", nargs="?", default="lm", choices=sorted(PRESETS),
                   help="the application (default: lm, the character language model)")  # fmt: skip
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_flags(p)

    p = sub.add_parser("sample", help="write text with a trained language model")
    p.add_argument("checkpoint", help="a checkpoint of bptt train (lm, names, music, chorales)")
    p.add_argument("--prompt", default=None, help="text to start from (default: 'The ')")
    p.add_argument("--length", type=int, default=300, help="symbols to write (default: 300)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="draw only from the k most likely")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")

    p = sub.add_parser(
        "eval", help="a trained model's held-out metrics (language model: bits per symbol)"
    )
    p.add_argument("checkpoint", help="a checkpoint of bptt train, e.g. runs/lm/best.safetensors")
    p.add_argument("--text", default=None, help="UTF-8 file (default: the run's validation text)")

    p = sub.add_parser("predict", help="classify a sentence, or tag each of its words")
    p.add_argument("checkpoint", help="a checkpoint of bptt train sentiment, ner, dna or activity")
    p.add_argument("text", help='e.g. "There is nothing to like in this movie."')
    p.add_argument("--format", default=None, choices=("entities", "conll"),
                   help="ner: each entity with its type (default), or 'token TAB tag TAB "
                   "probability' lines")  # fmt: skip

    p = sub.add_parser("translate", help="run a trained encoder-decoder (dates, g2p, de-en)")
    p.add_argument("checkpoint", help="a checkpoint of bptt train dates, g2p or de-en")
    p.add_argument("text", help='the input, e.g. "tuesday 25 september 1984"')
    p.add_argument("--beam", type=int, default=5, help="beam width; 1 is greedy (default: 5)")
    p.add_argument("--max-length", type=int, default=None, help="longest output (default: run's)")
    p.add_argument("--plot-attention", metavar="PNG", default=None,
                   help="draw the attention weights (source across, output down)")  # fmt: skip
    p = sub.add_parser("export", help="write a trained model as ONNX, for ONNX Runtime")
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by bptt train")
    p.add_argument("out", help="the .onnx file (an encoder-decoder: NAME.encoder/.decoder.onnx)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    from bptt import cli_memory

    cli_memory.add_parsers(sub)  # gradients, memory
    from bptt import cli_speech

    cli_speech.add_parsers(sub)  # synth
    from bptt import cli_music

    cli_music.add_parsers(sub)  # compose
    for command in sub.choices.values():
        command.add_argument(
            "--threads", type=int, default=None,
            help="threads to use (default: every CPU this process may use, or BPTT_NUM_THREADS)",
        )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        commands = {"train": _train, "sample": _sample, "eval": _eval, "translate": _translate,
                    "predict": _predict, "export": _export}  # fmt: skip
        from bptt import cli_memory

        commands |= {"gradients": cli_memory.gradients, "memory": cli_memory.memory}
        from bptt import cli_music

        commands["compose"] = cli_music.compose
        from bptt import cli_speech

        commands["synth"] = cli_speech.synth
        commands["transcribe"] = cli_speech.transcribe
        if args.threads is not None:
            import bptt

            bptt.set_num_threads(args.threads)
        return commands[args.command](args)
    except BpttError as e:
        print(f"bptt: error: {_as_typed(str(e), parser, args.command)}", file=sys.stderr)
        return 2
    except MemoryError:  # sizes from the command line too large for this machine
        print("bptt: error: not enough memory for these sizes; choose smaller ones "
              "(--hidden-size, --batch-size, --window, --length)", file=sys.stderr)  # fmt: skip
        return 2
    except TrainingInterrupted as e:
        print(f"bptt: interrupted; {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("bptt: interrupted", file=sys.stderr)
        return 130


def _as_typed(message: str, parser: argparse.ArgumentParser, command: str) -> str:
    """An error about a setting, said with the flag the user typed (hidden_size -> --hidden-size).

    Names with an underscore are rewritten wherever they stand; one-word names
    (seed, length) only as the subject ("seed must ..."). A checkpoint's own
    fields ("checkpoint '...': ... hidden_size ...") are about the file and stay.
    """
    if message.startswith("checkpoint"):
        return message
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.dest: a.option_strings[-1] for a in sub.choices[command]._actions
             if a.option_strings and a.option_strings[-1].startswith("--")}  # fmt: skip
    for dest, typed in flags.items():
        if "_" in dest:
            message = re.sub(rf"(?<![\w-]){dest}\b", typed, message)
        elif message.startswith(f"{dest} must "):
            message = typed + message[len(dest) :]
    return message


def _given(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(Config)} - {"task"}
    return {k: v for k, v in vars(args).items() if k in names}


def _train(args: argparse.Namespace) -> int:
    from bptt import tasks
    from bptt.diagnostics.plots import plot_history
    from bptt.tasks import task_module
    from bptt.train import BEST, LATEST

    given = _given(args)
    if args.resume:
        config = _saved_config(args.resume)
        fixed = sorted(
            k for k, v in given.items() if k not in _RESUMABLE and v != getattr(config, k)
        )
        if fixed:
            raise BpttError(
                f"--resume keeps the run's settings; these cannot change: "
                f"{', '.join(map(flag, fixed))} "
                f"(only {', '.join(map(flag, sorted(_RESUMABLE)))} can)"
            )
        config = dataclasses.replace(config, **given)
        out = Path(args.resume).parent
    else:
        config = Config(task=args.task, **{**PRESETS[args.task], **given})
        out = _fresh_folder(Path(config.out))

    task = task_module(config.task)
    trainer, summary = task.build_trainer(config, out, progress_bar=not args.quiet)
    trainer.tensorboard = config.tensorboard  # the tasks build the trainer; every one logs
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
    tasks.after_training(task, config, out / BEST)
    return 0


def _saved_config(path) -> Config:
    from bptt.checkpoint import load_checkpoint

    _, meta = load_checkpoint(path)
    if "config" not in meta:
        raise BpttError(f"checkpoint '{path}' has no config in its metadata")
    try:
        return Config.from_dict(meta["config"])  # names are looked up in fixed tables
    except BpttError as e:
        raise BpttError(f"checkpoint '{path}': metadata field 'config': {e}") from None


def _fresh_folder(out: Path) -> Path:
    """``out``, or ``out-2``, ``out-3``...: a new run never overwrites an earlier one's files."""
    candidate, n = out, 1
    while (candidate / "latest.safetensors").exists() or (candidate / "metrics.jsonl").exists():
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    if candidate != out:
        print(f"{out} holds an earlier run; writing to {candidate}")
    return candidate


def _sample(args: argparse.Namespace) -> int:
    from bptt.tasks import lm, task_module

    task = task_module(_saved_config(args.checkpoint).task)  # chorales: a melody from a label
    sample = getattr(task, "sample_checkpoint", lm.sample_checkpoint)
    print(sample(args.checkpoint, args.prompt, args.length, args.temperature, args.top_k,
                 args.seed))  # fmt: skip
    return 0


def _translate(args: argparse.Namespace) -> int:
    from bptt.tasks import task_module

    task = task_module(_saved_config(args.checkpoint).task)
    if not hasattr(task, "translate"):
        raise BpttError(f"checkpoint '{args.checkpoint}' is a {task.__name__} model; "
                        f"translate needs an encoder-decoder (dates, g2p, de-en)")  # fmt: skip
    print(task.translate(args.checkpoint, args.text, args.beam, args.max_length,
                         args.plot_attention))  # fmt: skip
    return 0


def _predict(args: argparse.Namespace) -> int:
    from bptt.tasks import task_module

    task = task_module(_saved_config(args.checkpoint).task)
    if not hasattr(task, "predict_checkpoint"):
        raise BpttError(
            f"checkpoint '{args.checkpoint}' is a {task.__name__} model; predict "
            f"needs a classifier or tagger (sentiment, ner, dna, activity)"
        )
    if args.format is None:
        print(task.predict_checkpoint(args.checkpoint, args.text))
        return 0
    if args.format not in getattr(task, "PREDICT_FORMATS", ()):
        raise BpttError(f"--format {args.format} is for named entities (ner); checkpoint "
                        f"'{args.checkpoint}' is a {task.__name__} model")  # fmt: skip
    print(task.predict_checkpoint(args.checkpoint, args.text, args.format))
    return 0


def _export(args: argparse.Namespace) -> int:
    from bptt.onnx_export import describe, export_checkpoint

    for path in export_checkpoint(args.checkpoint, args.out, force=args.force):
        print(f"wrote {path}: {describe(path)}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from bptt import tasks
    from bptt.tasks import task_module

    print(tasks.evaluate_checkpoint(task_module(_saved_config(args.checkpoint).task), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
