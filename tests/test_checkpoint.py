"""Checkpoints: exact round trips, clear errors, atomic writes, survival of SIGKILL."""

import errno
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import bptt.checkpoint.write as writer
from bptt.checkpoint import load_checkpoint, parse_checkpoint, save_checkpoint
from bptt.data import Vocabulary
from bptt.errors import CheckpointError


def _example(seed=0):
    rng = np.random.default_rng(seed)
    tensors = {
        "rnn.weight_ih_l0": rng.standard_normal((12, 5)).astype(np.float32),
        "rnn.weight_hh_l0": rng.standard_normal((12, 3)),  # float64
        "rnn.bias_ih_l0": rng.standard_normal(12).astype(np.float32),
        "optim.m.rnn.weight_ih_l0": rng.standard_normal((12, 5)).astype(np.float32),
        "state.h": rng.standard_normal((1, 4, 3)).astype(np.float32),
        "counts": rng.integers(-(2**40), 2**40, size=7),  # int64
        "scalar": np.array(3.5, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    gen = np.random.default_rng(seed + 1)
    metadata = {
        "config": {"hidden": 3, "cell": "lstm", "lr": 1e-3, "layers": [1, 2]},
        "vocabulary": Vocabulary.from_text("hello world").to_dict(),
        "step": 41,
        "optimizer": {"name": "adam", "t": 41, "beta1": 0.9},
        "rng": gen.bit_generator.state,
        "data": {"epoch": 1, "window": 7},
        "text": "naïve — ünïcode",
    }
    return tensors, metadata


def test_round_trip_is_exact(tmp_path):
    tensors, metadata = _example()
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, tensors, metadata)
    got, meta = load_checkpoint(path)
    assert set(got) == set(tensors)
    for name, a in tensors.items():
        assert got[name].dtype == a.dtype, name
        assert got[name].shape == a.shape, name
        assert np.array_equal(got[name], a), name
    assert meta == metadata
    # The RNG state restores a Generator that continues exactly where the saved one was.
    g = np.random.default_rng()
    g.bit_generator.state = meta["rng"]
    assert np.array_equal(g.standard_normal(5), np.random.default_rng(1).standard_normal(5))
    assert Vocabulary.from_dict(meta["vocabulary"]) == Vocabulary.from_text("hello world")


def test_file_is_plain_safetensors_with_versioned_metadata(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": np.ones((2, 2), np.float32)}, {"step": 1})
    with safe_open(str(path), framework="numpy") as f:
        assert list(f.keys()) == ["w"]
        header = f.metadata()
    assert header["format"] == "bptt" and header["format_version"] == "2"
    assert json.loads(header["bptt"]) == {"step": 1}


def test_non_contiguous_arrays_and_numpy_scalars_in_metadata(tmp_path):
    a = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2]  # a strided view
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"a": a}, {"step": np.int64(3), "loss": np.float32(0.5)})
    got, meta = load_checkpoint(path)
    assert np.array_equal(got["a"], a)
    assert meta == {"step": 3, "loss": 0.5}


def test_save_errors_name_the_problem(tmp_path):
    path = tmp_path / "c.safetensors"
    with pytest.raises(CheckpointError, match="tensor 'w' must be a numpy array, got list"):
        save_checkpoint(path, {"w": [1.0]}, {})
    with pytest.raises(CheckpointError, match="tensor 'w' has dtype object"):
        save_checkpoint(path, {"w": np.array([None])}, {})
    with pytest.raises(CheckpointError, match="metadata is not JSON-able"):
        save_checkpoint(path, {}, {"f": object()})
    with pytest.raises(CheckpointError, match="metadata must be a dict, got list"):
        save_checkpoint(path, {}, [])
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def _write_raw(path, header: dict | bytes, body: bytes = b""):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + body)


def _sha(b) -> str:
    return hashlib.sha256(b).hexdigest()


