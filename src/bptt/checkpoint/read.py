"""Reading a checkpoint: every field of a safetensors file checked before any array is made.

Any bytes give either a valid checkpoint or a :class:`CheckpointError` that names
the file and the field. The checks, in order:

    header    8-byte little-endian length n <= MAX_HEADER_BYTES and 8 + n <= file size
              (a header that starts but does not end, or tensor data that stops
              short of the header's offsets, is reported as a truncated file);
              UTF-8 JSON object, no duplicate keys, no NaN/Infinity
    tensors   each entry exactly {dtype, shape, data_offsets}; dtype in the fixed
              table DTYPES; shape a list of <= MAX_DIMS ints >= 0; offsets
              0 <= begin <= end <= data length; product(shape) x item size
              == end - begin (Python ints: no overflow); sorted, the ranges tile
              the data exactly (no overlap, no gap)
    metadata  exactly format, format_version, bptt, sha256 (strings); format
              "bptt" version FORMAT_VERSION; digests for exactly the tensors
    integrity SHA-256 of the metadata string and of each tensor's bytes
    health    floating-point tensors hold no NaN or Inf (unless allowed)

Arrays are views into the caller's buffer (``np.frombuffer``), so a load never
allocates more than the file's size for tensors, whatever the header claims.
Nothing read is ever imported, called or unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np

from bptt.errors import CheckpointError

FORMAT = "bptt"
FORMAT_VERSION = 2
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
MAX_DIMS = 32  # numpy allows 64; no checkpoint of ours has more than 3
META_KEY, HASH_KEY = "bptt", "sha256"
_HEADER_KEYS = {"format", "format_version", META_KEY, HASH_KEY}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
# safetensors dtype -> numpy dtype (little-endian); a fixed table, nothing else is read.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}


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


_JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def parse_checkpoint(
    data: bytes | bytearray, source: str = "<bytes>", *, allow_non_finite: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The checks and arrays of :func:`load_checkpoint`, on the file's bytes.

    ``source`` names the file in error messages. Any bytes give either a valid
    checkpoint or a CheckpointError; the arrays are views into ``data`` (read
    only when ``data`` is ``bytes``), so nothing larger than ``data`` is allocated.
    """
    where = f"checkpoint '{source}'"
    header, payload_start = _read_header(where, data)
    meta = header.pop("__metadata__", None)
    entries = _check_entries(where, header, len(data) - payload_start)

    meta_json, digests = _check_header_metadata(where, meta, set(entries))
    if sha256(meta_json.encode("utf-8")) != digests["metadata"]:
        raise CheckpointError(
            f"{where}: the metadata fails its SHA-256 check (the file is damaged)"
        )
    metadata = _loads(where, "the 'bptt' metadata", meta_json)
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"{where}: metadata must be a JSON object, got {type(metadata).__name__}"
        )

    view = memoryview(data)
    tensors = {}
    for name, (dtype, shape, begin, end) in entries.items():
        raw = view[payload_start + begin : payload_start + end]
        if sha256(raw) != digests["tensors"][name]:
            raise CheckpointError(
                f"{where}: tensor {name!r} fails its SHA-256 check (the file is damaged)"
            )
        a = np.frombuffer(raw, dtype=dtype).reshape(shape)  # a view: no copy
        if not a.flags.aligned:  # a foreign writer's odd offset: copy once, aligned
            a = a.copy()
        if not allow_non_finite:
            check_finite(Path(source), name, a)
        tensors[name] = a
    return tensors, metadata


