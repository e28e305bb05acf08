"""One small checkpoint per task family, written before issue 18's restructuring, still
loads and answers as it did: each is run through its CLI verb (the public way in) and
the printed answer is compared with the one saved beside it.

The checkpoints (tests/data/checkpoints/, a few tens of kB each) were written by
``bptt train`` of commit ed7b7bd, a few updates of a tiny model each:

    bptt train sentiment --dataset rotten_tomatoes --max-examples 300 --hidden-size 8
        --embed-size 8 --vocab-size 200 --truncate 30 --batch-size 8 --steps 6 --eval-every 3
    bptt train ner --dataset templates --max-examples 200 --hidden-size 8 --embed-size 8
        --char-size 4 --char-embed-size 4 --batch-size 8 --steps 6 --eval-every 3
    bptt train dates --max-examples 2000 --hidden-size 16 --embed-size 8 --attention-size 8
        --batch-size 16 --steps 150 --eval-every 75
    bptt train activity --hidden-size 8 --batch-size 8 --steps 6 --eval-every 3
    bptt train ctc-digits --max-examples 40 --hidden-size 8 --num-layers 1 --batch-size 8
        --beam 2 --steps 6 --eval-every 3
    bptt train digits --max-examples 40 --hidden-size 8 --batch-size 8 --steps 6 --eval-every 3
    bptt train music --text tunes.abc --hidden-size 32 --embed-size 8 --batch-size 8
        --window 32 --lr 0.01 --steps 300 --eval-every 150
    bptt train dna --steps 2 --hidden-size 4 (and the preset otherwise)
    bptt train video --max-examples 60 --hidden-size 8 --embed-size 8 --batch-size 8 --steps 6
        --eval-every 3

(each with ``--quiet --out DIR``; the file kept is DIR/best.safetensors). The text LM is
tests/data/lm_schema1.safetensors (see tests/test_config_schema.py). The inputs: a
seeded random activity clip (CSV), tunes.abc (the first 40 tunes of music21's
airdsAirs/book1.abc, the music run's --text), the WAV of ``bptt synth "3 1"``, a seeded random
video clip (8 frames of 32 x 32, .npy), and
``expected.json`` holds what each verb printed with that commit. The gradient-flow
diagnostics (``bptt gradients``, the memory family's verb on a checkpoint) are compared
number by number with ``gradients_lm.json``, their flow.json from that commit. The models are barely
trained, so the answers are arbitrary but exact: any change in how a checkpoint is read
or a model is run changes them.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint
from bptt.cli import main
from bptt.errors import CheckpointError
from bptt.tasks import base, get

DATA = Path(__file__).parent / "data"
HERE = DATA / "checkpoints"
EXPECTED = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))


def _argv(case: str, out: Path) -> list[str]:
    """The command line of each case; ``out`` is a fresh folder for files a verb writes."""
    ck = {name: str(HERE / f"{name}.safetensors") for name in EXPECTED}
    lm, wav = str(DATA / "lm_schema1.safetensors"), str(HERE / "three_one.wav")
    john = "John Smith flew from Paris to Berlin"
    tune = f"--out={out / 'tune'}"
    return {
        "lm": ["sample", lm, "--prompt", "the ", "--length", "40", "--seed", "1"],
        "sentiment": ["predict", ck.get("sentiment", ""), "a gripping , funny and warm film"],
        "ner": ["predict", ck.get("ner", ""), john],
        "ner-conll": ["predict", ck.get("ner", ""), john, "--format", "conll"],
        "dates": ["translate", ck.get("dates", ""), "tuesday 25 september 1984", "--beam", "3"],
        "dates-greedy": ["translate", ck.get("dates", ""), "3/4/21", "--beam", "1"],
        "activity": ["predict", ck.get("activity", ""), str(HERE / "activity_clip.csv")],
        "ctc-digits": ["transcribe", ck.get("ctc-digits", ""), wav, "--beam", "2"],
        "digits": ["predict", ck.get("digits", ""), wav],
        "video": ["predict", ck.get("video", ""), str(HERE / "video_clip.npy")],
        "dna": ["predict", ck.get("dna", ""), "ACGT" * 25],
        "music": ["compose", ck.get("music", ""), "--bars=4", "--formats=abc", "--tries=8", tune],
    }[case]


def run_case(case: str, out: Path, capsys) -> str:
    """What the verb of ``case`` prints (compose: the ABC file it writes)."""
    assert main(_argv(case, out)) == 0
    printed = capsys.readouterr().out
    if case == "music":
        return (out / "tune.abc").read_text(encoding="utf-8")
    return printed


CASES = (
    "lm sentiment ner ner-conll dates dates-greedy activity ctc-digits digits video dna music"
).split()


@pytest.mark.parametrize("case", CASES)
def test_an_old_checkpoint_answers_as_it_did(case, tmp_path, capsys):
    assert run_case(case, tmp_path, capsys) == EXPECTED[case]


CHECKPOINTS = {p.stem: p for p in HERE.glob("*.safetensors")} | {
    "lm": DATA / "lm_schema1.safetensors"
}


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_an_old_checkpoint_rebuilds_through_its_tasks_contract(name):
    """The one loader rebuilds each family's model from its metadata, with the saved weights."""
    tensors, meta = load_checkpoint(CHECKPOINTS[name])
    model, config, _ = base.load_model(
        CHECKPOINTS[name], meta["task"], get(meta["task"]).build_model
    )
    assert config.task == meta["task"] == name
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    state = model.state_dict()
    assert sorted(state) == sorted(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_a_checkpoint_of_another_task_is_refused_by_the_loader():
    with pytest.raises(CheckpointError, match="is for task 'ner', not 'dates'"):
        base.load_model(CHECKPOINTS["ner"], "dates", get("dates").build_model)


def _numbers(report) -> tuple[list, list]:
    """The report's floats (NaN for an undefined entry) and everything else, in order."""
    numbers, rest = [], []
    if isinstance(report, dict):
        report = [x for _, v in sorted(report.items()) for x in (_, v)]  # keys kept in rest
    if isinstance(report, list):
        for item in report:
            n, r = _numbers(item)
            numbers += n
            rest += r
    elif report is None or isinstance(report, float):
        numbers.append(np.nan if report is None else report)
    else:
        rest.append(report)
    return numbers, rest


def test_gradient_flow_of_an_old_checkpoint_is_as_it_was(tmp_path, monkeypatch, capsys):
    """``bptt gradients`` on the kept LM checkpoint: the same numbers, step by step, to
    rtol 1e-6 (the float32 model's last bits differ between the fast and reference routes),
    and the same names, counts and labels exactly."""
    monkeypatch.chdir(tmp_path)  # the run's --text was the relative 'corpus.txt'
    corpus = "the clouds are in the sky. i grew up in france, i speak fluent french. " * 20
    (tmp_path / "corpus.txt").write_text(corpus, encoding="utf-8")  # tests/test_config_schema
    argv = ["gradients", str(DATA / "lm_schema1.safetensors"), "--lag", "8", "--examples", "4"]
    assert main([*argv, "--out", "grad"]) == 0
    capsys.readouterr()
    got = json.loads((tmp_path / "grad" / "flow.json").read_text(encoding="utf-8"))
    want = json.loads((HERE / "gradients_lm.json").read_text(encoding="utf-8"))
    (got_numbers, got_rest), (want_numbers, want_rest) = _numbers(got), _numbers(want)
    assert got_rest == want_rest
    np.testing.assert_allclose(got_numbers, want_numbers, rtol=1e-6, atol=0)
