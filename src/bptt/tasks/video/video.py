"""Video activity recognition from pixels: a clip of a figure -> its action, or a label per frame.

The clips are rendered (:mod:`bptt.tasks.video.video_clips`): 32x32 grayscale frames of
an articulated figure doing one of eleven actions (walk, run, jump, wave one
hand, wave both hands, clap, box, sit down, stand up, kneel down, get up), with
random bodies, tempo, camera, clutter, noise and occluders. The split is by
actor: validation clips (which pick the best checkpoint) show the validation
actors, test clips the test actors, whose bodies the model never sees.

The model (:mod:`bptt.models.frames`) encodes each frame (``--frame-encoder``:
"band", the preset, a linear layer slid across the frame in full-height bands,
max over positions; "linear"; or "conv") into ``--embed-size`` features and reads
the frames in order with an LSTM: ``--head class`` (the default) gives one action
per clip; ``--head tags`` trains on clips of two actions one after the other and
labels every frame.

After training, the test metric is printed beside two baselines trained the same
way on the same encoder without recurrence: the frames averaged (blind to their
order, so "sit down" and "stand up", the same frames reversed, look alike, as do
"kneel down" and "get up") and the middle frame alone. The run's folder gets
``test_clips.gif`` (test clips with the true and predicted labels) and
``confusion.png``.

Shapes: N clips, T frames, S pixels a side, P = S*S pixels, C = 11 actions.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bptt.errors import BpttError
from bptt.models.frames import FrameClassifier, FramePool, FrameTagger
from bptt.tasks._examples import (
    Split,
    TaskData,
    best_label,
    class_metrics,
    describe,
    example_task,
    example_trainer,
    load_model,
    mean_loss,
    predict,
    predict_one,
)
from bptt.tasks.base import network, seeded
from bptt.tasks.video import video_clips as vc

LABELS = list(vc.ACTIONS)
DATA_SEED = 0  # the clips drawn do not follow --seed: every run sees the same data
COUNTS = {"class": (440, 880), "tags": (300, 450)}  # validation and test clips per head
HEADS = ("class", "tags", "mean", "middle")  # the last two: the baselines' checkpoints
PAIR = [LABELS.index("sit down"), LABELS.index("stand up")]


def _head(config) -> str:
    return "class" if config.head == "auto" else config.head


def prepare_data(config) -> TaskData:
    """Rendered clips of disjoint actors: frames (T_i, P) uint8, one label per clip (head
    "class") or per frame of two-action clips ("tags")."""
    if config.dataset not in ("default", "rendered"):
        raise BpttError(f"video reads --dataset rendered; got {config.dataset!r}")
    head = _head(config)
    kind = "single" if head == "class" else "pair"
    val, test = COUNTS[head]
    counts = {"train": config.max_examples or 3600, "validation": val, "test": test}
    splits = {}
    for name, count in counts.items():
        clips = vc.make_clips(kind, name, count, DATA_SEED)
        inputs = [f.reshape(len(f), -1)[: config.truncate or None] for f in clips.frames]
        targets = [
            int(y[0]) if head == "class" else y[: len(x)]
            for y, x in zip(clips.labels, inputs, strict=True)
        ]
        splits[name] = Split(inputs, targets)
    cast = {s: len(vc.actors(s)) for s in vc.SPLITS}
    what = "one action per clip" if head == "class" else "two actions per clip, a label per frame"
    return TaskData(
        splits["train"],
        splits["validation"],
        splits["test"],
        LABELS,
        head,
        input_size=vc.SIZE * vc.SIZE,
        source=f"rendered action clips, {vc.SIZE}x{vc.SIZE} grayscale, {what} "
        f"({cast['train']} training, {cast['validation']} validation, {cast['test']} test "
        f"actors), cached in {vc.cache_dir('video')}",
        extra={"size": vc.SIZE},
    )


def build_model(config, head: str, num_labels: int, vocab_size=None, input_size=None, rng=None):
    """The model a checkpoint's head names: the LSTM classifier or tagger, or a baseline."""
    rng = seeded(config, rng)
    common = {"encoder": config.frame_encoder, "dtype": np.dtype(config.dtype), "rng": rng}
    if head in ("mean", "middle"):
        return FramePool(
            num_labels, input_size, config.embed_size, config.hidden_size, head, **common
        )
    common |= network(config)  # the recurrent layer's size, cell, directions and dropout
    if head == "class":
        return FrameClassifier(num_labels, input_size, config.embed_size, config.pooling, **common)
    if head == "tags":
        return FrameTagger(num_labels, input_size, config.embed_size, **common)
    raise BpttError(f"video head must be one of {', '.join(HEADS)}; got {head!r}")


