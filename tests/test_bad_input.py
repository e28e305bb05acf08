"""Bad input everywhere: every CLI path given strange files, sizes and numbers answers with
one line ("bptt: error: ...") and exit code 2, never a traceback; the library raises its own
error for empty batches, zero-length sequences and labels outside the label set."""

import numpy as np
import pytest

from bptt.checkpoint import load_checkpoint, save_checkpoint
from bptt.cli import main
from bptt.errors import BpttError
from bptt.models.language_model import LanguageModel, LMBatch

TEXT = "the clouds are in the sky. the quick brown fox jumped over the lazy dog. " * 20
SMALL = ["--hidden-size", "8", "--embed-size", "4", "--batch-size", "4", "--window", "8"]

FILES = {
    "corpus.txt": TEXT.encode(),
    "changed.txt": TEXT.encode(),  # rewritten after training: the data position cannot fit
    "empty.txt": b"",
    "blank.txt": b" \n\t\n  ",
    "binary.bin": bytes(range(256)),
    "latin1.txt": "café crème brûlée".encode("latin-1"),
    "utf16.txt": "hello world".encode("utf-16"),
    "short.txt": b"ab",
    "text.safetensors": b"this is a text file named like a checkpoint",
    "zero.safetensors": b"",
    "a_file": b"x",
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A folder with the files above, a trained run, and edited checkpoints."""
    root = tmp_path_factory.mktemp("bad")
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    flags = ["--steps", "2", "--eval-every", "2", "--sample-length", "3", *SMALL]
    text, out = str(root / "corpus.txt"), str(root / "run")
    assert main(["train", "--quiet", "--text", text, "--out", out, *flags]) == 0
    text, out = str(root / "changed.txt"), str(root / "run2")
    assert main(["train", "--quiet", "--text", text, "--out", out, *flags]) == 0
    (root / "changed.txt").write_text(TEXT[: len(TEXT) // 2] + "zzz")
    ckpt = root / "run" / "best.safetensors"
    tensors, meta = load_checkpoint(ckpt)
    vocab = {**meta["vocab"], "tokens": [*meta["vocab"]["tokens"], "Q"]}
    save_checkpoint(root / "other_vocab.safetensors", tensors, {**meta, "vocab": vocab})
    save_checkpoint(root / "other_task.safetensors", tensors, {**meta, "task": "sentiment"})
    data = ckpt.read_bytes()
    (root / "truncated.safetensors").write_bytes(data[: len(data) - 1000])  # the data stops short
    (root / "cut_header.safetensors").write_bytes(data[:100])  # the header itself is cut
    return root


CASES = [
    # sample: numbers and prompts
    (["sample", "{ckpt}", "--temperature", "nan"], "temperature must be a finite number"),
    (["sample", "{ckpt}", "--temperature", "inf"], "temperature must be a finite number"),
    (["sample", "{ckpt}", "--temperature", "-0.5"], "temperature must be >= 0 (0 is greedy)"),
    (["sample", "{ckpt}", "--length", "-1"], "length must be"),
    (["sample", "{ckpt}", "--length", "99999999999999"], "length must be in 0..10,000,000"),
    (["sample", "{ckpt}", "--top-k", "0"], "--top-k must be at least 1"),
    (["sample", "{ckpt}", "--seed", "-1"], "--seed must be an integer in 0..2**63-1"),
    (["sample", "{ckpt}", "--seed", str(2**64)], f"in 0..2**63-1 ({2**63 - 1:,}); got {2**64}"),
    (["sample", "{ckpt}", "--prompt", ""], "prompt must be a non-empty"),
    (["sample", "{ckpt}", "--prompt", "Zebra€"], "not in the vocabulary: 'Z', '€'"),
    # checkpoints that are not ours, broken, or of another task or vocabulary
    (["sample", "{root}/missing.safetensors"], "does not exist"),
    (["sample", "{root}"], "is a directory"),
    (["sample", "/dev/null"], "not a regular file"),
    (["sample", "{root}/text.safetensors"], "not a safetensors file"),
    (["sample", "{root}/zero.safetensors"], "0 bytes, too short"),
    (["sample", "{root}/corpus.txt"], "not a safetensors file"),
    (["sample", "{root}/truncated.safetensors"], "truncated.safetensors' is truncated"),
    (["sample", "{root}/truncated.safetensors"], ": 1,000 bytes missing)"),
    (["sample", "{root}/cut_header.safetensors"], "is truncated: an incomplete copy"),
    (["train", "--resume", "{root}/cut_header.safetensors"], "the file has 100)"),
    (["sample", "{root}/other_vocab.safetensors"], "the model expects"),
    (["sample", "{root}/other_task.safetensors"], "not a language model"),
    (["eval", "{root}/other_vocab.safetensors"], "the model expects"),
    (["eval", "{root}/binary.bin"], "not a safetensors file"),
    (["eval", "{root}/text.safetensors"], "is not a safetensors file (header length"),
    (["train", "--resume", "{root}/other_vocab.safetensors"], "another 'vocab'"),
    (["train", "--resume", "{root}/other_task.safetensors"], "another 'task'"),
    (["train", "--resume", "{root}/run2/latest.safetensors"], "field 'data_position'"),
    (["train", "--resume", "{root}/corpus.txt"], "not a safetensors file"),
    (["train", "--resume", "{ckpt}", "--hidden-size", "99"], "cannot change: --hidden-size ("),
    (["train", "--resume", "{ckpt}", "--cell", "gru", "--embed-size", "9"], "--cell, --embed-size"),
    # texts: empty, blank, binary, wrong encodings, too short, missing, a folder
    (["eval", "{ckpt}", "--text", "{root}/empty.txt"], "is empty"),
    (["eval", "{ckpt}", "--text", "{root}/blank.txt"], "only whitespace"),
    (["eval", "{ckpt}", "--text", "{root}/binary.bin"], "binary file, not UTF-8 text (NUL byte"),
    (["eval", "{ckpt}", "--text", "{root}/latin1.txt"], "not UTF-8 text (byte 0xe9 at offset 3)"),
    (["eval", "{ckpt}", "--text", "{root}/utf16.txt"], "binary file"),
    (["eval", "{ckpt}", "--text", "{root}/missing.txt"], "does not exist"),
    (["eval", "{ckpt}", "--text", "{root}"], "is a directory"),
    (["train", "--text", "{root}/short.txt", *SMALL], "too few for 4 streams"),
    (["train", "--text", "{root}/empty.txt"], "is empty"),
    (["train", "--text", "{root}/latin1.txt"], "not UTF-8"),
    # sizes: zero, negative, NaN, too large for the data or for memory
    (
        ["train", "--text", "{root}/corpus.txt", "--batch-size", "0"],
        "--batch-size must be at least 1",
    ),
    (["train", "--text", "{root}/corpus.txt", "--window", "0"], "--window must be at least 1"),
    (["train", "--text", "{root}/corpus.txt", "--steps", "-3"], "--steps must be at least 1"),
    (
        ["train", "--text", "{root}/corpus.txt", "--eval-every", "0"],
        "--eval-every must be at least",
    ),
    (["train", "--text", "{root}/corpus.txt", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "--text", "{root}/corpus.txt", "--clip", "-1"], "--clip must be 0"),
    (["train", "--text", "{root}/corpus.txt", "--dropout", "1"], "--dropout must be in [0, 1)"),
    (["train", "activity", "--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
    (["train", "--text", "{root}/corpus.txt", "--seed", "-5"], "--seed must be an integer in 0"),
    (
        ["train", "--text", "{root}/corpus.txt", "--seed", str(2**63)],
        "--seed must be an integer in",
    ),
    (["train", "--text", "{root}/corpus.txt", "--val-fraction", "1"], "--val-fraction must be in"),
    (["train", "--text", "{root}/corpus.txt", "--batch-size", "100000"], "too few for 100000"),
    (["train", "--text", "{root}/corpus.txt", "--window", "100000"], "need at least"),
    (
        [
            "train",
            "--text",
            "{root}/corpus.txt",
            "--out",
            "{root}/a_file/run",
            "--steps",
            "1",
            *SMALL,
        ],
        "cannot write to the output folder",
    ),
    (
        [
            "train",
            "--text",
            "{root}/corpus.txt",
            "--hidden-size",
            "100000000",
            "--steps",
            "1",
            "--out",
            "{root}/big",
        ],
        "not enough memory",
    ),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[c[1] for c in CASES])
def test_every_bad_input_is_one_line_and_exit_2(ws, capsys, argv, message):
    ckpt = ws / "run" / "best.safetensors"
    argv = [a.format(ckpt=ckpt, root=ws) for a in argv]
    code = main(["train", "--quiet", *argv[1:]] if argv[0] == "train" else argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("bptt: error: ") and captured.err.count("\n") == 1, captured
    assert "Traceback" not in captured.err and message in captured.err, captured.err


def test_temperature_zero_is_greedy_and_valid(ws, capsys):
    ckpt = str(ws / "run" / "best.safetensors")
    assert main(["sample", ckpt, "--temperature", "0", "--length", "5", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert main(["sample", ckpt, "--temperature", "0", "--length", "5", "--seed", "2"]) == 0
    assert capsys.readouterr().out == first  # greedy: the seed plays no part


@pytest.mark.parametrize(
    "ids, message",
    [
        (np.zeros((0, 5), np.int64), "empty batch"),
        (np.zeros((2, 0), np.int64), "zero-length sequences"),
        (np.full((2, 3), 10), "index 10 is out of range"),
        (np.full((2, 3), -1), "index -1 is out of range"),
    ],
)
def test_library_refuses_empty_batches_zero_lengths_and_unknown_ids(ids, message):
    model = LanguageModel(10, 4, 5, rng=np.random.default_rng(0))
    with pytest.raises(BpttError, match=message):
        model.forward(ids)


@pytest.mark.parametrize("label", [10, -1])
def test_labels_outside_the_label_set_are_refused(label):
    model = LanguageModel(10, 4, 5, rng=np.random.default_rng(0))
    batch = LMBatch(np.zeros((2, 3), np.int64), np.full((2, 3), label))
    with pytest.raises(BpttError, match=f"target {label} at position .* outside the vocabulary"):
        model.loss_and_grads(batch, None, np.random.default_rng(0))
