"""The commands that use a trained checkpoint: each asks the checkpoint's task for its verb.

bptt sample | eval | predict | translate | transcribe | compose CHECKPOINT ...
bptt export CHECKPOINT model.onnx

A task offers a verb or declares None (:class:`~bptt.tasks.base.Task`); a verb
the checkpoint's task lacks is refused, naming the tasks that have it.
"""

from __future__ import annotations

import argparse

from bptt.errors import BpttError, CheckpointError


def _formats(text: str) -> tuple[str, ...]:
    from bptt.tasks.text.music_render import FORMATS

    found = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in found if f not in FORMATS]
    if bad or not found:
        raise argparse.ArgumentTypeError(
            f"formats must be among {', '.join(FORMATS)}; got {text!r}"
        )
    return found


def add_parsers(sub) -> None:
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
    p.add_argument(
        "--format",
        default=None,
        choices=("entities", "conll"),
        help="ner: each entity with its type (default), or 'token TAB tag TAB probability' lines",
    )

    p = sub.add_parser("translate", help="run a trained encoder-decoder (dates, g2p, de-en)")
    p.add_argument("checkpoint", help="a checkpoint of bptt train dates, g2p or de-en")
    p.add_argument("text", help='the input, e.g. "tuesday 25 september 1984"')
    p.add_argument("--beam", type=int, default=5, help="beam width; 1 is greedy (default: 5)")
    p.add_argument("--max-length", type=int, default=None, help="longest output (default: run's)")
    p.add_argument(
        "--plot-attention",
        metavar="PNG",
        default=None,
        help="draw the attention weights (source across, output down)",
    )

    p = sub.add_parser("export", help="write a trained model as ONNX, for ONNX Runtime")
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by bptt train")
    p.add_argument("out", help="the .onnx file (an encoder-decoder: NAME.encoder/.decoder.onnx)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = sub.add_parser(
        "compose", help="write a tune with a trained music model: .abc .mid .wav .png"
    )
    p.add_argument("checkpoint", help="a checkpoint of `bptt train music`")
    p.add_argument("--bars", type=int, default=16, help="barlines to write (default: 16)")
    p.add_argument("--key", default=None, help="label K:, e.g. G, Dm, Ador (default: the model's)")
    p.add_argument("--meter", default=None, help="label M:, e.g. 6/8, 3/4, C| (default: model's)")
    p.add_argument("--unit", default=None, help="label L:, e.g. 1/8 (default: the model's)")
    p.add_argument("--prompt", default="", help='first notes of the body, e.g. "D|GAB"')
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    p.add_argument(
        "--temperature",
        type=float,
        default=0.5,
        help="lower keeps the meter more often (default: 0.5)",
    )
    p.add_argument("--top-k", type=int, default=None, help="draw only from the k most likely")
    p.add_argument(
        "--tries",
        type=int,
        default=1,
        help="write this many tunes at once and keep the first that parses and keeps "
        "its meter (default: 1, the first tune as it comes)",
    )
    p.add_argument(
        "--tempo", type=float, default=120.0, help="quarter notes a minute (default: 120)"
    )
    p.add_argument("--rate", type=int, default=16000, help="WAV sample rate, Hz (default: 16000)")
    p.add_argument(
        "--voice",
        choices=("pluck", "sine"),
        default="pluck",
        help="WAV voice: Karplus-Strong string or sine (default: pluck)",
    )
    p.add_argument(
        "--formats",
        type=_formats,
        default=("abc", "mid", "wav", "png"),
        help="files to write, comma-separated (default: abc,mid,wav,png)",
    )
    p.add_argument(
        "--out", default="tune", help="file stem: writes OUT.abc, OUT.mid... (default: tune)"
    )
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")

    p = sub.add_parser("transcribe", help="the digits spoken in a WAV file (a ctc-digits model)")
    p.add_argument("checkpoint", help="a checkpoint of bptt train ctc-digits")
    p.add_argument("wav", help="the WAV file (any rate: resampled to 16 kHz; mixed to mono)")
    p.add_argument(
        "--beam",
        type=int,
        default=1,
        help="prefix beam search of this width; 1: best path (default: 1)",
    )


def task_of(path):
    """The task a checkpoint names (looked up in the fixed table, never imported by name)."""
    from bptt.checkpoint import load_checkpoint
    from bptt.cli.train import saved_config
    from bptt.tasks import TASK_MODULES, get

    name = load_checkpoint(path)[1].get("task")
    return get(name if name in TASK_MODULES else saved_config(path).task)


# verb -> what a checkpoint of a task without it is told
REFUSALS = {
    "sample": (
        BpttError,
        "checkpoint '{path}' is for task {name!r}, not a language model "
        "(lm, names, music, chorales)",
    ),
    "predict": (
        BpttError,
        "checkpoint '{path}' is a {name} model; predict needs a classifier "
        "or tagger (sentiment, ner, dna, activity)",
    ),
    "translate": (
        BpttError,
        "checkpoint '{path}' is a {name} model; translate needs an "
        "encoder-decoder (dates, g2p, de-en)",
    ),
    "transcribe": (
        CheckpointError,
        "checkpoint '{path}' is for task {name!r}; transcribing needs a 'ctc-digits' checkpoint",
    ),
    "compose": (
        BpttError,
        "checkpoint '{path}' is a {name!r} model; compose needs a music model (bptt train music)",
    ),
}


def offered(path, verb: str):
    """(task, its ``verb``) of the checkpoint at ``path``; refused where the task has none."""
    task = task_of(path)
    function = getattr(task, verb)  # a field of the Task contract, None where not offered
    if function is None:
        error, message = REFUSALS[verb]
        raise error(message.format(path=path, name=task.name))
    return task, function


def sample(args: argparse.Namespace) -> int:
    _, write = offered(args.checkpoint, "sample")  # chorales: a melody from a label
    print(write(args.checkpoint, args.prompt, args.length, args.temperature, args.top_k, args.seed))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    print(task_of(args.checkpoint).evaluate_checkpoint(args))
    return 0


def predict(args: argparse.Namespace) -> int:
    task, predict_one = offered(args.checkpoint, "predict")
    if args.format is None:
        print(predict_one(args.checkpoint, args.text))
        return 0
    if args.format not in task.predict_formats:
        raise BpttError(
            f"--format {args.format} is for named entities (ner); checkpoint "
            f"'{args.checkpoint}' is a {task.name} model"
        )
    print(predict_one(args.checkpoint, args.text, args.format))
    return 0


def translate(args: argparse.Namespace) -> int:
    _, run = offered(args.checkpoint, "translate")
    print(run(args.checkpoint, args.text, args.beam, args.max_length, args.plot_attention))
    return 0


def transcribe(args: argparse.Namespace) -> int:
    _, hear = offered(args.checkpoint, "transcribe")
    print(hear(args.checkpoint, args.wav, args.beam))
    return 0


def compose(args: argparse.Namespace) -> int:
    _, write = offered(args.checkpoint, "compose")
    print(write(args))
    return 0


def export(args: argparse.Namespace) -> int:
    from bptt.onnx_export import describe, export_checkpoint

    for path in export_checkpoint(args.checkpoint, args.out, force=args.force):
        print(f"wrote {path}: {describe(path)}")
    return 0


COMMANDS = {
    "sample": sample,
    "eval": evaluate,
    "predict": predict,
    "translate": translate,
    "transcribe": transcribe,
    "compose": compose,
    "export": export,
}