def model_from_meta(config, meta: dict, rng=None):
    """The model a checkpoint's metadata describes (its head, labels and frame size)."""
    return build_model(config, meta["head"], len(meta["labels"]), None, meta["input_size"], rng)


def frame_metrics(model, split: Split) -> dict:
    """Loss per frame and the share of frames labelled right."""
    probs = predict(model, split)
    hits = np.concatenate(
        [np.argmax(p, axis=1) == y for p, y in zip(probs, split.targets, strict=True)]
    )
    return {"loss": mean_loss(probs, split), "accuracy": float(hits.mean())}


def metrics(model, split: Split) -> dict:
    return (
        class_metrics(model, split)
        if np.ndim(split.targets[0]) == 0
        else frame_metrics(model, split)
    )


def trainer_for(config, out_dir, progress_bar: bool, data: TaskData, rng):
    """The model ``data.head`` names and its training loop on ``data``: (model, trainer)."""
    model = build_model(config, data.head, len(data.labels), input_size=data.input_size, rng=rng)
    return model, example_trainer(config, model, data, metrics, out_dir, progress_bar, rng)


def build_trainer(config, out_dir, progress_bar: bool = True):
    data = prepare_data(config)
    rng = np.random.default_rng(config.seed)
    model, trainer = trainer_for(config, out_dir, progress_bar, data, rng)
    kind = "classifier (one action per clip)" if data.head == "class" else "tagger (per frame)"
    way = "bidirectional " if config.bidirectional else ""
    epochs = config.steps * config.batch_size / len(data.train)
    summary = [
        *describe(data),
        f"model: {config.frame_encoder} frame encoder {data.input_size}->{config.embed_size} -> "
        f"{way}{config.cell.upper()} {config.num_layers}x{config.hidden_size} -> {kind}, "
        f"{model.num_parameters():,} parameters, {config.dtype}",
        f"training: {config.steps} updates of {config.batch_size} clips ({epochs:.1f} epochs), "
        f"{config.optimizer} lr {config.lr}, clip {config.clip}",
    ]
    return trainer, summary


# ---------------------------------------------------------------- reports
def _predictions(model, split: Split) -> list[np.ndarray]:
    """Predicted class per clip (), or per frame (T_i,)."""
    return [np.argmax(p, axis=-1) for p in predict(model, split)]


def class_report(model, split: Split) -> dict:
    """Accuracy over all test clips and over the sit down / stand up clips."""
    guess = np.array(_predictions(model, split))  # (N,)
    truth = np.array(split.targets)  # (N,)
    pair = np.isin(truth, PAIR)
    return {
        "accuracy": float((guess == truth).mean()),
        "sit/stand": float((guess[pair] == truth[pair]).mean()),
    }


def held_out_report(path) -> str:
    """The checkpoint's test metrics on the unseen actors' clips."""
    model, config, meta, _ = load_model(path, "video", build_model)
    data = prepare_data(config)
    actors = len(vc.actors("test"))
    if meta["head"] == "tags":
        scores = frame_metrics(model, data.test)
        return (
            f"test ({len(data.test)} two-action clips of {actors} unseen actors): frame "
            f"accuracy {scores['accuracy']:.4f}, loss {scores['loss']:.4f} per frame"
        )
    scores = class_report(model, data.test)
    return (
        f"test ({len(data.test)} clips of {actors} unseen actors): accuracy "
        f"{scores['accuracy']:.4f} | sit down/stand up clips: accuracy {scores['sit/stand']:.4f}"
    )


