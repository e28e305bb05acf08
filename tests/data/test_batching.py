"""Batching: TBPTT streams and windows line up with the text; resume; padding; buckets."""

import json

import numpy as np
import pytest

from bptt.data import (
    TBPTTBatches,
    Vocabulary,
    bucket_batches,
    make_streams,
    num_windows,
    pad_sequences,
    tbptt_windows,
)
from bptt.errors import BpttError

TEXT = "The quick brown fox jumped over the lazy dog. " * 7  # 322 characters


@pytest.fixture
def vocab_ids():
    v = Vocabulary.from_text(TEXT)
    return v, v.encode(TEXT)


def test_streams_are_contiguous_slices(vocab_ids):
    v, ids = vocab_ids
    B = 5
    streams = make_streams(ids, B)  # (B, L)
    L = len(TEXT) // B
    assert streams.shape == (B, L)
    for b in range(B):
        assert v.decode(streams[b]) == TEXT[b * L : (b + 1) * L]


@pytest.mark.parametrize("window", [1, 7, 62, 63])
@pytest.mark.parametrize("drop_last", [False, True])
def test_windows_rebuild_the_text_and_targets_are_next_chars(vocab_ids, window, drop_last):
    v, ids = vocab_ids
    B = 5
    streams = make_streams(ids, B)  # (B, 64)
    L = streams.shape[1]
    windows = tbptt_windows(streams, window, drop_last=drop_last)
    assert len(windows) == num_windows(L, window, drop_last)
    for j, (x, y) in enumerate(windows):
        assert x.shape == y.shape and x.shape[0] == B
        assert x.shape[1] == window or (j == len(windows) - 1 and not drop_last)
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets: inputs shifted by one
        if j + 1 < len(windows):
            # Consecutive: the next window starts where this one's targets end.
            np.testing.assert_array_equal(y[:, -1], windows[j + 1][0][:, 0])
    covered = sum(x.shape[1] for x, _ in windows)
    assert covered == (L - 1 if not drop_last else (L - 1) // window * window)
    for b in range(B):
        rebuilt = v.decode(np.concatenate([x[b] for x, _ in windows] + [windows[-1][1][b, -1:]]))
        assert rebuilt == TEXT[b * L : b * L + covered + 1]  # inputs then the last target
        for j, (x, y) in enumerate(windows):  # window j starts j*window into stream b
            start = b * L + j * window
            assert v.decode(x[b]) == TEXT[start : start + x.shape[1]]
            assert v.decode(y[b]) == TEXT[start + 1 : start + 1 + x.shape[1]]  # next chars


def test_tbptt_batches_iterates_epochs_and_resets_window(vocab_ids):
    _, ids = vocab_ids
    batches = TBPTTBatches(ids, 4, 10)
    expected = tbptt_windows(make_streams(ids, 4), 10)
    assert len(batches) == len(expected) == 8  # L = 80: 79 pairs, last window has 9
    got = list(batches)
    assert batches.epoch == 1 and batches.window == 0
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    assert len(list(batches)) == 8 and batches.epoch == 2


def test_resume_restores_the_exact_position(vocab_ids):
    _, ids = vocab_ids
    reference = TBPTTBatches(ids, 3, 16)
    ref = [(reference.epoch, x.copy(), y.copy()) for _ in range(3) for x, y in reference]
    n = len(reference)
    assert len(ref) == 3 * n

    # Stop after every window in turn, save through JSON, resume in a fresh object.
    for stop in range(len(ref)):
        batches = TBPTTBatches(ids, 3, 16)
        seen = []
        done = False
        while batches.epoch < 3 and not done:
            for x, y in batches:
                seen.append((x, y))
                if len(seen) == stop + 1:
                    done = True
                    break
        saved = json.loads(json.dumps(batches.state_dict()))
        resumed = TBPTTBatches(ids, 3, 16)
        resumed.load_state_dict(saved)
        assert (resumed.epoch, resumed.window) == divmod(stop + 1, n)
        while resumed.epoch < 3:
            seen.extend(list(resumed))
        assert len(seen) == len(ref)
        for (_, ex, ey), (x, y) in zip(ref, seen, strict=True):
            np.testing.assert_array_equal(x, ex)
            np.testing.assert_array_equal(y, ey)


def test_resume_refuses_other_data_or_sizes(vocab_ids):
    _, ids = vocab_ids
    state = TBPTTBatches(ids, 3, 16).state_dict()
    with pytest.raises(
        BpttError,
        match="saved with window_size=16, these batches have window_size=8",
    ):
        TBPTTBatches(ids, 3, 8).load_state_dict(state)
    other = ids.copy()
    other[5] = (other[5] + 1) % ids.max()
    with pytest.raises(BpttError, match="data_crc32"):
        TBPTTBatches(other, 3, 16).load_state_dict(state)
    with pytest.raises(BpttError, match=r"window must be in 0..6, got 7"):
        TBPTTBatches(ids, 3, 16).load_state_dict({**state, "window": 7})
    with pytest.raises(BpttError, match=r"lacks the keys \['epoch'\]"):
        TBPTTBatches(ids, 3, 16).load_state_dict({k: s for k, s in state.items() if k != "epoch"})


def test_batching_errors_name_the_numbers():
    ids = np.arange(50)
    with pytest.raises(BpttError, match="batch_streams must be at least 1, got 0"):
        make_streams(ids, 0)
    with pytest.raises(BpttError, match="corpus has 50 ids, too few for 60 streams"):
        make_streams(ids, 60)
    with pytest.raises(BpttError, match="window must be at least 1 step, got 0"):
        tbptt_windows(make_streams(ids, 5), 0)
    with pytest.raises(BpttError, match="streams have 10 steps, a window of 10 needs at least 11"):
        tbptt_windows(make_streams(ids, 5), 10)
    with pytest.raises(
        BpttError, match=r"corpus has 50 ids, 5 streams with a window of 10 need .* 55"
    ):
        TBPTTBatches(ids, 5, 10)
    with pytest.raises(BpttError, match="window must be at least 1 step, got 0"):
        TBPTTBatches(ids, 5, 0)
    TBPTTBatches(ids, 5, 9)  # exactly B*(window+1) is enough: one window


def test_pad_sequences_ids_and_features():
    seqs = [np.array([1, 2, 3]), np.array([4]), np.array([], dtype=np.int64)]
    batch, mask = pad_sequences(seqs, pad_value=-1)
    np.testing.assert_array_equal(batch, [[1, 2, 3], [4, -1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    assert mask.dtype == bool and batch.dtype == np.int64

    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((t, 4)) for t in (2, 5)]
    batch, mask = pad_sequences(feats)  # (2, 5, 4)
    assert batch.shape == (2, 5, 4) and batch.dtype == np.float64
    np.testing.assert_array_equal(batch[0, :2], feats[0])
    np.testing.assert_array_equal(batch[0, 2:], 0)
    np.testing.assert_array_equal(batch[1], feats[1])
    np.testing.assert_array_equal(mask.sum(axis=1), [2, 5])
    assert pad_sequences([f.astype(np.float32) for f in feats])[0].dtype == np.float32


def test_pad_sequences_errors():
    with pytest.raises(BpttError, match="at least one sequence"):
        pad_sequences([])
    with pytest.raises(BpttError, match="all"):
        pad_sequences([np.zeros(3), np.zeros((3, 2))])
    with pytest.raises(BpttError, match="sequence 1 has 3 features, sequence 0 has 2"):
        pad_sequences([np.zeros((4, 2)), np.zeros((3, 3))])


def test_bucket_batches_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 100, size=103)
    batches = bucket_batches(lengths, 10, np.random.default_rng(2))
    assert len(batches) == 11
    assert all(len(b) <= 10 for b in batches)
    everything = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(everything), np.arange(103))
    # Sorted buckets: each batch's length range is far narrower than the whole spread.
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.25 * np.ptp(lengths)
    # Seeded: the same Generator seed gives the same batches; another seed another order.
    again = bucket_batches(lengths, 10, np.random.default_rng(2))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = bucket_batches(lengths, 10, np.random.default_rng(3))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=True))


def test_bucket_batches_errors():
    with pytest.raises(BpttError, match="batch_size must be at least 1, got 0"):
        bucket_batches([1, 2], 0, np.random.default_rng(0))
    with pytest.raises(BpttError, match=r"numpy\.random\.Generator, got int"):
        bucket_batches([1, 2], 2, 0)
    assert bucket_batches([], 4, np.random.default_rng(0)) == []