def _craft(path, meta_json="{}", entries=None, body=b"", digests=None, **meta_overrides):
    """A hand-made file: valid bptt metadata and digests unless overridden."""
    entries = {} if entries is None else entries
    if digests is None:
        tensor_digests = {}
        for name, e in entries.items():
            offsets = e.get("data_offsets") if isinstance(e, dict) else None
            begin, end = offsets if isinstance(offsets, list) and len(offsets) == 2 else (0, 0)
            tensor_digests[name] = _sha(body[begin:end])
        digests = {"metadata": _sha(meta_json.encode()), "tensors": tensor_digests}
    meta = {"format": "bptt", "format_version": "2", "bptt": meta_json}
    meta["sha256"] = json.dumps(digests)
    meta.update(meta_overrides)
    meta = {k: v for k, v in meta.items() if v is not None}
    _write_raw(path, {"__metadata__": meta, **entries}, body)


def test_load_errors_name_the_file_and_the_problem(tmp_path):
    p = tmp_path / "bad.safetensors"
    with pytest.raises(CheckpointError, match=r"'.*bad\.safetensors' does not exist"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint("/dev/zero")  # would never end if read
    p.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match=r"not a safetensors file \(3 bytes, too short"):
        load_checkpoint(p)
    p.write_bytes(b"this is a plain text file, not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"header length \d+ does not fit"):
        load_checkpoint(p)
    _write_raw(p, b"{garbage")
    with pytest.raises(CheckpointError, match="its header is not JSON"):
        load_checkpoint(p)
    _write_raw(p, b"\xff\xfe{}")
    with pytest.raises(CheckpointError, match="its header is not JSON"):
        load_checkpoint(p)
    _write_raw(p, b"[1, 2]")
    with pytest.raises(CheckpointError, match="its header is not a JSON object"):
        load_checkpoint(p)
    _write_raw(p, b"[" * 100_000 + b"]" * 100_000)  # deep nesting: no RecursionError escapes
    with pytest.raises(CheckpointError, match="not JSON"):
        load_checkpoint(p)
    _write_raw(p, {"__metadata__": {"other": "x"}})
    with pytest.raises(CheckpointError, match="without bptt metadata"):
        load_checkpoint(p)
    _write_raw(p, {"__metadata__": {"format": "bptt", "format_version": "9", "bptt": "{}"}})
    with pytest.raises(CheckpointError, match="version '9', this bptt reads 'bptt' version 2"):
        load_checkpoint(p)
    _craft(p, "[1]")
    with pytest.raises(CheckpointError, match="metadata must be a JSON object, got list"):
        load_checkpoint(p)
    _craft(p, "{x")
    with pytest.raises(CheckpointError, match="metadata is not valid JSON"):
        load_checkpoint(p)
    _craft(p, "{}")
    assert load_checkpoint(p) == ({}, {})  # the crafting itself is right


_F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # header fields
        (dict(sha256=None), r"exactly \['bptt', 'format', 'format_version', 'sha256'\]"),
        (dict(extra="x"), r"exactly \['bptt', 'format', 'format_version', 'sha256'\] to strings"),
        (dict(sha256="{}"), "the sha256 field must be"),
        (dict(sha256="NaN"), "holds NaN"),
        (dict(digests={"metadata": "AB" * 32, "tensors": {}}), "the sha256 field must be"),
        (dict(digests={"metadata": "0" * 64, "tensors": {}}), "metadata fails its SHA-256"),
        # tensor entries
        (dict(entries={"w": [1]}, body=b"x" * 8), r"tensor 'w' must have exactly the fields"),
        (dict(entries={"w": {**_F32x2, "x": 1}}, body=b"x" * 8), "exactly the fields"),
        (dict(entries={"w": {**_F32x2, "dtype": "O"}}, body=b"x" * 8), "dtype 'O'; this bptt"),
        (dict(entries={"w": {**_F32x2, "dtype": "BF16"}}, body=b"x" * 8), "dtype 'BF16'"),
        (dict(entries={"w": {**_F32x2, "shape": [-2]}}, body=b"x" * 8), r"shape \[-2\]"),
        (dict(entries={"w": {**_F32x2, "shape": [2.0]}}, body=b"x" * 8), r"shape \[2.0\]"),
        (dict(entries={"w": {**_F32x2, "shape": [True]}}, body=b"x" * 8), r"shape \[True\]"),
        (dict(entries={"w": {**_F32x2, "shape": [1] * 33}}, body=b"x" * 8), "at most 32"),
        (dict(entries={"w": {**_F32x2, "shape": "2"}}, body=b"x" * 8), "shape '2'"),
        # a shape whose product overflows 64 bits is compared exactly, never wrapped
        (
            dict(entries={"w": {**_F32x2, "shape": [2**32, 2**32, 2**32]}}, body=b"x" * 8),
            "needs 79228162514264337593543950336 x 4 bytes",
        ),
        (dict(entries={"w": {**_F32x2, "shape": [3]}}, body=b"x" * 8), "needs 3 x 4 bytes"),
        (
            dict(entries={"w": {**_F32x2, "data_offsets": [0, 16]}}, body=b"x" * 8),
            "is truncated: .* describes 16 bytes of tensor data, the file holds 8: 8 bytes missing",
        ),
        (dict(entries={"w": {**_F32x2, "data_offsets": [8, 0]}}, body=b"x" * 8), r"\[8, 0\]"),
        (dict(entries={"w": {**_F32x2, "data_offsets": [-8, 0]}}, body=b"x" * 8), r"\[-8, 0\]"),
        (dict(entries={"w": {**_F32x2, "data_offsets": [0]}}, body=b"x" * 8), r"\[0\]"),
        (dict(entries={"w": _F32x2, "v": _F32x2}, body=b"x" * 8), "overlaps the tensor before"),
        (dict(entries={"w": {**_F32x2, "data_offsets": [4, 12]}}, body=b"x" * 12), "leaves a gap"),
        (dict(entries={"w": _F32x2}, body=b"x" * 12), "cover 8 bytes of data, the file holds 12"),
        (
            dict(
                entries={"w": _F32x2},
                body=b"x" * 8,
                digests={"metadata": _sha(b"{}"), "tensors": {}},
            ),
            "name different tensors",
        ),
        (
            dict(
                entries={"w": _F32x2},
                body=b"x" * 8,
                digests={"metadata": _sha(b"{}"), "tensors": {"w": "0" * 64}},
            ),
            "tensor 'w' fails its SHA-256",
        ),
    ],
)
def test_every_field_is_checked_and_named(tmp_path, kwargs, message):
    p = tmp_path / "crafted.safetensors"
    _craft(p, **kwargs)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(p)
    assert "crafted.safetensors" in str(e.value)


