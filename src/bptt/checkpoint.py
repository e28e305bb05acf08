"""Checkpoints: one safetensors file of named arrays plus JSON metadata, written atomically.

A checkpoint holds

    tensors   named arrays, e.g. "rnn.weight_ih_l0" (G*H, D) as PyTorch names
              parameters, optimizer state under a prefix ("optim.m.rnn.weight_ih_l0"),
              the carried hidden state; dtypes are kept (float32, float64, int64, ...)
    metadata  a JSON object: config, vocabulary (``Vocabulary.to_dict()``), step,
              optimizer scalars, RNG state (``Generator.bit_generator.state``),
              data position (``TBPTTBatches.state_dict()``)

The file is plain safetensors (it loads with any safetensors reader and can
never run code: no pickle anywhere). Its string metadata holds

    "format": "bptt"   "format_version": "1"   "bptt": <the metadata as JSON>

Writes are atomic: the bytes go to a temporary file beside the target
(``.<name>.tmp-<random>``), which is flushed and fsynced, then renamed onto the
target with ``os.replace``, and the directory is fsynced. A crash or kill at
any moment leaves the target either the previous complete checkpoint or the
new one, never a torn file; a killed writer may leave its temporary file behind
(it is never read, and the name says what it is).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from bptt.errors import CheckpointError

FORMAT = "bptt"
FORMAT_VERSION = 1
_META_KEY = "bptt"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header, in bytes


def save_checkpoint(
    path: str | os.PathLike[str], tensors: dict[str, np.ndarray], metadata: dict[str, Any]
) -> None:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically (see the module doc).

    ``metadata`` must be JSON-able; NumPy scalars and arrays in it are written as
    plain numbers and lists. On any failure the temporary file is removed, the
    previous checkpoint at ``path`` is untouched, and a CheckpointError names
    the path.
    """
    path = Path(path)
    arrays = _check_tensors(path, tensors)
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"checkpoint '{path}': metadata must be a dict, got {type(metadata).__name__}"
        )
    try:
        meta_json = json.dumps(metadata, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint '{path}': metadata is not JSON-able: {e}") from None
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), _META_KEY: meta_json}
    try:
        data = safetensors.numpy.save(arrays, metadata=header)
    except Exception as e:  # safetensors raises its own types for bad arrays
        raise CheckpointError(f"checkpoint '{path}': cannot serialize the tensors: {e}") from None

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
        raise CheckpointError(f"cannot write checkpoint '{path}': {e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns:
        (tensors, metadata): the arrays with their saved names, shapes and
        dtypes, and the metadata as JSON reads it back.

    Raises:
        CheckpointError: naming the file and what is wrong: missing, not a
            safetensors file, a damaged header or data, no bptt metadata,
            metadata that is not a JSON object, or another format version.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' is a directory, expected a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint '{path}': {e.strerror or e}") from None

    header = _read_header(path, data)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise CheckpointError(
            f"checkpoint '{path}' is a safetensors file without bptt metadata "
            f"(no {_META_KEY!r} key in its metadata)"
        )
    if meta.get("format") != FORMAT or meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"checkpoint '{path}' has format {meta.get('format')!r} version "
            f"{meta.get('format_version')!r}, this bptt reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    try:
        metadata = json.loads(meta[_META_KEY])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint '{path}': metadata is not valid JSON: {e}") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"checkpoint '{path}': metadata must be a JSON object, got {type(metadata).__name__}"
        )
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as e:  # SafetensorError and friends: damaged or truncated data
        raise CheckpointError(f"checkpoint '{path}' has damaged tensor data: {e}") from None
    return tensors, metadata


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
        if a.dtype.kind not in "biuf":
            raise CheckpointError(
                f"checkpoint '{path}': tensor {name!r} has dtype {a.dtype}, "
                "expected a bool, integer or float dtype"
            )
        # ascontiguousarray would turn a 0-d array into (1,); require keeps the shape.
        arrays[name] = np.require(a, requirements="C")
    return arrays


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    """The safetensors JSON header: 8 bytes little-endian length, then JSON."""
    if len(data) < 8:
        raise CheckpointError(
            f"checkpoint '{path}' is not a safetensors file ({len(data)} bytes, too short)"
        )
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(
            f"checkpoint '{path}' is not a safetensors file (header length {n} "
            f"does not fit a file of {len(data)} bytes)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(
            f"checkpoint '{path}' is not a safetensors file (its header is not JSON)"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(
            f"checkpoint '{path}' is not a safetensors file (its header is not a JSON object)"
        )
    return header


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