def evaluate_checkpoint(args) -> str:
    return held_out_report(args.checkpoint)


def baselines(config, data: TaskData, out: Path) -> list[tuple[str, dict]]:
    """The two baselines, trained as the model was (same encoder, steps and seed) in
    ``out``/baseline-mean and baseline-middle: [(name, :func:`class_report` on test)]."""
    rows = []
    for pool, name in (("mean", "frames averaged (order-blind)"), ("middle", "middle frame")):
        folder = out / f"baseline-{pool}"
        rng = np.random.default_rng(config.seed)
        _, trainer = trainer_for(config, folder, False, dataclasses.replace(data, head=pool), rng)
        trainer.run()
        model, _, _, _ = load_model(folder / "best.safetensors", "video", build_model)
        rows.append((name, class_report(model, data.test)))
    return rows


def after_training(config, best) -> None:
    """The test metric, the two baselines beside it (head "class"), and the pictures."""
    print(held_out_report(best))
    out = Path(best).parent
    model, config, _, _ = load_model(best, "video", build_model)
    data = prepare_data(config)
    if data.head == "class":
        rows = [("LSTM over the frames", class_report(model, data.test))]
        rows += baselines(config, data, out)
        print(f"{'test, unseen actors':32s} {'accuracy':>9s} {'sit/stand':>10s}")
        for name, s in rows:
            print(f"{name:32s} {s['accuracy']:9.4f} {s['sit/stand']:10.4f}")
    pictures = write_pictures(model, data, out)
    if pictures:
        print("pictures: " + ", ".join(str(p) for p in pictures))


def _confusion(truth: np.ndarray, guess: np.ndarray, n: int) -> np.ndarray:
    counts = np.zeros((n, n), dtype=np.int64)  # (C, C) rows true, columns predicted
    np.add.at(counts, (truth, guess), 1)
    return counts


def write_pictures(model, data: TaskData, out: Path) -> list[Path]:
    """``test_clips.gif`` (one test clip per action, or six two-action clips) and
    ``confusion.png`` (per clip, or per frame for the tagger); [] without Pillow/matplotlib."""
    try:
        import matplotlib
        import PIL  # noqa: F401
    except ImportError:
        print("pictures: skipped (install the extras: pip install 'bptt[plot,video]')")
        return []
    matplotlib.use("Agg")
    guesses = _predictions(model, data.test)
    targets = [
        np.broadcast_to(np.asarray(y), (len(x),))
        for y, x in zip(data.test.targets, data.test.inputs, strict=True)
    ]
    if data.head == "class":
        first = {int(y): i for i, y in reversed(list(enumerate(data.test.targets)))}
        shown = [first[c] for c in sorted(first)]
    else:
        shown = list(range(min(6, len(data.test))))
    clips = [data.test.inputs[i].reshape(-1, vc.SIZE, vc.SIZE) for i in shown]
    truth = [targets[i] for i in shown]
    guess = [np.broadcast_to(guesses[i], (len(targets[i]),)) for i in shown]
    gif = write_gif(out / "test_clips.gif", clips, truth, guess)
    flat_t = np.concatenate(targets)
    flat_g = np.concatenate(
        [np.broadcast_to(g, (len(t),)) for g, t in zip(guesses, targets, strict=True)]
    )
    if data.head == "class":  # one count per clip, not per frame
        flat_t, flat_g = np.array(data.test.targets), np.array(guesses)
    unit = "frames" if data.head == "tags" else "clips"
    png = write_confusion(out / "confusion.png", _confusion(flat_t, flat_g, len(LABELS)), unit)
    return [gif, png]


