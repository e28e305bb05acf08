"""One flat configuration for a training run, saved inside every checkpoint.

Every field is a command-line flag of ``bptt train`` (``--hidden-size 256``),
with its help text taken from the field's metadata, so the flags, the defaults
and what the checkpoint records can never drift apart. Task presets
(:data:`PRESETS`) change a few defaults, each with a comment on why.

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
from bptt.tasks import TASK_MODULES

CELLS = ("rnn", "lstm", "gru")
SCHEMA_VERSION = 2  # the config schema's version; bump it and add a step to MIGRATIONS
DTYPES = ("float32", "float64")


def _flag(default, help: str, **choices):
    return field(default=default, metadata={"help": help, **choices})


@dataclass
class Config:
    # What to learn.
    task: str = _flag("lm", "the application to train", choices=tuple(TASK_MODULES))
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
    accumulate: int = _flag(1, "micro-batches of --batch-size summed into each update: the "
                            "update of a K times larger batch")  # fmt: skip
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
    watchdog: float = _flag(600.0, "MPI ranks: seconds a collective may wait for the slowest "
                            "rank before all stop, naming it (0: wait forever)")  # fmt: skip
    sample_length: int = _flag(300, "characters sampled at the end of training")
    # Sequence tasks: sentiment, ner, dna, activity (many-to-one and many-to-many).
    dataset: str = _flag("default", "sentiment: imdb or rotten_tomatoes; ner: wnut16 or templates "
                         "(default: the first)")  # fmt: skip
    head: str = _flag("auto", "one class per sequence or a tag per step (auto: the task's own; "
                      "dna takes either)", choices=("auto", "class", "tags"))  # fmt: skip
    bidirectional: bool = _flag(False, "read each sequence both ways (K = 2 directions)")
    pooling: str = _flag("last", "classifier: the sequence as the final state, or the mean or "
                         "max over real steps", choices=("last", "mean", "max"))  # fmt: skip
    truncate: int = _flag(0, "keep at most this many steps of an example (0: all)")
    vocab_size: int = _flag(0, "keep the most frequent words only, specials included (0: all)")
    min_freq: int = _flag(1, "words seen fewer times in training read as <unk>")
    max_examples: int = _flag(0, "examples to use (0: all); generated data: training examples made")
    test_fraction: float = _flag(0.1, "share of the examples held out for the test (never trained "
                                 "on, never used to pick a model)")  # fmt: skip
    vectors: str | None = _flag(None, "word vectors (GloVe text format) for the embedding")
    crf: bool = _flag(False, "tagger: a linear-chain CRF over the tags (Viterbi decoding) "
                      "instead of a softmax at each step")  # fmt: skip
    char_size: int = _flag(0, "ner: hidden units per direction of a character BiLSTM read over "
                           "each word, its final states joined to the word's embedding "
                           "(0: words only)")  # fmt: skip
    char_embed_size: int = _flag(25, "ner: size of the embedding of each character")
    shape_features: bool = _flag(False, "ner: add 0/1 word-shape features (capitalised, all "
                                 "caps, digits, @user, #tag, URL, punctuation)")  # fmt: skip
    lower: bool = _flag(False, "ner: look words up in lower case (the characters keep the case)")
    word_dropout: float = _flag(0.0, "ner: read a training word as <unk> with this probability")
    embed_dropout: float = _flag(0.0, "ner: dropout on each word's input vector in training")
    monitor: str = _flag("loss", "the validation metric that picks the best checkpoint and "
                         "drives --patience (loss: lowest; f1, accuracy: highest)",
                         choices=("loss", "f1", "accuracy"))  # fmt: skip
    clean_meter: bool = _flag(False, "music: train only on the training tunes that parse and keep "
                              "their meter (the held-out tunes stay as they are)")  # fmt: skip
    # Speech tasks (digits).
    features: str = _flag("logmel", "speech: 40 log-mel filterbanks or 13 MFCCs with deltas (39) "
                          "per 10 ms frame", choices=("logmel", "mfcc"))  # fmt: skip
    data: str | None = _flag(None, "speech: folder of the synthesised corpora "
                             "(default: ~/.cache/bptt/speech)")  # fmt: skip
    test_engine: str = _flag("", "speech: hold this engine out (espeak-ng, flite or festival): "
                             "train and validate on the other two, test on it (default: the "
                             "split by speaker)")  # fmt: skip
    augment: str = _flag("", "speech: training augmentations, comma-separated (speed, pitch, "
                         "reverb, telephone, noise, babble, gain, specaugment; all: every one; "
                         "default: none), see bptt.data.augment")  # fmt: skip
    norm: str = _flag("cmvn", "speech: feature normalisation per utterance",
                      choices=("cmvn", "pcen"))  # fmt: skip
    # Video task.
    frame_encoder: str = _flag("conv", "video: each frame's encoder, a linear layer on the "
                               "pixels, on bands of columns slid across the frame (max over "
                               "positions), or two small convolutions first",
                               choices=("linear", "band", "conv"))  # fmt: skip
    # Encoder-decoder tasks (dates, g2p, de-en).
    attention: str = _flag("additive", "seq2seq: attention over the encoder's outputs",
                           choices=("additive", "dot", "none"))  # fmt: skip
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
        for name in ("embed_size", "hidden_size", "num_layers", "batch_size", "window", "steps",
                     "eval_every", "accumulate"):  # fmt: skip
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
        for name in ("dropout", "word_dropout", "embed_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise BpttError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.char_size < 0:
            raise BpttError(f"char_size must be 0 (off) or more; got {self.char_size}")
        if self.char_embed_size < 1:
            raise BpttError(f"char_embed_size must be at least 1; got {self.char_embed_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise BpttError(f"val_fraction must be in (0, 1); got {self.val_fraction}")
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


# Per-task defaults; flags given on the command line override them.
PRESETS: dict[str, dict] = {
    "lm": {},  # the defaults above are the character LM's: ~3 minutes on 2 cores
    "sentiment": {
        "out": "runs/sentiment",
        "embed_size": 64,  # random start (no vectors offline); 64 learns the polar words
        "hidden_size": 64,  # per direction: K*H = 128 features for the head
        "bidirectional": True,  # the verdict may come first or last
        "pooling": "mean",  # a review's evidence is spread over it; the last state forgets
        "truncate": 300,  # the last 300 words: covers 3 of 4 IMDB reviews whole, bounds the cost
        "vocab_size": 20000,  # the most frequent training words; the long tail reads as <unk>
        "batch_size": 32,  # reviews per update, bucketed by length
        "lr": 3e-3,  # Adam; the cosine schedule decays it to a tenth
        "steps": 1800,  # ~2.9 epochs of 20,000 reviews: ~25 minutes on 2 busy cores
        "eval_every": 300,  # each evaluation reads the 2,500 validation reviews
    },
    "ner": {  # a BiLSTM-CRF over words and their letters (Lample et al. 2016); every value
        # below was chosen on the validation tweets' entity F1, never on the test tweets
        "out": "runs/ner",
        "embed_size": 100,  # per word, beside 2 x 25 from its letters and 7 shape bits
        "hidden_size": 64,  # per direction
        "bidirectional": True,  # "Teddy" needs the next word: Roosevelt or bears
        "char_size": 25,  # letters BiLSTM: unseen names get a vector from their spelling
        "shape_features": True,  # capitalised, all caps, digits, @, #, URL: cheap cues
        "crf": True,  # tags decided together: no I-person after O
        "lower": True,  # words looked up in lower case: tweets' case is erratic, letters keep it
        "min_freq": 1,  # every training word has a row. Validation F1: 0.243 with min_freq 2,
        # word dropout 0.1, embed dropout 0.3, embed 64, batch 16, 1,500 updates; 0.283 with
        # the values here at 1,200 updates; 0.382 / 0.419 / 0.392 (seeds 0-2) at 2,000
        "word_dropout": 0.25,  # so <unk> is trained too, and tags come from letters + context
        "embed_dropout": 0.25,  # on each word's input vector
        "dropout": 0.5,  # before the output layer: 1,916 tweets overfit quickly
        "monitor": "f1",  # the checkpoint of the best validation entity F1, not loss
        "batch_size": 32,  # sentences per update: twice the tweets per second of 16
        "lr": 3e-3,  # Adam; the cosine schedule decays it to a tenth
        "steps": 2000,  # ~33 epochs: validation F1 still rose at 1,200 updates (0.283)
        "eval_every": 100,  # each evaluation tags the 239 validation tweets
    },
    "dna": {
        "out": "runs/dna",
        "head": "tags",  # the tagger marks the motif's bases; its peak also says "present"
        "embed_size": 8,  # 4 bases (and <unk>) need no wide embedding
        "hidden_size": 48,  # per direction
        "num_layers": 2,  # layer 2 combines both directions: "motif on my left AND right"
        "bidirectional": True,  # a base belongs to a motif by what lies on both sides
        "pooling": "max",  # classifier: presence is "somewhere", a max over positions
        "max_examples": 100000,  # fresh sequences are cheap: 1 layer overfit 20,000
        "batch_size": 64,
        "lr": 5e-3,
        "steps": 3000,  # ~2 epochs: test base F1 0.94 in ~8 minutes on 2 busy cores
        "eval_every": 500,  # each evaluation reads 1,000 validation sequences
    },
    "activity": {
        "out": "runs/activity",
        "hidden_size": 32,  # 40 training clips only: a small model
        "bidirectional": True,
        "pooling": "mean",  # an activity is a texture over the clip, not its last instant
        "batch_size": 8,
        "lr": 5e-3,
        "steps": 300,  # ~75 epochs of 32 clips
        "eval_every": 25,
    },
    "video": {
        "out": "runs/video",
        "frame_encoder": "band",  # sees a pose wherever it stands; ~1/4 of the convs' time
        "embed_size": 64,  # the frame encoder's features: 1,024 pixels -> 64
        "hidden_size": 64,  # per direction
        "bidirectional": True,  # tags: a frame's action is clearer once it has gone on a while
        "max_examples": 6600,  # rendered training clips (600 per action)
        "batch_size": 32,
        "lr": 3e-3,
        "steps": 2500,  # ~12 epochs
        "eval_every": 250,  # each evaluation reads the 440 validation clips
    },
    "digits": {
        "out": "runs/digits",
        "hidden_size": 64,  # per direction: 10 words need little memory
        "bidirectional": True,  # a word's end ("six"/"seven") and start both tell
        "pooling": "mean",  # the word fills the clip; its frames vote together
        "max_examples": 6000,  # training clips: about every training voice says every digit
        "batch_size": 32,
        "lr": 5e-3,
        "steps": 1500,  # 8 epochs of 6,000 clips
        "eval_every": 250,  # each evaluation reads the 600 validation clips
    },
    "ctc-digits": {
        "out": "runs/ctc-digits",
        "hidden_size": 64,  # per direction; fits the training set already (loss 0.01 vs 0.19)
        "num_layers": 2,  # layer 2 reads both directions of layer 1
        "bidirectional": True,  # a digit's class is clearest once its word has ended
        "max_examples": 4000,  # training utterances of 3..7 digits (~20,000 digits)
        "batch_size": 32,
        "lr": 3e-3,
        "steps": 800,  # 6.4 epochs: ~4 minutes on a busy core, test DER ~1%
        "eval_every": 200,  # each evaluation reads the 300 validation utterances
        "beam": 8,  # prefix beam search's width in the test report, beside greedy
    },
    "trigger": {
        "out": "runs/trigger",
        "cell": "gru",  # as in the assignment; 3 gates instead of 4
        "hidden_size": 64,  # one direction only: the detector runs live
        "bidirectional": False,  # must not read the future (build_trainer refuses True)
        "max_examples": 2000,  # 10-second training clips (5.6 hours), 249 steps each
        "batch_size": 32,
        "lr": 5e-3,
        "steps": 1500,  # 24 epochs
        "eval_every": 250,  # each evaluation reads the 200 validation clips
    },
    "dates": {
        "out": "runs/dates",
        "cell": "lstm",  # gates keep the day, month and year apart over ~40 characters
        "bidirectional": True,  # the encoder reads the source both ways (bridged to the decoder)
        "embed_size": 32,  # ~60 characters in, 15 symbols out: a small embedding suffices
        "hidden_size": 64,  # per direction; the decoder has 64 too, the context 128
        "batch_size": 64,  # sentences per update, bucketed by length
        "lr": 5e-3,  # Adam; the cosine schedule decays it to a tenth
        "max_examples": 30000,  # generated training dates
        "steps": 3000,  # ~6 epochs of 30,000 generated dates
        "eval_every": 250,  # each evaluation decodes 500 validation dates
        "max_length": 20,  # an ISO date is 10 characters plus <eos>
    },
    "g2p": {
        "out": "runs/g2p",
        "cell": "lstm",
        "bidirectional": True,  # the encoder reads the source both ways (bridged to the decoder)
        "embed_size": 32,  # 26 letters and a few marks in, 39 phonemes out
        "hidden_size": 128,  # spelling is irregular: more memory than for dates
        "batch_size": 64,
        "lr": 3e-3,
        "steps": 4000,  # ~2 epochs of the 121,073 training words: ~20 minutes on 2 busy cores
        "eval_every": 500,  # each evaluation decodes 500 validation words
        "max_length": 30,  # the longest pronunciations have ~20 phonemes
    },
    "de-en": {
        "out": "runs/de-en",
        "level": "word",  # phrase pairs read word by word
        "cell": "lstm",
        "bidirectional": True,  # the encoder reads the source both ways (bridged to the decoder)
        "min_freq": 5,  # pairs whose every word occurs 5+ times: ~22,000, ~7,000 words a side
        "embed_size": 128,  # a few thousand words on each side
        "hidden_size": 128,
        "batch_size": 64,
        "lr": 3e-3,
        "steps": 2000,  # ~7 epochs of 18,786 phrases; validation loss is lowest near 1000
        "eval_every": 500,
        "max_length": 20,  # phrases are at most 8 words
    },
    "names": {
        "out": "runs/names",
        "embed_size": 32,  # 52 letters, the newline and <unk>
        "hidden_size": 128,  # names are short: a small LSTM learns their spelling
        "batch_size": 32,
        "window": 64,  # ~9 names per window, the state carried between windows
        "lr": 5e-3,
        "steps": 1500,  # ~4.6 epochs of the 87,579 training names' ~660,000 characters
        "eval_every": 250,  # each evaluation reads the 9,731 held-out names
    },
    "music": {
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
    },
    "chorales": {
        "out": "runs/chorales",
        "embed_size": 32,  # ~60 tokens: pitches, durations, meters, pickups, the two labels
        "hidden_size": 256,  # with dropout 0.5: val 2.54 nats/event; 128 with 0.3: 2.58-2.61
        "dropout": 0.5,  # before the output layer: ~13,000 training events overfit soon
        "batch_size": 16,  # streams of the training melodies, one after another
        "window": 64,  # ~30 events per window, the state carried on
        "lr": 3e-3,
        "steps": 700,  # ~26 epochs of ~27,000 tokens; validation is best near 500: ~3.5 minutes
        "eval_every": 100,  # each evaluation reads the 36 validation melodies (whole tunes)
        "test_fraction": 0.15,  # 52 melodies (2,591 events) never trained on
    },
}
