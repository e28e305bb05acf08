"""The many-to-one classifier: full-loss gradients, torch parity, padding, pooling, errors."""

import numpy as np
import pytest

from bptt.data import pad_sequences
from bptt.diagnostics import gradcheck_model
from bptt.errors import BpttError
from bptt.models.classifier import SequenceClassifier
from bptt.models.sequence import SequenceBatch

LENGTHS = (5, 2, 4)  # padded to T = 5: rows 1 and 2 end early


def _model(
    cell="lstm", pooling="last", layers=2, bidirectional=True, features=False, seed=0, eps=0.0
):
    source = {"input_size": 3} if features else {"vocab_size": 9, "embed_size": 4}
    return SequenceClassifier(
        3,
        pooling,
        label_smoothing=eps,
        hidden_size=5,
        num_layers=layers,
        cell=cell,
        bidirectional=bidirectional,
        dtype=np.float64,
        rng=np.random.default_rng(seed),
        **source,
    )


def _batch(features=False, seed=1):
    rng = np.random.default_rng(seed)
    if features:
        seqs = [rng.standard_normal((n, 3)) for n in LENGTHS]
    else:
        seqs = [rng.integers(0, 9, size=n) for n in LENGTHS]
    inputs, mask = pad_sequences(seqs)  # (B, T[, D]), (B, T)
    return SequenceBatch(inputs, mask, np.array([0, 2, 1]))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_full_loss_gradients_match_finite_differences(cell, pooling):
    """Embedding -> 2-layer bidirectional cell -> pooling over real steps -> Linear -> CE."""
    model = _model(cell, pooling)
    # Directional checks, as for the language model: element-wise differences cannot
    # resolve the smallest gradient entries of a whole model (see test_language_model).
    errors = gradcheck_model(model, _batch(), eps=1e-4, directions=4)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, f"{worst}: relative error {errors[worst]:.2e}"


def test_feature_inputs_gradients_match_finite_differences():
    model = _model("gru", "mean", layers=1, features=True)
    errors = gradcheck_model(model, _batch(features=True), eps=1e-4, directions=4)
    assert "embedding.weight" not in errors
    assert max(errors.values()) < 1e-5, errors


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_loss_and_gradients_equal_torch_packed_sequences(pooling, eps):
    """The same network in torch on packed sequences (so padding is skipped exactly); the
    training loss label-smoothed by ``eps``, the evaluation loss plain."""
    torch = pytest.importorskip("torch")
    pack = torch.nn.utils.rnn
    model, batch = _model("lstm", pooling, eps=eps), _batch()
    loss, grads, _ = model.loss_and_grads(batch)

    emb, head = torch.nn.Embedding(9, 4), torch.nn.Linear(10, 3)
    lstm = torch.nn.LSTM(4, 5, 2, batch_first=True, bidirectional=True)
    layers = {"embedding": emb, "rnn": lstm, "head": head}
    for name, layer in layers.items():
        layer.double().load_state_dict(
            {
                k.split(".", 1)[1]: torch.from_numpy(v)
                for k, v in model.state_dict().items()
                if k.startswith(name + ".")
            }
        )
    lengths = torch.tensor(LENGTHS)
    x = emb(torch.from_numpy(batch.inputs))
    out, (h_n, _) = lstm(pack.pack_padded_sequence(x, lengths, True, enforce_sorted=False))
    out, _ = pack.pad_packed_sequence(out, batch_first=True)  # (B, T, 2H), zeros at padding
    mask = torch.from_numpy(batch.mask)[:, :, None]
    if pooling == "last":
        r = torch.cat([h_n[-2], h_n[-1]], dim=1)
    elif pooling == "mean":
        r = out.sum(1) / lengths[:, None]
    else:
        r = out.masked_fill(~mask, -torch.inf).amax(1)
    logits, targets = head(r), torch.from_numpy(batch.targets)
    expected = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=eps)
    plain = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    assert abs(model.loss(batch) - plain.item()) < 1e-12
    for name, layer in layers.items():
        for k, p in layer.named_parameters():
            np.testing.assert_allclose(grads[f"{name}.{k}"], p.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_padding_does_not_change_a_prediction(cell, pooling):
    """An example alone equals the same example padded among longer ones."""
    model, batch = _model(cell, pooling), _batch()
    together = model.forward(batch.inputs, batch.mask)  # (B, C)
    for b, n in enumerate(LENGTHS):
        alone = model.forward(batch.inputs[b : b + 1, :n], batch.mask[b : b + 1, :n])
        np.testing.assert_allclose(together[b], alone[0], rtol=0, atol=1e-12)
    junk = np.where(batch.mask, batch.inputs, 7)  # other ids at padded steps change nothing
    np.testing.assert_allclose(model.forward(junk, batch.mask), together, rtol=0, atol=0)


def test_padded_steps_get_no_gradient_through_the_embedding():
    model, batch = _model("lstm", "mean"), _batch()
    batch.inputs[~batch.mask] = 8  # id 8 appears only at padded steps
    batch.inputs[batch.mask & (batch.inputs == 8)] = 0
    _, grads, _ = model.loss_and_grads(batch)
    assert not grads["embedding.weight"][8].any()


def test_pooling_reads_what_it_says():
    """last: the forward direction's state at each row's last real step; max >= mean."""
    model, batch = _model("rnn", "last", layers=1, bidirectional=False), _batch()
    model.forward(batch.inputs, batch.mask)
    out, _ = model.encode(batch.inputs, batch.mask)
    final = np.stack([out[b, n - 1] for b, n in enumerate(LENGTHS)])  # (B, H)
    logits = model.forward(batch.inputs, batch.mask)
    np.testing.assert_allclose(logits, model.head.forward(final), atol=1e-12)


def test_predict_proba_is_a_distribution_and_float32_works():
    model = SequenceClassifier(
        4, "max", vocab_size=9, embed_size=3, hidden_size=4, rng=np.random.default_rng(0)
    )
    batch = _batch()
    p = model.predict_proba(batch.inputs, batch.mask)
    assert p.shape == (3, 4) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_errors_name_what_was_expected():
    with pytest.raises(BpttError, match="exactly one of vocab_size"):
        SequenceClassifier(2, vocab_size=5, input_size=3)
    with pytest.raises(BpttError, match="pooling must be one of"):
        SequenceClassifier(2, "median", vocab_size=5)
    model = _model()
    with pytest.raises(BpttError, match=r"token ids \(B, T\)"):
        model.forward(np.zeros((2, 3, 4)), np.ones((2, 3), dtype=bool))
    with pytest.raises(BpttError, match="mask has shape"):
        model.forward(np.zeros((2, 3), dtype=int), np.ones((2, 4), dtype=bool))


def test_the_config_s_label_smoothing_reaches_the_task_s_classifier():
    """--label-smoothing is the built model's ε (and a value outside [0, 1) is refused)."""
    from bptt.config import Config
    from bptt.tasks._examples import build_model

    config = Config(task="activity", hidden_size=4, label_smoothing=0.25)
    model = build_model(config, "class", 3, None, 2, np.random.default_rng(0))
    assert model.label_smoothing == 0.25
    with pytest.raises(BpttError, match=r"label_smoothing must be in \[0, 1\)"):
        _model(eps=1.0)
