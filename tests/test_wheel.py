"""A non-editable install works: the sdist and the wheel build without deprecation
warnings, carry the licence, and the wheel installed into a fresh venv runs
``bptt --help`` and a five-step training on its own code.

The venv sees the outer environment's packages (``--system-site-packages``) so
that numpy and the rest need no network; the wheel is installed without its
dependencies, and the test checks that ``bptt`` then imports from the venv's
own site-packages, not from the repository or an editable install.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("build")


def run(cmd, cwd, env, timeout=120):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


def test_the_wheel_installs_into_a_fresh_venv_and_trains(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    tree = tmp_path / "tree"  # the sources, so the build writes nothing into the repository
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(tree)],
                tmp_path, env)  # fmt: skip
    log = built.stdout + built.stderr
    assert "deprecat" not in log.lower(), f"the build warns of a deprecation:\n{log}"

    [sdist] = dist.glob("bptt-*.tar.gz")
    [wheel] = dist.glob("bptt-*.whl")
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("/LICENSE") for n in tar.getnames()), "the sdist lacks LICENSE"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        tmp_path, env)  # fmt: skip
    python, bptt = venv / "bin" / "python", venv / "bin" / "bptt"
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         "--no-compile", str(wheel)], tmp_path, env)  # fmt: skip
    where = run([python, "-c", "import bptt; print(bptt.__file__)"], tmp_path, env).stdout
    assert Path(where.strip()).is_relative_to(venv), f"bptt imports from {where}, not the venv"

    assert "usage: bptt" in run([bptt, "--help"], tmp_path, env).stdout
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    out = tmp_path / "run"
    run([bptt, "train", "--quiet", "--text", corpus, "--out", out, "--steps", "5",
         "--eval-every", "5", "--hidden-size", "16", "--embed-size", "8", "--batch-size", "4",
         "--window", "8", "--sample-length", "10"], tmp_path, env)  # fmt: skip
    assert (out / "best.safetensors").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 5
