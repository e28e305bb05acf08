"""One flat configuration for a training run, saved inside every checkpoint.

Every field is a command-line flag of ``bptt train`` (``--hidden-size 256``),
with its help text taken from the field's metadata, so the flags, the defaults
and what the checkpoint records can never drift apart. Task presets
(:data:`PRESETS`) change a few defaults, each with a comment on why.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

from bptt.errors import BpttError
from bptt.tasks import TASK_MODULES

CELLS = ("rnn", "lstm", "gru")
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
    # Evaluation, early stopping, output.
    eval_every: int = _flag(100, "updates between validation passes")
    patience: int = _flag(0, "stop after this many evaluations without improvement (0: never)")
    seed: int = _flag(0, "seed of every random choice (init, dropout, sampling)")
    out: str = _flag("runs/lm", "folder for checkpoints, the metrics log and the plot")
    sample_length: int = _flag(300, "characters sampled at the end of training")

    def __post_init__(self) -> None:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            value = getattr(self, f.name)
            _check_type(f.name, value, type(f.default))  # a checkpoint's config is untrusted JSON
            if allowed and value not in allowed:
                raise BpttError(f"{f.name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("embed_size", "hidden_size", "num_layers", "batch_size", "window", "steps",
                     "eval_every"):  # fmt: skip
            if getattr(self, name) < 1:
                raise BpttError(f"{name} must be at least 1; got {getattr(self, name)}")
        for name in ("patience", "seed", "sample_length", "skip_non_finite"):
            if getattr(self, name) < 0:
                raise BpttError(f"{name} must be 0 or more; got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise BpttError(f"dropout must be in [0, 1); got {self.dropout}")
        if not 0.0 < self.val_fraction < 1.0:
            raise BpttError(f"val_fraction must be in (0, 1); got {self.val_fraction}")
        if not self.lr > 0:
            raise BpttError(f"lr must be positive; got {self.lr}")
        if self.clip < 0:
            raise BpttError(f"clip must be 0 (off) or positive; got {self.clip}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """Rebuild from a checkpoint's metadata; unknown or missing keys are refused."""
        if not isinstance(d, dict):
            raise BpttError(f"config must be a JSON object; got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BpttError(f"config has unknown fields: {', '.join(unknown)}")
        return cls(**d)


def _check_type(name: str, value, kind: type) -> None:
    """ints are ints (not bools), floats are finite numbers, strings strings (text may be null)."""
    if kind is int:
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
}
