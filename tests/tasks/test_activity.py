"""Activity recognition: the .ts reader and bptt train/eval/predict activity end to end on
toy clips in BasicMotions' layout (the real archive when sktime is installed)."""

import importlib.util

import numpy as np
import pytest

from bptt.cli import main
from bptt.errors import DataError
from bptt.tasks.classify import activity

FLAGS = ["--quiet", "--hidden-size", "8", "--batch-size", "4", "--steps", "30"]
FLAGS += ["--eval-every", "10", "--lr", "0.02", "--val-fraction", "0.25"]


@pytest.fixture
def clips(fake_package, basic_motions_ts, monkeypatch):
    files = {f"{activity.FOLDER}/BasicMotions_TRAIN.ts": basic_motions_ts(16)}
    files[f"{activity.FOLDER}/BasicMotions_TEST.ts"] = basic_motions_ts(8, seed=1)
    fake_package("toy_sktime", files)
    monkeypatch.setattr(activity, "PACKAGE", "toy_sktime")


def test_end_to_end_eval_and_predict_from_a_csv(clips, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "activity", *FLAGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train 12, validation 4, test 8" in printed and "6 features per step" in printed
    line = next(s for s in printed.splitlines() if s.startswith("test ("))
    assert "majority class" in line
    assert main(["eval", str(out / "best.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == line

    clip = tmp_path / "clip.csv"
    np.savetxt(clip, np.random.default_rng(0).standard_normal((12, 6)) * 2.0, delimiter=",")
    assert main(["predict", str(out / "best.safetensors"), str(clip)]) == 0
    label, p = capsys.readouterr().out.split()
    assert label in ("Running", "Standing") and 0.5 <= float(p) <= 1.0
    assert main(["predict", str(out / "best.safetensors"), "not a file"]) == 2
    assert "CSV file of T rows x 6 numbers" in capsys.readouterr().err


def test_read_ts_refuses_a_broken_line(tmp_path, basic_motions_ts):
    path = tmp_path / "bad.ts"
    path.write_text(basic_motions_ts(2) + "1,2,x:3,4:Standing\n")
    with pytest.raises(DataError, match=r"bad.ts:\d+: dimensions must be"):
        activity.read_ts(path)


def test_a_missing_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(activity, "PACKAGE", "no_such_package_bptt")
    assert main(["train", "activity", *FLAGS, "--out", str(tmp_path)]) == 2
    assert "pip install 'bptt[activity]'" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("sktime") is None, reason="extra 'activity'")
def test_the_real_basic_motions_read():
    folder = activity.require_package("sktime", "activity", "test") / activity.FOLDER
    clips, labels = activity.read_ts(folder / "BasicMotions_TEST.ts")
    assert len(clips) == 40 and clips[0].shape == (100, 6)
    assert sorted(set(labels)) == ["Badminton", "Running", "Standing", "Walking"]
