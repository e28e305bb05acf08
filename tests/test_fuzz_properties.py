"""Property tests (hypothesis): any input gives a valid result or the library's own error,
in bounded time and memory, for the checkpoint reader, text loading, the vocabulary and
the batching. Seeded (derandomized) so the suite is deterministic."""

import json
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt.checkpoint import parse_checkpoint, save_checkpoint
from bptt.data import TBPTTBatches, Vocabulary, pad_sequences, read_text
from bptt.errors import BpttError, CheckpointError, DataError

FUZZ = settings(
    derandomize=True,
    deadline=2000,  # ms per example: bounded time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fz") / "c.safetensors"
    rng = np.random.default_rng(0)
    tensors = {
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "ids": np.arange(5),
        "b": np.array([True, False]),
        "s": np.array(2.5),
    }
    save_checkpoint(path, tensors, {"step": 3, "vocab": ["a", "b"], "rng": {"x": 1}})
    return path.read_bytes()


def _parse_bounded(data: bytes):
    """Parse; the result is valid or a CheckpointError; memory stays near the input's size."""
    tracemalloc.start()
    try:
        tensors, meta = parse_checkpoint(data, "fuzz")
    except CheckpointError:
        return None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak <= 64 * len(data) + 1_000_000, (peak, len(data))
    assert isinstance(meta, dict)
    for name, a in tensors.items():
        assert isinstance(name, str) and isinstance(a, np.ndarray)
        assert a.nbytes <= len(data)  # a view into the input: never larger than it
        if a.dtype.kind == "f":
            assert np.isfinite(a).all()
    return tensors, meta


@FUZZ
@given(st.binary(max_size=2048))
def test_reader_any_bytes(data):
    _parse_bounded(data)


@FUZZ
@given(st.data())
def test_reader_mutated_checkpoints(valid_bytes, data):
    """A real checkpoint with bytes flipped, replaced, cut or inserted: refused, or unchanged."""
    b = bytearray(valid_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del b[i : i + data.draw(st.integers(1, 16))]
        elif op == "insert":
            b[i:i] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "truncate":
            del b[i:]
    result = _parse_bounded(bytes(b))
    if bytes(b) != valid_bytes:
        assert result is None, "a changed checkpoint was accepted"


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
_entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F64", "I64", "BOOL", "U8", "BF16", "F8", "x"]) | _json,
        "shape": st.lists(st.integers(-2, 2**40), max_size=4) | _json,
        "data_offsets": st.lists(st.integers(-8, 2**40), min_size=0, max_size=3) | _json,
    }
)


@settings(FUZZ, max_examples=60)
@given(
    st.dictionaries(st.text(max_size=5), _entry | _json, max_size=3),
    st.dictionaries(st.sampled_from(["format", "format_version", "bptt", "sha256"]), _json),
    st.binary(max_size=256),
    st.integers(-3, 3),
)
def test_reader_crafted_headers(entries, meta, body, length_error):
    """Structured headers (plausible keys, wild values, huge shapes and offsets)."""
    header = {**entries, "__metadata__": meta}
    h = json.dumps(header).encode()
    data = struct.pack("<Q", max(0, len(h) + length_error)) + h + body
    _parse_bounded(data)


@FUZZ
@given(st.binary(max_size=512))
def test_read_text_any_bytes(tmp_path, data):
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    try:
        text = read_text(path)
    except DataError:
        return
    assert text.strip() and "\x00" not in text and "\r" not in text
    assert text == data.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n").replace(
        "\r", "\n"
    )


@FUZZ
@given(st.text(max_size=200), st.sampled_from(["char", "word"]))
def test_vocabulary_round_trips_any_text(text, level):
    try:
        vocab = Vocabulary.from_text(text, level=level)
    except BpttError:
        assert not (text if level == "char" else text.split())
        return
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ((0 <= ids) & (ids < len(vocab))).all()
    expected = text if level == "char" else " ".join(text.split())
    assert vocab.decode(ids) == expected
    assert Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab


@FUZZ
@given(_json)
def test_vocabulary_from_any_json(d):
    try:
        vocab = Vocabulary.from_dict(d)
    except DataError:
        return
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


@FUZZ
@given(
    st.integers(0, 300),
    st.integers(-1, 12),
    st.integers(-1, 40),
    st.booleans(),
)
def test_tbptt_batches_cover_every_pair_once(n, batch, window, drop_last):
    ids = np.arange(n, dtype=np.int64)  # (N,)
    try:
        batches = TBPTTBatches(ids, batch, window, drop_last=drop_last)
    except BpttError:
        return
    B, L = batches.streams.shape
    seen = []
    for inputs, targets in batches:
        assert inputs.shape == targets.shape and inputs.shape[0] == B
        assert 1 <= inputs.shape[1] <= window
        assert np.array_equal(targets, inputs + 1)  # the next symbol, within each stream
        seen.extend(inputs.ravel().tolist())
    assert batches.epoch == 1 and batches.window == 0
    if not drop_last:  # every (input, target) pair of every stream, exactly once
        expected = [b * L + j for b in range(B) for j in range(L - 1)]
        assert sorted(seen) == expected


@FUZZ
@given(_json | st.dictionaries(st.sampled_from(["epoch", "window", "data_crc32"]), _json))
def test_tbptt_load_state_dict_of_anything(state):
    batches = TBPTTBatches(np.arange(100), 4, 5)
    good = batches.state_dict()
    if isinstance(state, dict):
        state = {**good, **state}
    try:
        batches.load_state_dict(state)
    except BpttError:
        assert batches.state_dict() == good  # nothing changed
        return
    assert 0 <= batches.window < len(batches) and batches.epoch >= 0


@FUZZ
@given(st.lists(st.lists(st.integers(-5, 5), max_size=6), max_size=5))
def test_pad_sequences_of_any_lengths(seqs):
    arrays = [np.array(s, dtype=np.int64) for s in seqs]
    try:
        batch, mask = pad_sequences(arrays)
    except BpttError:
        assert not seqs
        return
    assert batch.shape == mask.shape == (len(seqs), max(len(s) for s in seqs))
    for b, s in enumerate(seqs):
        assert mask[b].sum() == len(s) and batch[b, : len(s)].tolist() == s
