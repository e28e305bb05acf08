"""What the encoder-decoder tasks share: batches of pairs, evaluation, loading, translating.

A translation task module (``dates``, ``g2p``, ``de_en``) provides

    NAME                         its name in ``bptt.tasks.TASK_MODULES``
    prepare_data(config)         tokenised train/validation/test pairs and vocabularies (PairData)
    source_tokens(text)          a user's input as source symbols (as ``prepare_data`` makes them)
    join_source(tokens) -> str   and back, for showing
    join_target(tokens) -> str   output symbols as text
    metrics(hyps, refs) -> dict  the task's metric(s) on token lists; MAIN names the headline

and declares its :class:`~bptt.tasks.base.Task` with :func:`seq2seq_task`. The loop is
:mod:`bptt.train`'s; the model is :class:`bptt.models.seq2seq.Seq2Seq`; decoding is
:mod:`bptt.decode`'s.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np

from bptt.config import Config
from bptt.data import BucketedBatches, Vocabulary, pad_sequences
from bptt.decode import beam_search, decode_greedy
from bptt.distributed import describe_parallel, get_comm, global_batch_size
from bptt.errors import BpttError, CheckpointError
from bptt.models.seq2seq import Seq2Seq, Seq2SeqBatch
from bptt.tasks import base
from bptt.tasks.base import Task

Pair = tuple[list[str], list[str]]  # (source symbols, target symbols)
SEQ2SEQ_TASKS = ("dates", "g2p", "de-en")  # the tasks whose checkpoints translate reads
VAL_DECODED = 500  # validation pairs decoded at each evaluation (the loss uses them all)


@dataclass
class PairData:
    source_vocab: Vocabulary  # <pad> <unk> + source symbols
    target_vocab: Vocabulary  # <pad> <unk> <bos> <eos> + target symbols
    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    source: str  # where the pairs came from, for the summary


def make_vocabularies(train: list[Pair], level: str, min_freq: int = 1) -> tuple:
    """Source and target vocabularies of the training pairs (symbols seen >= min_freq times)."""
    sv = Vocabulary.from_tokens(
        (s for src, _ in train for s in src), min_freq, specials=("<pad>", "<unk>"), level=level
    )
    tv = Vocabulary.from_tokens((s for _, tgt in train for s in tgt), min_freq, level="word")
    return sv, tv


def split_pairs(pairs: list[Pair], n_val: int, n_test: int, rng) -> tuple[list, list, list]:
    """Shuffle distinct-source pairs and cut off validation and test; the rest trains."""
    order = rng.permutation(len(pairs))  # (N,)
    pairs = [pairs[i] for i in order]
    if len(pairs) < n_val + n_test + 1:
        raise BpttError(f"{len(pairs)} pairs are too few for {n_val} validation and {n_test} test")
    return pairs[n_val + n_test :], pairs[:n_val], pairs[n_val : n_val + n_test]


class PairBatches(BucketedBatches):
    """Length-bucketed batches of pairs, endless over epochs, resumable
    (:class:`~bptt.data.BucketedBatches`); a saved state must have the
    same pairs (their CRC-32), batch size and seed."""

    CHECKED = ("data_crc32", "batch_size", "seed")

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray]],
        batch_size: int,
        seed: int,
        target_vocab: Vocabulary,
    ):
        self.pairs, self.tv = pairs, target_vocab
        crc = 0
        for s, t in pairs:
            crc = zlib.crc32(t.tobytes(), zlib.crc32(s.tobytes(), crc))
        self.data_crc32 = crc
        super().__init__(np.array([len(s) + len(t) for s, t in pairs]), batch_size, seed)  # (N,)

    def _batch(self, idx: np.ndarray) -> Seq2SeqBatch:
        return make_batch([self.pairs[i] for i in idx], self.tv)


def make_batch(pairs: list[tuple[np.ndarray, np.ndarray]], tv: Vocabulary) -> Seq2SeqBatch:
    """Pad sources, and targets as <bos> y (input) and y <eos> (output), with masks."""
    source, source_mask = pad_sequences([s for s, _ in pairs], pad_value=0)  # (B, S)
    bos, eos = np.array([tv.bos_id]), np.array([tv.eos_id])
    target_in, target_mask = pad_sequences([np.concatenate([bos, t]) for _, t in pairs])  # (B, T)
    target_out, _ = pad_sequences([np.concatenate([t, eos]) for _, t in pairs])  # (B, T)
    return Seq2SeqBatch(source, source_mask, target_in, target_out, target_mask)


def encode_pairs(pairs: list[Pair], sv: Vocabulary, tv: Vocabulary) -> list:
    """Token pairs -> id pairs; unknown symbols become <unk>."""
    return [(sv.encode(s), tv.encode(t)) for s, t in pairs]


def build_model(config: Config, sv: Vocabulary, tv: Vocabulary, rng) -> Seq2Seq:
    attention = {"attention": config.attention, "attention_size": config.attention_size}
    return Seq2Seq(
        len(sv), len(tv), config.embed_size, **attention, **base.network(config), rng=rng
    )


def max_length(config: Config, data: PairData) -> int:
    """The decoding limit: the config's, or the longest training target + 10."""
    return config.max_length or max(len(t) for _, t in data.train) + 10


