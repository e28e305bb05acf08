"""The language model: its full loss's gradients, state carrying, one-step generation."""

import numpy as np
import pytest

from bptt.diagnostics import gradcheck_model
from bptt.models.language_model import LanguageModel, LMBatch


def _model(cell, layers=1, dtype=np.float64, seed=0):
    return LanguageModel(7, 5, 6, layers, cell=cell, dtype=dtype, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_full_loss_gradients_match_finite_differences(cell, layers):
    rng = np.random.default_rng(1)
    model = _model(cell, layers)
    ids = rng.integers(0, 7, size=(3, 5))
    batch = LMBatch(ids[:, :-1], ids[:, 1:])
    # The mean loss is ~2 while single gradient elements go down to ~1e-8, below what
    # element-wise centered differences resolve (round-off ~1e-10), so the whole
    # model is checked along random directions; the layer tests check element-wise.
    # eps 1e-4 balances truncation (~eps²) against round-off (~1e-16 / eps) for this loss.
    errors = gradcheck_model(model, batch, eps=1e-4, directions=4)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, f"{worst}: relative error {errors[worst]:.2e}"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_full_loss_and_gradients_equal_torch(cell):
    """Embedding -> 2-layer cell -> Linear -> mean cross-entropy, weights moved by name."""
    torch = pytest.importorskip("torch")
    model = _model(cell, layers=2)
    ids = np.random.default_rng(1).integers(0, 7, size=(3, 5))
    batch = LMBatch(ids[:, :-1], ids[:, 1:])
    loss, grads, _ = model.loss_and_grads(batch)

    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    layers = {
        "embedding": torch.nn.Embedding(7, 5),
        "rnn": cls(5, 6, 2, batch_first=True),
        "head": torch.nn.Linear(6, 7),
    }
    for name, layer in layers.items():
        layer.double().load_state_dict(
            {
                k.split(".", 1)[1]: torch.from_numpy(v)
                for k, v in model.state_dict().items()
                if k.startswith(name + ".")
            }
        )
    out, _ = layers["rnn"](layers["embedding"](torch.from_numpy(batch.inputs)))
    logits = layers["head"](out).reshape(-1, 7)
    expected = torch.nn.functional.cross_entropy(
        logits, torch.from_numpy(batch.targets).reshape(-1)
    )
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    for name, layer in layers.items():
        for k, p in layer.named_parameters():
            np.testing.assert_allclose(grads[f"{name}.{k}"], p.grad.numpy(), rtol=0, atol=1e-12)


def test_params_are_the_layers_arrays():
    """An optimizer updating model.params in place updates the layers themselves."""
    model = _model("lstm")
    model.params["rnn.weight_hh_l0"][0, 0] = 42.0
    assert model.rnn.params["weight_hh_l0"][0, 0] == 42.0


def test_carried_state_equals_one_long_pass():
    """Two windows with the state carried give the logits of one pass over both."""
    model = _model("gru")
    ids = np.random.default_rng(2).integers(0, 7, size=(2, 9))
    whole, _ = model.forward(ids)
    first, state = model.forward(ids[:, :4])
    second, _ = model.forward(ids[:, 4:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-12)


def test_step_is_the_training_forward_with_one_step():
    model = _model("lstm")
    ids = np.array([[1, 4, 2, 6]])
    logits, _ = model.forward(ids)
    state = None
    for t in range(4):
        step_logits, state = model.step(ids[:, t], state)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-12)


def test_state_dict_round_trip_and_mismatch():
    a, b = _model("rnn", seed=0), _model("rnn", seed=1)
    b.load_state_dict(a.state_dict())
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({})
