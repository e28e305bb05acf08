"""``bptt train TASK``: flags from the task's contract, run files in and out."""

import pytest

from bptt.cli import main
from bptt.cli.train import flag
from bptt.config import TASKS, Config
from bptt.errors import BpttError
from bptt.tasks import base, get

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

TEXT = "the clouds are in the sky. the quick brown fox jumped over the lazy dog. " * 20
TINY = ["--hidden-size", "8", "--embed-size", "4", "--batch-size", "2", "--window", "8"]


def _help(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


def _flags_in(text: str) -> set[str]:
    return {w.strip("[],'") for w in text.split() if w.startswith(("--", "[--"))}


@pytest.mark.parametrize("name", TASKS)
def test_train_task_help_lists_exactly_its_options(capsys, name):
    text = _help(capsys, ["train", name, "--help"])
    own = {"--help", "--resume", "--config", "--print-config", "--quiet", "--threads"}
    assert _flags_in(text) - own == {flag(n) for n in get(name).all_options()}


def test_sentiment_help_leaves_out_other_tasks_options(capsys):
    text = _help(capsys, ["train", "sentiment", "--help"])
    for other in ("--clean-meter", "--features", "--beam", "--frame-encoder", "--window"):
        assert other not in text, other
    assert "--pooling" in text and "--vectors" in text
    assert "--beam" in _help(capsys, ["train", "dates", "--help"])


def test_a_flag_of_another_task_is_refused_naming_its_tasks(capsys):
    assert main(["train", "sentiment", "--beam", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bptt: error: --beam is not an option of task sentiment") and (
        "dates, g2p, de-en, ctc-digits" in err and err.count("\n") == 1
    ), err


def test_print_config_writes_the_presets_run_file(capsys):
    assert main(["train", "ner", "--print-config", "--steps", "77"]) == 0
    settings = tomllib.loads(capsys.readouterr().out)
    task = get("ner")
    assert settings["task"] == "ner" and settings["steps"] == 77
    assert settings["char_size"] == task.preset["char_size"] == 25
    assert set(settings) == {"task", *task.all_options()} - {"tensorboard", "vectors"}
    assert Config(**settings) == task.config(steps=77)


def test_a_run_file_round_trips_and_flags_override_it(tmp_path, capsys):
    assert main(["train", "dates", "--print-config", "--lr", "0.0125", "--beam", "3"]) == 0
    written = capsys.readouterr().out
    run = tmp_path / "run.toml"
    run.write_text(written, encoding="utf-8")
    assert main(["train", "--config", str(run), "--print-config"]) == 0  # the file's task
    assert capsys.readouterr().out == written
    assert main(["train", "--config", str(run), "--print-config", "--beam", "7"]) == 0
    again = tomllib.loads(capsys.readouterr().out)
    assert (again["beam"], again["lr"], again["task"]) == (7, 0.0125, "dates")


@pytest.mark.parametrize(
    "content, message",
    [
        ("task = 'lm'\nwindow = 'long'\n", "window must be an integer; got 'long'"),
        ("hiden_size = 3\n", "settings bptt does not know: hiden_size"),
        ("task = 'lm'\nbeam = 3\n", "sets beam, not options of task lm"),
        ("steps = [1, 2]\n", "steps must be single values"),
        ("steps = \n", "is not valid TOML"),
    ],
)
def test_a_bad_run_file_is_one_line_naming_the_problem(tmp_path, capsys, content, message):
    run = tmp_path / "run.toml"
    run.write_text(content, encoding="utf-8")
    assert main(["train", "--config", str(run), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bptt: error:") and message in err and err.count("\n") == 1, err


def test_a_run_for_another_task_than_typed_is_refused(tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text('task = "dates"\n', encoding="utf-8")
    assert main(["train", "lm", "--config", str(run), "--print-config"]) == 2
    assert "is for another task than lm" in capsys.readouterr().err


def test_a_run_file_trains_and_its_settings_reach_the_checkpoint(tmp_path, capsys):
    from bptt.checkpoint import load_checkpoint

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    flags = [*TINY, "--text", str(corpus), "--steps", "2", "--eval-every", "2"]
    assert main(["train", *flags, "--out", str(out), "--print-config"]) == 0
    run = tmp_path / "run.toml"
    run.write_text(capsys.readouterr().out, encoding="utf-8")
    assert main(["train", "--quiet", "--config", str(run), "--sample-length", "3"]) == 0
    saved = Config.from_dict(load_checkpoint(out / "best.safetensors")[1]["config"])
    assert (saved.hidden_size, saved.window, saved.steps, saved.sample_length) == (8, 8, 2, 3)
    assert saved.text == str(corpus)


def test_every_task_declares_the_contract():
    for name in TASKS:
        task = get(name)
        assert task.name == name and isinstance(task, base.Task)
        assert set(task.preset) <= set(task.all_options())
        assert set(base.COMMON) <= set(task.all_options())
    verbs = {name: get(name).verbs() for name in TASKS}
    assert verbs["lm"] == ("sample",) and verbs["music"] == ("sample", "compose")
    assert verbs["dates"] == ("translate",) and verbs["ctc-digits"] == ("transcribe",)


def test_a_task_whose_preset_sets_what_it_does_not_read_is_refused():
    lm = get("lm")
    with pytest.raises(BpttError, match="preset sets fields it does not read"):
        base.Task(
            "x",
            "",
            {"beam": 3},
            lm.options,
            lm.prepare,
            lm.build_model,
            lm.build_trainer,
            report=str,
        )
    with pytest.raises(BpttError, match="not Config fields: windwo"):
        base.Task("x", "", {}, "windwo", lm.prepare, lm.build_model, lm.build_trainer, report=str)


def _imports(path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_config_imports_no_task_and_no_task_imports_the_cli():
    from pathlib import Path

    src = Path(base.__file__).resolve().parents[1]
    assert not {n for n in _imports(src / "config.py") if n.startswith("bptt.tasks")}
    upward = {
        str(p.relative_to(src)): sorted(n for n in _imports(p) if n.startswith("bptt.cli"))
        for p in (src / "tasks").rglob("*.py")
    }
    assert not {k: v for k, v in upward.items() if v}, upward


def test_a_flag_without_its_value_is_still_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "sentiment", "--steps"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "expected one argument" in err, err
