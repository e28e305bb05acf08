"""The bptt command end to end on a tiny corpus, and its one-line errors."""

import subprocess
import sys

import pytest

from bptt.cli import main

TEXT = "the clouds are in the sky. the quick brown fox jumped over the lazy dog. " * 30


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = root / "run"
    flags = ["--text", str(corpus), "--out", str(out), "--hidden-size", "16", "--embed-size", "8"]
    flags += ["--batch-size", "4", "--window", "8", "--steps", "6", "--eval-every", "3"]
    code = main(["train", "--quiet", *flags, "--sample-length", "20"])
    assert code == 0
    return root, corpus, out


def test_train_writes_checkpoints_log_and_plot(run, capsys):
    _, _, out = run
    assert (out / "best.safetensors").exists() and (out / "latest.safetensors").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
    assert (out / "training.png").exists()


def test_a_second_run_never_overwrites_the_first(run, capsys):
    root, corpus, out = run
    before = (out / "latest.safetensors").read_bytes()
    flags = ["--text", str(corpus), "--out", str(out), "--hidden-size", "8", "--steps", "2"]
    assert main(["train", "--quiet", *flags, "--batch-size", "2", "--sample-length", "5"]) == 0
    assert (out / "latest.safetensors").read_bytes() == before
    assert (root / "run-2" / "latest.safetensors").exists()


def test_sample_is_reproducible_and_starts_with_the_prompt(run, capsys):
    ckpt = str(run[2] / "best.safetensors")
    main(["sample", ckpt, "--prompt", "the ", "--length", "30", "--seed", "3"])
    first = capsys.readouterr().out
    main(["sample", ckpt, "--prompt", "the ", "--length", "30", "--seed", "3"])
    assert capsys.readouterr().out == first
    assert first.startswith("the ") and len(first.rstrip("\n")) == 34


def test_eval_on_unseen_text_prints_bits_per_symbol(run, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("a lazy fox is over the brown dog; the sky has clouds. " * 5)
    assert main(["eval", str(run[2] / "best.safetensors"), "--text", str(other)]) == 0
    assert "bits per symbol" in capsys.readouterr().out


def test_resume_refuses_to_change_the_architecture(run, capsys):
    ckpt = str(run[2] / "latest.safetensors")
    assert main(["train", "--quiet", "--resume", ckpt, "--hidden-size", "99"]) == 2
    assert "cannot change: --hidden-size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "{ckpt}", "--prompt", "Zebra€"], "not in the vocabulary: 'Z', '€'"),
        (["sample", "{ckpt}", "--temperature", "-1"], "temperature"),
        (["sample", "{ckpt}", "--length", "-5"], "length"),
        (["sample", "{root}/missing.safetensors"], "does not exist"),
        (["sample", "{root}/corpus.txt"], "corpus.txt"),
        (["eval", "{ckpt}", "--text", "{root}/missing.txt"], "does not exist"),
        (["train", "--text", "{root}/empty.txt"], "empty"),
        (["train", "--hidden-size", "0"], "--hidden-size must be at least 1"),
        (["train", "--dropout", "1.5"], "dropout"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(run, capsys, argv, message):
    root, _, out = run
    (root / "empty.txt").write_text("")
    ckpt = str(out / "best.safetensors")
    argv = [a.format(ckpt=ckpt, root=root) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bptt: error: ") and err.count("\n") == 1, err
    assert message in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--hidden-size", "x"], "argument --hidden-size: invalid int value: 'x'"),
        (["train", "--cell", "transformer"], "argument --cell: invalid choice: 'transformer'"),
        (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["sample"], "the following arguments are required: checkpoint"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_parser_errors_are_one_line_and_exit_2(capsys, argv, message):
    """argparse's own complaints say 'bptt: error: ...' on one line, not a usage block."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("bptt: error: ") and err.count("\n") == 1, err
    assert message in err and "usage:" not in err


def _help(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: join them


def test_train_help_says_each_default_once(capsys):
    text = _help(capsys, ["train", "--help"])
    assert "(default: the built-in corpus)" in text and "(default: None)" not in text
    from bptt.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    twice = [a.dest for a in sub.choices["train"]._actions if a.help.count("(default:") > 1]
    assert not twice, twice


@pytest.mark.parametrize(
    "task, shown",
    [
        (
            "lm",
            [
                "--hidden-size HIDDEN_SIZE hidden units H per layer (default: 256)",
                "(default: runs/lm)",
                "parameter updates to run (default: 800)",
            ],
        ),
        (
            "sentiment",
            [
                "--hidden-size HIDDEN_SIZE hidden units H per layer (default: 64)",
                "(default: runs/sentiment)",
                "parameter updates to run (default: 1800)",
                "mean or max over real steps (default: mean)",
            ],
        ),
        ("dna", ["(default: 48)", "stacked recurrent layers L (default: 2)", "(default: tags)"]),
    ],
)
def test_train_task_help_shows_the_tasks_preset(capsys, task, shown):
    text = _help(capsys, ["train", task, "--help"])
    for piece in shown:
        assert piece in text, piece
    assert f"the {task} preset" in text


def test_every_option_of_every_command_has_help():
    from bptt.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = [
        f"{name} {a.option_strings[-1] if a.option_strings else a.dest}"
        for name, p in sub.choices.items()
        for a in p._actions
        if not a.help
    ]
    assert not missing, missing


def test_the_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "bptt", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "train" in result.stdout
