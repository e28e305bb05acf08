"""The lecture's notebooks (notebooks/*.ipynb) run from top to bottom and end on an assertion.

Each notebook's last code cell asserts what it showed (the finite-difference error, the
gradient ratio, the gates' memory, the bits per character), so running it here makes a
broken library fail the suite. They are committed without outputs, so a reader sees the
code and runs it, and a diff shows only the code.
"""

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_there_are_four_notebooks_without_outputs_each_ending_on_an_assertion():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), (
            f"{path.name}: commit notebooks without outputs (jupyter nbconvert "
            "--clear-output --inplace)"
        )
        last = "".join(code[-1]["source"])
        assert last.lstrip().startswith("assert "), f"{path.name}: the last cell must assert"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    pytest.importorskip("ipykernel", reason="the test extra installs ipykernel")
    # The kernel is a new process: it imports bptt from this tree, as the tests do.
    paths = [SRC, *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on a failure
