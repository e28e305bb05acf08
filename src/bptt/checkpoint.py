"""Checkpoints: one safetensors file of named arrays plus JSON metadata, written atomically.

A checkpoint holds

    tensors   named arrays, e.g. "rnn.weight_ih_l0" (G*H, D) as PyTorch names
              parameters, optimizer state under a prefix ("optim.m.rnn.weight_ih_l0"),
              the carried hidden state; dtypes are kept (float32, float64, int64, ...)
    metadata  a JSON object: config, vocabulary (``Vocabulary.to_dict()``), step,
              optimizer scalars, RNG state (``Generator.bit_generator.state``),
              data position (``TBPTTBatches.state_dict()``)

The file is plain safetensors (any safetensors reader loads it). Its string
metadata holds exactly

    "format": "bptt"   "format_version": "2"   "bptt": <the metadata as JSON>
    "sha256": {"metadata": <hex of the "bptt" string>, "tensors": {name: <hex of its bytes>}}

Trust. Loading never runs code: no pickle anywhere, and nothing read from a
file is ever imported or called; callers look names (cell, task, optimizer)
up in fixed tables. The reader is our own (:mod:`bptt.checkpoint_reader`): it
checks every field of the header before any array is made, allocates no more
than the file's size, verifies the SHA-256 of the metadata and of every tensor
(a flipped bit anywhere is detected and named), and refuses NaN or Inf in
floating-point tensors unless ``allow_non_finite=True`` (saving refuses them too).

Writes are atomic: the bytes go to a temporary file beside the target
(``.<name>.tmp-<random>``), which is flushed and fsynced, then renamed onto the
target with ``os.replace``, and the directory is fsynced. A crash or kill at
any moment leaves the target either the previous complete checkpoint or the
new one, never a torn file; a failed write (full disk, read-only folder)
removes its temporary file and leaves the previous checkpoint as it was. Only
a killed writer may leave its temporary file behind (it is never read, and the
name says what it is).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from bptt.checkpoint_reader import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    HASH_KEY,
    META_KEY,
    check_finite,
    parse_checkpoint,
    sha256,
)
from bptt.errors import CheckpointError

__all__ = [
    "load_checkpoint", "parse_checkpoint", "require_fields", "save_checkpoint", "write_atomically",
]  # fmt: skip


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


def load_checkpoint(
    path: str | os.PathLike[str], *, allow_non_finite: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Returns:
        (tensors, metadata): the arrays with their saved names, shapes and
        dtypes (writable), and the metadata as JSON reads it back.

    Raises:
        CheckpointError: naming the file and the field that is wrong: missing,
            not a regular file, not safetensors, a header out of bounds, a
            tensor entry that does not fit the data, a failed SHA-256 check,
            missing or invalid bptt metadata, another format version, or
            non-finite weights (unless ``allow_non_finite``).
    """
    path = Path(path)
    data = _read_file(path)
    return parse_checkpoint(data, str(path), allow_non_finite=allow_non_finite)


def require_fields(source: str | os.PathLike[str], metadata: dict, fields: dict) -> None:
    """Check that ``metadata`` has each of ``fields`` (name -> type or tuple of types).

    Raises:
        CheckpointError: naming the file, the field, the type expected and received.
    """
    for name, kind in fields.items():
        if name not in metadata:
            raise CheckpointError(f"checkpoint '{source}' lacks the metadata field {name!r}")
        value = metadata[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
            raise CheckpointError(
                f"checkpoint '{source}': metadata field {name!r} must be {expected}, "
                f"got {_JSON_NAMES.get(type(value), type(value).__name__)}"
            )


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "true or false", type(None): "null"}  # fmt: skip


# -- writing -------------------------------------------------------------------


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
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename (see above).

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


# -- reading -------------------------------------------------------------------


def _read_file(path: Path) -> bytearray:
    """The file's bytes in one buffer of exactly its size (a FIFO or device is refused)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' does not exist") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint '{path}': {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"checkpoint '{path}' is a directory, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"checkpoint '{path}' is not a regular file (a pipe or a device?)")
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = bytearray(size)  # the only large allocation of a load
            n = f.readinto(buf)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint '{path}': {e.strerror or e}") from None
    if n != size:
        raise CheckpointError(
            f"checkpoint '{path}' changed while it was read ({n} of {size} bytes)"
        )
    return buf