def test_duplicate_header_keys_are_refused(tmp_path):
    p = tmp_path / "dup.safetensors"
    h = b'{"__metadata__": {"format": "bptt"}, "w": {}, "w": {}}'
    _write_raw(p, h)
    with pytest.raises(CheckpointError, match="repeats the key 'w'"):
        load_checkpoint(p)


def test_every_flipped_bit_is_detected(tmp_path):
    """Flip each bit of a small checkpoint in turn: every one of them is refused."""
    p = tmp_path / "c.safetensors"
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.arange(3)}
    save_checkpoint(p, tensors, {"step": 7, "vocab": ["a", "b"]})
    data = p.read_bytes()
    missed = []
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            parse_checkpoint(bytes(flipped), "flipped")
        except CheckpointError:
            continue
        missed.append(bit)
    assert not missed, f"{len(missed)} of {8 * len(data)} flips loaded, e.g. bit {missed[:5]}"
    p.write_bytes(data)
    assert load_checkpoint(p)[1]["step"] == 7  # the unflipped file still loads


def test_a_flip_in_the_data_names_the_tensor(tmp_path):
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, {"a": np.zeros(4, np.float32), "b": np.ones(4, np.float32)}, {})
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01  # the last byte belongs to the last tensor in the file
    p.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"tensor '[ab]' fails its SHA-256 check"):
        load_checkpoint(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_need_an_explicit_flag(tmp_path, bad):
    p = tmp_path / "c.safetensors"
    w = np.zeros((2, 3), np.float32)
    w[1, 2] = bad
    with pytest.raises(CheckpointError, match=r"tensor 'w' has 1 non-finite values .* \(1, 2\)"):
        save_checkpoint(p, {"w": w}, {})
    assert not p.exists()
    save_checkpoint(p, {"w": w}, {}, allow_non_finite=True)
    with pytest.raises(CheckpointError, match="allow_non_finite=True"):
        load_checkpoint(p)
    got, _ = load_checkpoint(p, allow_non_finite=True)
    assert np.array_equal(got["w"], w, equal_nan=True)


def test_loaded_arrays_are_views_of_one_buffer_of_the_file_size(tmp_path):
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, {"a": np.ones(1000, np.float32), "b": np.ones((10, 10))}, {})
    got, _ = load_checkpoint(p)
    for a in got.values():
        assert not a.flags.owndata and a.flags.writeable and a.flags.aligned
        root = a
        while isinstance(root, np.ndarray):
            root = root.base
        assert len(root.obj) == p.stat().st_size  # a memoryview of the file's one buffer


