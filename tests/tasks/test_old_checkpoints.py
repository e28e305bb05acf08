"""Checkpoints written before the Task contract (bptt at ed7b7bd) still load.

One small checkpoint per family beside ``tests/data/lm_schema1.safetensors`` (text):
ner (classify/tag, with letters and a CRF), dna (tags), dates (seq2seq), video
(frames). Each was trained for two updates by the old code (``bptt train TASK
--steps 2 --hidden-size 4 ...``); each task's ``build_model`` rebuilds it from its
metadata through the one loader, with the saved weights.
"""

from pathlib import Path

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint
from bptt.cli import main
from bptt.errors import CheckpointError
from bptt.tasks import base, get

DATA = Path(__file__).resolve().parents[1] / "data"
OLD = {t: DATA / f"{t}_before_task_contract.safetensors" for t in ("ner", "dna", "dates", "video")}
OLD["lm"] = DATA / "lm_schema1.safetensors"


@pytest.mark.parametrize("name", sorted(OLD))
def test_an_old_checkpoint_rebuilds_through_its_tasks_contract(name):
    path = OLD[name]
    tensors, meta = load_checkpoint(path)
    assert meta["task"] == name
    task = get(name)
    model, config, _ = base.load_model(path, name, task.build_model)
    assert config.task == name
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    state = model.state_dict()
    assert sorted(state) == sorted(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_old_checkpoints_answer_their_verbs_through_the_cli(capsys):
    assert main(["predict", str(OLD["ner"]), "Harry Potter met Hermione in London"]) == 0
    assert main(["translate", str(OLD["dates"]), "tuesday 25 september 1984", "--beam", "1"]) == 0
    assert main(["predict", str(OLD["dna"]), "ACGT" * 25]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 3, out


def test_a_checkpoint_of_another_task_is_refused_by_the_loader():
    with pytest.raises(CheckpointError, match="is for task 'ner', not 'dates'"):
        base.load_model(OLD["ner"], "dates", get("dates").build_model)
