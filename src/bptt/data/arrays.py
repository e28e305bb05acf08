"""Numeric input data (features per time step) from .npy or .csv files, checked at load time.

For the tasks whose inputs are numbers (sensor clips, audio features): a file
is read once, refused at once if it holds NaN or Inf, naming the file and the
position, so a bad value never reaches training as a NaN loss hours later.
NumPy files are read with ``allow_pickle=False``: an object array (which would
unpickle, and so could run code) is refused.

Shapes: N rows (time steps or examples), D columns (features).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bptt.errors import DataError


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """The numbers in ``path``: a ``.npy`` array (any shape) or a ``.csv`` table (N, D).

    CSV: comma-separated numbers, one row per line, every row the same number
    of columns; no header.

    Raises:
        DataError: missing, a directory, not readable as numbers, a pickled
            (object) array, or a NaN/Inf value (names the file and where).
    """
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise DataError(f"data file '{p}' {what}, expected a .npy or .csv file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(p, allow_pickle=False)  # an object array is refused, never unpickled
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"'{p}' is not a NumPy array file without objects: {e}") from None
        if a.dtype.kind not in "biuf":
            raise DataError(f"'{p}' holds dtype {a.dtype}, expected numbers")
        require_finite(a, str(p))
        return a
    if suffix == ".csv":
        return _read_csv(p)
    raise DataError(f"data file '{p}' has suffix {suffix!r}, expected .npy or .csv")


def require_finite(a: np.ndarray, source: str) -> None:
    """Refuse NaN or Inf in ``a``, naming ``source`` and the index of the first bad value."""
    if a.dtype.kind != "f":
        return
    bad = ~np.isfinite(a)  # same shape as a
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"'{source}' holds {int(bad.sum())} NaN/Inf values, the first ({a[first]}) at "
            f"index {first}; clean or drop them before training"
        )


def _read_csv(p: Path) -> np.ndarray:
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"'{p}' is not UTF-8 text (byte at offset {e.start})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        try:
            row = [float(c) for c in cells]
        except ValueError:
            raise DataError(
                f"'{p}' line {n}: {line[:40]!r} is not comma-separated numbers"
            ) from None
        if rows and len(row) != len(rows[0]):
            raise DataError(f"'{p}' line {n} has {len(row)} columns, the first row {len(rows[0])}")
        for c, v in enumerate(row, start=1):
            if not np.isfinite(v):
                raise DataError(
                    f"'{p}' line {n}, column {c} holds {cells[c - 1].strip()!r}, not a finite "
                    "number; clean or drop it before training"
                )
        rows.append(row)
    if not rows:
        raise DataError(f"data file '{p}' is empty")
    return np.array(rows, dtype=np.float64)  # (N, D)