def test_truncated_file_is_refused(tmp_path):
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, {"w": np.ones(1000, np.float32)}, {"step": 1})
    data = p.read_bytes()
    for cut in (1, 10, 3999, len(data) - 9):
        p.write_bytes(data[:-cut])
        with pytest.raises(CheckpointError, match=r"c\.safetensors' is truncated: an incomplete"):
            load_checkpoint(p)


def test_failed_write_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, {"w": np.zeros(3, np.float32)}, {"step": 1})
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, "replace", broken_replace)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint '.*latest\.safetensors'"):
        save_checkpoint(path, {"w": np.ones(3, np.float32)}, {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.safetensors"]
    assert load_checkpoint(path)[1] == {"step": 1}


def _only_the_checkpoint_is_left(folder, before: bytes, step: int):
    path = folder / "latest.safetensors"
    assert path.read_bytes() == before
    assert [q.name for q in folder.iterdir()] == ["latest.safetensors"]  # no temp file
    assert load_checkpoint(path)[1] == {"step": step}


def test_disk_full_half_way_through_the_write(tmp_path, monkeypatch):
    """os.write fails with ENOSPC after half the bytes: the old checkpoint stays, no temp file."""
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, {"w": np.zeros(3, np.float32)}, {"step": 1})
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, fd):
            self.f = real_fdopen(fd, "wb", buffering=0)

        def writable(self):
            return True

        def write(self, b):
            self.f.write(bytes(b)[: len(b) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def fileno(self):
            return self.f.fileno()

        def close(self):
            self.f.close()
            super().close()

    monkeypatch.setattr(writer.os, "fdopen", lambda fd, mode: FullDisk(fd))
    with pytest.raises(CheckpointError, match=r"No space left on device .*previous checkpoint"):
        save_checkpoint(path, {"w": np.ones(100_000, np.float32)}, {"step": 2})
    monkeypatch.undo()
    _only_the_checkpoint_is_left(tmp_path, before, 1)


def test_read_only_folder_gives_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, {"w": np.zeros(3, np.float32)}, {"step": 1})
    before = path.read_bytes()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(writer.tempfile, "mkstemp", read_only)
    with pytest.raises(CheckpointError, match=r"Read-only file system .*previous checkpoint"):
        save_checkpoint(path, {"w": np.ones(3, np.float32)}, {"step": 2})
    monkeypatch.undo()
    _only_the_checkpoint_is_left(tmp_path, before, 1)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 64 KiB file system (tmpfs) mounted under tmp_path; skipped where mount is denied."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_really_full_disk_and_a_really_read_only_folder(tiny_tmpfs):
    """The same promises on a real tiny tmpfs: ENOSPC, then remounted read-only (EROFS)."""
    path = tiny_tmpfs / "latest.safetensors"
    save_checkpoint(path, {"w": np.zeros(100, np.float32)}, {"step": 1})
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"No space left on device .*previous checkpoint"):
        save_checkpoint(path, {"w": np.ones(40_000, np.float32)}, {"step": 2})  # 160 KB
    _only_the_checkpoint_is_left(tiny_tmpfs, before, 1)
    r = subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only: {r.stderr.decode().strip()}")
    with pytest.raises(CheckpointError, match=r"Read-only file system .*previous checkpoint"):
        save_checkpoint(path, {"w": np.ones(10, np.float32)}, {"step": 3})
    _only_the_checkpoint_is_left(tiny_tmpfs, before, 1)
    other = tiny_tmpfs / "new.safetensors"
    with pytest.raises(CheckpointError, match="nothing was written; free some space or choose"):
        save_checkpoint(other, {"w": np.ones(10, np.float32)}, {"step": 3})


