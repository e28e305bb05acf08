"""The CTC recognizer: whole-model gradients, torch parity, padding, errors, and learning
noisy one-hot label strings of random durations to zero errors."""

import numpy as np
import pytest

from bptt.data import pad_sequences
from bptt.decode import ctc_decode
from bptt.diagnostics import gradcheck_model
from bptt.errors import BpttError
from bptt.models.ctc import CTCRecognizer
from bptt.models.sequence import SequenceBatch
from bptt.optim import Adam

LABELS = [[1, 1, 2], [3], [], [2, 3, 3, 1]]  # a repeat, one label, none, a repeat inside
FRAMES = [6, 3, 2, 7]


def _model(cell="lstm", layers=2, bidirectional=True, seed=0):
    return CTCRecognizer(
        3,
        bidirectional,
        input_size=4,
        hidden_size=5,
        num_layers=layers,
        cell=cell,
        dtype=np.float64,
        rng=np.random.default_rng(seed),
    )


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    inputs, mask = pad_sequences([rng.standard_normal((n, 4)) for n in FRAMES])  # (B, T, D)
    targets, _ = pad_sequences([np.array(t, dtype=np.int64) for t in LABELS])  # (B, S) 0-padded
    return SequenceBatch(inputs, mask, targets)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_full_loss_gradients_match_finite_differences(cell, bidirectional):
    """Features -> 2-layer cell (masked) -> Linear -> log_softmax -> CTC per label."""
    model = _model(cell, bidirectional=bidirectional)
    errors = gradcheck_model(model, _batch(), directions=4)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


def test_head_gradient_elementwise():
    model = _model("gru", layers=1)
    errors = gradcheck_model(model, _batch(), max_checks_per_param=8)
    assert max(errors.values()) < 1e-6, errors


def test_loss_and_gradients_equal_torch():
    """The same weights in torch.nn.LSTM + Linear + log_softmax + ctc_loss (sum / Σ L_b)."""
    torch = pytest.importorskip("torch")
    pack = torch.nn.utils.rnn
    model, batch = _model("lstm"), _batch()
    loss, grads, _ = model.loss_and_grads(batch)

    layers = {
        "rnn": torch.nn.LSTM(4, 5, 2, batch_first=True, bidirectional=True),
        "head": torch.nn.Linear(10, 4),
    }
    for name, layer in layers.items():
        layer.double().load_state_dict(
            {
                k.split(".", 1)[1]: torch.from_numpy(v)
                for k, v in model.state_dict().items()
                if k.startswith(name + ".")
            }
        )
    x = torch.from_numpy(batch.inputs)
    packed = pack.pack_padded_sequence(x, torch.tensor(FRAMES), True, enforce_sorted=False)
    out, _ = pack.pad_packed_sequence(layers["rnn"](packed)[0], batch_first=True)
    lp = layers["head"](out).log_softmax(-1)  # (B, T, C)
    lengths = torch.tensor([len(t) for t in LABELS])
    nll = torch.nn.functional.ctc_loss(
        lp.transpose(0, 1),
        torch.from_numpy(batch.targets),
        torch.tensor(FRAMES),
        lengths,
        reduction="sum",
    )
    expected = nll / lengths.sum()
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    for name, layer in layers.items():
        for k, p in layer.named_parameters():
            np.testing.assert_allclose(grads[f"{name}.{k}"], p.grad.numpy(), rtol=0, atol=1e-12)


def test_padding_changes_nothing():
    model, batch = _model("gru"), _batch()
    total = model.loss(batch)
    alone = 0.0
    for b, n in enumerate(FRAMES):
        one = SequenceBatch(
            batch.inputs[b : b + 1, :n],
            batch.mask[b : b + 1, :n],
            np.array([LABELS[b]], dtype=np.int64).reshape(1, -1),
        )
        alone += model.loss(one)
    assert total == pytest.approx(alone, rel=1e-12)
    assert model.loss_and_grads(batch)[0] == pytest.approx(total / 8, rel=1e-12)  # 8 labels


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.targets.__setitem__((3, 1), 0), r"targets row 3 is \[2, 0, 3, 1\]"),
        (lambda b: b.targets.__setitem__((1, 0), 4), r"targets\[1\]\[0\] = 4"),
        (lambda b: b.mask.__setitem__((3, 0), False), "mask row 3 is not real frames first"),
    ],
)
def test_bad_batches_name_the_utterance(change, message):
    model, batch = _model("rnn", layers=1), _batch()
    change(batch)
    with pytest.raises(BpttError, match=message):
        model.loss_and_grads(batch)


def test_too_few_frames_say_how_many_are_needed():
    model, batch = _model("rnn", layers=1), _batch()
    batch.mask[0, 3:] = False  # [1, 1, 2] needs 4 frames (a blank between the 1s)
    with pytest.raises(BpttError, match="needs at least 4 frames; it has 3"):
        model.loss_and_grads(batch)
    batch.mask[0, 3] = True
    assert np.isfinite(model.loss_and_grads(batch)[0])


def _utterance(rng, labels, noise=0.3):
    """Frames of one label string: 0-2 silent frames, each label held 2-4 frames with
    1-2 silent frames between labels; one-hot features (silence = channel 0) + noise."""
    parts = [np.zeros(rng.integers(0, 3), dtype=np.int64)]
    for i, k in enumerate(labels):
        if i:
            parts.append(np.zeros(rng.integers(1, 3), dtype=np.int64))
        parts.append(np.full(rng.integers(2, 5), k))
    ids = np.concatenate(parts)  # (T,)
    return np.eye(4)[ids] + noise * rng.standard_normal((len(ids), 4))  # (T, D)


def test_learns_label_strings_to_zero_errors():
    rng = np.random.default_rng(0)
    strings = [rng.integers(1, 4, size=rng.integers(1, 5)) for _ in range(16)]
    inputs, mask = pad_sequences([_utterance(rng, s) for s in strings])  # (B, T, D)
    targets, _ = pad_sequences(strings)  # (B, S)
    batch = SequenceBatch(inputs, mask, targets)
    model = CTCRecognizer(
        3, input_size=4, hidden_size=16, dtype=np.float64, rng=np.random.default_rng(1)
    )
    errors = lambda ids: sum(p.tolist() != s.tolist() for p, s in zip(ids, strings, strict=True))  # noqa: E731
    assert errors(model.predict(inputs, mask)) > 8  # untrained: mostly wrong
    opt = Adam(0.03)
    first = model.loss_and_grads(batch)[0]
    for _ in range(50):
        loss, grads, _ = model.loss_and_grads(batch)
        opt.step(model.params, grads)
    assert loss < 0.1 * first
    assert errors(model.predict(inputs, mask)) == 0
    assert errors(ctc_decode(model, inputs, mask, beam_width=4)) == 0
    text = model.to_text(model.predict(inputs[:2], mask[:2]), ["a", "b", "c"], sep=" ")
    assert text == [" ".join("abc"[k - 1] for k in s) for s in strings[:2]]


def test_to_text_needs_every_label_named():
    with pytest.raises(BpttError, match="labels must name the 3 labels"):
        _model().to_text([np.array([1])], ["a", "b"])


def test_num_labels_is_checked():
    with pytest.raises(BpttError, match="num_labels must be an integer >= 1"):
        CTCRecognizer(0, input_size=4)
