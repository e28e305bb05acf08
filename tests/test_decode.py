"""Sampling: greedy is argmax, temperature reshapes the distribution, seeds reproduce."""

import numpy as np
import pytest

from bptt.decode import generate, sample_next
from bptt.errors import BpttError
from bptt.models.language_model import LanguageModel


def _model():
    return LanguageModel(11, 4, 8, cell="lstm", dtype=np.float64, rng=np.random.default_rng(3))


def test_temperature_zero_is_argmax_of_each_step():
    model = _model()
    out = generate(model, np.array([1, 2]), 12, temperature=0)
    logits, state = model.forward(np.array([[1, 2]]))
    logits = logits[:, -1]
    for t in range(12):
        assert out[t] == logits.argmax()
        logits, state = model.step(out[t : t + 1], state)


def test_same_seed_same_text_other_seed_other_text():
    model = _model()
    a = generate(model, np.array([0]), 40, 1.0, rng=np.random.default_rng(5))
    b = generate(model, np.array([0]), 40, 1.0, rng=np.random.default_rng(5))
    c = generate(model, np.array([0]), 40, 1.0, rng=np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_temperature_changes_the_distribution():
    logits = np.log(np.array([[0.5, 0.3, 0.2]]))
    rng = np.random.default_rng(0)
    draws = {
        T: np.bincount([sample_next(logits, T, None, rng)[0] for _ in range(4000)], minlength=3)
        / 4000
        for T in (0.3, 1.0, 3.0)
    }
    np.testing.assert_allclose(draws[1.0], [0.5, 0.3, 0.2], atol=0.03)
    assert draws[0.3][0] > 0.8  # sharper
    assert draws[3.0][0] < 0.45  # flatter


def test_top_k_never_draws_outside_the_k_most_likely():
    logits = np.array([[0.0, 3.0, 1.0, 2.0]])
    rng = np.random.default_rng(0)
    seen = {int(sample_next(logits, 5.0, 2, rng)[0]) for _ in range(500)}
    assert seen == {1, 3}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"n": -3}, "length"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {"n": 5, "temperature": 1.0, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(BpttError, match=message):
        generate(_model(), np.array([1]), **args)


def test_empty_prompt_is_refused():
    with pytest.raises(BpttError, match="prompt"):
        generate(_model(), np.array([], dtype=int), 3, 0)
