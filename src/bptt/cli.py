"""The ``bptt`` command: parses, builds, calls. No logic of its own.

bptt train [lm] [--flags]          train (default: the character LM on the built-in corpus)
bptt train --resume CHECKPOINT     continue a run exactly where it stopped
bptt sample CHECKPOINT --prompt "The " --length 300 --temperature 0.8
bptt eval CHECKPOINT --text FILE   bits per character on any text
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from bptt.config import PRESETS, Config
from bptt.errors import BpttError

_RESUMABLE = {"steps", "eval_every", "patience", "sample_length"}  # may change on --resume


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Config):
        if f.name == "task":
            continue
        kind = {int: int, float: float}.get(type(f.default), str)
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            choices=f.metadata.get("choices"),
            default=argparse.SUPPRESS,  # only what the user typed overrides presets
            help=f"{f.metadata['help']} (default: {f.default})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bptt", description=__doc__.split("\n")[0])
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

    p = sub.add_parser("eval", help="bits per symbol of a trained language model on a text")
    p.add_argument("checkpoint")
    p.add_argument("--text", default=None, help="UTF-8 file (default: the run's validation text)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": _train, "sample": _sample, "eval": _eval}[args.command](args)
    except BpttError as e:
        print(f"bptt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bptt: interrupted", file=sys.stderr)
        return 130


def _given(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(Config)} - {"task"}
    return {k: v for k, v in vars(args).items() if k in names}


def _train(args: argparse.Namespace) -> int:
    from bptt.tasks import lm
    from bptt.train import BEST, LATEST, plot_history

    given = _given(args)
    if args.resume:
        _, _, config, _ = lm.load_model(args.resume)
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

    trainer, data = lm.build_trainer(config, out, progress_bar=not args.quiet)
    model = trainer.model
    print(f"data: {data.source}")
    print(
        f"vocabulary: {len(data.vocab)} symbols | train {len(data.train_ids):,} symbols, "
        f"validation {len(data.val_ids):,}"
    )
    print(
        f"model: {config.cell.upper()} {config.num_layers}x{config.hidden_size}, "
        f"embedding {config.embed_size}, {model.num_parameters():,} parameters, {config.dtype}"
    )
    if args.resume:
        trainer.resume(args.resume)
        print(f"resumed from {args.resume} at update {trainer.progress.step}")
    print(
        f"training: {config.steps} updates of {config.batch_size} streams x {config.window} steps "
        f"(truncated BPTT), {config.optimizer} lr {config.lr}, clip {config.clip}"
    )
    progress = trainer.run()
    print(
        f"best validation: {progress.best_loss / np.log(2):.3f} bits per symbol "
        f"at update {progress.best_step}"
    )
    print(f"checkpoints: {out / BEST} (best), {out / LATEST} (latest)")
    png = plot_history(out / "metrics.jsonl", out / "training.png")
    print(f"metrics: {out / 'metrics.jsonl'}" + (f", plot: {png}" if png else ""))
    best, vocab, _, _ = lm.load_model(out / BEST)
    prompts = [p for p in ("The ", "def ") if _writable(vocab, p)] or [_default_prompt(vocab)]
    for prompt in prompts:
        text = _write(best, vocab, prompt, config.sample_length, 0.8, None, config.seed)
        print(f"\n--- sample (prompt {prompt!r}, temperature 0.8) ---\n{prompt}{text}")
    return 0


def _fresh_folder(out: Path) -> Path:
    """``out``, or ``out-2``, ``out-3``...: a new run never overwrites an earlier one's files."""
    candidate, n = out, 1
    while (candidate / "latest.safetensors").exists() or (candidate / "metrics.jsonl").exists():
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    if candidate != out:
        print(f"{out} holds an earlier run; writing to {candidate}")
    return candidate


def _writable(vocab, text: str) -> bool:
    return all(s in vocab for s in vocab.split(text))


def _default_prompt(vocab) -> str:
    """'The ' where the vocabulary has its letters, else its first ordinary symbol."""
    return "The " if _writable(vocab, "The ") else next(t for t in vocab if t not in vocab.specials)


def _write(model, vocab, prompt, length, temperature, top_k, seed) -> str:
    from bptt.decode import generate

    unknown = sorted({s for s in vocab.split(prompt) if s not in vocab})
    if unknown:
        listed = ", ".join(repr(s) for s in unknown)
        raise BpttError(f"the prompt has symbols not in the vocabulary: {listed}")
    rng = np.random.default_rng(seed)
    never = () if vocab.unk_id is None else (vocab.unk_id,)  # <unk> is no symbol to write
    ids = generate(model, vocab.encode(prompt), length, temperature, top_k, rng, exclude=never)
    return vocab.decode(ids)


def _sample(args: argparse.Namespace) -> int:
    from bptt.tasks import lm

    model, vocab, _, _ = lm.load_model(args.checkpoint)
    prompt = _default_prompt(vocab) if args.prompt is None else args.prompt
    text = _write(model, vocab, prompt, args.length, args.temperature, args.top_k, args.seed)
    print(prompt + text)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from bptt.data import read_text, split_text
    from bptt.tasks import lm

    model, vocab, config, _ = lm.load_model(args.checkpoint)
    if args.text is None:
        text = split_text(_corpus(config), config.val_fraction)[1]
        what = "the run's validation text"
    else:
        text, what = read_text(args.text), args.text
    ids = vocab.encode(text)
    unknown = int((ids == vocab.unk_id).sum())
    metrics = lm.evaluate_ids(model, ids)
    print(
        f"{what}: {len(ids):,} symbols ({unknown} not in the vocabulary), "
        f"{metrics['bits_per_symbol']:.4f} bits per symbol"
    )
    return 0


def _corpus(config: Config) -> str:
    from bptt.data import builtin_corpus, read_text

    return builtin_corpus() if config.text is None else read_text(config.text)


if __name__ == "__main__":
    sys.exit(main())
