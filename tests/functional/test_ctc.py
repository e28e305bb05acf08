"""CTC: the loss against its definition (every path), finite differences, PyTorch's
ctc_loss (values and gradients), lengths, impossible alignments and bad input."""

import itertools

import numpy as np
import pytest

from bptt.diagnostics import gradcheck
from bptt.errors import BpttError
from bptt.functional.activations import log_softmax
from bptt.functional.ctc import (
    ctc_backward,
    ctc_collapse,
    ctc_forward,
    ctc_loss,
    ctc_min_frames,
)

# Targets (padded with 0) chosen to cover repeats, a blank forced between repeats,
# one label, an empty target and a run of three: with their input lengths.
TARGETS = [[1, 1, 2, 0], [1, 2, 3, 2], [4, 0, 0, 0], [0, 0, 0, 0], [3, 3, 3, 0], [2, 1, 2, 1]]
TARGET_LENGTHS = [3, 4, 1, 0, 3, 4]
INPUT_LENGTHS = [9, 4, 1, 5, 7, 9]  # [1, 2, 3, 2] in exactly 4 frames; T=1 for [4]


def _case(seed=0, B=6, T=9, C=5):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((B, T, C)) * 1.5  # (B, T, C)
    return logits, np.array(TARGETS), np.array(INPUT_LENGTHS), np.array(TARGET_LENGTHS)


def _collapse(path, blank=0):
    out, prev = [], None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def test_loss_is_the_sum_over_every_path_that_reads_as_the_target():
    """P(l|x) = Σ_{π: B(π) = l} Π_t y_t(π_t), by enumerating all C^T paths (T=5, C=3)."""
    rng = np.random.default_rng(1)
    lp = log_softmax(rng.standard_normal((1, 5, 3)))  # (1, T, C)
    for target in ([1, 1], [1, 2], [2], [], [1, 2, 1], [2, 2, 2]):
        total = sum(
            np.exp(sum(lp[0, t, c] for t, c in enumerate(path)))
            for path in itertools.product(range(3), repeat=5)
            if _collapse(path) == target
        )
        nll, _ = ctc_forward(lp, np.array([target + [0] * 3]), [5], [len(target)])
        assert nll[0] == pytest.approx(-np.log(total), rel=1e-12, abs=1e-12), target


def test_gradient_wrt_log_probs_matches_finite_differences():
    """∂(Σ_b d_b E_b)/∂lp = -d_b γ for ANY lp (not normalised), centered differences."""
    logits, targets, T_b, L_b = _case(2)
    lp = logits.copy()  # unnormalised on purpose: the partial derivative holds anyway
    d = np.random.default_rng(3).standard_normal(lp.shape[0])  # (B,) upstream
    _, cache = ctc_forward(lp, targets, T_b, L_b)
    analytic = ctc_backward(d, cache, wrt="log_probs")  # (B, T, C)

    def loss():
        return float(np.dot(d, ctc_forward(lp, targets, T_b, L_b)[0]))

    err = gradcheck(loss, {"lp": lp}, {"lp": analytic})["lp"]
    assert err < 1e-6, f"relative error {err:.2e}"


def test_gradient_wrt_logits_matches_finite_differences():
    """With lp = log_softmax(z): ∂E/∂z = exp(lp) - γ, mean reduction."""
    z, targets, T_b, L_b = _case(4)
    _, analytic = ctc_loss(log_softmax(z), targets, T_b, L_b, reduction="mean", wrt="logits")

    def loss():
        return ctc_loss(log_softmax(z), targets, T_b, L_b, reduction="mean")[0]

    err = gradcheck(loss, {"z": z}, {"z": analytic}, max_checks_per_param=80)["z"]
    assert err < 1e-6, f"relative error {err:.2e}"


