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
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bptt.config import PRESETS, Config
from bptt.errors import BpttError

_RESUMABLE = {"steps", "eval_every", "patience", "sample_length"}  # may change on --resume


def _yes_no(text: str) -> bool:
    """A boolean flag's value: true/yes/1 or false/no/0."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Config):
        if f.name == "task":
            continue
        kind = {bool: _yes_no, int: int, float: float}.get(type(f.default), str)
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            choices=f.metadata.get("choices"),
            default=argparse.SUPPRESS,  # only what the user typed overrides presets
            help=f"{f.metadata['help']} (default: {f.default})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bptt", description="Recurrent networks with hand-written BPTT."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("task", nargs="?", default="lm", choices=sorted(PRESETS))
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_flags(p)

    p = sub.add_parser("sample", help="write text with a trained language model")
    p.add_argument("checkpoint")
    p.add_argument("--prompt", default=None, help="text to start from (default: 'The ')")
    p.add_argument("--length", type=int, default=300, help="symbols to write (default: 300)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="draw only from the k most likely")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")

    p = sub.add_parser(
        "eval", help="a trained model's held-out metrics (language model: bits per symbol)"
    )
    p.add_argument("checkpoint")
    p.add_argument("--text", default=None, help="UTF-8 file (default: the run's validation text)")

    p = sub.add_parser("predict", help="classify a sentence, or tag each of its words")
    p.add_argument("checkpoint")
    p.add_argument("text", help='e.g. "There is nothing to like in this movie."')
    p.add_argument("--format", default=None, choices=("entities", "conll"),
                   help="ner: each entity with its type (default), or 'token TAB tag TAB "
                   "probability' lines")  # fmt: skip

    p = sub.add_parser("translate", help="run a trained encoder-decoder (dates, g2p, de-en)")
    p.add_argument("checkpoint")
    p.add_argument("text", help='the input, e.g. "tuesday 25 september 1984"')
    p.add_argument("--beam", type=int, default=5, help="beam width; 1 is greedy (default: 5)")
    p.add_argument("--max-length", type=int, default=None, help="longest output (default: run's)")
    p.add_argument("--plot-attention", metavar="PNG", default=None,
                   help="draw the attention weights (source across, output down)")  # fmt: skip
    from bptt import cli_memory

    cli_memory.add_parsers(sub)  # gradients, memory
    from bptt import cli_speech

    cli_speech.add_parsers(sub)  # synth
    from bptt import cli_music

    cli_music.add_parsers(sub)  # compose
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"train": _train, "sample": _sample, "eval": _eval, "translate": _translate,
                    "predict": _predict}  # fmt: skip
        from bptt import cli_memory

        commands |= {"gradients": cli_memory.gradients, "memory": cli_memory.memory}
        from bptt import cli_music

        commands["compose"] = cli_music.compose
        from bptt import cli_speech

        commands["synth"] = cli_speech.synth
        commands["transcribe"] = cli_speech.transcribe
        return commands[args.command](args)
    except BpttError as e:
        print(f"bptt: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:  # sizes from the command line too large for this machine
        print("bptt: error: not enough memory for these sizes; choose smaller ones "
              "(--hidden-size, --batch-size, --window, --length)", file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        print("bptt: interrupted", file=sys.stderr)
        return 130


def _given(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(Config)} - {"task"}
    return {k: v for k, v in vars(args).items() if k in names}


def _train(args: argparse.Namespace) -> int:
    from bptt import tasks
    from bptt.tasks import task_module
    from bptt.train import BEST, LATEST, plot_history

    given = _given(args)
    if args.resume:
        config = _saved_config(args.resume)
        fixed = sorted(
            k for k, v in given.items() if k not in _RESUMABLE and v != getattr(config, k)
        )
        if fixed:
            raise BpttError(
                f"--resume keeps the run's settings; these cannot change: {', '.join(fixed)} "
                f"(only {', '.join(sorted(_RESUMABLE))} can)"
            )
        config = dataclasses.replace(config, **given)
        out = Path(args.resume).parent
    else:
        config = Config(task=args.task, **{**PRESETS[args.task], **given})
        out = _fresh_folder(Path(config.out))

    task = task_module(config.task)
    if config.task != "lm":  # the other tasks do not shard their examples yet
        from bptt.distributed import get_comm

        ranks = get_comm().size
        if ranks > 1:
            raise BpttError(
                f"data-parallel training supports task 'lm' only; got task {config.task!r} "
                f"on {ranks} MPI ranks (run it as 1 process)"
            )
    trainer, summary = task.build_trainer(config, out, progress_bar=not args.quiet)
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


def _eval(args: argparse.Namespace) -> int:
    from bptt import tasks
    from bptt.tasks import task_module

    print(tasks.evaluate_checkpoint(task_module(_saved_config(args.checkpoint).task), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
