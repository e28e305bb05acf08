"""One to many: folk tunes in ABC notation, written character by character (as folk-rnn).

The corpus is the folk-tune ABC files that ship in music21's corpus (extra
``music``): Ryan's Mammoth Collection, O'Neill's 1850, the Essen folksongs,
Aird's Airs. Each tune is kept as its meter, unit length and key lines and its
body (titles, notes and other fields dropped), e.g.::

    M:6/8
    L:1/8
    K:G
    D|GAB d2e|...

Tunes are shuffled with the seed and ``--test-fraction`` held out. With
``--clean-meter`` (the preset's default) only the training tunes that parse and
keep their meter (:func:`check_tune`) are trained on; the held-out tunes stay
as they are, and the vocabulary is that of all training tunes. Training
reads the training tunes as one stream, each preceded by a blank line (its
<bos>); a sample starts from ``"\\n\\nM:"`` and ends at the next blank line.

Reported: test bits per character against a unigram and a bigram baseline
(add-one counts of the training tunes), and the share of samples that parse
in music21 and whose inner bars last what their meter says.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.config import Config
from bptt.data import Vocabulary, read_text
from bptt.data.vocabulary import UNK
from bptt.decode import sample_next
from bptt.errors import BpttError, DataError
from bptt.tasks.metrics import ngram_bits
from bptt.tasks.text import lm
from bptt.tasks.text.abc_meter import check_tune, keeps_meter
from bptt.train import Trainer

FOLDERS = ("ryansMammoth", "oneills1850", "essenFolksong", "airdsAirs", "miscFolk")
SOURCE = "ABC folk tunes of music21's corpus (" + ", ".join(FOLDERS) + ")"
SEP = "\n\n"  # a blank line: <eos> of one tune, <bos> of the next
KEEP = ("M", "L", "K")  # header fields kept, in this order; K ends the header in ABC
FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")


def split_tunes(abc: str) -> list[str]:
    """The tunes of an ABC file as ``M:..\\nL:..\\nK:..\\nbody`` (no K or no body: dropped)."""
    tunes = []
    for chunk in re.split(r"(?m)^X:", abc)[1:]:
        header, body = {}, []
        for line in chunk.splitlines()[1:]:
            line = line.rstrip()
            if not line or line.startswith("%"):
                continue
            m = FIELD.match(line)
            if m and not body:  # a header field (fields inside the body are dropped too)
                header.setdefault(m.group(1), m.group(2).strip())
            elif not m:
                body.append(line)
        if "K" in header and body:
            head = [f"{k}:{header[k]}" for k in KEEP if k in header]
            tunes.append("\n".join(head + body))
    return tunes


def load_tunes(text: str | None = None) -> list[str]:
    """Tunes from music21's corpus, or from the ABC file ``text``, in file order."""
    if text is not None:
        tunes = split_tunes(read_text(text))
    else:
        try:
            from music21 import corpus
        except ImportError:
            raise DataError(
                "music needs the package music21 (pip install 'bptt[music]'), "
                "or --text FILE of ABC tunes"
            ) from None
        paths = sorted(
            p for p in corpus.getPaths(fileExtensions=("abc",)) if Path(p).parent.name in FOLDERS
        )
        tunes = []
        for p in paths:  # a few files are Latin-1
            tunes += split_tunes(Path(p).read_bytes().decode("utf-8", errors="replace"))
    if len(tunes) < 2:
        raise DataError(f"music needs at least 2 ABC tunes (X:, K: and a body); got {len(tunes)}")
    return tunes


def as_stream(tunes: list[str]) -> str:
    return SEP + SEP.join(tunes) + SEP


@dataclass
class MusicData:
    vocab: Vocabulary
    train: list[str]
    val: list[str]  # picks the best checkpoint; the test tunes are only ever reported
    test: list[str]
    train_ids: np.ndarray
    val_ids: np.ndarray
    test_ids: np.ndarray
    source: str
    dropped: int = 0  # training tunes left out by --clean-meter