def translate_ids(
    model,
    tv: Vocabulary,
    sources: list[np.ndarray],
    beam: int,
    limit: int,
    length_penalty: float = 1.0,
    batch_size: int = 256,
) -> tuple[list, list]:
    """Decode many sources (greedy for beam 1), batched by similar length.

    Returns per source the output symbols and the attention weights (n, S) or None.
    """
    never = tuple(i for i in (tv.pad_id, tv.unk_id, tv.bos_id) if i is not None)
    order = np.argsort([len(s) for s in sources], kind="stable")  # (N,)
    hyps: list = [None] * len(sources)
    atts: list = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        src, mask = pad_sequences([sources[i] for i in idx], pad_value=0)  # (b, S)
        if beam == 1:
            ids, att = decode_greedy(model, src, mask, tv.bos_id, tv.eos_id, limit, exclude=never)
        else:
            ids, att, _ = beam_search(
                model, src, mask, tv.bos_id, tv.eos_id, limit, beam, length_penalty, exclude=never
            )
        for i, row, a in zip(idx, ids, att, strict=True):
            hyps[i], atts[i] = [tv.token(int(j)) for j in row], a
    return hyps, atts


def evaluate_pairs(
    task: ModuleType,
    model,
    data: PairData,
    pairs: list[Pair],
    beam: int,
    limit: int,
    length_penalty: float = 1.0,
) -> dict:
    """The task's metrics of decoding ``pairs``' sources against their targets."""
    sources = [data.source_vocab.encode(s) for s, _ in pairs]
    hyps, _ = translate_ids(model, data.target_vocab, sources, beam, limit, length_penalty)
    return task.metrics(hyps, [t for _, t in pairs])


def validation(task: ModuleType, data: PairData, limit: int):
    """The trainer's evaluate(model): mean loss per target symbol and the greedy metrics."""
    ids = encode_pairs(data.val, data.source_vocab, data.target_vocab)

    def evaluate(model) -> dict:
        total, count = 0.0, 0
        for start in range(0, len(ids), 256):
            batch = make_batch(ids[start : start + 256], data.target_vocab)
            total, count = total + model.loss(batch), count + batch.num_tokens
        shown = evaluate_pairs(task, model, data, data.val[:VAL_DECODED], 1, limit)
        return {"loss": total / count, **shown}

    return evaluate


def build_trainer(task: ModuleType, config: Config, out_dir, progress_bar: bool = True):
    """Data, model, optimizer and the loop for a translation task, and what was prepared."""
    started = time.perf_counter()
    data = task.prepare_data(config)
    comm = get_comm(timeout=config.watchdog)  # under mpirun: each rank its rows of a batch
    rng = np.random.default_rng(config.seed)
    model = build_model(config, data.source_vocab, data.target_vocab, rng)
    train_ids = encode_pairs(data.train, data.source_vocab, data.target_vocab)
    trainer = base.make_trainer(
        config,
        model,
        PairBatches(train_ids, global_batch_size(config, comm), config.seed, data.target_vocab),
        validation(task, data, max_length(config, data)),
        out_dir,
        progress_bar,
        rng,
        {
            "task": task.NAME,
            "source_vocab": data.source_vocab.to_dict(),
            "target_vocab": data.target_vocab.to_dict(),
        },
        comm,
    )
    bi = "bidirectional " if config.bidirectional else ""
    summary = [
        f"data: {data.source} ({time.perf_counter() - started:.1f} s)",
        f"pairs: train {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,}"
        f" | vocabulary: source {len(data.source_vocab)}, target {len(data.target_vocab)}",
        f"example: {task.join_source(data.train[0][0])!r} -> "
        f"{task.join_target(data.train[0][1])!r}",
        f"model: {bi}{config.cell.upper()} encoder {config.num_layers}x{config.hidden_size}, "
        f"decoder {config.num_layers}x{config.hidden_size}, attention {config.attention}, "
        f"{model.num_parameters():,} parameters, {config.dtype}",
        f"training: {config.steps} updates of {config.batch_size} pairs, {config.optimizer} "
        f"lr {config.lr}, clip {config.clip}",
        *describe_parallel(config, comm, "pairs"),
    ]
    return trainer, summary


