"""The linear-chain CRF: log-likelihood, gradients and Viterbi against an independent
PyTorch autograd implementation (float64, 1e-10), centered finite differences, and a
brute-force search over every path of short sequences."""

import itertools

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.functional.crf import (
    bio_constraints,
    crf_backward,
    crf_forward,
    crf_marginals,
    viterbi,
)

torch = pytest.importorskip("torch")


def _problem(B, T, C, seed):
    """Random emissions, tags, a prefix mask of random lengths (one row full), and scores."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((B, T, C))  # (B, T, C)
    lengths = rng.integers(1, T + 1, size=B)  # (B,)
    lengths[0] = T
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    tags = rng.integers(0, C, size=(B, T))  # (B, T)
    A, a, z = rng.standard_normal((C, C)), rng.standard_normal(C), rng.standard_normal(C)
    return e, tags, mask, A, a, z


def _torch_nll(e, tags, lengths, A, a, z):
    """E_b = log Z - s(y) row by row, written from the definition with torch ops."""
    out = []
    for b in range(e.shape[0]):
        L = int(lengths[b])
        y = tags[b, :L]
        score = a[y[0]] + z[y[L - 1]] + e[b, torch.arange(L), y].sum()
        if L > 1:
            score = score + A[y[:-1], y[1:]].sum()
        alpha = a + e[b, 0]  # (C,)
        for t in range(1, L):
            alpha = e[b, t] + torch.logsumexp(alpha[:, None] + A, dim=0)
        out.append(torch.logsumexp(alpha + z, dim=0) - score)
    return torch.stack(out)


def _torch_viterbi(e, lengths, A, a, z):
    paths = []
    for b in range(e.shape[0]):
        L = int(lengths[b])
        delta, back = a + e[b, 0], []
        for t in range(1, L):
            cand = delta[:, None] + A  # (C, C)
            best, arg = cand.max(dim=0)
            back.append(arg)
            delta = e[b, t] + best
        tag = int(torch.argmax(delta + z))
        path = [tag]
        for arg in reversed(back):
            tag = int(arg[tag])
            path.append(tag)
        paths.append(path[::-1])
    return paths


@pytest.mark.parametrize(
    ("B", "T", "C", "seed"), [(1, 1, 3, 0), (4, 6, 5, 1), (7, 9, 4, 2), (3, 12, 9, 3), (5, 2, 2, 4)]
)
def test_nll_gradients_and_viterbi_equal_torch(B, T, C, seed):
    e, tags, mask, A, a, z = _problem(B, T, C, seed)
    rng = np.random.default_rng(seed + 100)
    d_loss = rng.standard_normal(B)  # (B,) a random upstream gradient
    loss, cache = crf_forward(e, tags, mask, A, a, z)
    grads = crf_backward(d_loss, cache)

    te, tA, ta, tz = (torch.tensor(v, requires_grad=True) for v in (e, A, a, z))
    lengths = mask.sum(1)
    t_loss = _torch_nll(te, torch.tensor(tags), lengths, tA, ta, tz)
    (t_loss * torch.tensor(d_loss)).sum().backward()
    np.testing.assert_allclose(loss, t_loss.detach().numpy(), rtol=0, atol=1e-10)
    for name, t in (("emissions", te), ("transitions", tA), ("start", ta), ("end", tz)):
        want = np.zeros_like(grads[name]) if t.grad is None else t.grad.numpy()  # T = 1: no A
        diff = np.abs(grads[name] - want).max()
        assert diff < 1e-10, f"{name}: max difference {diff:.2e} from torch autograd"
    assert (grads["emissions"][~mask] == 0).all()

    ours = viterbi(e, mask, A, a, z)
    theirs = _torch_viterbi(
        torch.tensor(e), lengths, torch.tensor(A), torch.tensor(a), torch.tensor(z)
    )
    for b in range(B):
        assert list(ours[b, : lengths[b]]) == theirs[b], f"row {b}"
    assert (ours[~mask] == 0).all()


def test_gradients_equal_centered_differences():
    e, tags, mask, A, a, z = _problem(3, 5, 4, 7)
    d_loss = np.random.default_rng(8).standard_normal(3)  # (B,)
    _, cache = crf_forward(e, tags, mask, A, a, z)
    grads = crf_backward(d_loss, cache)
    params = {"emissions": e, "transitions": A, "start": a, "end": z}
    h = 1e-6
    for name, p in params.items():
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            plus = crf_forward(e, tags, mask, A, a, z)[0] @ d_loss
            p[i] = old - h
            minus = crf_forward(e, tags, mask, A, a, z)[0] @ d_loss
            p[i] = old
            num[i] = (plus - minus) / (2 * h)
        err = np.abs(num - grads[name]).max()
        assert err < 1e-6, f"{name}: finite differences differ by {err:.2e}"


def _brute_force(e_row, A, a, z, allowed=None, allowed_start=None):
    """Score of every path of one row; the best (allowed) one."""
    L, C = e_row.shape
    best, best_path, scores = -np.inf, None, []
    for path in itertools.product(range(C), repeat=L):
        s = a[path[0]] + e_row[np.arange(L), path].sum() + z[path[-1]]
        s += sum(A[i, j] for i, j in itertools.pairwise(path))
        scores.append(s)
        ok = allowed_start is None or allowed_start[path[0]]
        ok = ok and (allowed is None or all(allowed[i, j] for i, j in itertools.pairwise(path)))
        if ok and s > best:
            best, best_path = s, list(path)
    return best_path, np.array(scores)


def test_viterbi_and_likelihood_equal_brute_force_over_all_paths():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, allowed_start = bio_constraints(labels)
    for seed in range(6):
        e, tags, mask, A, a, z = _problem(3, 4, 5, seed)
        paths = viterbi(e, mask, A, a, z)
        bio = viterbi(e, mask, A, a, z, allowed, allowed_start)
        nll, _ = crf_forward(e, tags, mask, A, a, z)
        for b in range(3):
            L = int(mask[b].sum())
            best, scores = _brute_force(e[b, :L], A, a, z)
            assert list(paths[b, :L]) == best
            # E = log Z - s(y), Z the sum over all C^L paths
            y = tags[b, :L]
            gold = a[y[0]] + e[b, np.arange(L), y].sum() + z[y[-1]]
            gold += sum(A[i, j] for i, j in itertools.pairwise(y))
            assert nll[b] == pytest.approx(np.logaddexp.reduce(scores) - gold, abs=1e-10)
            best_bio, _ = _brute_force(e[b, :L], A, a, z, allowed, allowed_start)
            assert list(bio[b, :L]) == best_bio


def test_marginals_sum_to_one_and_padding_changes_nothing():
    e, tags, mask, A, a, z = _problem(4, 6, 3, 5)
    gamma = crf_marginals(e, mask, A, a, z)  # (B, T, C)
    np.testing.assert_allclose(gamma.sum(-1), mask.astype(float), atol=1e-12)
    # A row padded with garbage gives the same loss as the row alone.
    e2 = e.copy()
    e2[~mask] = 1e3
    np.testing.assert_array_equal(
        crf_forward(e2, tags, mask, A, a, z)[0], crf_forward(e, tags, mask, A, a, z)[0]
    )
    np.testing.assert_array_equal(viterbi(e2, mask, A, a, z), viterbi(e, mask, A, a, z))


def test_bio_constraints_forbid_i_after_o_and_at_the_start():
    allowed, start = bio_constraints(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert not allowed[0, 2] and not allowed[3, 2] and allowed[1, 2] and allowed[2, 2]
    assert allowed[2, 0] and allowed[0, 3] and not allowed[1, 4]
    assert list(start) == [True, True, False, True, False]


def test_bad_input_is_named():
    e, tags, mask, A, a, z = _problem(2, 3, 4, 0)
    with pytest.raises(BpttError, match=r"transitions must be \(C, C\)"):
        crf_forward(e, tags, mask, A[:3], a, z)
    with pytest.raises(BpttError, match="first L_b steps"):
        crf_forward(e, tags, np.array([[True, False, True], [True, True, True]]), A, a, z)
    with pytest.raises(BpttError, match=r"tags must lie in \[0, 4\)"):
        crf_forward(e, np.full((2, 3), 4), mask, A, a, z)
