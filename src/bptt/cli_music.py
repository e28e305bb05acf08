"""``bptt compose``: a folk tune from a trained ABC model, as ABC, MIDI, WAV and a piano roll.

bptt compose CHECKPOINT --bars 16 --key G [--meter 6/8] [--prompt "D|GAB"] [--seed N] --out tune

Parses, builds, calls; the tune comes from :func:`bptt.tasks.music.compose`, the
files from :func:`bptt.tasks.music_render.render`.
"""

from __future__ import annotations

import argparse

import numpy as np

from bptt.errors import BpttError


def _formats(text: str) -> tuple[str, ...]:
    from bptt.tasks.music_render import FORMATS

    found = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in found if f not in FORMATS]
    if bad or not found:
        raise argparse.ArgumentTypeError(
            f"formats must be among {', '.join(FORMATS)}; got {text!r}"
        )
    return found


def add_parsers(sub) -> None:
    """Add ``compose`` to the ``bptt`` command's subparsers."""
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
    p.add_argument("--temperature", type=float, default=0.5,
                   help="lower keeps the meter more often (default: 0.5)")  # fmt: skip
    p.add_argument("--top-k", type=int, default=None, help="draw only from the k most likely")
    p.add_argument("--tries", type=int, default=1,
                   help="write this many tunes at once and keep the first that parses and keeps "
                   "its meter (default: 1, the first tune as it comes)")  # fmt: skip
    p.add_argument(
        "--tempo", type=float, default=120.0, help="quarter notes a minute (default: 120)"
    )
    p.add_argument("--rate", type=int, default=16000, help="WAV sample rate, Hz (default: 16000)")
    p.add_argument("--voice", choices=("pluck", "sine"), default="pluck",
                   help="WAV voice: Karplus-Strong string or sine (default: pluck)")  # fmt: skip
    p.add_argument("--formats", type=_formats, default=("abc", "mid", "wav", "png"),
                   help="files to write, comma-separated (default: abc,mid,wav,png)")  # fmt: skip
    p.add_argument(
        "--out", default="tune", help="file stem: writes OUT.abc, OUT.mid... (default: tune)"
    )
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")


def compose(args: argparse.Namespace) -> int:
    from bptt.tasks import abc_meter, lm, music, music_render

    for field, value in (("M", args.meter), ("K", args.key), ("L", args.unit)):
        if value is not None:
            music.check_label(field, value)
    if args.tries < 1 or args.tries > 1000:
        raise BpttError(f"--tries must be in 1..1000; got {args.tries}")
    if not 0 <= args.seed < 2**63:
        raise BpttError(f"--seed must be an integer in 0..2**63-1 ({2**63 - 1:,}); got {args.seed}")
    music_render._music21()  # names the extra before any work
    if "png" in args.formats:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise BpttError("the piano roll (png) needs matplotlib: pip install 'bptt[plot]', "
                            "or leave png out of --formats") from None  # fmt: skip
    paths = music_render.output_paths(args.out, args.formats)
    there = [str(p) for p in paths.values() if p.exists()]
    if there and not args.force:
        raise BpttError(f"{', '.join(there)} already exist(s); choose another --out or --force")

    model, vocab, _, meta = lm.load_model(args.checkpoint)
    if meta.get("task") != "music":
        raise BpttError(f"checkpoint '{args.checkpoint}' is a {meta.get('task')!r} model; compose "
                        "needs a music model (bptt train music)")  # fmt: skip
    rng = np.random.default_rng(args.seed)
    tunes = music.compose(model, vocab, args.tries, args.meter, args.key, args.unit, args.prompt,
                          args.bars, args.temperature, args.top_k, rng)  # fmt: skip
    checks = [abc_meter.check_tune(t) for t in tunes]
    pick = next((i for i, (p, m) in enumerate(checks) if p and m), None)
    if pick is None:
        pick = next((i for i, (p, _) in enumerate(checks) if p), None)
    if pick is None:
        raise BpttError(f"none of the {len(tunes)} tunes written parses in music21; try another "
                        "--seed, more --tries or a lower --temperature")  # fmt: skip
    tune = tunes[pick]
    kept = sum(p and m for p, m in checks)
    print(tune)
    print(f"\ntune {pick + 1} of {len(tunes)} written; {kept} of them parse and keep their meter"
          f"{'' if checks[pick][1] else ' (this one does not keep its meter)'}")  # fmt: skip
    labels = [f"{w} {v}" for w, v in (("key", args.key), ("meter", args.meter)) if v]
    title = ", ".join(["bptt compose", *labels, f"seed {args.seed}"])  # no ':' (an ABC field)
    written = music_render.render(tune, args.out, args.formats, args.tempo, args.rate, args.voice,
                                  title, args.force)  # fmt: skip
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
