"""TensorBoard event files, written by hand: no torch, no TensorFlow, no protobuf library.

An event file is a sequence of TFRecords (little-endian integers), each

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

    masked_crc32c(b) = ((c >> 15) | (c << 17)) + 0xA282EAD8  (mod 2^32),  c = CRC-32C(b)

whose data is one serialized ``tensorflow.Event`` protocol buffer. The few
fields used here, with their protobuf wire tags:

    Event    wall_time  1 double      step 2 int64      file_version 3 string
             summary    5 Summary
    Summary  value      1 repeated Value
    Value    tag        1 string      simple_value 2 float

The first record holds ``file_version = "brain.Event:2"``; each later one a
step's scalars. TensorBoard reads every file named ``*tfevents*`` in a folder:

    tensorboard --logdir runs/tb
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from pathlib import Path

from bptt.errors import BpttError

_LN2 = math.log(2.0)  # nats to bits


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``; crc32c(b"123456789") == 0xE3069283."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 as protobuf writes it (two's complement for negatives)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def event(
    step: int,
    wall_time: float,
    scalars: dict[str, float] | None = None,
    file_version: str | None = None,
) -> bytes:
    """One serialized Event: the step's scalars (tag -> value), or the file version."""
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode("utf-8"))
    if scalars:
        values = b"".join(
            _bytes_field(1, _bytes_field(1, tag.encode("utf-8")) + b"\x15" + struct.pack("<f", v))
            for tag, v in scalars.items()
        )
        out += _bytes_field(5, values)
    return out


def record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class EventWriter:
    """Appends scalars to a new event file in ``folder`` (one file per run or resume)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        folder = Path(folder)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.bptt"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / name
            self._file = self.path.open("xb")  # a new file: never writes into another's
        except OSError as e:
            raise BpttError(
                f"cannot write TensorBoard events to '{folder}': {e.strerror or e} "
                "(choose a writable folder with --tensorboard)"
            ) from None
        self._write(event(0, time.time(), file_version="brain.Event:2"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Log ``values`` (tag -> number) at ``step``; flushed at once, so TensorBoard sees it."""
        self._write(event(step, time.time(), {k: float(v) for k, v in values.items()}))

    def _write(self, data: bytes) -> None:
        self._file.write(record(data))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def record_scalars(record: dict) -> dict[str, float]:
    """A metrics.jsonl record as TensorBoard tags: train/... every update, val/... at evals."""
    out = {
        "train/loss": record["loss"],
        "train/bits_per_symbol": record["loss"] / _LN2,
        "train/grad_norm": record["grad_norm"],
        "train/lr": record["lr"],
    }
    out |= {f"val/{k[4:]}": v for k, v in record.items() if k.startswith("val_")}
    if "val_loss" in record and "val_bits_per_symbol" not in record:
        out["val/bits_per_symbol"] = record["val_loss"] / _LN2
    return out