def test_write_into_a_path_whose_parent_is_a_file(tmp_path):
    parent = tmp_path / "not_a_dir"
    parent.write_text("x")
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint '.*not_a_dir/c'"):
        save_checkpoint(parent / "c", {"w": np.zeros(1)}, {})
    assert parent.read_text() == "x"


# Imports once, then forks a fresh writer for each "go <step>" line: each kill costs a
# fork, not a Python start-up. The writer saves 4 MB checkpoints in a loop until killed.
_KILLS = 60  # the issue asks for at least 50
_SPAWNER = textwrap.dedent(
    """
    import os
    import sys
    import numpy as np
    from bptt.checkpoint import save_checkpoint

    path = sys.argv[1]
    for line in sys.stdin:
        step = int(line.split()[1])
        pid = os.fork()
        if pid == 0:
            while True:
                w = np.full(250_000, step, dtype=np.float32)  # 1 MB
                save_checkpoint(path, {"w": w, "ids": np.arange(10) + step}, {"step": step})
                step += 1
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1, flush=True)
    """
)


def _check_consistent(path):
    tensors, meta = load_checkpoint(path)
    step = meta["step"]
    assert tensors["w"].shape == (250_000,) and tensors["w"].dtype == np.float32
    assert np.all(tensors["w"] == step)
    assert np.array_equal(tensors["ids"], np.arange(10) + step)
    return step


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork and SIGKILL (POSIX)")
def test_killing_the_writer_never_leaves_an_unloadable_checkpoint(tmp_path):
    """SIGKILL a process saving checkpoints in a loop, 60 times at random moments."""
    script = tmp_path / "spawner.py"
    script.write_text(_SPAWNER)
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, {"w": np.zeros(250_000, np.float32), "ids": np.arange(10)}, {"step": 0})
    # Kill within the first few writes: delays scale with how long a save takes here.
    t0 = time.perf_counter()
    for _ in range(2):
        save_checkpoint(
            path, {"w": np.zeros(250_000, np.float32), "ids": np.arange(10)}, {"step": 0}
        )
    max_delay = max(1.5 * (time.perf_counter() - t0), 0.02)
    rng = np.random.default_rng(12345)
    spawner = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    step = 0
    try:
        for i in range(_KILLS):
            spawner.stdin.write(f"go {step + 1}\n")
            spawner.stdin.flush()
            writer = int(spawner.stdout.readline())
            if i < _KILLS - 1:
                time.sleep(rng.uniform(0.0, max_delay))
            else:  # the last writer surely writes: wait until its checkpoint appears
                deadline = time.monotonic() + 10
                while _check_consistent(path) == step and time.monotonic() < deadline:
                    time.sleep(0.002)
            os.kill(writer, signal.SIGKILL)
            assert int(spawner.stdout.readline()) == signal.SIGKILL  # the writer is gone
            new_step = _check_consistent(path)  # it loads, and is one complete checkpoint
            assert new_step >= step  # the old one or a newer one, never older
            step = new_step
    finally:
        spawner.kill()
        spawner.wait()
        spawner.stdin.close()
        spawner.stdout.close()
    assert step > 0  # the writers did write
    # Killed writers may leave temporary files; their names say what they are.
    leftovers = [p.name for p in tmp_path.iterdir()]
    for name in leftovers:
        assert name in ("spawner.py", "latest.safetensors") or name.startswith(
            ".latest.safetensors.tmp-"
        )
    print(f"final step {step}, {len(leftovers) - 2} kills landed mid-write")