def _torch_ctc(z, targets, T_b, L_b, blank=0, reduction="mean", zero_infinity=False):
    """torch's ctc_loss of log_softmax(z); returns the loss, ∂/∂z and ∂/∂log_probs."""
    torch = pytest.importorskip("torch")
    zt = torch.tensor(z, requires_grad=True)
    lp = zt.log_softmax(-1)
    lp.retain_grad()
    loss = torch.nn.functional.ctc_loss(
        lp.transpose(0, 1),  # torch reads (T, B, C)
        torch.as_tensor(targets),
        torch.as_tensor(T_b),
        torch.as_tensor(L_b),
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
    )
    loss.sum().backward()
    return loss.detach().numpy(), zt.grad.numpy(), lp.grad.numpy()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_gradient_equal_torch(reduction, seed):
    z, targets, T_b, L_b = _case(seed)
    loss, grad = ctc_loss(log_softmax(z), targets, T_b, L_b, reduction=reduction, wrt="logits")
    ref, ref_dz, ref_dlp = _torch_ctc(z, targets, T_b, L_b, reduction=reduction)
    np.testing.assert_allclose(loss, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad, ref_dz, rtol=0, atol=1e-10)
    # PyTorch stores softmax - occupancy as the gradient of log_probs itself.
    np.testing.assert_allclose(grad, ref_dlp, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_random_sizes_equal_torch(seed):
    """Random B, T, C, lengths and labels (repeats likely with C=3), another blank index."""
    rng = np.random.default_rng(100 + seed)
    B, T, C = int(rng.integers(1, 5)), int(rng.integers(1, 30)), int(rng.integers(2, 6))
    blank = int(rng.integers(0, C))
    labels = [c for c in range(C) if c != blank]
    T_b = rng.integers(1, T + 1, size=B)  # (B,)
    T_b[0] = T
    L_b = np.array([rng.integers(0, max(1, t // 2) + 1) for t in T_b])  # (B,)
    targets = rng.choice(labels, size=(B, max(1, L_b.max())))  # (B, S)
    z = rng.standard_normal((B, T, C)) * 2.0  # (B, T, C)
    loss, grad = ctc_loss(log_softmax(z), targets, T_b, L_b, blank, "none", wrt="logits")
    ref, ref_dz, _ = _torch_ctc(z, targets, T_b, L_b, blank, "none")
    np.testing.assert_allclose(loss, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad, ref_dz, rtol=0, atol=1e-10)


def test_concatenated_targets_as_torch_accepts_them():
    z, targets, T_b, L_b = _case(5)
    flat = np.concatenate([t[:n] for t, n in zip(targets, L_b, strict=True)])  # (ΣL,)
    a = ctc_loss(log_softmax(z), flat, T_b, L_b, reduction="none")
    b = ctc_loss(log_softmax(z), targets, T_b, L_b, reduction="none")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], _torch_ctc(z, flat, T_b, L_b, reduction="none")[0], 0, 1e-10)


def test_occupancy_sums_to_one_at_real_frames_and_padding_is_ignored():
    z, targets, T_b, L_b = _case(6)
    lp = log_softmax(z)  # (B, T, C)
    nll, grad = ctc_loss(lp, targets, T_b, L_b, reduction="none")  # grad = -γ
    frame = np.arange(lp.shape[1])[None, :] < T_b[:, None]  # (B, T)
    np.testing.assert_allclose(-grad.sum(-1)[frame], 1.0, rtol=0, atol=1e-12)
    assert (grad[~frame] == 0).all()
    lp[~frame] = np.nan  # garbage after each input's end changes nothing
    again, grad2 = ctc_loss(lp, targets, T_b, L_b, reduction="none")
    np.testing.assert_array_equal(again, nll)
    np.testing.assert_array_equal(grad2, grad)


def test_collapse_merges_repeats_then_drops_blanks():
    """B(a a ∅ a b b) = a a b; with another blank index the 0s are labels."""
    assert ctc_collapse([1, 1, 0, 1, 2, 2]).tolist() == [1, 1, 2]
    assert ctc_collapse([0, 0]).tolist() == []
    assert ctc_collapse([1, 1, 0, 1, 2, 2], blank=2).tolist() == [1, 0, 1]
    assert ctc_collapse(np.zeros(0, dtype=int)).tolist() == []
    with pytest.raises(BpttError, match=r"one class per frame \(T,\)"):
        ctc_collapse(np.zeros((2, 2), dtype=int))


def test_min_frames_counts_a_blank_between_repeats():
    targets = np.array([[1, 1, 2], [3, 3, 3], [1, 2, 3], [0, 0, 0]])
    np.testing.assert_array_equal(ctc_min_frames(targets, [3, 3, 3, 0]), [4, 5, 3, 0])


@pytest.mark.parametrize("target", [[1, 1, 2], [2, 2, 2], [1, 2]])
def test_too_few_frames_give_inf_zero_gradient_and_zero_infinity(target):
    """One frame fewer than L + repeats: no path (inf, as torch); exactly enough: finite."""
    need = int(ctc_min_frames(np.array([target]), [len(target)])[0])
    z = np.random.default_rng(7).standard_normal((2, need, 4))  # (B, T, C)
    targets, L_b = np.array([target, target]), np.array([len(target)] * 2)
    T_b = np.array([need, need - 1])
    nll, grad = ctc_loss(log_softmax(z), targets, T_b, L_b, reduction="none", wrt="logits")
    assert np.isfinite(nll[0]) and nll[1] == np.inf
    assert np.isfinite(grad).all() and (grad[1] == 0).all() and (grad[0] != 0).any()
    zeroed, grad0 = ctc_loss(log_softmax(z), targets, T_b, L_b, 0, "none", True, "logits")
    ref, ref_dz, _ = _torch_ctc(z, targets, T_b, L_b, reduction="none", zero_infinity=True)
    assert zeroed[1] == 0.0
    np.testing.assert_allclose(zeroed, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(grad0, ref_dz, rtol=0, atol=1e-10)


def test_float32_in_float32_out_close_to_float64():
    z, targets, T_b, L_b = _case(8)
    lp = log_softmax(z)
    l64, g64 = ctc_loss(lp, targets, T_b, L_b, reduction="none")
    l32, g32 = ctc_loss(lp.astype(np.float32), targets, T_b, L_b, reduction="none")
    assert g32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": np.array([[1, 0]]), "target_lengths": [2]}, "not the blank"),
        ({"targets": np.array([[1, 5]]), "target_lengths": [2]}, r"targets\[0\]\[1\] = 5"),
        ({"input_lengths": [4]}, r"input_lengths\[0\] = 4 is outside \[1, 3\]"),
        ({"input_lengths": [0]}, r"outside \[1, 3\]"),
        ({"target_lengths": [3]}, "exceeds the 2 columns"),
        ({"targets": np.array([1, 2, 3])}, "2 labels"),
        ({"blank": 5}, r"blank must be a class index in \[0, 5\)"),
        ({"log_probs": np.zeros((3, 5))}, r"\(B, T, C\)"),
        ({"targets": np.array([[1.0, 2.0]])}, "integer"),
    ],
)
def test_bad_input_names_what_was_expected(kwargs, message):
    args = {
        "log_probs": np.zeros((1, 3, 5)),
        "targets": np.array([[1, 2]]),
        "input_lengths": [3],
        "target_lengths": [2],
    } | kwargs
    with pytest.raises(BpttError, match=message):
        ctc_forward(**args)


def test_unknown_reduction_and_wrt_are_refused():
    z, targets, T_b, L_b = _case()
    with pytest.raises(BpttError, match="reduction must be one of none, sum, mean"):
        ctc_loss(z, targets, T_b, L_b, reduction="avg")
    with pytest.raises(BpttError, match="wrt must be one of log_probs, logits"):
        ctc_loss(z, targets, T_b, L_b, wrt="z")