def _read_header(where: str, data: bytes | bytearray) -> tuple[dict, int]:
    """The safetensors JSON header (8 bytes little-endian length, then JSON) and its end."""
    if len(data) < 8:
        raise CheckpointError(f"{where} is not a safetensors file ({len(data)} bytes, too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n <= MAX_HEADER_BYTES and 8 + n > len(data) and data[8:9] == b"{":
        raise CheckpointError(
            f"{where} is truncated: an incomplete copy or an interrupted write? (its header "
            f"alone needs {8 + n:,} bytes, the file has {len(data):,})"
        )
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise CheckpointError(
            f"{where} is not a safetensors file (header length {n} does not fit a file of "
            f"{len(data)} bytes, or exceeds the limit of {MAX_HEADER_BYTES})"
        )
    try:
        text = bytes(data[8 : 8 + n]).decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(
            f"{where} is not a safetensors file (its header is not JSON)"
        ) from None
    header = _loads(where, "the header", text, strict=True)
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{where} is not a safetensors file (its header is not a JSON object)"
        )
    return header, 8 + n


def _loads(where: str, what: str, text: str, strict: bool = False) -> Any:
    """json.loads that refuses duplicate keys (and, if ``strict``, NaN and Infinity)."""

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise CheckpointError(f"{where}: {what} repeats the key {dup!r}")
        return dict(items)

    def no_constant(name):
        raise CheckpointError(f"{where}: {what} holds {name}, which a header never has")

    kwargs = {"parse_constant": no_constant} if strict else {}
    try:
        return json.loads(text, object_pairs_hook=pairs, **kwargs)
    except (ValueError, RecursionError) as e:
        if isinstance(e, CheckpointError):
            raise
        if strict:
            raise CheckpointError(
                f"{where} is not a safetensors file (its header is not JSON)"
            ) from None
        raise CheckpointError(f"{where}: {what} is not valid JSON: {e}") from None


def _check_entries(where: str, header: dict, payload: int) -> dict[str, tuple]:
    """name -> (dtype, shape, begin, end), each field checked; the ranges tile the payload."""
    ends = [e["data_offsets"][1] for e in header.values() if _is_offsets(e)]
    if ends and max(ends) > payload:  # a whole header, but the data stops short
        raise CheckpointError(
            f"{where} is truncated: an incomplete copy or an interrupted write? (its header "
            f"describes {max(ends):,} bytes of tensor data, the file holds {payload:,}: "
            f"{max(ends) - payload:,} bytes missing)"
        )
    entries = {}
    for name, e in header.items():
        field = f"tensor {name!r}"
        if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
            got = sorted(e) if isinstance(e, dict) else type(e).__name__
            raise CheckpointError(
                f"{where}: {field} must have exactly the fields {sorted(_ENTRY_KEYS)}, got {got}"
            )
        dtype = DTYPES.get(e["dtype"]) if isinstance(e["dtype"], str) else None
        if dtype is None:
            raise CheckpointError(
                f"{where}: {field} has dtype {e['dtype']!r}; this bptt reads {', '.join(DTYPES)}"
            )
        shape = e["shape"]
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise CheckpointError(
                f"{where}: {field} has shape {shape!r}, expected a list of at most "
                f"{MAX_DIMS} integers >= 0"
            )
        offsets = e["data_offsets"]
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= payload
        ):
            raise CheckpointError(
                f"{where}: {field} has data_offsets {offsets!r}, expected [begin, end] "
                f"with 0 <= begin <= end <= {payload} (the data's length)"
            )
        begin, end = offsets
        count = 1
        for d in shape:  # Python ints: the product cannot overflow
            count *= d
        if count * dtype.itemsize != end - begin:
            raise CheckpointError(
                f"{where}: {field} of shape {shape} and dtype {e['dtype']} needs "
                f"{count} x {dtype.itemsize} bytes, its data_offsets span {end - begin}"
            )
        entries[name] = (dtype, tuple(shape), begin, end)
    position = 0  # the ranges, sorted, must tile the data exactly: no overlap, no gap
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: kv[1][2:]):
        if begin != position:
            what = "overlaps the tensor before it" if begin < position else "leaves a gap"
            raise CheckpointError(
                f"{where}: tensor {name!r} data_offsets [{begin}, {end}] {what} "
                f"(expected to begin at {position})"
            )
        position = end
    if position != payload:
        raise CheckpointError(
            f"{where}: the tensors cover {position} bytes of data, the file holds {payload}"
        )
    return entries


def _is_offsets(entry: Any) -> bool:
    """Whether ``entry`` is a tensor entry whose data_offsets are two integers."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    return isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)


def _check_header_metadata(where: str, meta: Any, names: set[str]) -> tuple[str, dict]:
    """The "bptt" JSON string and the digests, after checking every key of ``__metadata__``."""
    if not isinstance(meta, dict) or META_KEY not in meta:
        raise CheckpointError(
            f"{where} is a safetensors file without bptt metadata "
            f"(no {META_KEY!r} key in its metadata)"
        )
    if meta.get("format") != FORMAT or meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{where} has format {meta.get('format')!r} version {meta.get('format_version')!r}, "
            f"this bptt reads {FORMAT!r} version {FORMAT_VERSION} (save it again with this bptt)"
        )
    if set(meta) != _HEADER_KEYS or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(
            f"{where}: the safetensors metadata must map exactly {sorted(_HEADER_KEYS)} "
            f"to strings, got {sorted(meta)}"
        )
    digests = _loads(where, "the sha256 field", meta[HASH_KEY], strict=True)
    tensor_digests = digests.get("tensors") if isinstance(digests, dict) else None
    if (
        not isinstance(digests, dict)
        or set(digests) != {"metadata", "tensors"}
        or not isinstance(tensor_digests, dict)
        or not all(_is_hex64(h) for h in [digests["metadata"], *tensor_digests.values()])
    ):
        raise CheckpointError(
            f"{where}: the sha256 field must be {{'metadata': <hex>, 'tensors': {{name: <hex>}}}}"
        )
    if set(tensor_digests) != names:
        odd = sorted(set(tensor_digests) ^ names)
        raise CheckpointError(
            f"{where}: the sha256 field and the tensors name different tensors: {odd[:5]}"
        )
    return meta[META_KEY], digests


def _is_hex64(h: Any) -> bool:
    return isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)


def sha256(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


def check_finite(path: Path, name: str, a: np.ndarray) -> None:
    if a.dtype.kind != "f" or a.size == 0:
        return
    bad = ~np.isfinite(a)  # same shape as a, bool
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CheckpointError(
            f"checkpoint '{path}': tensor {name!r} has {int(bad.sum())} non-finite values "
            f"(first {a[first]} at index {first}); pass allow_non_finite=True to accept them"
        )


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
