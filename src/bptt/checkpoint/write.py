"""Writing a checkpoint: the tensors checked, the metadata as JSON, hashed, then atomically.

The bytes go to a temporary file beside the target (``.<name>.tmp-<random>``),
which is flushed and fsynced, then renamed onto the target with ``os.replace``,
and the directory is fsynced: a crash or kill at any moment leaves the target
either the previous complete checkpoint or the new one, never a torn file (see
:mod:`bptt.checkpoint`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from bptt.checkpoint.read import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    HASH_KEY,
    META_KEY,
    check_finite,
    sha256,
)
from bptt.errors import CheckpointError


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: dict[str, np.ndarray],
    metadata: dict[str, Any],
    *,
    allow_non_finite: bool = False,
) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically (see the module doc).

    ``metadata`` must be JSON-able; NumPy scalars and arrays in it are written as
    plain numbers and lists. Floating-point tensors holding NaN or Inf are
    refused unless ``allow_non_finite``. On any failure the temporary file is
    removed, the previous checkpoint at ``path`` is untouched, and a
    CheckpointError names the path.
    """
    path = Path(path)
    arrays = _check_tensors(path, tensors)
    if not allow_non_finite:
        for name, a in arrays.items():
            check_finite(path, name, a)
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"checkpoint '{path}': metadata must be a dict, got {type(metadata).__name__}"
        )
    try:
        meta_json = json.dumps(metadata, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint '{path}': metadata is not JSON-able: {e}") from None
    digests = {
        "metadata": sha256(meta_json.encode("utf-8")),
        "tensors": {name: sha256(a) for name, a in arrays.items()},
    }
    header = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        META_KEY: meta_json,
        HASH_KEY: json.dumps(digests, sort_keys=True),
    }
    try:
        data = safetensors.numpy.save(arrays, metadata=header)
    except Exception as e:  # safetensors raises its own types for bad arrays
        raise CheckpointError(f"checkpoint '{path}': cannot serialize the tensors: {e}") from None
    write_atomically(path, data)


def _check_tensors(path: Path, tensors: Any) -> dict[str, np.ndarray]:
    if not isinstance(tensors, dict):
        raise CheckpointError(
            f"checkpoint '{path}': tensors must be a dict, got {type(tensors).__name__}"
        )
    arrays = {}
    for name, a in tensors.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"checkpoint '{path}': tensor names must be str, got {name!r}")
        if not isinstance(a, np.ndarray):
            raise CheckpointError(
                f"checkpoint '{path}': tensor {name!r} must be a numpy array, got "
                f"{type(a).__name__}"
            )
        if a.dtype.kind not in "biuf" or a.dtype.newbyteorder("<") not in DTYPES.values():
            raise CheckpointError(
                f"checkpoint '{path}': tensor {name!r} has dtype {a.dtype}, "
                "expected a bool, integer or float dtype"
            )
        # Little-endian, C order: the bytes safetensors writes and the digest covers.
        # (ascontiguousarray would turn a 0-d array into (1,); require keeps the shape.)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        arrays[name] = np.require(a, requirements="C")
    return arrays


def write_atomically(path: Path, data: bytes, what: str = "checkpoint") -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename (the module doc).

    ``what`` names the file in the error ("checkpoint", "ONNX model").
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as e:
        kept = f"the previous {what} is kept" if path.is_file() else "nothing was written"
        raise CheckpointError(
            f"cannot write {what} '{path}': {e.strerror or e} ({kept}; free some space "
            "or choose a writable folder with --out)"
        ) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _json_default(x: Any) -> Any:
    """NumPy scalars and arrays in metadata become plain numbers and lists."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} {x!r} is not JSON-able")


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
