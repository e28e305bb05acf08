"""What the example tasks share (sentiment, ner, dna, activity): splits of examples,
bucketed padded batches, the model a config names, the trainer, and checkpoints.

An example is one sequence, token ids (T_i,) or features (T_i, D), with one
class (many-to-one) or one tag per step (many-to-many). Batches group examples
of similar length (:func:`bptt.data.bucket_batches`), pad them at the end and
mask the padding, so little work is spent on padding and none changes a result.

Each task module supplies ``prepare_data(config) -> TaskData`` and
``metrics(model, split, data) -> dict`` (with "loss"); the rest is here.

Shapes: B batch, T time steps, D features, C classes or tags.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from bptt.data import BucketedBatches, Vocabulary, pad_sequences
from bptt.distributed import describe_parallel, get_comm, global_batch_size
from bptt.errors import BpttError
from bptt.functional.crf import bio_constraints
from bptt.models.classifier import SequenceClassifier
from bptt.models.sequence import SequenceBatch
from bptt.models.tagger import SequenceTagger
from bptt.tasks import base
from bptt.tasks.base import Task, network, seeded

HEADS = ("class", "tags")


@dataclass
class Split:
    """Examples: ``inputs[i]`` (T_i,) ids or (T_i, D) features; ``targets[i]`` a class
    index or (T_i,) tag indices."""

    inputs: list[np.ndarray]
    targets: list

    def __len__(self) -> int:
        return len(self.inputs)

    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.inputs], dtype=np.int64)  # (N,)

    def subset(self, idx) -> Split:
        return Split([self.inputs[i] for i in idx], [self.targets[i] for i in idx])


@dataclass
class TaskData:
    """A task's prepared data; ``extra`` (JSON-able) is stored in the checkpoint, ``raw``
    (the examples before encoding, per split) serves baselines."""

    train: Split
    val: Split
    test: Split
    labels: list[str]
    head: str
    vocab: Vocabulary | None = None
    input_size: int | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)


def require_package(package: str, extra: str, purpose: str) -> Path:
    """The folder of an installed data package, found without importing it.

    Raises:
        BpttError: naming the extra to install when the package is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BpttError(
            f"{purpose} needs the package '{package}', which is not installed; "
            f"install the extra: pip install 'bptt[{extra}]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int):
    """A fixed shuffle of range(n) cut into train, validation and test index arrays."""
    if val_fraction + test_fraction >= 1.0:
        raise BpttError(
            f"val_fraction + test_fraction must leave examples to train on; "
            f"got {val_fraction} + {test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(n)  # (N,)
    n_test, n_val = (max(1, round(n * f)) if f > 0 else 0 for f in (test_fraction, val_fraction))
    if n - n_test - n_val < 1:
        raise BpttError(f"{n} examples are too few to split into train, validation and test")
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def make_batch(split: Split, idx: np.ndarray) -> SequenceBatch:
    """The examples ``idx`` of ``split``, padded at the end, with their mask."""
    inputs, mask = pad_sequences([split.inputs[i] for i in idx])  # (B, T[, D]), (B, T)
    first = split.targets[idx[0]]
    if np.ndim(first) == 0:
        targets = np.array([split.targets[i] for i in idx], dtype=np.int64)  # (B,)
    else:
        targets, _ = pad_sequences([np.asarray(split.targets[i]) for i in idx])  # (B, T)
    return SequenceBatch(inputs, mask, targets)


def in_order(split: Split, batch_size: int) -> Iterator[tuple[np.ndarray, SequenceBatch]]:
    """Every example once, in batches of similar length: (indices, batch) pairs."""
    order = np.argsort(split.lengths(), kind="stable")  # (N,)
    for i in range(0, len(split), batch_size):
        idx = order[i : i + batch_size]
        yield idx, make_batch(split, idx)


class ExampleBatches(BucketedBatches):
    """Endless bucketed batches of a split's examples (:class:`BucketedBatches`)."""

    CHECKED = ("num_examples", "batch_size", "seed")

    def __init__(self, split: Split, batch_size: int, seed: int):
        if len(split) == 0:
            raise BpttError("the training split has no examples")
        self.split, self.num_examples = split, len(split)
        super().__init__(split.lengths(), batch_size, seed)

    def _batch(self, idx: np.ndarray) -> SequenceBatch:
        return make_batch(self.split, idx)


def predict(model, split: Split, batch_size: int = 64) -> list[np.ndarray]:
    """Probabilities for every example of ``split``, in its order: (C,) each for a
    classifier, (T_i, C) for a tagger."""
    out: list = [None] * len(split)
    for idx, batch in in_order(split, batch_size):
        probs = model.predict_proba(batch.inputs, batch.mask)  # (B, C) or (B, T, C)
        for row, i in enumerate(idx):
            out[i] = probs[row] if probs.ndim == 2 else probs[row, : len(split.inputs[i])]
    return out


def predict_one(model, x: np.ndarray) -> np.ndarray:
    """The probabilities of one example ``x``, (T,) ids or (T, D) features: (C,) from a
    classifier, (T, C) from a tagger."""
    return model.predict_proba(x[None], np.ones((1, len(x)), dtype=bool))[0]


def best_label(probs: np.ndarray, labels) -> str:
    """'walking 0.93': a classifier's most probable label and its probability."""
    best = int(np.argmax(probs))
    return f"{labels[best]} {probs[best]:.2f}"


def predict_tags(model, split: Split, batch_size: int = 64) -> list[np.ndarray]:
    """A tagger's best tags (T_i,) for every example of ``split``, in its order: the argmax
    at each step, or the Viterbi path of a CRF head."""
    out: list = [None] * len(split)
    for idx, batch in in_order(split, batch_size):
        tags = model.predict_tags(batch.inputs, batch.mask)  # (B, T)
        for row, i in enumerate(idx):
            out[i] = tags[row, : len(split.inputs[i])]
    return out


def mean_loss(probs: list[np.ndarray], split: Split) -> float:
    """Mean cross-entropy (nats) per example (classes) or per real step (tags)."""
    total, count = 0.0, 0
    for p, y in zip(probs, split.targets, strict=True):
        y = np.atleast_1d(y)  # (T_i,) or (1,)
        p = p.reshape(len(y), -1)  # (T_i, C)
        total -= float(np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)).sum())
        count += len(y)
    return total / max(count, 1)


