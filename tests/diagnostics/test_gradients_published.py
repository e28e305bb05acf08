"""The published gradient-flow numbers cannot drift unseen.

- The vanishing-gradient page's ``bptt gradients`` block is what
  ``docs/vanishing/gradients/flow.json`` and ``exploding.json`` (the published run) say,
  line for line.
- A small seeded run (a few seconds) gives the numbers in ``golden/gradients_small.json``:
  a change to the models' start, the memory task's data, the training loop or the
  flow's arithmetic moves them. After an intended change, regenerate the golden file
  with ``BPTT_REGEN_GOLDEN=1 pytest tests/diagnostics/test_gradients_published.py``,
  then the published run and the page (the slow test below says whether they agree).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bptt.cli import main
from bptt.diagnostics.flow import GradientFlow
from bptt.tasks.memory.report import exploding_lines, summary

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "vanishing" / "gradients"
PAGE = ROOT / "docs" / "tasks" / "vanishing.md"  # the vanishing-gradient page shows the run
GOLDEN = Path(__file__).parent / "golden" / "gradients_small.json"
SMALL = (
    "gradients --cells rnn,lstm,gru --lag 6 --train --steps 25 --budget 300 --examples 4 "
    "--windows 1,4"
).split()


def _readme_block() -> tuple[str, list[str]]:
    """The vanishing-gradient page's gradients command and the lines it shows as printed."""
    text = PAGE.read_text(encoding="utf-8")
    command = re.search(r"\n  (bptt gradients --cells rnn,lstm,gru --lag 50 [^\n]*)\n", text)
    assert command, "the page's bptt gradients command is missing"
    start = text.index("rnn: trained ", command.end())
    return command.group(1), text[start : text.index("```", start)].rstrip("\n").splitlines()


def _flows_from_json(report: dict) -> tuple[dict, dict]:
    flows, gates = {}, {}
    for label, r in report.items():
        col = {
            k: np.array([row.get(k) for row in r["steps"]], dtype=float)
            for k in ("last_h", "full_h", "jacobian", "last_c")
        }
        last_c = col["last_c"] if r["cell"] == "lstm" else None
        flows[label] = GradientFlow(
            r["cell"], col["last_h"], col["full_h"], col["jacobian"], last_c
        )
        if r["gates"] is not None:
            gates[label] = SimpleNamespace(half_life=r["gates"]["half_life"])
    return flows, gates


def test_the_readme_command_writes_under_runs():
    command, _ = _readme_block()
    out = re.search(r"--out (\S+)", command)
    assert out is None or out.group(1).startswith("runs/"), command  # never into the repository


def test_the_readme_shows_what_the_published_run_wrote():
    """The table and the exploding runs' lines on the page come from the published JSON."""
    _, shown = _readme_block()
    flows, gates = _flows_from_json(json.loads((PUBLISHED / "flow.json").read_text()))
    table = summary(flows, gates).splitlines()
    assert [line.rstrip() for line in shown[3 : 3 + len(table)]] == [t.rstrip() for t in table]
    logs = json.loads((PUBLISHED / "exploding.json").read_text())
    assert shown[3 + len(table) :] == exploding_lines(logs, 2.0)
    for label in flows:  # the trained models' accuracies printed above the table
        if "trained" in label:
            acc = re.search(r"acc ([\d.]+)", label).group(1)
            line = next(s for s in shown if s.startswith(label.split()[0].lower() + ":"))
            assert f"{float(line.split()[-1]):.2f}" == acc, line


def _key_numbers(report: dict) -> dict:
    """Per model: the flow at lag T over lag 0, the Jacobian norm at lag T, the weight
    gradient's lag-1 share, and the LSTM's cell-state ratio; these move with any change to
    the start, the data, the training or the arithmetic."""
    keys = {}
    for label, r in report.items():
        first, last = r["steps"][0], r["steps"][-1]
        keys[label] = {
            "last_h": first["last_h"] / last["last_h"],
            "jacobian": first["jacobian"],
            "lag_grad": r["steps"][-2]["lag_grad_weight_hh"],
        }
        if r["cell"] == "lstm":
            keys[label]["last_c"] = first["last_c"] / last["last_c"]
    return keys


def test_a_small_seeded_run_gives_the_golden_numbers(tmp_path, capsys):
    assert main([*SMALL, "--out", str(tmp_path)]) == 0
    got = _key_numbers(json.loads((tmp_path / "flow.json").read_text()))
    if os.environ.get("BPTT_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want), "the models measured changed (labels carry accuracies)"
    for label in want:
        for key, value in want[label].items():
            # float32 training on another CPU rounds differently: 1e-4 allows that, not drift
            assert got[label][key] == pytest.approx(value, rel=1e-4), (label, key)


@pytest.mark.slow
def test_the_readme_command_reproduces_the_readme(tmp_path):
    """Minutes: the page's command, run here, prints the page's lines. Its float32
    training runs are sensitive to rounding, so another CPU or BLAS may differ."""
    command, shown = _readme_block()
    argv = command.split()[1:]
    if "--out" in argv:
        argv[argv.index("--out") + 1] = str(tmp_path)
    else:
        argv += ["--out", str(tmp_path)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bptt", *argv], capture_output=True, text=True, env=env, timeout=1800
    )
    assert result.returncode == 0, result.stderr
    printed = [line.rstrip() for line in result.stdout.splitlines() if not line.startswith("wrote")]
    assert printed == [line.rstrip() for line in shown]
