"""Convolution: every gradient against finite differences, the forward pass against
PyTorch's conv2d."""

import numpy as np
import pytest

from bptt.diagnostics.gradcheck import numeric_gradient, relative_error
from bptt.errors import BpttError
from bptt.functional.conv import conv1d_backward, conv1d_forward, conv2d_backward, conv2d_forward
from bptt.nn import Conv1d, Conv2d


@pytest.mark.parametrize(("channels", "k", "s"), [(1, 5, 1), (3, 3, 1), (2, 1, 1), (2, 5, 2)])
def test_conv_gradients_match_finite_differences(channels, k, s):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4, channels))  # (N, H, W, C)
    w, b = rng.standard_normal((3, channels, k, k)), rng.standard_normal(3)
    d_y = rng.standard_normal((2, 6 // s, 4 // s, 3))  # (N, H', W', O) a random upstream gradient

    def loss():
        return float((conv2d_forward(x, w, b, (k - 1) // 2, s)[0] * d_y).sum())

    _, cache = conv2d_forward(x, w, b, (k - 1) // 2, s)
    d_x, grads = conv2d_backward(d_y, cache)
    for analytic, arr in ((d_x, x), (grads["weight"], w), (grads["bias"], b)):
        assert relative_error(analytic, numeric_gradient(loss, arr)) < 1e-8


@pytest.mark.parametrize(("k", "s"), [(3, 1), (5, 2)])
def test_forward_matches_torch(k, s):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = Conv2d(2, 4, k, stride=s, dtype=np.float64, rng=rng)
    x = rng.standard_normal((3, 8, 12, 2))  # (N, H, W, C)
    ours = layer.forward(x)  # (N, 8/s, 12/s, O)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())  # (N, C, H, W)
    w, b = (torch.from_numpy(layer.params[k]) for k in ("weight", "bias"))
    conv = torch.nn.functional.conv2d(tx, w, b, padding=(k - 1) // 2, stride=s)  # (N, O, H', W')
    theirs = conv.numpy().transpose(0, 2, 3, 1)  # (N, H', W', O)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_bad_shapes_are_refused():
    with pytest.raises(BpttError, match="kernel_size must be odd"):
        Conv2d(1, 2, 4)
    with pytest.raises(BpttError, match=r"reads images \(N, H, W, 2\); got shape \(3, 4, 4\)"):
        Conv2d(2, 2, 3).forward(np.zeros((3, 4, 4)))


@pytest.mark.parametrize(("channels", "k"), [(1, 3), (3, 5), (2, 1)])
def test_conv1d_gradients_match_finite_differences(channels, k):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7, channels))  # (N, W, C)
    w, b = rng.standard_normal((4, channels, k)), rng.standard_normal(4)
    d_y = rng.standard_normal((3, 7, 4))  # (N, W, O) a random upstream gradient

    def loss():
        return float((conv1d_forward(x, w, b, (k - 1) // 2)[0] * d_y).sum())

    _, cache = conv1d_forward(x, w, b, (k - 1) // 2)
    d_x, grads = conv1d_backward(d_y, cache)
    for analytic, arr in ((d_x, x), (grads["weight"], w), (grads["bias"], b)):
        assert relative_error(analytic, numeric_gradient(loss, arr)) < 1e-8


def test_conv1d_forward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = Conv1d(3, 5, 3, dtype=np.float64, rng=rng)
    x = rng.standard_normal((4, 9, 3))  # (N, W, C)
    tx = torch.from_numpy(x.transpose(0, 2, 1).copy())  # (N, C, W)
    w, b = (torch.from_numpy(layer.params[k]) for k in ("weight", "bias"))
    theirs = torch.nn.functional.conv1d(tx, w, b, padding=1).numpy().transpose(0, 2, 1)
    np.testing.assert_allclose(layer.forward(x), theirs, rtol=1e-10, atol=1e-12)
    with pytest.raises(BpttError, match="kernel_size must be odd"):
        Conv1d(1, 2, 2)
    with pytest.raises(BpttError, match=r"reads sequences \(N, W, 3\); got shape \(4, 9\)"):
        layer.forward(np.zeros((4, 9)))