def class_metrics(model, split: Split, probs: list[np.ndarray] | None = None) -> dict:
    """Loss and accuracy of a one-class-per-example model on a split; ``probs``: its
    predictions (:func:`predict`) where the caller has them already."""
    probs = predict(model, split) if probs is None else probs
    hits = [int(np.argmax(p) == y) for p, y in zip(probs, split.targets, strict=True)]
    return {"loss": mean_loss(probs, split), "accuracy": float(np.mean(hits))}


def build_model(
    config,
    head: str,
    num_labels: int,
    vocab_size=None,
    input_size=None,
    rng=None,
    labels=None,
    extra=None,
    unk_id=None,
):
    """The classifier (head "class") or tagger ("tags") that ``config`` describes.

    A tagger's CRF decodes within the BIO constraints when ``labels`` are BIO tags;
    ``extra["chars"]`` (the letters of the character table) and
    ``extra["shape_features"]`` (their count) switch on the word features.
    """
    common = {
        "vocab_size": vocab_size,
        "input_size": input_size,
        "embed_size": config.embed_size,
        **network(config),
        "rng": seeded(config, rng),
    }
    if head == "class":
        return SequenceClassifier(
            num_labels, config.pooling, label_smoothing=config.label_smoothing, **common
        )
    if head == "tags":
        extra = extra or {}
        chars = extra.get("chars")
        model = SequenceTagger(
            num_labels,
            crf=config.crf,
            char_vocab_size=None if chars is None else len(chars) + 2,  # and pad, unknown
            char_embed_size=config.char_embed_size,
            char_hidden_size=max(config.char_size, 1),
            char_encoder=config.char_encoder,
            num_shape_features=int(extra.get("shape_features", 0)),
            word_dropout=config.word_dropout,
            embed_dropout=config.embed_dropout,
            unk_id=unk_id,
            **common,
        )
        if model.crf is not None and labels is not None and _is_bio(labels):
            model.crf.allowed, model.crf.allowed_start = bio_constraints(list(labels))
        return model
    raise BpttError(f"head must be one of {', '.join(HEADS)}; got {head!r}")


