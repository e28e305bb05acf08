"""The ``bptt`` command: parses, builds, calls. No logic of its own.

bptt train [TASK] [--flags]        train (default: the character LM on the built-in corpus)
bptt train TASK --help             that task's options, its preset's defaults
bptt train TASK --print-config > run.toml; bptt train --config run.toml   a run file
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

Each command's parser and call live in a module here (train, use, memory, speech);
the work is the tasks' (:mod:`bptt.tasks`, each a :class:`~bptt.tasks.base.Task`)
and the diagnostics'.
"""

from __future__ import annotations

import argparse
import re
import sys

from bptt.errors import BpttError, TrainingInterrupted


class _Parser(argparse.ArgumentParser):
    """argparse with the house's one-line errors: ``bptt: error: ...``, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"bptt: error: {message} (see '{self.prog} --help')\n")


def build_parser(train_task: str = "lm") -> argparse.ArgumentParser:
    """The whole command; ``train`` has the flags of ``train_task``'s options."""
    from bptt.cli import memory, speech, train, use

    parser = _Parser(prog="bptt", description="Recurrent networks with hand-written BPTT.")
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_parser(sub, train_task)
    use.add_parsers(sub)  # sample, eval, predict, translate, export, compose, transcribe
    memory.add_parsers(sub)  # gradients, memory
    speech.add_parsers(sub)  # synth
    for command in sub.choices.values():
        command.add_argument(
            "--threads",
            type=int,
            default=None,
            help="threads to use (default: every CPU this process may use, or BPTT_NUM_THREADS)",
        )
    return parser


def _commands() -> dict:
    from bptt.cli import memory, speech, train, use

    return {
        "train": train.train,
        "gradients": memory.gradients,
        "memory": memory.memory,
        "synth": speech.synth,
        **use.COMMANDS,
    }


def main(argv: list[str] | None = None) -> int:
    from bptt.cli import train

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        task = train.task_named_by(argv[1:]) if argv[:1] == ["train"] else "lm"
    except BpttError as e:
        print(f"bptt: error: {e}", file=sys.stderr)
        return 2
    parser = build_parser(task)
    args = parser.parse_args(argv)
    try:
        if args.threads is not None:
            import bptt

            bptt.set_num_threads(args.threads)
        return _commands()[args.command](args)
    except BpttError as e:
        print(f"bptt: error: {_as_typed(str(e), parser, args.command)}", file=sys.stderr)
        return 2
    except MemoryError:  # sizes from the command line too large for this machine
        print(
            "bptt: error: not enough memory for these sizes; choose smaller ones "
            "(--hidden-size, --batch-size, --window, --length)",
            file=sys.stderr,
        )
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
    flags = {
        a.dest: a.option_strings[-1]
        for a in sub.choices[command]._actions
        if a.option_strings and a.option_strings[-1].startswith("--")
    }
    for dest, typed in flags.items():
        if "_" in dest:
            message = re.sub(rf"(?<![\w-]){dest}\b", typed, message)
        elif message.startswith(f"{dest} must "):
            message = typed + message[len(dest) :]
    return message


if __name__ == "__main__":
    sys.exit(main())