def vocabularies_of(meta: dict) -> tuple[Vocabulary, Vocabulary]:
    try:
        return Vocabulary.from_dict(meta["source_vocab"]), Vocabulary.from_dict(
            meta["target_vocab"]
        )
    except KeyError as e:
        raise CheckpointError(
            f"lacks the metadata field {e}; is it an encoder-decoder's?"
        ) from None


def model_from_meta(config: Config, meta: dict, rng=None) -> Seq2Seq:
    """The encoder-decoder a checkpoint's metadata describes (its two vocabularies)."""
    sv, tv = vocabularies_of(meta)
    return build_model(config, sv, tv, np.random.default_rng(0) if rng is None else rng)


def load_model(path) -> tuple[Seq2Seq, Vocabulary, Vocabulary, Config]:
    """Rebuild an encoder-decoder from its checkpoint alone: weights, vocabularies, config."""

    def build(config, meta):
        try:
            return model_from_meta(config, meta)
        except CheckpointError as e:
            raise CheckpointError(f"checkpoint '{path}' {e}") from None

    model, config, meta = base.load_model(path, SEQ2SEQ_TASKS, build)
    return (model, *vocabularies_of(meta), config)


def held_out_report(task: ModuleType, path) -> str:
    """The task's metrics on the held-out test pairs, greedy and with the config's beam."""
    model, _, _, config = load_model(path)
    data = task.prepare_data(config)
    limit = max_length(config, data)
    lines = [f"held-out test: {len(data.test):,} pairs"]
    for beam in dict.fromkeys((1, config.beam)):
        started = time.perf_counter()
        m = evaluate_pairs(task, model, data, data.test, beam, limit, config.length_penalty)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in m.items())
        what = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(f"  {what:<8} {shown}  ({time.perf_counter() - started:.1f} s)")
    return "\n".join(lines)


def translate(
    task: ModuleType,
    path,
    text: str,
    beam: int = 5,
    limit: int | None = None,
    plot: str | None = None,
) -> str:
    """``bptt translate``: the model's output for ``text``, and optionally its attention plot."""
    model, sv, tv, config = load_model(path)
    symbols = task.source_tokens(text)
    if not symbols:
        raise BpttError(f"nothing to translate in {text!r}")
    unknown = sorted({s for s in symbols if s not in sv})
    limit = limit or config.max_length or 100
    hyps, atts = translate_ids(model, tv, [sv.encode(symbols)], beam, limit, config.length_penalty)
    out = task.join_target(hyps[0])
    lines = [out]
    if unknown:
        lines.append(
            f"(read as <unk>, not in the source vocabulary: {', '.join(map(repr, unknown))})"
        )
    if plot:
        if atts[0] is None:
            raise BpttError("this model has no attention to plot (trained with --attention none)")
        written = plot_attention(atts[0], symbols, [*hyps[0], "<eos>"], plot)
        lines.append(f"attention plot: {written}" if written else "matplotlib is not installed")
    return "\n".join(lines)


def plot_attention(alpha: np.ndarray, source: list[str], output: list[str], path) -> Path | None:
    """The attention matrix α (n, S) as a PNG: source symbols across, output symbols down."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n, S = alpha.shape
    fig, ax = plt.subplots(figsize=(max(4, 0.32 * S + 1.5), max(3, 0.32 * n + 1.2)))
    im = ax.imshow(alpha, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(S), [s if s != " " else "␣" for s in source[:S]], fontsize=9)
    ax.set_yticks(range(n), output[:n], fontsize=9)
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(im, ax=ax, fraction=0.03, label="attention weight α")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


SEQ2SEQ_OPTIONS = (
    "max_examples",
    "embed_size",
    "bidirectional",
    "attention",
    "attention_size",
    "beam",
    "length_penalty",
    "max_length",
)


def seq2seq_task(module: ModuleType, preset: dict, options: tuple = ()) -> Task:
    """The :class:`~bptt.tasks.base.Task` of the translation task ``module`` (its ``NAME``,
    ``prepare_data``, ``metrics`` and token functions; see this module's docstring)."""
    return Task(
        name=module.NAME,
        about=base.about(module),
        preset=preset,
        options=SEQ2SEQ_OPTIONS + options,
        prepare=module.prepare_data,
        build_model=model_from_meta,
        build_trainer=partial(build_trainer, module),
        metrics=module.metrics,
        report=partial(held_out_report, module),
        translate=partial(translate, module),
    )