def _is_bio(labels) -> bool:
    return all(t == "O" or t[:2] in ("B-", "I-") for t in labels)


def describe(data: TaskData) -> list[str]:
    """What was prepared: the source, split sizes, vocabulary or features, labels."""
    sizes = f"train {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,}"
    lengths = data.train.lengths()
    inputs = (
        f"vocabulary {len(data.vocab):,} symbols"
        if data.vocab is not None
        else f"{data.input_size} features per step"
    )
    return [
        f"data: {data.source}",
        f"examples: {sizes} | {inputs} | length mean {lengths.mean():.0f}, max {lengths.max()}",
        f"{'classes' if data.head == 'class' else 'tags'}: {', '.join(data.labels)}",
    ]


def checkpoint_metadata(data: TaskData) -> dict:
    """What rebuilding the model needs, kept in its checkpoint: the vocabulary, labels, head,
    input size and the task's extra (:func:`model_from_meta` reads it back)."""
    return {
        "vocab": None if data.vocab is None else data.vocab.to_dict(),
        "labels": list(data.labels),
        "head": data.head,
        "input_size": data.input_size,
        "extra": data.extra,
    }


def example_trainer(config, model, data: TaskData, metrics, out_dir, progress_bar: bool, rng):
    """The training loop for ``model`` on ``data``'s training split, scored by ``metrics(model,
    split) -> dict`` (with "loss") on its validation split; the checkpoint's metadata holds
    what rebuilding the model needs (:func:`checkpoint_metadata`). Under ``mpirun`` each rank
    trains on its rows of every batch (:mod:`bptt.distributed`)."""
    comm = get_comm(timeout=config.watchdog)
    batches = ExampleBatches(data.train, global_batch_size(config, comm), config.seed)

    def score(m):  # the validation split's metrics
        return metrics(m, data.val)

    meta = checkpoint_metadata(data)
    return base.make_trainer(config, model, batches, score, out_dir, progress_bar, rng, meta, comm)


def make_trainer(config, out_dir, progress_bar: bool, data: TaskData, metrics) -> tuple:
    """Model, optimizer, batches and loop for ``config`` on ``data``; ``metrics(model, split)
    -> dict`` (with "loss") scores the validation split. Returns (trainer, summary lines)."""
    rng = np.random.default_rng(config.seed)
    model = model_from_meta(config, checkpoint_metadata(data), rng)  # as a checkpoint rebuilds it
    if config.vectors:
        _load_vectors(model, config.vectors, data.vocab)
    trainer = example_trainer(config, model, data, metrics, out_dir, progress_bar, rng)
    kind = "classifier" if data.head == "class" else "tagger"
    if data.head == "tags":
        reader = {"lstm": "BiLSTM", "cnn": "CNN"}[config.char_encoder]
        kind += f" + letters ({reader} {config.char_size})" if "chars" in data.extra else ""
        kind += " + shape" * bool(data.extra.get("shape_features")) + " + CRF" * config.crf
    way = "bidirectional " if config.bidirectional else ""
    pool = f", {config.pooling} pooling" if data.head == "class" else ""
    epochs = config.steps * config.batch_size / len(data.train)
    summary = [
        *describe(data),
        f"model: {kind}, {way}{config.cell.upper()} {config.num_layers}x{config.hidden_size}"
        f"{pool}, {model.num_parameters():,} parameters, {config.dtype}",
        f"training: {config.steps} updates of {config.batch_size} examples ({epochs:.1f} epochs), "
        f"{config.optimizer} lr {config.lr}, clip {config.clip}",
        *describe_parallel(config, trainer.comm, "examples"),
    ]
    return trainer, summary


def _load_vectors(model, path, vocab) -> None:
    from bptt.data.words import load_word_vectors

    if vocab is None:
        raise BpttError("--vectors needs a task with word inputs; this one reads features")
    found, width = load_word_vectors(path, vocab, model.dtype)
    table = model.embedding.params["weight"]  # (V, E)
    if width != table.shape[1]:
        raise BpttError(
            f"the vectors in '{path}' have {width} numbers, --embed-size is "
            f"{table.shape[1]}; pass --embed-size {width}"
        )
    for i, v in found.items():
        table[i] = v
    print(f"word vectors: {len(found):,} of {len(vocab):,} words found in {path}")


