"""Activity recognition, many-to-one on real sensor sequences: a clip -> what the person does.

The lecture's example reads video frames; this task reads motion sensors
instead, which stand in for video here: BasicMotions (UEA archive, shipped in
the PyPI package ``sktime``, extra ``activity``), 80 clips of a smartwatch's
3-axis accelerometer and 3-axis gyroscope, 100 steps of 6 features each, of
people standing, walking, running and playing badminton. The archive's own
test file (40 clips) is the held-out test; its training file (40 clips) is cut
into train and validation. Features are standardised with the training clips'
per-channel mean and spread. Metric: accuracy, beside the majority class.

Shapes: T steps, D = 6 features.
"""

from __future__ import annotations

import sys

import numpy as np

from bptt.errors import BpttError, DataError
from bptt.tasks._examples import Split, TaskData, class_task, require_package, split_indices

PACKAGE, EXTRA = "sktime", "activity"
FOLDER = "datasets/data/BasicMotions"
SPLIT_SEED = 7


def read_ts(path) -> tuple[list[np.ndarray], list[str]]:
    """Clips (T, D) and labels of a file in the UEA/sktime ``.ts`` format (equal length)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror}") from None
    clips, labels, in_data = [], [], False
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *dims, label = line.split(":")
        try:
            clips.append(np.array([d.split(",") for d in dims], dtype=np.float64).T)  # (T, D)
        except ValueError:
            raise DataError(f"{path}:{n}: dimensions must be equal-length numbers") from None
        labels.append(label)
    if not clips:
        raise DataError(f"'{path}' holds no clip after its @data line")
    return clips, labels


def prepare_data(config, vocab=None) -> TaskData:
    """BasicMotions: train/validation from the archive's training file, test from its test file."""
    if config.dataset not in ("default", "basicmotions"):
        raise BpttError(f"activity reads --dataset basicmotions; got {config.dataset!r}")
    folder = require_package(PACKAGE, EXTRA, "the activity task") / FOLDER
    train_clips, train_labels = read_ts(folder / "BasicMotions_TRAIN.ts")
    test_clips, test_labels = read_ts(folder / "BasicMotions_TEST.ts")
    labels = sorted(set(train_labels))
    train_idx, val_idx, _ = split_indices(len(train_clips), config.val_fraction, 0.0, SPLIT_SEED)
    stacked = np.concatenate([train_clips[i] for i in train_idx])  # (N*T, D)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-8  # (D,)
    dtype = np.dtype(config.dtype)

    def split(clips, names, idx) -> Split:
        inputs = [((clips[i] - mean) / std).astype(dtype)[: config.truncate or None] for i in idx]
        return Split(inputs, [labels.index(names[i]) for i in idx])

    return TaskData(
        split(train_clips, train_labels, train_idx),
        split(train_clips, train_labels, val_idx),
        split(test_clips, test_labels, range(len(test_clips))),
        labels,
        "class",
        input_size=train_clips[0].shape[1],
        source=f"BasicMotions (smartwatch motion sensors, {folder.name}, package sktime)",
        extra={"mean": mean.tolist(), "std": std.tolist()},
    )


def read_example(text: str, config, meta: dict, vocab=None) -> tuple[np.ndarray, str]:
    """The clip (T, D) in a CSV file (T rows of D comma-separated numbers), normalised
    as the training clips were, for ``bptt predict``."""
    try:
        clip = np.loadtxt(text, delimiter=",", ndmin=2)  # (T, D)
    except (OSError, ValueError) as e:
        raise BpttError(
            f"activity predicts from a CSV file of T rows x {meta['input_size']} numbers; "
            f"cannot read {text!r}: {e}"
        ) from None
    if clip.shape[1] != meta["input_size"]:
        raise BpttError(
            f"the clip has {clip.shape[1]} columns, the model reads {meta['input_size']}"
        )
    x = (clip - np.array(meta["extra"]["mean"])) / np.array(meta["extra"]["std"])  # (T, D)
    return x.astype(np.dtype(config.dtype)), ""


PRESET = {
    "out": "runs/activity",
    "hidden_size": 32,  # 40 training clips only: a small model
    "bidirectional": True,
    "pooling": "mean",  # an activity is a texture over the clip, not its last instant
    "batch_size": 8,
    "lr": 5e-3,
    "steps": 300,  # ~75 epochs of 32 clips
    "eval_every": 25,
}

TASK = class_task(
    sys.modules[__name__],
    "activity",
    "dataset val_fraction truncate pooling label_smoothing",
    per="clip",
)