def prepare_data(config: Config) -> MusicData:
    tunes = load_tunes(config.text)
    order = np.random.default_rng(config.seed).permutation(len(tunes))  # (N,)
    tunes = [tunes[i] for i in order][: config.max_examples or None]
    n_test = min(len(tunes) - 1, max(1, round(len(tunes) * config.test_fraction)))
    n_val = min(len(tunes) - n_test - 1, n_test)  # as many validation tunes as test tunes
    test, val, train = tunes[:n_test], tunes[n_test : n_test + n_val], tunes[n_test + n_val :]
    # The vocabulary of every tune but the test ones: the same with or without --clean-meter.
    vocab = Vocabulary.from_text(as_stream(train + val), level="char", specials=(UNK,))
    dropped = 0
    if config.clean_meter:
        keep = keeps_meter(train)
        dropped = len(train) - sum(keep)
        train = [t for t, k in zip(train, keep, strict=True) if k]
        if not train:
            raise DataError("--clean-meter: no training tune parses and keeps its meter")
    source = SOURCE if config.text is None else config.text
    return MusicData(
        vocab,
        train,
        val,
        test,
        vocab.encode(as_stream(train)),
        vocab.encode(as_stream(val)),
        vocab.encode(as_stream(test)),
        source,
        dropped,
    )


def build_trainer(config: Config, out_dir, progress_bar: bool = True) -> tuple[Trainer, list[str]]:
    data = prepare_data(config)
    ids = data.train_ids, data.val_ids  # trained on, validated on
    trainer, model_lines = lm.text_trainer(config, out_dir, "music", data.vocab, *ids, progress_bar)
    base = ngram_bits(data.train_ids, data.test_ids, len(data.vocab))
    summary = [
        f"data: {data.source}",
        f"tunes: {len(data.train):,} training"
        + (f" ({data.dropped:,} dropped: bars off their meter)" if config.clean_meter else "")
        + f", {len(data.val):,} validation (pick the checkpoint), {len(data.test):,} test "
        f"(held out) | vocabulary "
        f"{len(data.vocab)} symbols, {len(data.train_ids):,} training characters",
        f"baselines on the held-out tunes: unigram {base['unigram']:.4f}, bigram "
        f"{base['bigram']:.4f} bits per character",
    ]
    return trainer, summary + model_lines


SAMPLE_TEMPERATURE = 0.5  # of the 100 samples `bptt train music` checks (0.8: 16% keep meter)
METER = re.compile(r"C\|?|([1-9]\d?)/(1|2|4|8|16)")  # M: a label may give
KEY = re.compile(
    r"[A-G][b#]?( ?(m|min|minor|maj|major|ion|ionian|dor|dorian|phr|phrygian|lyd|lydian|mix"
    r"|mixolydian|aeo|aeolian|loc|locrian))?",
    re.IGNORECASE,
)  # K: a label may give: a tonic (A-G, b or #) and a mode, as the corpus writes them
UNIT = re.compile(r"1/(1|2|4|8|16|32)")  # L:
BARLINE = "|:"  # characters that make a barline, with "]" inside one (|])


def check_label(field: str, value: str) -> str:
    """A label for a header field (M meter, K key, L unit length), checked; the clean value."""
    rule, what = {
        "M": (METER, "a meter such as 6/8, 4/4, C or C|"),
        "K": (KEY, "a key such as G, Dm, Ador or E minor"),
        "L": (UNIT, "a unit length such as 1/8 or 1/16"),
    }[field]
    value = str(value).strip()
    if not rule.fullmatch(value):
        raise BpttError(f"{field}: expected {what}; got {value!r}")
    if field == "K":  # the tonic as ABC writes it: upper case letter, then b or #
        value = value[0].upper() + value[1:]
    return value


