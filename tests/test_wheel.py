"""A non-editable install works: the sdist and the wheel build without deprecation
warnings, carry the licence, and the wheel installed into a fresh venv runs
``bptt --help`` and a five-step training on its own code.

The venv holds no packages of its own but the wheel, installed without its
dependencies; a ``.pth`` line lends it the outer environment's site-packages
for numpy, safetensors, tqdm and pip, so nothing is downloaded. A path line in
a ``.pth`` file does not run that folder's own ``.pth`` files, so an editable
install of bptt there stays invisible; the test checks that ``bptt`` imports
from the venv's own site-packages, not from the repository.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy
import pip
import pytest
import safetensors
import tqdm

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
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path / "dist"
    built = run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(tree)],
        tmp_path,
        env,
    )
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
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python, bptt = venv / "bin" / "python", venv / "bin" / "bptt"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(run([python, "-c", purelib], tmp_path, env).stdout.strip())
    lent = {str(Path(m.__file__).resolve().parents[1]) for m in (numpy, pip, safetensors, tqdm)}
    (site / "outer.pth").write_text("\n".join(sorted(lent)) + "\n", encoding="utf-8")
    offline = "--no-deps --no-index --ignore-installed --no-compile".split()
    run([python, "-m", "pip", "install", *offline, str(wheel)], tmp_path, env)
    where = run([python, "-c", "import bptt; print(bptt.__file__)"], tmp_path, env).stdout
    assert Path(where.strip()).is_relative_to(venv), f"bptt imports from {where}, not the venv"

    assert "usage: bptt" in run([bptt, "--help"], tmp_path, env).stdout
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    out = tmp_path / "run"
    tiny = "--steps 5 --eval-every 5 --hidden-size 16 --embed-size 8 --batch-size 4 --window 8 "
    tiny += "--sample-length 10"
    run([bptt, "train", "--quiet", "--text", corpus, "--out", out, *tiny.split()], tmp_path, env)
    assert (out / "best.safetensors").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 5
