"""The video models: full-loss gradients of the frame encoder with the classifier, the
tagger and the baselines; the baselines' blindness to frame order; bad input."""

import numpy as np
import pytest

from bptt.data import pad_sequences
from bptt.diagnostics import gradcheck_model
from bptt.errors import BpttError
from bptt.models.frames import FrameClassifier, FramePool, FrameTagger
from bptt.models.sequence import SequenceBatch

LENGTHS = (5, 2, 4)  # padded to T = 5
P = 64  # pixels per frame: 8 x 8


def _batch(tags=False, seed=1):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 256, size=(n, P)).astype(np.uint8) for n in LENGTHS]
    inputs, mask = pad_sequences(seqs)  # (B, T, P), (B, T)
    targets = rng.integers(0, 3, size=mask.shape) if tags else np.array([0, 2, 1])
    return SequenceBatch(inputs, mask, targets)


# A small step: a rectifier's kink within 1e-4 of zero spoils a wider difference.
EPS = 1e-5  # and 1e-4 relative error: round-off in the small recurrent gradients


def _kwargs(seed=0):
    return {"hidden_size": 5, "dtype": np.float64, "rng": np.random.default_rng(seed)}


@pytest.mark.parametrize("encoder", ["linear", "band", "conv"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_classifier_gradients_match_finite_differences(pooling, encoder):
    model = FrameClassifier(3, P, 6, pooling, encoder, **_kwargs())
    errors = gradcheck_model(model, _batch(), eps=EPS, directions=4)
    assert set(errors) == set(model.params) and "frames.weight" in errors
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("encoder", ["linear", "band", "conv"])
def test_tagger_gradients_match_finite_differences(encoder):
    model = FrameTagger(3, P, 6, encoder, **_kwargs())
    errors = gradcheck_model(model, _batch(tags=True), eps=EPS, directions=4)
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("encoder", ["linear", "band", "conv"])
@pytest.mark.parametrize("pool", ["mean", "middle"])
def test_baseline_gradients_match_finite_differences(pool, encoder):
    rng = np.random.default_rng(0)
    model = FramePool(3, P, 6, 5, pool, encoder, dtype=np.float64, rng=rng)
    errors = gradcheck_model(model, _batch(), eps=EPS, directions=4)
    layers = ("conv1", "conv2") * (encoder == "conv") + ("frames", "hidden", "head")
    assert set(errors) == {f"{n}.{k}" for n in layers for k in ("weight", "bias")}
    assert max(errors.values()) < 1e-4, errors


def test_the_averaged_frames_ignore_order_and_the_recurrent_model_does_not():
    batch = _batch()
    flipped = batch.inputs.copy()
    for b, n in enumerate(LENGTHS):
        flipped[b, :n] = batch.inputs[b, :n][::-1]
    pool = FramePool(3, P, 6, 5, "mean", dtype=np.float64, rng=np.random.default_rng(0))
    blind = pool.predict_proba(batch.inputs, batch.mask)  # (B, C)
    np.testing.assert_allclose(pool.predict_proba(flipped, batch.mask), blind, rtol=1e-12)
    lstm = FrameClassifier(3, P, 6, "last", **_kwargs())
    moved = np.abs(
        lstm.predict_proba(flipped, batch.mask) - lstm.predict_proba(batch.inputs, batch.mask)
    )
    assert moved.max() > 1e-4


def test_the_middle_frame_alone_decides():
    batch = _batch()
    model = FramePool(3, P, 6, 5, "middle", dtype=np.float64, rng=np.random.default_rng(0))
    changed = batch.inputs.copy()
    changed[0, 0] = 255 - changed[0, 0]  # not the middle frame (2) of row 0 (5 frames)
    np.testing.assert_array_equal(
        model.predict_proba(changed, batch.mask), model.predict_proba(batch.inputs, batch.mask)
    )
    changed[0, 2] = 255 - changed[0, 2]
    assert not np.allclose(
        model.predict_proba(changed, batch.mask)[0],
        model.predict_proba(batch.inputs, batch.mask)[0],
    )


def test_frames_of_the_wrong_size_are_refused():
    model = FrameClassifier(3, P, 6, **_kwargs())
    with pytest.raises(BpttError, match=r"frames \(B, T, 64\) of pixels; got shape \(1, 4, 10\)"):
        model.predict_proba(np.zeros((1, 4, 10)), np.ones((1, 4), bool))
    with pytest.raises(BpttError, match="pool must be one of mean, middle"):
        FramePool(3, P, 6, 5, "max")
    with pytest.raises(BpttError, match="band encoder reads square frames; got 12 pixels"):
        FrameClassifier(3, 12, 6, encoder="band", **_kwargs())
    with pytest.raises(BpttError, match="side divisible by 4; got 12 pixels"):
        FrameClassifier(3, 12, 6, encoder="conv", **_kwargs())