def _keep(new, old, rows: np.ndarray):
    """The recurrent state ``new`` with the rows where ``rows`` (B,) is True put back to ``old``
    (an LSTM's (h, c) or one (L, B, H) array)."""
    if isinstance(new, tuple):
        return tuple(_keep(n, o, rows) for n, o in zip(new, old, strict=True))
    return np.where(rows[None, :, None], old, new)  # (L, B, H)


def compose(
    model,
    vocab: Vocabulary,
    n: int = 1,
    meter: str | None = None,
    key: str | None = None,
    unit: str | None = None,
    prompt: str = "",
    bars: int | None = None,
    temperature: float = 0.8,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    max_chars: int = 1200,
) -> list[str]:
    """``n`` tunes written at once (B = n rows of one batch), each ``M:..\nL:..\nK:..\nbody``.

    From nothing: the model reads the blank line that starts every tune (its
    <bos>) and writes the header and the body itself. From a label: the header
    is the label, fed as the first steps, so it sets the state s_t the body is
    written from; fields M, L, K come in the corpus's order, a given field is
    fed and a missing one is written by the model up to its line's end. From
    first notes: ``prompt`` is fed after the header and the body continues it.

    A tune ends at the next blank line, or, with ``bars``, after that many
    barlines (a pickup before the first counts as a bar; the tune may not end
    before); a last plain ``|`` becomes ``|]``. At most ``max_chars``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    labels = {"M": meter, "L": unit, "K": key}
    labels = {f: None if v is None else check_label(f, v) for f, v in labels.items()}
    if bars is not None and not 1 <= bars <= 256:
        raise BpttError(f"bars must be in 1..256; got {bars}")
    if not 1 <= n <= 10_000:
        raise BpttError(f"n (tunes at once) must be in 1..10000; got {n}")
    if "\n\n" in prompt:
        raise BpttError("the prompt (first notes) may not contain a blank line: it ends a tune")
    for text, what in [(prompt, "the prompt"), *[(v or "", f"{f}:") for f, v in labels.items()]]:
        missing = sorted({c for c in text if c not in vocab})
        if missing:
            raise BpttError(f"{what} has characters the model never saw: {missing}")
    never = [] if vocab.unk_id is None else [vocab.unk_id]
    newline = vocab.index("\n")
    written = [""] * n

    def feed(text, state):
        ids = np.tile(vocab.encode(text), (n, 1))  # (B, P)
        logits, state = model.forward(ids, state)  # (B, P, V)
        for b in range(n):
            written[b] += text
        return logits[:, -1], state  # (B, V)

    logits, state = feed(SEP, None)
    written[:] = [""] * n  # the blank line is the start symbol, not part of the tune
    in_header = np.ones(n, dtype=bool)  # (B,)
    if any(v is not None for v in labels.values()):
        for field, value in labels.items():
            logits, state = feed(f"{field}:" + ("" if value is None else value + "\n"), state)
            if value is None:  # the model writes this field's line; done rows wait
                done = np.zeros(n, dtype=bool)  # (B,)
                for _ in range(40):
                    z = logits.copy()  # (B, V)
                    z[:, never] = -np.inf
                    nxt = np.where(done, newline, sample_next(z, temperature, top_k, rng))  # (B,)
                    new_logits, new_state = model.step(nxt, state)
                    for b in np.flatnonzero(~done):
                        written[b] += vocab.token(int(nxt[b]))
                    state = _keep(new_state, state, done)
                    logits = np.where(done[:, None], logits, new_logits)  # (B, V)
                    done |= nxt == newline
                    if done.all():
                        break
                if not done.all():  # a line too long: end it
                    for b in np.flatnonzero(~done):
                        written[b] += "\n"
                    new_logits, new_state = model.step(np.full(n, newline), state)
                    state = _keep(new_state, state, done)
                    logits = np.where(done[:, None], logits, new_logits)  # (B, V)
        in_header[:] = False
    if prompt:
        logits, state = feed(prompt, state)

    count = np.zeros(n, dtype=np.int64)  # (B,) barlines written
    in_bar = np.zeros(n, dtype=bool)  # (B,) inside a barline's characters
    done = np.zeros(n, dtype=bool)  # (B,)
    for _ in range(max_chars):
        z = logits.copy()  # (B, V)
        z[:, never] = -np.inf
        if bars is not None:  # no blank line (the end) before the bars are written
            ends = np.array([w.endswith("\n") for w in written]) & ~in_header  # (B,)
            z[ends, newline] = -np.inf
        nxt = sample_next(z, temperature, top_k, rng)  # (B,)
        for b in np.flatnonzero(~done):
            c = vocab.token(int(nxt[b]))
            if in_header[b]:
                if c == "\n" and written[b].rsplit("\n", 1)[-1].startswith("K:"):
                    in_header[b] = False
            elif c in BARLINE or (c == "]" and in_bar[b]):
                in_bar[b] = True
            else:
                count[b] += in_bar[b]
                in_bar[b] = False
                if bars is not None and count[b] >= bars:
                    done[b] = True
                    continue  # the tune ends with its barline
            written[b] += c
            if written[b].endswith(SEP):
                written[b], done[b] = written[b][: -len(SEP)], True
        if done.all():
            break
        logits, state = model.step(nxt, state)
    tunes = []
    for w in written:
        head, body = w.split("\n", 3)[:3], w.split("\n", 3)[3:]
        body = re.sub(r"(\n[A-Za-z]:[^\n]*)+\n*$", "", "\n" + "".join(body))[1:]  # no field last
        w = "\n".join([*head, body]).rstrip("\n")
        if bars is not None and w.endswith("|") and not w.endswith(":|"):
            w = w[:-1] + ("|]" if not w.endswith("||") else "|")
        tunes.append(w)
    return tunes


def sample_tunes(model, vocab: Vocabulary, n: int, temperature=0.8, seed=0, max_chars=1200):
    """``n`` tunes written from nothing (the blank line), each cut at the next blank line."""
    rng = np.random.default_rng(seed)
    return compose(model, vocab, n, temperature=temperature, rng=rng, max_chars=max_chars)


def after_training(config: Config, checkpoint) -> None:
    model, vocab, _, _ = lm.load_model(checkpoint)
    data = prepare_data(config)
    base = ngram_bits(data.train_ids, data.test_ids, len(vocab))
    bits = lm.evaluate_ids(model, data.test_ids)["bits_per_symbol"]
    print(
        f"\ntest bits per character: {bits:.4f} (unigram {base['unigram']:.4f}, "
        f"bigram {base['bigram']:.4f})"
    )
    shares, tunes = sample_validity(model, vocab, 100, SAMPLE_TEMPERATURE, config.seed)
    print(validity_line(shares, SAMPLE_TEMPERATURE))
    print(f"\n--- a sampled tune (temperature {SAMPLE_TEMPERATURE}) ---\n{tunes[0]}")


def sample_validity(model, vocab, n=100, temperature=SAMPLE_TEMPERATURE, seed=0, **labels):
    """Shares of ``n`` tunes written from nothing (or from ``labels``: meter, key, unit) that
    parse in music21, and that parse and keep their meter (:func:`check_tune`); the tunes."""
    rng = np.random.default_rng(seed)
    tunes = compose(model, vocab, n, temperature=temperature, rng=rng, **labels)
    checks = [check_tune(t) for t in tunes]
    shares = {
        "parse": float(np.mean([p for p, _ in checks])),
        "meter": float(np.mean([p and m for p, m in checks])),
        "free": float(np.mean([t.startswith("M:none") for t in tunes])),
        "n": n,
    }
    return shares, tunes


def validity_line(shares: dict, temperature: float) -> str:
    return (
        f"{shares['n']} samples (temperature {temperature}): {shares['parse']:.0%} parse in "
        f"music21, {shares['meter']:.0%} parse and keep their meter ({shares['free']:.0%} free "
        "meter)"
    )


def evaluate_checkpoint(args) -> str:
    """``bptt eval``: bits per character on the held-out tunes (or on ``args.text``)."""

    def held_out(config):
        data = prepare_data(config)
        return data.test_ids, f"{len(data.test):,} held-out tunes"

    return lm.bits_per_character(args, held_out, lambda path: as_stream(load_tunes(path)))


def compose_checkpoint(args) -> str:
    """``bptt compose``: tunes from the music model at ``args.checkpoint``, the first that
    parses and keeps its meter (else the first that parses) printed and rendered as
    ``args.formats``. Returns what to print."""
    from bptt.tasks.text import music_render

    for field, value in (("M", args.meter), ("K", args.key), ("L", args.unit)):
        if value is not None:
            check_label(field, value)
    if args.tries < 1 or args.tries > 1000:
        raise BpttError(f"--tries must be in 1..1000; got {args.tries}")
    if not 0 <= args.seed < 2**63:
        raise BpttError(f"--seed must be an integer in 0..2**63-1 ({2**63 - 1:,}); got {args.seed}")
    music_render._music21()  # names the extra before any work
    if "png" in args.formats:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise BpttError(
                "the piano roll (png) needs matplotlib: pip install 'bptt[plot]', "
                "or leave png out of --formats"
            ) from None
    paths = music_render.output_paths(args.out, args.formats)
    there = [str(p) for p in paths.values() if p.exists()]
    if there and not args.force:
        raise BpttError(f"{', '.join(there)} already exist(s); choose another --out or --force")

    model, vocab, _, meta = lm.load_model(args.checkpoint)
    if meta.get("task") != "music":
        raise BpttError(
            f"checkpoint '{args.checkpoint}' is a {meta.get('task')!r} model; compose "
            "needs a music model (bptt train music)"
        )
    rng = np.random.default_rng(args.seed)
    knobs = ("meter", "key", "unit", "prompt", "bars", "temperature", "top_k")  # as typed
    tunes = compose(model, vocab, args.tries, rng=rng, **{k: getattr(args, k) for k in knobs})
    checks = [check_tune(t) for t in tunes]
    pick = next((i for i, (p, m) in enumerate(checks) if p and m), None)
    if pick is None:
        pick = next((i for i, (p, _) in enumerate(checks) if p), None)
    if pick is None:
        raise BpttError(
            f"none of the {len(tunes)} tunes written parses in music21; try another "
            "--seed, more --tries or a lower --temperature"
        )
    tune = tunes[pick]
    kept = sum(p and m for p, m in checks)
    print(tune)
    print(
        f"\ntune {pick + 1} of {len(tunes)} written; {kept} of them parse and keep their meter"
        f"{'' if checks[pick][1] else ' (this one does not keep its meter)'}"
    )
    labels = [f"{w} {v}" for w, v in (("key", args.key), ("meter", args.meter)) if v]
    title = ", ".join(["bptt compose", *labels, f"seed {args.seed}"])  # no ':' (an ABC field)
    written = music_render.render(
        tune, args.out, args.formats, args.tempo, args.rate, args.voice, title, args.force
    )
    return "wrote " + ", ".join(str(p) for p in written.values())


PRESET = {
    "out": "runs/music",
    "embed_size": 32,  # ~90 ABC characters
    "hidden_size": 256,  # a tune's bars, repeats and key span hundreds of characters
    "window": 128,  # two or three lines of ABC per window, the state carried on
    "batch_size": 32,
    "lr": 3e-3,
    "steps": 3600,  # ~9 epochs of the 8,973 clean training tunes' 1.7 million characters:
    # 87% of samples keep their meter (40% after 2,400 updates on all tunes), ~14 min
    "eval_every": 600,  # each evaluation reads the 1,294 validation tunes
    "clean_meter": True,  # 1,377 of 10,350 training tunes break their meter; samples did too
}

TASK = lm.text_task(
    sys.modules[__name__],
    "music",
    "text test_fraction max_examples embed_size window clean_meter",
    compose=compose_checkpoint,
)
