"""CTC decoding: best path and prefix beam search on tables whose answers are known."""

import itertools
from collections import defaultdict

import numpy as np
import pytest

from bptt.decode import ctc_greedy, ctc_prefix_beam_search
from bptt.errors import BpttError
from bptt.functional.activations import log_softmax
from bptt.functional.ctc import ctc_forward


def _table(rows):
    """Per-frame probabilities (T, C) -> log-probabilities (1, T, C)."""
    return np.log(np.array(rows, dtype=np.float64))[None]


def _all_labellings(lp, blank=0):
    """{labelling: P(labelling | x)} by summing over every path of lp (T, C)."""
    T, C = lp.shape
    probs = defaultdict(float)
    for path in itertools.product(range(C), repeat=T):
        label, prev = [], None
        for c in path:
            if c != prev and c != blank:
                label.append(c)
            prev = c
        probs[tuple(label)] += np.exp(sum(lp[t, c] for t, c in enumerate(path)))
    return probs


def test_greedy_merges_repeats_then_drops_blanks():
    #        frame argmax:  1    1    0    1    2    2    0    2
    rows = np.full((8, 3), 0.1)
    for t, c in enumerate([1, 1, 0, 1, 2, 2, 0, 2]):
        rows[t, c] = 0.8
    lp = _table(rows / rows.sum(1, keepdims=True))
    assert ctc_greedy(lp)[0].tolist() == [1, 1, 2, 2]
    assert ctc_greedy(lp, lengths=[4])[0].tolist() == [1, 1]  # frames after 4 ignored
    assert ctc_greedy(lp, blank=2)[0].tolist() == [1, 0, 1, 0]  # another blank


def test_prefix_beam_beats_greedy_when_paths_share_a_labelling():
    """Two frames, P(∅) = 0.6 each: the best path ∅∅ reads as "" (0.36), but the
    paths a a, a ∅, ∅ a all read as "a": 0.16 + 0.24 + 0.24 = 0.64."""
    lp = _table([[0.6, 0.4], [0.6, 0.4]])
    assert ctc_greedy(lp)[0].tolist() == []
    ids, scores = ctc_prefix_beam_search(lp, beam_width=4)
    assert ids[0].tolist() == [1]
    assert scores[0] == pytest.approx(np.log(0.64), abs=1e-12)


def test_repeat_needs_a_blank_between():
    """a ∅ a reads as "a a", a a as "a"; the search must keep them apart."""
    lp = _table([[0.1, 0.9], [0.8, 0.2], [0.1, 0.9]])
    probs = _all_labellings(lp[0])
    ids, scores = ctc_prefix_beam_search(lp, beam_width=10)
    best = max(probs, key=probs.get)
    assert best == (1, 1)
    assert tuple(ids[0]) == best
    assert scores[0] == pytest.approx(np.log(probs[best]), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_wide_beam_finds_the_most_likely_labelling_with_its_exact_probability(seed):
    """Without pruning the search is exact: it agrees with enumerating all C^T paths,
    and its score is -E of the CTC loss for that labelling."""
    rng = np.random.default_rng(seed)
    lp = log_softmax(rng.standard_normal((1, 6, 3)) * 1.5)  # (1, T, C)
    probs = _all_labellings(lp[0])
    best = max(probs, key=probs.get)
    ids, scores = ctc_prefix_beam_search(lp, beam_width=1000)
    assert tuple(ids[0]) == best
    assert scores[0] == pytest.approx(np.log(probs[best]), abs=1e-12)
    nll, _ = ctc_forward(lp, ids[0][None] if len(best) else np.zeros((1, 0), int), [6], [len(best)])
    assert scores[0] == pytest.approx(-nll[0], abs=1e-12)


def test_batch_with_lengths_equals_one_at_a_time():
    rng = np.random.default_rng(4)
    lp = log_softmax(rng.standard_normal((3, 9, 4)) * 2)  # (B, T, C)
    lengths = np.array([9, 4, 1])
    ids, scores = ctc_prefix_beam_search(lp, lengths, beam_width=5)
    greedy = ctc_greedy(lp, lengths)
    for b, n in enumerate(lengths):
        one, s = ctc_prefix_beam_search(lp[b : b + 1, :n], beam_width=5)
        assert one[0].tolist() == ids[b].tolist() and s[0] == scores[b]
        assert greedy[b].tolist() == ctc_greedy(lp[b : b + 1, :n])[0].tolist()


def test_peaked_frames_beam_and_greedy_agree():
    rng = np.random.default_rng(5)
    lp = log_softmax(rng.standard_normal((4, 12, 5)) * 8)  # (B, T, C) nearly one-hot
    greedy = ctc_greedy(lp)
    beam, _ = ctc_prefix_beam_search(lp, beam_width=3)
    assert [g.tolist() for g in greedy] == [b.tolist() for b in beam]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beam_width": 0}, "beam width must be an integer >= 1"),
        ({"lengths": [3]}, r"lengths must be 1 frame counts in \[1, 2\]"),
        ({"blank": 2}, r"blank must be a class index in \[0, 2\)"),
        ({"log_probs": np.zeros((2, 2))}, r"\(B, T, C\)"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    args = {"log_probs": _table([[0.5, 0.5], [0.5, 0.5]])} | kwargs
    with pytest.raises(BpttError, match=message):
        ctc_prefix_beam_search(**args)
