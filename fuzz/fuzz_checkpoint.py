"""Atheris (libFuzzer) target for the checkpoint reader: any bytes must give a valid
checkpoint or a CheckpointError, never another exception, a hang or a large allocation.

Run for ten minutes (see docs/reliability.md):

    pip install atheris
    python fuzz/fuzz_checkpoint.py fuzz/corpus -max_total_time=600 -rss_limit_mb=2048

The corpus folder is seeded with small valid checkpoints on the first run, so the
fuzzer starts from files that pass every check and mutates them. A crash writes
``crash-<sha1>`` with the input; replay it with ``python fuzz/fuzz_checkpoint.py crash-...``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import numpy as np

    from bptt.checkpoint import parse_checkpoint, save_checkpoint
    from bptt.errors import CheckpointError


def seed_corpus(folder: Path) -> None:
    """A few valid checkpoints (several dtypes, 0-d and empty tensors) to mutate."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    rng = np.random.default_rng(0)
    examples = [
        ({"w": rng.standard_normal((3, 4)).astype(np.float32)}, {"step": 1}),
        ({"ids": np.arange(5), "b": np.array([True, False]), "s": np.array(2.5)}, {"x": [1]}),
        ({"e": np.zeros((0, 3), np.float64), "u": np.arange(4, dtype=np.uint8)}, {}),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (tensors, meta) in enumerate(examples):
            path = Path(tmp) / f"seed{i}.safetensors"
            save_checkpoint(path, tensors, meta)
            (folder / f"seed{i}.safetensors").write_bytes(path.read_bytes())


def test_one_input(data: bytes) -> None:
    try:
        tensors, meta = parse_checkpoint(data, "fuzz")
    except CheckpointError:
        return
    assert isinstance(meta, dict)
    for a in tensors.values():
        assert a.nbytes <= len(data)
        if a.dtype.kind == "f":
            assert np.isfinite(a).all()


def main() -> None:
    folders = [a for a in sys.argv[1:] if not a.startswith("-")]
    if folders and not Path(folders[0]).is_file():
        seed_corpus(Path(folders[0]))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
