"""Numeric input data: NaN/Inf refused at load time with the file and position; no pickle."""

import numpy as np
import pytest

from bptt.data.arrays import load_array, require_finite
from bptt.errors import DataError


def test_npy_and_csv_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", a)
    assert np.array_equal(load_array(tmp_path / "a.npy"), a)
    (tmp_path / "a.csv").write_text("1,2,3\n4.5,-6,7e2\n\n")
    assert np.array_equal(load_array(tmp_path / "a.csv"), [[1, 2, 3], [4.5, -6, 700]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_npy_is_refused_with_file_and_index(tmp_path, bad):
    a = np.zeros((5, 2, 3))
    a[3, 1, 2] = bad
    np.save(tmp_path / "x.npy", a)
    with pytest.raises(DataError, match=r"'.*x\.npy' holds 1 NaN/Inf values, .* \(3, 1, 2\)"):
        load_array(tmp_path / "x.npy")


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_non_finite_csv_is_refused_with_line_and_column(tmp_path, cell):
    (tmp_path / "x.csv").write_text(f"1,2\n3,4\n5,{cell}\n")
    with pytest.raises(DataError, match=r"x\.csv' line 3, column 2 .*not a finite number"):
        load_array(tmp_path / "x.csv")


def test_object_npy_is_refused_never_unpickled(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="without objects"):
        load_array(tmp_path / "o.npy")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("e.csv", b"", "is empty"),
        ("r.csv", b"1,2\n3\n", "line 2 has 1 columns, the first row 2"),
        ("t.csv", b"a,b\n1,2\n", "line 1: 'a,b' is not comma-separated numbers"),
        ("b.csv", b"\xff\xfe1,2", "not UTF-8"),
        ("g.npy", b"garbage", "not a NumPy array file"),
        ("s.npy", b"", "not a NumPy array file"),
        ("x.txt", b"1", "expected .npy or .csv"),
    ],
)
def test_bad_numeric_files_give_one_clear_error(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_array(tmp_path / name)
    with pytest.raises(DataError, match="does not exist"):
        load_array(tmp_path / "missing.npy")


def test_require_finite_passes_integers_and_finite_floats():
    require_finite(np.arange(3), "ints")
    require_finite(np.ones(3, np.float32), "floats")
    with pytest.raises(DataError, match=r"'batch 7' holds 2 NaN/Inf"):
        require_finite(np.array([1.0, np.nan, np.inf]), "batch 7")
