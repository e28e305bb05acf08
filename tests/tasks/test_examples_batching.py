"""The example tasks' shared pieces: splits, bucketed resumable batches, batching-free
predictions, and the missing-extra message."""

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.models.classifier import SequenceClassifier
from bptt.models.tagger import SequenceTagger
from bptt.tasks._examples import (
    ExampleBatches,
    Split,
    best_label,
    class_metrics,
    predict,
    predict_one,
    require_package,
    split_indices,
)


def _split(n=23, seed=0, tags=False):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 9, size=rng.integers(1, 12)) for _ in range(n)]
    targets = [rng.integers(0, 3, size=len(x)) if tags else int(rng.integers(0, 3)) for x in inputs]
    return Split(inputs, targets)


def test_split_indices_are_disjoint_fixed_and_cover_everything():
    train, val, test = split_indices(100, 0.1, 0.2, seed=7)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert split_indices(100, 0.1, 0.2, seed=7)[2].tolist() == test.tolist()
    with pytest.raises(BpttError, match="leave examples to train on"):
        split_indices(100, 0.5, 0.5, seed=7)


def test_every_epoch_visits_every_example_once_in_length_buckets():
    split = _split()
    batches = ExampleBatches(split, batch_size=5, seed=3)
    seen = []
    for _ in range(5):  # ceil(23 / 5) batches make an epoch
        b = batches.next_batch()
        seen += [tuple(x[m]) for x, m in zip(b.inputs, b.mask, strict=True)]
        assert not b.carry_state and b.num_tokens == b.mask.sum()
    assert sorted(seen) == sorted(tuple(x) for x in split.inputs)
    assert batches.epoch == 0 and batches.next_batch() is not None and batches.epoch == 1


def test_batches_resume_where_they_stopped():
    split = _split()
    a = ExampleBatches(split, 4, seed=1)
    for _ in range(9):  # past an epoch boundary (6 batches an epoch)
        a.next_batch()
    b = ExampleBatches(split, 4, seed=1)
    b.load_state_dict(a.state_dict())
    for _ in range(8):
        x, y = a.next_batch(), b.next_batch()
        assert np.array_equal(x.inputs, y.inputs) and np.array_equal(x.targets, y.targets)
    with pytest.raises(BpttError, match="batch_size=5"):
        ExampleBatches(split, 5, seed=1).load_state_dict(a.state_dict())


@pytest.mark.parametrize("tags", [False, True])
def test_bucketing_and_padding_do_not_change_predictions(tags):
    """Batches of 1 (no padding), of 4 and of all: the same probabilities per example."""
    split = _split(tags=tags)
    kwargs = {"vocab_size": 9, "embed_size": 4, "hidden_size": 6, "num_layers": 2}
    kwargs |= {"bidirectional": True, "dtype": np.float64, "rng": np.random.default_rng(0)}
    model = SequenceTagger(3, **kwargs) if tags else SequenceClassifier(3, "mean", **kwargs)
    alone = predict(model, split, batch_size=1)
    for size in (4, len(split)):
        for p, q in zip(alone, predict(model, split, batch_size=size), strict=True):
            np.testing.assert_allclose(p, q, rtol=0, atol=1e-12)
    if tags:
        assert [len(p) for p in alone] == [len(x) for x in split.inputs]


@pytest.mark.parametrize("tags", [False, True])
def test_one_example_is_predicted_as_in_a_batch(tags):
    """predict_one(x) is predict's answer for x among others; best_label names the top class."""
    split = _split(tags=tags)
    kwargs = {"vocab_size": 9, "embed_size": 4, "hidden_size": 6, "dtype": np.float64}
    kwargs |= {"rng": np.random.default_rng(1)}
    model = SequenceTagger(3, **kwargs) if tags else SequenceClassifier(3, "mean", **kwargs)
    for x, p in zip(split.inputs, predict(model, split, batch_size=4), strict=True):
        np.testing.assert_allclose(predict_one(model, x), p, rtol=0, atol=1e-12)
    assert best_label(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"]) == "b 0.70"


def test_class_metrics_score_the_predictions_they_are_given():
    """class_metrics from predictions the caller made equals its own, and scores them:
    loss the mean -log p of the target, accuracy the share of argmax hits."""
    split = _split()
    kwargs = {"vocab_size": 9, "embed_size": 4, "hidden_size": 6, "dtype": np.float64}
    model = SequenceClassifier(3, "mean", rng=np.random.default_rng(2), **kwargs)
    own = class_metrics(model, split)
    assert class_metrics(model, split, predict(model, split)) == own
    sure = [np.eye(3)[y] * 0.9 + 0.1 / 3 for y in split.targets]  # right, p(target) 0.9333
    wrong = [np.roll(p, 1) for p in sure]
    assert class_metrics(model, split, sure)["accuracy"] == 1.0
    assert class_metrics(model, split, wrong)["accuracy"] == 0.0
    assert class_metrics(model, split, sure)["loss"] == pytest.approx(-np.log(0.9 + 0.1 / 3))


def test_a_missing_package_names_the_extra():
    with pytest.raises(BpttError, match=r"'no_such_pkg_bptt'.*pip install 'bptt\[dna\]'"):
        require_package("no_such_pkg_bptt", "dna", "the dna task")