def model_from_meta(config, meta: dict, rng=None):
    """The classifier or tagger a checkpoint's metadata describes (head, labels, sizes)."""
    vocab = None if meta["vocab"] is None else Vocabulary.from_dict(meta["vocab"])
    size, unk_id = (None, None) if vocab is None else (len(vocab), vocab.unk_id)
    head, labels, extra = meta["head"], meta["labels"], meta.get("extra")
    return build_model(
        config, head, len(labels), size, meta["input_size"], rng, labels, extra, unk_id
    )


def load_model(path, task: str, build=None):
    """Rebuild a task's model from a checkpoint alone: (model, config, metadata, vocab).

    ``build(config, head, num_labels, vocab_size, input_size)`` is a task's own model
    (video); the default is :func:`model_from_meta`'s classifier or tagger."""

    def rebuild(config, meta):
        if build is None:
            return model_from_meta(config, meta)
        vocab = None if meta["vocab"] is None else Vocabulary.from_dict(meta["vocab"])
        size = None if vocab is None else len(vocab)
        return build(config, meta["head"], len(meta["labels"]), size, meta["input_size"])

    model, config, meta = base.load_model(path, task, rebuild)
    vocab = None if meta["vocab"] is None else Vocabulary.from_dict(meta["vocab"])
    return model, config, meta, vocab


def format_metrics(metrics: dict) -> str:
    """'accuracy 0.8712, loss 0.3110': the metrics on one line."""
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def example_task(module: ModuleType, name: str, options: str, **declared) -> Task:
    """The :class:`~bptt.tasks.base.Task` of a classify/tag task ``module`` (its docstring's
    first paragraph says what it learns): its ``PRESET`` and ``prepare_data``; the fields
    ``declared``, else its ``build_trainer``, ``metrics``, ``held_out_report`` and
    ``predict_checkpoint``; ``options`` beside ``bidirectional`` and ``monitor`` (all read them)."""
    fields = {"prepare": module.prepare_data, "build_model": model_from_meta, **declared}
    own = {"build_trainer": "build_trainer", "metrics": "metrics", "report": "held_out_report"}
    for key, function in {**own, "predict": "predict_checkpoint"}.items():
        if key not in fields:
            fields[key] = getattr(module, function)
    options = f"{options} bidirectional monitor"
    return Task(name, base.about(module), module.PRESET, options, **fields)


def class_task(module: ModuleType, name: str, options: str, per: str) -> Task:
    """:func:`example_task` for one class per example (a ``per``: review, clip), scored by
    accuracy (:func:`class_metrics`): training refuses ``--head tags``, and the held-out
    report sets the test accuracy beside that of always answering the training split's
    majority class. ``module.prepare_data(config, vocab=None)`` gives the data, and
    ``module.read_example(text, config, meta, vocab) -> (x, note)`` the input of
    ``bptt predict`` (which answers "label probability" and the note)."""

    def trainer(config, out_dir, progress_bar: bool = True):
        if config.head == "tags":
            raise BpttError(f"{name} gives one class per {per}: --head class (or auto)")
        data = module.prepare_data(config)
        return make_trainer(config, out_dir, progress_bar, data, class_metrics)

    def report(path) -> str:
        model, config, _, vocab = load_model(path, name)
        data = module.prepare_data(config, vocab)
        majority = np.bincount(np.array(data.train.targets), minlength=len(data.labels)).argmax()
        baseline = float(np.mean(np.array(data.test.targets) == majority))
        scores = format_metrics(class_metrics(model, data.test))
        majority_class = f"majority class ({data.labels[majority]}): accuracy {baseline:.4f}"
        return f"test ({len(data.test):,} held-out {per}s): {scores} | {majority_class}"

    def predict(path, text: str) -> str:
        model, config, meta, vocab = load_model(path, name)
        x, note = module.read_example(text, config, meta, vocab)  # (T,) or (T, D)
        return best_label(predict_one(model, x), meta["labels"]) + note

    declared = {
        "build_trainer": trainer,
        "metrics": class_metrics,
        "report": report,
        "predict": predict,
    }
    return example_task(module, name, options, **declared)
