"""DNA: planted motifs, AUROC (checked against scikit-learn), k-mers, and bptt train/eval/
predict dna end to end with toy motifs (real JASPAR motifs when pyjaspar is installed)."""

import importlib.util

import numpy as np
import pytest

from bptt.cli import main
from bptt.tasks.classify import dna

FLAGS = ["--quiet", "--hidden-size", "8", "--batch-size", "16", "--steps", "20"]
FLAGS += ["--eval-every", "10", "--max-examples", "96"]


def _toy_motifs():
    """Two sharp 8-base motifs as (name, probabilities (4, W))."""
    motifs = []
    for name, site in (("toy1", "CCCTCTAG"), ("toy2", "GATTACAA")):
        p = np.full((4, len(site)), 0.02)
        for i, c in enumerate(site):
            p["ACGT".index(c), i] = 0.94
        motifs.append((name, p))
    return motifs


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(dna, "load_motifs", _toy_motifs)
    monkeypatch.setattr(dna, "HELD_OUT", 40)


def test_generate_plants_one_motif_in_half_the_sequences():
    seqs, present, marks = dna.generate(200, seed=0, motifs=_toy_motifs())
    assert len(seqs) == 200 and all(s.shape == (dna.LENGTH,) for s in seqs)
    assert 0.4 < present.mean() < 0.6
    widths = [int(m.sum()) for m in marks]
    assert all(w == 8 for w, p in zip(widths, present, strict=True) if p)
    assert all(w == 0 for w, p in zip(widths, present, strict=True) if not p)
    sites = {"".join("ACGT"[b] for b in s[m == 1]) for s, m in zip(seqs, marks, strict=True)}
    assert {"CCCTCTAG", "CTAGAGGG"} & sites  # both strands: the reverse complement too


def test_auroc_by_hand_and_against_scikit_learn():
    assert dna.auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert dna.auroc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5  # a tie counts half
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    s = np.round(rng.random(300) + y * 0.3, 1)  # with many ties
    assert dna.auroc(s, y) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)


def test_kmer_counts_count_every_window():
    counts = dna.kmer_counts([np.array([0, 1, 2, 3, 0, 1])], k=2)  # ACGTAC
    assert counts.sum() == 5 and counts[0, 0 * 4 + 1] == 2  # "AC" twice


@pytest.mark.parametrize(("head", "crf"), [("tags", "no"), ("class", "no"), ("tags", "yes")])
def test_end_to_end_and_predict(toy, head, crf, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "dna", *FLAGS, "--head", head, "--crf", crf, "--out", str(out)]) == 0
    report = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("test ("))
    ours, baseline = report.split(" | ")
    assert "auroc" in ours and baseline.startswith("5-mer logistic regression: auroc")
    assert ("base_f1" in ours) == (head == "tags")
    assert main(["predict", str(out / "best.safetensors"), "acgtn" + "A" * 40]) == 0
    said = capsys.readouterr().out
    assert said.startswith("motif present ")
    if head == "tags":
        assert said.split(": ")[1].replace("[", "").replace("]", "").strip() == "ACGTN" + "A" * 40


def test_a_missing_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(dna, "PACKAGE", "no_such_package_bptt")
    assert main(["train", "dna", *FLAGS, "--out", str(tmp_path)]) == 2
    assert "pip install 'bptt[dna]'" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("pyjaspar") is None, reason="extra 'dna'")
def test_real_jaspar_motifs_load():
    motifs = dna.load_motifs()
    assert len(motifs) >= 3 and len({name for name, _ in motifs}) == len(motifs)
    for _, p in motifs:
        assert p.shape[0] == 4 and p.shape[1] >= 10
        np.testing.assert_allclose(p.sum(axis=0), 1.0)
