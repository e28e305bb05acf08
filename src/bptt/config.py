"""One flat configuration for a training run, saved inside every checkpoint.

Every field is a command-line flag of ``bptt train`` (``--hidden-size 256``),
with its help text taken from the field's metadata, so the flags, the defaults
and what the checkpoint records can never drift apart. Each task reads some of
the fields (its ``options``) and changes a few defaults (its ``preset``, with a
comment on each value), both declared in its module (:mod:`bptt.tasks.base`).

The schema has a version (:data:`SCHEMA_VERSION`, saved as ``"schema_version"``
beside the fields). A checkpoint's config of an older version is brought up to
date by :data:`MIGRATIONS`, one step per version (fields renamed, removed, added
with their defaults), so removing or renaming a field never makes an older
checkpoint unloadable; fields a newer bptt added are refused with its version named.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

from bptt.errors import BpttError

CELLS = ("rnn", "lstm", "gru")
# The applications, by name (each one's module: bptt.tasks.TASK_MODULES, which checks it
# holds these). A checkpoint's task is looked up, never imported by a name read from it.
TASKS = tuple(
    "lm sentiment ner dna activity dates g2p de-en names music chorales digits ctc-digits "
    "trigger video".split()
)
SCHEMA_VERSION = 2  # the config schema's version; bump it and add a step to MIGRATIONS
DTYPES = ("float32", "float64")


def _flag(default, help: str, **choices):
    return field(default=default, metadata={"help": help, **choices})


@dataclass
class Config:
    # What to learn.
    task: str = _flag("lm", "the application to train", choices=TASKS)
    text: str | None = _flag(None, "a UTF-8 text file to train on (default: the built-in corpus)")
    level: str = _flag("char", "character or word language model", choices=("char", "word"))
    val_fraction: float = _flag(0.1, "share of the text held out for validation (its tail)")
    # The network.
    cell: str = _flag("lstm", "recurrent cell", choices=CELLS)
    embed_size: int = _flag(64, "size of the input embedding of each symbol")
    hidden_size: int = _flag(256, "hidden units H per layer")
    num_layers: int = _flag(1, "stacked recurrent layers L")
    dropout: float = _flag(0.0, "dropout between recurrent layers and before the output layer")
    dtype: str = _flag("float32", "floating-point precision", choices=DTYPES)
    # Truncated BPTT and the optimizer.
    batch_size: int = _flag(32, "parallel streams B the corpus is cut into")
    window: int = _flag(64, "TBPTT window k: steps backpropagated per update")
    optimizer: str = _flag("adam", "update rule", choices=("sgd", "adagrad", "adam"))
    lr: float = _flag(3e-3, "learning rate at the start")
    momentum: float = _flag(0.0, "SGD momentum")
    schedule: str = _flag("cosine", "learning-rate schedule", choices=("constant", "cosine"))
    clip: float = _flag(5.0, "global gradient-norm clipping threshold (0: off)")
    skip_non_finite: int = _flag(
        0, "updates with a NaN/Inf loss or gradient to skip in a row before stopping (0: stop)"
    )
    steps: int = _flag(800, "parameter updates to run")
    accumulate: int = _flag(
        1,
        "micro-batches of --batch-size summed into each "
        "update: the update of a K times larger batch",
    )
    # Evaluation, early stopping, output.
    eval_every: int = _flag(100, "updates between validation passes")
    patience: int = _flag(0, "stop after this many evaluations without improvement (0: never)")
    seed: int = _flag(0, "seed of every random choice (init, dropout, sampling)")
    out: str = _flag("runs/lm", "folder for checkpoints, the metrics log and the plot")
    tensorboard: str | None = _flag(
        None,
        "also write loss, bits per symbol, gradient norm and "
        "learning rate as TensorBoard event files into this folder",
    )
    watchdog: float = _flag(
        600.0,
        "MPI ranks: seconds a collective may wait for the slowest "
        "rank before all stop, naming it (0: wait forever)",
    )
    sample_length: int = _flag(300, "characters sampled at the end of training")
    # Sequence tasks: sentiment, ner, dna, activity (many-to-one and many-to-many).
    dataset: str = _flag(
        "default",
        "sentiment: imdb or rotten_tomatoes; ner: wnut16 or templates (default: the first)",
    )
    head: str = _flag(
        "auto",
        "one class per sequence or a tag per step (auto: the task's own; dna takes either)",
        choices=("auto", "class", "tags"),
    )
    bidirectional: bool = _flag(False, "read each sequence both ways (K = 2 directions)")
    pooling: str = _flag(
        "last",
        "classifier: the sequence as the final state, or the mean or max over real steps",
        choices=("last", "mean", "max"),
    )
    label_smoothing: float = _flag(
        0.0, "classifier: the share of the training target spread evenly over the classes"
    )
    truncate: int = _flag(0, "keep at most this many steps of an example (0: all)")
    vocab_size: int = _flag(0, "keep the most frequent words only, specials included (0: all)")
    min_freq: int = _flag(1, "words seen fewer times in training read as <unk>")
    max_examples: int = _flag(0, "examples to use (0: all); generated data: training examples made")
    test_fraction: float = _flag(
        0.1,
        "share of the examples held out for the test "
        "(never trained on, never used to pick a model)",
    )
    vectors: str | None = _flag(None, "word vectors (GloVe text format) for the embedding")
    crf: bool = _flag(
        False,
        "tagger: a linear-chain CRF over the tags (Viterbi "
        "decoding) instead of a softmax at each step",
    )
    char_size: int = _flag(
        0,
        "ner: units per direction of the letters' BiLSTM (final states "
        "join the word's vector), or cnn filters (0: words only)",
    )
    char_embed_size: int = _flag(25, "ner: size of the embedding of each character")
    char_encoder: str = _flag(
        "lstm",
        "ner: a word's letters read by a BiLSTM or a width-3 convolution, max-pooled",
        choices=("lstm", "cnn"),
    )
    shape_features: bool = _flag(False, "ner: 0/1 word shapes (capitals, digits, @, #, URL, ...)")
    lower: bool = _flag(False, "ner: look words up in lower case (the characters keep the case)")
    word_dropout: float = _flag(0.0, "ner: read a training word as <unk> with this probability")
    embed_dropout: float = _flag(0.0, "ner: dropout on each word's input vector in training")
    tune_o: bool = _flag(False, "ner: then shift tag O's score as validation F1 says (0 to -3)")
    monitor: str = _flag(
        "loss",
        "the validation metric that picks the best checkpoint and "
        "drives --patience (loss: lowest; f1, accuracy: highest)",
        choices=("loss", "f1", "accuracy"),
    )
    clean_meter: bool = _flag(
        False,
        "music: train only on the training tunes that parse and "
        "keep their meter (the held-out tunes stay as they are)",
    )
    # Speech tasks (digits).
    features: str = _flag(
        "logmel",
        "speech: 40 log-mel filterbanks, 13 MFCCs with deltas (39), or 40 log-mel of the "
        "LPC envelope (lpcmel: formants without the source's harmonics) per 10 ms frame",
        choices=("logmel", "mfcc", "lpcmel"),
    )
    data: str | None = _flag(
        None, "speech: folder of the synthesised corpora (default: ~/.cache/bptt/speech)"
    )
    test_engine: str = _flag(
        "",
        "speech: hold this engine out (espeak-ng, flite or festival): train and "
        "validate on the other two (train on --extra-engines too), test on it "
        "(default: the split by speaker)",
    )
    extra_engines: str = _flag(
        "",
        "speech: training-only engines added to a held-out-engine run (gnuspeech, sam, "
        "mbrola, pico, piper, rhvoice; comma-separated; default: none): train on every engine "
        "but --test-engine",
    )
    extra_share: float = _flag(
        1.0,
        "speech: how often a training clip comes from each --extra-engines engine, against "
        "each of the two natural ones (1: as often, the default; 0.25: a quarter as often)",
    )
    augment: str = _flag(
        "",
        "speech: training augmentations, comma-separated (vocoder, speed, tempo, pitch, reverb, "
        "telephone, bandwidth, eq, noise, babble, gain, vtlp, specaugment; all: every one but "
        "vocoder and bandwidth, all,vocoder,bandwidth: with them; default: none), see "
        "bptt.data.augment",
    )
    norm: str = _flag(
        "cmvn", "speech: feature normalisation per utterance", choices=("cmvn", "pcen")
    )
    hard_negatives: float = _flag(
        0.0,
        "trigger: negatives-only training clips (no trigger; half of their words sound like "
        "it) added per training clip (0.5: half as many again)",
    )
    # Video task.
    frame_encoder: str = _flag(
        "conv",
        "video: each frame's encoder, a linear layer on the pixels, on bands of columns slid "
        "across the frame (max over positions), or two small convolutions first",
        choices=("linear", "band", "conv"),
    )
    # Encoder-decoder tasks (dates, g2p, de-en).
    attention: str = _flag(
        "additive",
        "seq2seq: attention over the encoder's outputs",
        choices=("additive", "dot", "none"),
    )
    attention_size: int = _flag(64, "seq2seq: units A of the additive attention's score")
    beam: int = _flag(5, "seq2seq: beam width of the test metrics, beside greedy (1: greedy only)")
    length_penalty: float = _flag(1.0, "seq2seq: beam search ranks by log p / length^this")
    max_length: int = _flag(0, "seq2seq: longest output decoded (0: longest training target + 10)")

    def __post_init__(self) -> None:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            value = getattr(self, f.name)
            _check_type(f.name, value, type(f.default))  # a checkpoint's config is untrusted JSON
            if allowed and value not in allowed:
                raise BpttError(f"{f.name} must be one of {', '.join(allowed)}; got {value!r}")
        counts = "embed_size hidden_size num_layers batch_size window steps eval_every accumulate"
        for name in counts.split():
            if getattr(self, name) < 1:
                raise BpttError(f"{name} must be at least 1; got {getattr(self, name)}")
        for name in ("attention_size", "beam"):
            if getattr(self, name) < 1:
                raise BpttError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.max_length < 0:
            raise BpttError(f"max_length must be 0 or more; got {self.max_length}")
        if self.length_penalty < 0:
            raise BpttError(f"length_penalty must be 0 or more; got {self.length_penalty}")
        for name in ("patience", "sample_length", "skip_non_finite"):
            if getattr(self, name) < 0:
                raise BpttError(f"{name} must be 0 or more; got {getattr(self, name)}")
        if not 0 <= self.seed < 2**63:  # what the sampler's generator takes, checked up front
            raise BpttError(
                f"seed must be an integer in 0..2**63-1 ({2**63 - 1:,}); got {self.seed}"
            )
        for name in ("dropout", "word_dropout", "embed_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise BpttError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.char_size < 0:
            raise BpttError(f"char_size must be 0 (off) or more; got {self.char_size}")
        if self.char_embed_size < 1:
            raise BpttError(f"char_embed_size must be at least 1; got {self.char_embed_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise BpttError(f"val_fraction must be in (0, 1); got {self.val_fraction}")
        if not 0.0 <= self.hard_negatives <= 4.0:
            raise BpttError(f"hard_negatives must be in [0, 4]; got {self.hard_negatives}")
        if not 0.0 < self.extra_share <= 1.0:
            raise BpttError(f"extra_share must be in (0, 1]; got {self.extra_share}")
        if self.extra_share != 1.0 and not self.extra_engines:  # it would do nothing
            raise BpttError(
                f"--extra-share {self.extra_share} weighs the --extra-engines' training clips; "
                "name them too (--extra-engines gnuspeech,sam)"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise BpttError(f"test_fraction must be in (0, 1); got {self.test_fraction}")
        for name in ("truncate", "vocab_size", "max_examples"):
            if getattr(self, name) < 0:
                raise BpttError(f"{name} must be 0 or more; got {getattr(self, name)}")
        if self.min_freq < 1:
            raise BpttError(f"min_freq must be at least 1; got {self.min_freq}")
        if not self.lr > 0:
            raise BpttError(f"lr must be positive; got {self.lr}")
        if self.clip < 0:
            raise BpttError(f"clip must be 0 (off) or positive; got {self.clip}")
        if self.watchdog < 0:
            raise BpttError(f"watchdog must be 0 (off) or positive seconds; got {self.watchdog}")

    def to_dict(self) -> dict:
        """The fields and ``"schema_version"``: what a checkpoint stores."""
        return {**dataclasses.asdict(self), "schema_version": SCHEMA_VERSION}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """Rebuild from a checkpoint's metadata, migrated from its schema version.

        A config without ``"schema_version"`` is version 1 (before versions were
        saved). Each step of :data:`MIGRATIONS` takes it one version up; fields
        still missing then take their defaults. Unknown fields are refused: from
        a newer schema, the error names that version.
        """
        if not isinstance(d, dict):
            raise BpttError(f"config must be a JSON object; got {type(d).__name__}")
        d = dict(d)
        version = d.pop("schema_version", 1)
        if type(version) is not int or version < 1:
            raise BpttError(f"config schema_version must be an integer >= 1; got {version!r}")
        for step in range(version, SCHEMA_VERSION):
            d = MIGRATIONS[step].apply(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown and version > SCHEMA_VERSION:
            raise BpttError(
                f"config was saved by a newer bptt (config schema version {version}; this bptt "
                f"reads versions 1 to {SCHEMA_VERSION}) with fields it does not know: "
                f"{', '.join(unknown)}; upgrade bptt to load it"
            )
        if unknown:
            raise BpttError(
                f"config (schema version {version}) has unknown fields: {', '.join(unknown)}"
            )
        return cls(**d)


@dataclass(frozen=True)
class Migration:
    """One step of the config schema, from version v to v + 1 (applied in this order):

    renamed   old name -> new name (the value kept)
    removed   names dropped (their value no longer means anything)
    added     new name -> the value that gives the old behaviour
    """

    renamed: dict = field(default_factory=dict)
    removed: tuple = ()
    added: dict = field(default_factory=dict)

    def apply(self, d: dict) -> dict:
        d = dict(d)
        for old, new in self.renamed.items():
            if old in d:
                d[new] = d.pop(old)
        for name in self.removed:
            d.pop(name, None)
        for name, default in self.added.items():
            d.setdefault(name, default)
        return d


# version v -> the step from v to v + 1; SCHEMA_VERSION - 1 is the last key. A new field
# whose default keeps the old behaviour needs no step (missing fields take their defaults);
# renaming or removing a field, or an old behaviour that needs another value than the new
# default, needs SCHEMA_VERSION + 1 and a step here.
MIGRATIONS: dict[int, Migration] = {
    # 1 -> 2: data-parallel training for every task (issue 22): gradient accumulation
    # and the collective watchdog. Version 1 ran one batch per update and had no watchdog
    # (its multi-rank runs waited forever), so accumulate 1; the watchdog is a run's
    # safety, not its result, so it takes today's default.
    1: Migration(added={"accumulate": 1, "watchdog": 600.0}),
}


def _check_type(name: str, value, kind: type) -> None:
    """ints are ints (not bools), floats are finite numbers, strings strings (text may be null)."""
    if kind is bool:
        ok, expected = isinstance(value, bool), "true or false"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        expected = "a finite number"
    else:  # str, or None for an optional path
        ok = isinstance(value, str) or (value is None and kind is type(None))
        expected = "a string" if kind is str else "a string or null"
    if not ok:
        raise BpttError(f"{name} must be {expected}; got {value!r}")
