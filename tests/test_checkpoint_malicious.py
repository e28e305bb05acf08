"""Loading never runs code: pickle payloads and names like "os.system" are refused with the
library's own error, and a marker file that the payload would create never appears."""

import importlib
import json
import os
import pickle
import posix
import subprocess
import sys

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint, save_checkpoint
from bptt.cli import main
from bptt.config import Config
from bptt.errors import CheckpointError
from bptt.tasks import TASK_MODULES
from bptt.tasks.text import lm
from bptt.train import LATEST


class _Payload:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (posix.system, (f"touch '{self.marker}'",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mal")
    corpus = root / "corpus.txt"
    corpus.write_text("a small text for a small model. " * 20, encoding="utf-8")
    config = Config(
        text=str(corpus),
        hidden_size=4,
        embed_size=3,
        batch_size=2,
        window=5,
        steps=2,
        eval_every=2,
        out=str(root / "run"),
    )
    trainer, _ = lm.build_trainer(config, root / "run", progress_bar=False)
    trainer.run()
    return root / "run" / LATEST


@pytest.fixture
def payload(tmp_path):
    """(marker, pickle bytes that create the marker when unpickled), made before guarding."""
    marker = tmp_path / "PWNED"
    return marker, pickle.dumps(_Payload(marker), protocol=2)


@pytest.fixture
def guarded(monkeypatch, payload):
    """Record every call that could run code; only fixed-table task imports are allowed."""
    calls = []
    for mod, name in [
        (os, "system"),
        (posix, "system"),
        (os, "popen"),
        (subprocess, "Popen"),
        (pickle, "loads"),
        (pickle, "load"),
        (np, "load"),
    ]:
        monkeypatch.setattr(mod, name, lambda *a, _n=name, **k: calls.append((_n, a)))
    real_import = importlib.import_module

    def import_module(name, *args):
        if name not in TASK_MODULES.values():
            calls.append(("import_module", name))
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    return calls


def _commands(path):
    return [
        ["sample", str(path), "--length", "3"],
        ["eval", str(path)],
        ["train", "--quiet", "--resume", str(path)],
    ]


def test_the_payload_is_live(tmp_path):
    """The same bytes do run code when unpickled: so the tests below can fail."""
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    subprocess.run([sys.executable, "-c", code, str(evil)], check=True, timeout=60)
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.safetensors", "evil.pt", "evil.ckpt"])
def test_a_pickle_file_is_refused_and_never_run(tmp_path, capsys, payload, guarded, name):
    marker, blob = payload
    evil = tmp_path / name
    evil.write_bytes(blob)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(evil)
    for argv in _commands(evil):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("bptt: error: ") and err.count("\n") == 1 and name in err, err
    assert not marker.exists()
    assert guarded == []


def test_a_numpy_object_array_is_refused_and_never_run(tmp_path, capsys, payload, guarded):
    """An .npy holding a pickled object (what allow_pickle=True would run)."""
    marker, blob = payload
    evil = tmp_path / "evil.npy"
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    with open(evil, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(blob)
    for argv in _commands(evil):
        assert main(argv) == 2
        assert "bptt: error: " in capsys.readouterr().err
    assert not marker.exists()
    assert guarded == []


def test_a_pickle_hidden_in_a_valid_checkpoint_is_just_bytes(tmp_path, trained, payload, guarded):
    """Pickle bytes as a tensor and inside the metadata load as data and are never unpickled."""
    marker, blob = payload
    tensors, meta = load_checkpoint(trained)
    tensors["extra.blob"] = np.frombuffer(blob, dtype=np.uint8)
    meta["note"] = blob.decode("latin-1")
    path = tmp_path / "carrier.safetensors"
    save_checkpoint(path, tensors, meta)
    got, got_meta = load_checkpoint(path)
    assert got["extra.blob"].tobytes() == blob and got_meta["note"] == blob.decode("latin-1")
    assert not marker.exists()
    assert guarded == []


def _edited(tmp_path, trained, edit, marker=None):
    """A checkpoint with correct SHA-256 digests whose metadata an attacker edited, with the
    shell command that a loader calling names as functions would run beside the name."""
    tensors, meta = load_checkpoint(trained)
    edit(meta)
    if marker is not None:
        meta["args"] = [f"touch '{marker}'"]
    path = tmp_path / "crafted.safetensors"
    save_checkpoint(path, tensors, json.loads(json.dumps(meta)))
    return path


ALL = ("sample", "eval", "train")


@pytest.mark.parametrize(
    "edit, refused_by, message",
    [
        (lambda m: m["config"].update(cell="os.system"), ALL, "cell must be one of rnn, lstm, gru"),
        (lambda m: m["config"].update(task="os.system"), ALL, "task must be one of"),
        (lambda m: m["config"].update(optimizer="os.system"), ALL, "optimizer must be one of"),
        (lambda m: m["config"].update(dtype="os.system"), ALL, "dtype must be one of"),
        (lambda m: m["config"].update(__class__="os.system"), ALL, "unknown fields: __class__"),
        (lambda m: m.update(task="os.system"), ALL, "'os.system'"),
        (lambda m: m["optimizer"].update(optimizer="os.system"), ("train",), "'optimizer'"),
    ],
)
def test_names_in_metadata_are_looked_up_never_imported(
    tmp_path, capsys, trained, guarded, edit, refused_by, message
):
    marker = tmp_path / "PWNED"
    path = _edited(tmp_path, trained, edit, marker)
    for argv in _commands(path):
        code = main(argv)
        err = capsys.readouterr().err
        if argv[0] in refused_by:
            assert code == 2, (argv, err)
            assert err.startswith("bptt: error: ") and err.count("\n") == 1, err
            assert message in err and "crafted.safetensors" in err, err
        else:
            assert code == 0, (argv, err)  # the edited name is never used on this path
    assert not marker.exists()
    assert guarded == []


def test_cell_os_system_through_the_real_cli(tmp_path, trained):
    """The whole `bptt` process, nothing patched: refused, exit 2, one line, no marker."""
    marker = tmp_path / "PWNED"
    path = _edited(tmp_path, trained, lambda m: m["config"].update(cell="os.system"), marker)
    result = subprocess.run(
        [sys.executable, "-m", "bptt", "sample", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "crafted.safetensors" in result.stderr and "'config'" in result.stderr
    assert "cell must be one of rnn, lstm, gru; got 'os.system'" in result.stderr
    assert not marker.exists()


def test_no_numpy_load_allows_pickle_anywhere_in_the_library():
    """A source scan: every np.load in src/ passes allow_pickle=False; no pickle import."""
    import bptt

    root = os.path.dirname(bptt.__file__)
    for folder, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            text = open(os.path.join(folder, f), encoding="utf-8").read()
            assert "import pickle" not in text and "from pickle" not in text, f
            for line in text.splitlines():
                if "np.load(" in line or "numpy.load(" in line:
                    assert "allow_pickle=False" in line, (f, line)
