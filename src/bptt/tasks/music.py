"""One to many: folk tunes in ABC notation, written character by character (as folk-rnn).

The corpus is the folk-tune ABC files that ship in music21's corpus (extra
``music``): Ryan's Mammoth Collection, O'Neill's 1850, the Essen folksongs,
Aird's Airs. Each tune is kept as its meter, unit length and key lines and its
body (titles, notes and other fields dropped), e.g.::

    M:6/8
    L:1/8
    K:G
    D|GAB d2e|...

Tunes are shuffled with the seed and ``--test-fraction`` held out. Training
reads the training tunes as one stream, each preceded by a blank line (its
<bos>); a sample starts from ``"\\n\\nM:"`` and ends at the next blank line.

Reported: test bits per character against a unigram and a bigram baseline
(add-one counts of the training tunes), and the share of samples that parse
in music21 and whose inner bars last what their meter says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.config import Config
from bptt.data import Vocabulary, read_text
from bptt.data.vocabulary import UNK
from bptt.decode import generate
from bptt.errors import BpttError, DataError
from bptt.tasks import lm
from bptt.train import Trainer

FOLDERS = ("ryansMammoth", "oneills1850", "essenFolksong", "airdsAirs", "miscFolk")
SOURCE = "ABC folk tunes of music21's corpus (" + ", ".join(FOLDERS) + ")"
SEP = "\n\n"  # a blank line: <eos> of one tune, <bos> of the next
KEEP = ("M", "L", "K")  # header fields kept, in this order; K ends the header in ABC
FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")
HEADER = re.compile(r"M:[^\n]*\nL:\d/\d+\nK:[^\n]*\n")  # the kept header, in order


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
        paths = sorted(p for p in corpus.getPaths(fileExtensions=("abc",))
                       if Path(p).parent.name in FOLDERS)  # fmt: skip
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
    test: list[str]
    train_ids: np.ndarray
    test_ids: np.ndarray
    source: str


def prepare_data(config: Config) -> MusicData:
    tunes = load_tunes(config.text)
    order = np.random.default_rng(config.seed).permutation(len(tunes))  # (N,)
    tunes = [tunes[i] for i in order][: config.max_examples or None]
    n_test = min(len(tunes) - 1, max(1, round(len(tunes) * config.test_fraction)))
    train, test = tunes[n_test:], tunes[:n_test]
    vocab = Vocabulary.from_text(as_stream(train), level="char", specials=(UNK,))
    source = SOURCE if config.text is None else config.text
    return MusicData(
        vocab, train, test, vocab.encode(as_stream(train)), vocab.encode(as_stream(test)), source
    )


def ngram_bits(train_ids: np.ndarray, test_ids: np.ndarray, V: int) -> dict[str, float]:
    """Bits per character of add-one unigram and bigram models of the training ids, on test."""
    uni = np.bincount(train_ids, minlength=V).astype(np.float64) + 1.0  # (V,)
    uni /= uni.sum()
    bi = np.ones((V, V))  # (V, V) counts of (previous, next), add-one
    np.add.at(bi, (train_ids[:-1], train_ids[1:]), 1.0)
    bi /= bi.sum(axis=1, keepdims=True)
    return {
        "unigram": float(-np.log2(uni[test_ids[1:]]).mean()),
        "bigram": float(-np.log2(bi[test_ids[:-1], test_ids[1:]]).mean()),
    }


def build_trainer(config: Config, out_dir, progress_bar: bool = True) -> tuple[Trainer, list[str]]:
    if config.level != "char":
        raise BpttError(f"music is a character model; expected level 'char', got {config.level!r}")
    data = prepare_data(config)
    trainer, model_lines = lm.text_trainer(
        config, out_dir, "music", data.vocab, data.train_ids, data.test_ids, progress_bar
    )
    base = ngram_bits(data.train_ids, data.test_ids, len(data.vocab))
    summary = [
        f"data: {data.source}",
        f"tunes: {len(data.train):,} training, {len(data.test):,} held out | vocabulary "
        f"{len(data.vocab)} symbols, {len(data.train_ids):,} training characters",
        f"baselines on the held-out tunes: unigram {base['unigram']:.4f}, bigram "
        f"{base['bigram']:.4f} bits per character",
    ]
    return trainer, summary + model_lines


def sample_tunes(model, vocab: Vocabulary, n: int, temperature=0.8, seed=0, max_chars=600):
    """``n`` tunes written from ``"\\n\\nM:"``, each cut at the next blank line (or max_chars)."""
    rng = np.random.default_rng(seed)
    never = () if vocab.unk_id is None else (vocab.unk_id,)
    prompt = vocab.encode(SEP + "M:")  # (3,)
    tunes = []
    for _ in range(n):
        ids = generate(model, prompt, max_chars, temperature, None, rng, exclude=never)  # (n,)
        tunes.append(("M:" + vocab.decode(ids)).split(SEP)[0])
    return tunes


def check_tune(abc: str) -> tuple[bool, bool]:
    """(parses in music21, keeps its meter): every bar but the first and last lasts what the
    meter says, or two short bars in a row make one full bar (a section's ending and the next
    section's pickup, as in ``A2 :| GA | B2B2``)."""
    from music21 import converter, meter, stream

    if not HEADER.match(abc) or re.search(r"\d{3,}", abc):
        return False, False  # no M/L/K header, or a note 100+ units long: music21 may hang
    try:
        score = converter.parse("X:1\n" + abc, format="abc")
        measures = list(score.recurse().getElementsByClass(stream.Measure))
    except Exception:  # music21 raises many kinds on bad ABC: all mean "does not parse"
        return False, False
    full, ts = [], None
    for m in measures:
        found = m.getElementsByClass(meter.TimeSignature)
        ts = found[0] if found else ts
        full.append(None if ts is None else ts.barDuration.quarterLength)
    if len(measures) < 3 or None in full:
        return True, False
    lengths = [m.duration.quarterLength for m in measures]
    i = 1
    while i < len(measures) - 1:
        if abs(lengths[i] - full[i]) < 1e-6:
            i += 1
        elif abs(lengths[i] + lengths[i + 1] - full[i]) < 1e-6:
            i += 2  # an ending and a pickup
        else:
            return True, False
    return True, True


def after_training(config: Config, checkpoint) -> None:
    model, vocab, _, _ = lm.load_model(checkpoint)
    data = prepare_data(config)
    base = ngram_bits(data.train_ids, data.test_ids, len(vocab))
    bits = lm.evaluate_ids(model, data.test_ids)["bits_per_symbol"]
    print(
        f"\ntest bits per character: {bits:.4f} (unigram {base['unigram']:.4f}, "
        f"bigram {base['bigram']:.4f})"
    )
    tunes = sample_tunes(model, vocab, 100, 0.8, config.seed)
    checks = [check_tune(t) for t in tunes]
    parse = np.mean([p for p, _ in checks])
    metered = np.mean([p and m for p, m in checks])
    print(f"100 samples: {parse:.0%} parse in music21, {metered:.0%} parse and keep their meter")
    print(f"\n--- a sampled tune (temperature 0.8) ---\n{tunes[0]}")


def evaluate_checkpoint(args) -> str:
    model, vocab, config, _ = lm.load_model(args.checkpoint)
    if args.text is None:
        data = prepare_data(config)
        ids, what = data.test_ids, f"{len(data.test):,} held-out tunes"
    else:
        ids, what = vocab.encode(as_stream(load_tunes(args.text))), args.text
    metrics = lm.evaluate_ids(model, ids)
    return f"{what}: {len(ids):,} characters, {metrics['bits_per_symbol']:.4f} bits per character"