def _atomic(path: Path, save) -> Path:
    """Run ``save(tmp)`` and rename tmp onto ``path`` (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the picture from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_gif(path: Path, clips, truth, guess, scale: int = 3) -> Path:
    """An animated GIF of clips (T_i, S, S) side by side, 3 to a row, each captioned at every
    frame with its true label and the prediction (green when right, red when wrong)."""
    from PIL import Image, ImageDraw

    S, cap, cols = vc.SIZE * scale, 22, min(3, len(clips))
    rows = -(-len(clips) // cols)
    T = max(len(c) for c in clips)
    frames = []
    for t in range(T):
        canvas = Image.new("RGB", (cols * (S + 4), rows * (S + cap + 4)), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for k, clip in enumerate(clips):
            i = min(t, len(clip) - 1)  # a shorter clip holds its last frame
            x0, y0 = (k % cols) * (S + 4) + 2, (k // cols) * (S + cap + 4) + 2
            tile = Image.fromarray(clip[i]).resize((S, S), Image.NEAREST).convert("RGB")
            canvas.paste(tile, (x0, y0))
            right = truth[k][i] == guess[k][i]
            draw.text((x0, y0 + S), f"true {LABELS[truth[k][i]]}", fill=(0, 0, 0))
            colour = (0, 130, 0) if right else (200, 0, 0)
            draw.text((x0, y0 + S + 10), f"pred {LABELS[guess[k][i]]}", fill=colour)
        frames.append(canvas.convert("P", palette=Image.ADAPTIVE, colors=32, dither=Image.NONE))

    def save(tmp):
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=120, loop=0
        )

    return _atomic(path, save)


def write_confusion(path: Path, counts: np.ndarray, unit: str) -> Path:
    """A confusion-matrix PNG: rows the true action, columns the predicted one."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(counts, cmap="Blues")
    for (r, c), v in np.ndenumerate(counts):
        if v:
            ink = "white" if v > counts.max() / 2 else "black"
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color=ink)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test {unit} of unseen actors")
    fig.tight_layout()
    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
    return path


# ---------------------------------------------------------------- predict
def read_clip(path: str, size: int) -> np.ndarray:
    """A user's clip as frames (T, size*size) uint8: a GIF (each frame to grayscale, resized)
    or a .npy array (T, size, size) of 0..255, or of floats in [0, 1]."""
    name = str(path)
    if not Path(name).is_file() or not name.lower().endswith((".gif", ".npy")):
        raise BpttError(f"video predicts from a .gif or .npy clip file; got {name!r}")
    if name.lower().endswith(".npy"):
        try:
            clip = np.load(name, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise BpttError(f"cannot read '{name}' as a NumPy array: {e}") from None
        if clip.ndim != 3 or clip.shape[1:] != (size, size) or len(clip) == 0:
            raise BpttError(f"a .npy clip must be frames (T, {size}, {size}); got {clip.shape}")
        if clip.dtype.kind == "f":
            clip = np.round(np.clip(clip, 0, 1) * 255)
        return clip.astype(np.uint8).reshape(len(clip), -1)  # (T, P)
    try:
        from PIL import Image, ImageSequence
    except ImportError:
        raise BpttError("reading a GIF needs Pillow: pip install 'bptt[video]'") from None
    try:
        with Image.open(name) as im:
            frames = [
                np.asarray(f.convert("L").resize((size, size), Image.BILINEAR))
                for f in ImageSequence.Iterator(im)
            ]
    except OSError as e:
        raise BpttError(f"cannot read '{name}' as a GIF: {e}") from None
    return np.stack(frames).reshape(len(frames), -1)  # (T, P)


def predict_checkpoint(path, text: str) -> str:
    """The action in a clip file (and its probability), or the action of every frame (tags)."""
    model, _, meta, _ = load_model(path, "video", build_model)
    probs = predict_one(model, read_clip(text, int(meta["extra"]["size"])))  # (C,) or (T, C)
    if probs.ndim == 1:
        return best_label(probs, meta["labels"])
    tags = np.argmax(probs, axis=1)  # (T,)
    starts = [0, *(np.flatnonzero(np.diff(tags)) + 1)]
    ends = [*starts[1:], len(tags)]
    return ", ".join(
        f"{meta['labels'][tags[a]]} (frames {a}-{b - 1})" for a, b in zip(starts, ends, strict=True)
    )


PRESET = {
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
}

TASK = example_task(
    sys.modules[__name__],
    "video",
    "dataset head max_examples truncate embed_size frame_encoder pooling",
    build_model=model_from_meta,
    after_training=after_training,
    evaluate=evaluate_checkpoint,
)
