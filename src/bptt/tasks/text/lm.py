"""The main job: a character (or word) language model on any text.

Prepares the data (vocabulary from the training split, held-out tail for
validation), cuts it into truncated-BPTT streams, builds the model from the
config, and says what it did. Everything task-specific lives here; the loop is
:mod:`bptt.train`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from bptt.config import Config
from bptt.data import TBPTTBatches, Vocabulary, builtin_corpus, read_text, split_text
from bptt.data.vocabulary import UNK
from bptt.decode import generate
from bptt.distributed import describe_parallel, get_comm, global_batch_size
from bptt.errors import BpttError, CheckpointError
from bptt.models.language_model import LanguageModel, LMBatch
from bptt.tasks import base
from bptt.tasks.base import Task, seeded
from bptt.train import Trainer

MAX_LENGTH = 10_000_000  # symbols one `bptt sample` may write (80 MB of ids)
LM_TASKS = ("lm", "names", "music", "chorales")  # tasks whose checkpoints `bptt sample` reads
CHAR_TASKS = ("names", "music")  # text tasks that read their text character by character
BUILTIN = "the built-in corpus (Python's documentation topics, pydoc_data)"


class LMBatches:
    """TBPTT windows as :class:`LMBatch` es, endless over epochs, resumable.

    A window continues the previous one (``carry_state``) except at the start
    of an epoch, where the streams start over from a zero state. ``batch_size`` is
    all the streams of an update; the trainer gives each data-parallel rank and each
    micro-batch its rows (:func:`bptt.distributed.shard_rows`).
    """

    def __init__(self, ids: np.ndarray, batch_size: int, window: int):
        self.windows = TBPTTBatches(ids, batch_size, window)
        self._it = iter(self.windows)

    def next_batch(self) -> LMBatch:
        fresh = self.windows.window == 0
        try:
            inputs, targets = next(self._it)
        except StopIteration:  # an epoch ended: the next one starts over
            self._it = iter(self.windows)
            inputs, targets = next(self._it)
        return LMBatch(inputs, targets, carry_state=not fresh)

    def state_dict(self) -> dict:
        return self.windows.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """The saved position; saved with another number of ranks (so other streams), the
        same fraction of the epoch on this run's streams (``self.resharded`` is then True)."""
        mine = self.windows.state_dict()
        self.resharded = False
        if isinstance(state, dict) and state.get("batch_streams") != mine["batch_streams"]:
            old_windows, window = state.get("num_windows"), state.get("window")
            if isinstance(old_windows, int) and isinstance(window, int) and old_windows > 0:
                moved = min(window * mine["num_windows"] // old_windows, mine["num_windows"] - 1)
                # other streams are another cut of the corpus (its checksum too): the
                # run's text itself is checked by the config and vocabulary in the metadata
                keep = ("batch_streams", "num_windows", "data_crc32")
                state = {**state, **{k: mine[k] for k in keep}, "window": moved}
                self.resharded = True
        self.windows.load_state_dict(state)
        self._it = iter(self.windows)


@dataclass
class LMData:
    vocab: Vocabulary
    train_ids: np.ndarray
    val_ids: np.ndarray
    source: str


def prepare_data(config: Config) -> LMData:
    """Read the text, split off the validation tail, build the vocabulary of the training part."""
    text = builtin_corpus() if config.text is None else read_text(config.text)
    train, val = split_text(text, config.val_fraction)
    # <unk> lets `bptt eval` score any text; sampling refuses unknown prompt symbols itself.
    vocab = Vocabulary.from_text(train, level=config.level, specials=(UNK,))
    source = BUILTIN if config.text is None else config.text
    return LMData(vocab, vocab.encode(train), vocab.encode(val), source)


def build_model(config: Config, vocab_size: int, rng: np.random.Generator) -> LanguageModel:
    return LanguageModel(
        vocab_size,
        config.embed_size,
        config.hidden_size,
        config.num_layers,
        cell=config.cell,
        dropout=config.dropout,
        dtype=np.dtype(config.dtype),
        rng=rng,
    )


def evaluate_ids(model: LanguageModel, ids: np.ndarray, batch_size: int = 16, window: int = 256):
    """Mean loss per symbol (nats) of ``model`` on ``ids``, reading them as one long text.

    The text is cut into ``batch_size`` streams read window by window with the
    state carried, so every symbol but the first of each stream is predicted
    from all that came before it in its stream.
    """
    B = max(1, min(batch_size, (len(ids) - 1) // 2))
    windows = TBPTTBatches(ids, B, min(window, len(ids) // B - 1))
    total, count, state = 0.0, 0, None
    for inputs, targets in windows:
        loss, state = model.loss(LMBatch(inputs, targets), state)
        total, count = total + loss, count + targets.size
    return {"loss": total / count, "bits_per_symbol": total / count / math.log(2)}


def model_from_meta(config: Config, meta: dict, rng=None) -> LanguageModel:
    """The language model a checkpoint's metadata describes (its vocabulary's size)."""
    return build_model(config, len(vocabulary_of(meta)), seeded(config, rng))


def vocabulary_of(meta: dict) -> Vocabulary:
    try:
        return Vocabulary.from_dict(meta["vocab"])
    except BpttError as e:
        raise CheckpointError(f"metadata field 'vocab': {e}") from None


def load_model(path) -> tuple[LanguageModel, Vocabulary, Config, dict]:
    """Rebuild a language model from a checkpoint alone: weights, vocabulary, config."""
    from bptt.checkpoint import require_fields

    def build(config, meta):
        require_fields(path, meta, {"vocab": dict})
        return model_from_meta(config, meta, np.random.default_rng(0))

    # names, music and chorales train the same model on their own texts
    refusal = f", not a language model ({', '.join(LM_TASKS)})"
    model, config, meta = base.load_model(path, LM_TASKS, build, refusal)
    return model, vocabulary_of(meta), config, meta


def text_trainer(
    config: Config,
    out_dir,
    task: str,
    vocab,
    train_ids,
    val_ids,
    progress_bar=True,
    comm=None,
) -> tuple[Trainer, list[str]]:
    """A character (or word) LM on ``train_ids``, validated on ``val_ids``: the wiring the
    text tasks (lm, names, music) share, and the lines that describe the model and the loop.
    Names and tunes are read character by character (:data:`CHAR_TASKS`).
    Under ``mpirun`` (or with ``comm``) each rank trains on its own shard of the streams."""
    if task in CHAR_TASKS and config.level != "char":
        raise BpttError(f"{task} is a character model; expected level 'char', got {config.level!r}")
    comm = get_comm(timeout=config.watchdog) if comm is None else comm
    rng = np.random.default_rng(config.seed)
    model = build_model(config, len(vocab), rng)
    trainer = base.make_trainer(
        config,
        model,
        LMBatches(train_ids, global_batch_size(config, comm), config.window),
        lambda m: evaluate_ids(m, val_ids),
        out_dir,
        progress_bar,
        rng,
        {"task": task, "vocab": vocab.to_dict()},
        comm,
    )
    summary = [
        f"model: {config.cell.upper()} {config.num_layers}x{config.hidden_size}, "
        f"embedding {config.embed_size}, {model.num_parameters():,} parameters, {config.dtype}",
        f"training: {config.steps} updates of {config.batch_size} streams x {config.window} "
        f"steps (truncated BPTT), {config.optimizer} lr {config.lr}, clip {config.clip}",
        *describe_parallel(config, comm, "streams"),
    ]
    return trainer, summary


def build_trainer(
    config: Config, out_dir, progress_bar: bool = True, comm=None
) -> tuple[Trainer, list[str]]:
    """Data, model, optimizer and loop for ``config``, ready to ``run()`` (or ``resume()``),
    and the lines that say what was prepared."""
    data = prepare_data(config)
    trainer, summary = text_trainer(
        config, out_dir, "lm", data.vocab, data.train_ids, data.val_ids, progress_bar, comm
    )
    data_lines = [
        f"data: {data.source}",
        f"vocabulary: {len(data.vocab)} symbols | train {len(data.train_ids):,} symbols, "
        f"validation {len(data.val_ids):,}",
    ]
    return trainer, data_lines + summary


def after_training(config: Config, checkpoint) -> None:
    """Print samples of the best model, from prompts its vocabulary can read."""
    model, vocab, _, _ = load_model(checkpoint)
    prompts = [p for p in ("The ", "def ") if _writable(vocab, p)] or [_default_prompt(vocab)]
    for i, prompt in enumerate(prompts):
        # Each prompt its own random stream: with one seed for both, the two samples
        # drew the same numbers and, once the prompt was forgotten, wrote the same text.
        seed = (config.seed + i) % 2**63
        text = write(model, vocab, prompt, config.sample_length, 0.8, None, seed)
        print(f"\n--- sample (prompt {prompt!r}, temperature 0.8) ---\n{prompt}{text}")


def _writable(vocab: Vocabulary, text: str) -> bool:
    return all(s in vocab for s in vocab.split(text))


def _default_prompt(vocab: Vocabulary) -> str:
    """'The ' where the vocabulary has its letters, else its first ordinary symbol."""
    return "The " if _writable(vocab, "The ") else next(t for t in vocab if t not in vocab.specials)


def write(model, vocab, prompt, length, temperature=0.8, top_k=None, seed=0) -> str:
    """Continue ``prompt`` by ``length`` sampled symbols (never ``<unk>``)."""
    unknown = sorted({s for s in vocab.split(prompt) if s not in vocab})
    if unknown:
        listed = ", ".join(repr(s) for s in unknown)
        raise BpttError(f"the prompt has symbols not in the vocabulary: {listed}")
    if not 0 <= length <= MAX_LENGTH:
        raise BpttError(f"length must be in 0..{MAX_LENGTH:,} symbols; got {length}")
    if not 0 <= seed < 2**63:
        raise BpttError(f"seed must be an integer in 0..2**63-1 ({2**63 - 1:,}); got {seed}")
    rng = np.random.default_rng(seed)
    never = () if vocab.unk_id is None else (vocab.unk_id,)  # <unk> is no symbol to write
    ids = generate(model, vocab.encode(prompt), length, temperature, top_k, rng, exclude=never)
    return vocab.decode(ids)


def sample_checkpoint(path, prompt=None, length=300, temperature=0.8, top_k=None, seed=0) -> str:
    """The prompt and its sampled continuation, from the model saved at ``path``."""
    model, vocab, _, _ = load_model(path)
    prompt = _default_prompt(vocab) if prompt is None else prompt
    return prompt + write(model, vocab, prompt, length, temperature, top_k, seed)


def bits_per_character(args, held_out, read) -> str:
    """``bptt eval`` of a character model: bits per character on the file ``args.text`` as
    ``read(path)`` gives its text, or on ``held_out(config) -> (ids, what they are)``."""
    model, vocab, config, _ = load_model(args.checkpoint)
    ids, what = (
        held_out(config) if args.text is None else (vocab.encode(read(args.text)), args.text)
    )
    metrics = evaluate_ids(model, ids)
    return f"{what}: {len(ids):,} characters, {metrics['bits_per_symbol']:.4f} bits per character"


def evaluate_checkpoint(args) -> str:
    """``bptt eval``: bits per symbol on ``args.text``, or on the run's validation text."""
    model, vocab, config, _ = load_model(args.checkpoint)
    if args.text is None:
        corpus = builtin_corpus() if config.text is None else read_text(config.text)
        text, what = split_text(corpus, config.val_fraction)[1], "the run's validation text"
    else:
        text, what = read_text(args.text), args.text
    ids = vocab.encode(text)
    unknown = int((ids == vocab.unk_id).sum())
    metrics = evaluate_ids(model, ids)
    return (
        f"{what}: {len(ids):,} symbols ({unknown} not in the vocabulary), "
        f"{metrics['bits_per_symbol']:.4f} bits per symbol"
    )


PRESET: dict = {}  # Config's defaults are the character LM's: ~3 minutes on 2 cores


def text_task(module: ModuleType, name: str, options: str, **declared) -> Task:
    """The :class:`~bptt.tasks.base.Task` of a text task ``module`` (a language model; its
    docstring's first paragraph says what it learns):
    its ``PRESET``, ``prepare_data``, ``build_trainer``, ``after_training`` and
    ``evaluate_checkpoint``, sampled by :func:`sample_checkpoint` unless ``declared``
    says otherwise; ``declared`` adds or replaces fields."""
    fields = {
        "prepare": module.prepare_data,
        "build_model": model_from_meta,
        "build_trainer": module.build_trainer,
        "metrics": evaluate_ids,
        "after_training": module.after_training,
        "evaluate": module.evaluate_checkpoint,
        "sample": sample_checkpoint,
    }
    return Task(name, base.about(module), module.PRESET, options, **{**fields, **declared})


TASK = text_task(
    sys.modules[__name__],
    "lm",
    "text level val_fraction embed_size window sample_length",
)
