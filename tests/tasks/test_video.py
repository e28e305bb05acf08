"""The video task end to end on a few rendered clips: train (with the baselines and the
pictures), eval, predict from .npy and .gif, the per-frame tagger; and a trained model
that calls a sit-down clip "sit down" and the same clip reversed "stand up"."""

import contextlib
import io

import numpy as np
import pytest

from bptt.cli import main
from bptt.config import Config
from bptt.tasks import preset
from bptt.tasks._examples import Split, TaskData
from bptt.tasks.video import video
from bptt.tasks.video import video_clips as vc

FLAGS = ["--quiet", "--frame-encoder", "linear", "--embed-size", "16", "--hidden-size", "16"]
FLAGS += ["--batch-size", "16", "--lr", "0.01", "--eval-every", "100"]
SIT, STAND = vc.ACTIONS.index("sit down"), vc.ACTIONS.index("stand up")
A = len(vc.ACTIONS)


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """Fewer validation and test clips, and a cache of the module's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BPTT_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(video, "COUNTS", {"class": (18, 36), "tags": (12, 12)})
        yield mp


@pytest.fixture(scope="module")
def trained(small_sets, tmp_path_factory):
    """A small seeded classifier (270 training clips, 300 updates) and what training printed."""
    out = tmp_path_factory.mktemp("run") / "video"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "video", *FLAGS, "--max-examples", "270", "--steps", "300",
                     "--out", str(out)])  # fmt: skip
    assert code == 0
    return out, printed.getvalue()


def test_training_prints_the_test_metric_beside_the_baselines(trained, capsys):
    out, printed = trained
    assert "train 270, validation 18, test 36" in printed and "1024 features per step" in printed
    line = next(s for s in printed.splitlines() if s.startswith("test ("))
    assert "clips of 12 unseen actors" in line and "sit down/stand up clips" in line
    for row in ("LSTM over the frames", "frames averaged (order-blind)", "middle frame"):
        assert any(s.startswith(row) for s in printed.splitlines()), row
    assert (out / "test_clips.gif").stat().st_size > 0 and (out / "confusion.png").is_file()
    assert (out / "baseline-mean" / "best.safetensors").is_file()
    assert main(["eval", str(out / "best.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == line


@pytest.fixture(scope="module")
def sit_stand(small_sets, tmp_path_factory):
    """A small seeded model trained on sit-down and stand-up clips only (80 clips, 150
    updates, band encoder), saved as a video checkpoint."""
    flags = {"frame_encoder": "band", "embed_size": 16, "hidden_size": 16, "batch_size": 16,
             "lr": 0.01, "steps": 150, "eval_every": 50}  # fmt: skip
    config = Config(task="video", **{**preset("video"), **flags})

    def split(name: str, per_action: int) -> Split:
        made = [vc.render_clip("single", name, i, video.DATA_SEED)
                for i in range(A * per_action) if i % A in (SIT, STAND)]  # fmt: skip
        return Split([m[0].reshape(len(m[0]), -1) for m in made], [int(m[1][0]) for m in made])

    size = {"input_size": vc.SIZE**2, "extra": {"size": vc.SIZE}}
    train, val = split("train", 40), split("validation", 5)
    data = TaskData(train, val, val, video.LABELS, "class", **size)
    out = tmp_path_factory.mktemp("sit_stand")
    _, trainer = video.trainer_for(config, out, False, data, np.random.default_rng(0))
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.run()
    return out / "best.safetensors"


def test_reversing_a_sit_down_clip_makes_the_model_say_stand_up(sit_stand, tmp_path, capsys):
    for index in (SIT, SIT + A, SIT + 2 * A):  # unseen (test) actors' sit-down clips
        clip, labels, _, _ = vc.render_clip("single", "test", index, video.DATA_SEED)
        assert labels[0] == SIT
        for frames, want in ((clip, "sit down"), (clip[::-1], "stand up")):
            path = tmp_path / f"clip{index}.npy"
            np.save(path, frames)
            assert main(["predict", str(sit_stand), str(path)]) == 0
            said = capsys.readouterr().out.strip()
            assert said.rsplit(" ", 1)[0] == want, (index, said)


def test_predict_reads_a_gif_and_refuses_other_files(trained, tmp_path, capsys):
    from PIL import Image

    out, _ = trained
    clip, *_ = vc.render_clip("single", "test", 3, video.DATA_SEED)
    gif = tmp_path / "clip.gif"
    frames = [Image.fromarray(f).resize((64, 64)) for f in clip]  # another size: resized back
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    assert main(["predict", str(out / "best.safetensors"), str(gif)]) == 0
    label, p = capsys.readouterr().out.strip().rsplit(" ", 1)
    assert label in vc.ACTIONS and 0 < float(p) <= 1
    np.save(tmp_path / "bad.npy", np.zeros((4, 16, 16)))
    assert main(["predict", str(out / "best.safetensors"), str(tmp_path / "bad.npy")]) == 2
    assert "a .npy clip must be frames (T, 32, 32); got (4, 16, 16)" in capsys.readouterr().err
    assert main(["predict", str(out / "best.safetensors"), "clip.mp4"]) == 2
    assert "a .gif or .npy clip file; got 'clip.mp4'" in capsys.readouterr().err


def test_the_tagger_labels_every_frame_of_two_action_clips(small_sets, tmp_path, capsys):
    out = tmp_path / "tags"
    args = ["train", "video", *FLAGS, "--head", "tags", "--max-examples", "36", "--steps", "20"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "two actions per clip, a label per frame" in printed
    assert "test (12 two-action clips of 12 unseen actors): frame accuracy" in printed
    assert (out / "test_clips.gif").is_file() and (out / "confusion.png").is_file()
    clip, *_ = vc.render_clip("pair", "test", 0, video.DATA_SEED)
    np.save(tmp_path / "pair.npy", clip)
    assert main(["predict", str(out / "best.safetensors"), str(tmp_path / "pair.npy")]) == 0
    said = capsys.readouterr().out.strip()
    spans = [s.rsplit(" (frames ", 1) for s in said.split(", ")]
    assert all(name in vc.ACTIONS for name, _ in spans) and spans[-1][1].endswith(f"-{31})")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_preset_recognises_unseen_actors_and_the_order_blind_baseline_cannot(seed, tmp_path):
    """The issue's bar, per seed: test accuracy on unseen actors >= 0.95; the frames averaged
    <= 0.75, and <= 0.60 on the sit-down/stand-up clips. Measured: 0.958, 0.956, 0.958 for
    seeds 0-2, order-blind 0.727, 0.739, 0.736 (0.463, 0.450, 0.450 on sit/stand)."""
    config = Config(task="video", **{**preset("video"), "seed": seed, "out": str(tmp_path)})
    trainer, _ = video.build_trainer(config, tmp_path, progress_bar=False)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.run()
    model, config, _, _ = video.load_model(tmp_path / "best.safetensors", "video",
                                           video.build_model)  # fmt: skip
    data = video.prepare_data(config)
    ours = video.class_report(model, data.test)
    blind = dict(video.baselines(config, data, tmp_path))["frames averaged (order-blind)"]
    assert ours["accuracy"] >= 0.95, ours
    assert blind["accuracy"] <= 0.75 and blind["sit/stand"] <= 0.60, blind


@pytest.mark.slow
def test_the_tagger_finds_where_one_action_ends_and_the_next_begins(tmp_path):
    """Frame accuracy >= 0.90 on two-action clips of unseen actors (bptt train video --head
    tags --max-examples 4000; measured 0.952 for seed 0)."""
    flags = {"head": "tags", "max_examples": 4000, "out": str(tmp_path)}  # as in the README
    config = Config(task="video", **{**preset("video"), **flags})
    trainer, _ = video.build_trainer(config, tmp_path, progress_bar=False)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.run()
    model, _, _, _ = video.load_model(tmp_path / "best.safetensors", "video", video.build_model)
    assert video.frame_metrics(model, video.prepare_data(config).test)["accuracy"] >= 0.90
