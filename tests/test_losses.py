"""Masked softmax cross-entropy: PyTorch parity, finite differences, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bptt.errors import BpttError
from bptt.losses import cross_entropy

B, T, V = 3, 5, 7


def _data(rng, shape=(B, T, V), dtype=np.float64):
    logits = rng.standard_normal(shape).astype(dtype)  # (B, T, V) or (B, V)
    targets = rng.integers(0, shape[-1], size=shape[:-1])  # (B, T) or (B,)
    return logits, targets


def _torch_loss_and_grad(logits, targets, mask, reduction, label_smoothing=0.0):
    """The same loss through torch autograd; masked targets become ignore_index."""
    z = torch.tensor(logits, requires_grad=True)
    y = torch.tensor(np.where(mask, targets, -100) if mask is not None else targets)
    loss = F.cross_entropy(
        z.reshape(-1, z.shape[-1]),
        y.reshape(-1),
        ignore_index=-100,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    loss.backward()
    return loss.item(), z.grad.numpy()


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_torch_float64(reduction, masked):
    rng = np.random.default_rng(0)
    logits, targets = _data(rng)
    mask = None
    if masked:
        mask = rng.random((B, T)) < 0.6  # (B, T)
        mask[:, 0] = True  # at least one real token per row
        targets = np.where(mask, targets, 99)  # pad index out of range: must be ignored
    loss, d = cross_entropy(logits, targets, mask, reduction=reduction)
    ref_loss, ref_d = _torch_loss_and_grad(logits, targets, mask, reduction)
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(d, ref_d, rtol=1e-12, atol=1e-12)
    if masked:
        assert np.all(d[~mask] == 0.0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("eps", [0.1, 0.6])
def test_label_smoothing_matches_torch_float64(reduction, eps):
    rng = np.random.default_rng(3)
    logits, targets = _data(rng)
    mask = rng.random((B, T)) < 0.6  # (B, T)
    mask[:, 0] = True
    loss, d = cross_entropy(logits, targets, mask, reduction=reduction, label_smoothing=eps)
    ref_loss, ref_d = _torch_loss_and_grad(logits, targets, mask, reduction, eps)
    assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(d, ref_d, rtol=1e-12, atol=1e-12)
    assert np.all(d[~mask] == 0.0)
    plain, _ = cross_entropy(logits, targets, mask, reduction=reduction)
    assert loss != pytest.approx(plain, rel=1e-3)  # the smoothing is at work


@pytest.mark.parametrize("eps", [-0.1, 1.0, 2.0])
def test_label_smoothing_outside_zero_one_is_refused(eps):
    rng = np.random.default_rng(4)
    logits, targets = _data(rng)
    with pytest.raises(BpttError, match=r"label_smoothing must be in \[0, 1\)"):
        cross_entropy(logits, targets, label_smoothing=eps)


def test_two_dimensional_logits_match_torch():
    rng = np.random.default_rng(1)
    logits, targets = _data(rng, shape=(4, V))
    loss, d = cross_entropy(logits, targets, reduction="mean")
    ref_loss, ref_d = _torch_loss_and_grad(logits, targets, None, "mean")
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(d, ref_d, rtol=1e-12, atol=1e-12)


def test_mean_batch_is_sum_over_batch_size():
    rng = np.random.default_rng(2)
    logits, targets = _data(rng)
    mask = rng.random((B, T)) < 0.5  # (B, T)
    s, d_s = cross_entropy(logits, targets, mask, reduction="sum")
    m, d_m = cross_entropy(logits, targets, mask, reduction="mean_batch")
    assert m == pytest.approx(s / B, rel=1e-14)
    np.testing.assert_allclose(d_m, d_s / B, rtol=1e-14)


@pytest.mark.parametrize("reduction", ["sum", "mean", "mean_batch"])
def test_gradient_matches_finite_differences(reduction):
    rng = np.random.default_rng(3)
    logits, targets = _data(rng)
    mask = rng.random((B, T)) < 0.7  # (B, T)
    _, d = cross_entropy(logits, targets, mask, reduction=reduction)
    eps = 1e-6
    num = np.zeros_like(logits)  # (B, T, V)
    for idx in np.ndindex(logits.shape):
        orig = logits[idx]
        logits[idx] = orig + eps
        lp, _ = cross_entropy(logits, targets, mask, reduction=reduction)
        logits[idx] = orig - eps
        lm, _ = cross_entropy(logits, targets, mask, reduction=reduction)
        logits[idx] = orig
        num[idx] = (lp - lm) / (2 * eps)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


def test_padding_changes_nothing_and_gets_zero_gradient():
    rng = np.random.default_rng(4)
    logits, targets = _data(rng)
    mask = np.ones((B, T), dtype=bool)  # (B, T)
    mask[1, 3:] = False
    loss, d = cross_entropy(logits, targets, mask)
    logits2 = logits.copy()  # (B, T, V)
    logits2[1, 3:] = 1e3  # garbage at padded steps
    loss2, d2 = cross_entropy(logits2, targets, mask)
    assert loss == loss2
    np.testing.assert_array_equal(d, d2)
    assert np.all(d[1, 3:] == 0.0)


def test_all_masked_mean_is_zero():
    rng = np.random.default_rng(5)
    logits, targets = _data(rng)
    loss, d = cross_entropy(logits, targets, np.zeros((B, T), dtype=bool), reduction="mean")
    assert loss == 0.0
    assert not d.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_stay_finite(dtype):
    logits = np.array([[[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]], dtype=dtype)  # (1, 2, 3)
    targets = np.array([[1, 0]])  # (1, 2) the wrong class, by a margin of 2e4
    loss, d = cross_entropy(logits, targets)
    assert np.isfinite(loss)
    assert loss == pytest.approx(2e4 + 2e4 + np.log(2), rel=1e-6)
    assert d.dtype == dtype
    assert np.all(np.isfinite(d))
    ref_loss, ref_d = _torch_loss_and_grad(logits.astype(np.float64), targets, None, "sum")
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(d, ref_d, atol=1e-6)


def test_float32_keeps_dtype_and_is_close_to_float64():
    rng = np.random.default_rng(6)
    logits, targets = _data(rng)
    l64, d64 = cross_entropy(logits, targets)
    l32, d32 = cross_entropy(logits.astype(np.float32), targets)
    assert d32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    np.testing.assert_allclose(d32, d64, atol=1e-6)


def test_target_out_of_range_names_value_and_vocabulary():
    rng = np.random.default_rng(7)
    logits, targets = _data(rng)
    targets[2, 1] = V
    with pytest.raises(BpttError, match=rf"target {V} at position \(2, 1\).*\[0, {V}\)"):
        cross_entropy(logits, targets)
    targets[2, 1] = -1
    with pytest.raises(BpttError, match=r"target -1"):
        cross_entropy(logits, targets)


@pytest.mark.parametrize(
    ("logits_shape", "targets_shape", "mask_shape", "message"),
    [
        ((B, T, V), (B, T + 1), None, "targets have shape"),
        ((B, T, V), (B, T), (B, T - 1), "mask has shape"),
        ((B, T, 2, V), (B, T, 2), None, "logits must be"),
    ],
)
def test_shape_mismatch_raises(logits_shape, targets_shape, mask_shape, message):
    logits = np.zeros(logits_shape)
    targets = np.zeros(targets_shape, dtype=np.int64)
    mask = None if mask_shape is None else np.ones(mask_shape, dtype=bool)
    with pytest.raises(BpttError, match=message):
        cross_entropy(logits, targets, mask)


def test_bad_types_and_reduction_raise():
    logits = np.zeros((B, T, V))
    targets = np.zeros((B, T), dtype=np.int64)
    with pytest.raises(BpttError, match="integer"):
        cross_entropy(logits, targets.astype(np.float64))
    with pytest.raises(BpttError, match="boolean"):
        cross_entropy(logits, targets, np.ones((B, T), dtype=np.int64))
    with pytest.raises(BpttError, match="reduction"):
        cross_entropy(logits, targets, reduction="avg")
