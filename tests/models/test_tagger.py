"""The many-to-many tagger: full-loss gradients, torch parity, padding, seeing the future."""

import numpy as np
import pytest

from bptt.data import pad_sequences
from bptt.diagnostics import gradcheck_model
from bptt.errors import BpttError
from bptt.models.sequence import SequenceBatch
from bptt.models.tagger import SequenceTagger

LENGTHS = (5, 2, 4)


def _model(cell="lstm", layers=2, bidirectional=True, seed=0):
    return SequenceTagger(
        4,
        bidirectional,
        vocab_size=9,
        embed_size=4,
        hidden_size=5,
        num_layers=layers,
        cell=cell,
        dtype=np.float64,
        rng=np.random.default_rng(seed),
    )


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    inputs, mask = pad_sequences([rng.integers(0, 9, size=n) for n in LENGTHS])  # (B, T)
    targets = np.where(mask, rng.integers(0, 4, size=mask.shape), 0)  # (B, T)
    return SequenceBatch(inputs, mask, targets)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_full_loss_gradients_match_finite_differences(cell, bidirectional):
    """Embedding -> 2-layer cell (masked) -> Linear per step -> CE over real steps."""
    model = _model(cell, bidirectional=bidirectional)
    errors = gradcheck_model(model, _batch(), eps=1e-4, directions=4)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, f"{worst}: relative error {errors[worst]:.2e}"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_loss_and_gradients_equal_torch_packed_sequences(cell):
    torch = pytest.importorskip("torch")
    pack = torch.nn.utils.rnn
    model, batch = _model(cell), _batch()
    loss, grads, _ = model.loss_and_grads(batch)

    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    layers = {
        "embedding": torch.nn.Embedding(9, 4),
        "rnn": cls(4, 5, 2, batch_first=True, bidirectional=True),
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
    x = layers["embedding"](torch.from_numpy(batch.inputs))
    packed = pack.pack_padded_sequence(x, torch.tensor(LENGTHS), True, enforce_sorted=False)
    out, _ = pack.pad_packed_sequence(layers["rnn"](packed)[0], batch_first=True)
    targets = torch.from_numpy(np.where(batch.mask, batch.targets, -100))  # -100: ignored
    expected = torch.nn.functional.cross_entropy(
        layers["head"](out).reshape(-1, 4), targets.reshape(-1), ignore_index=-100
    )
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    for name, layer in layers.items():
        for k, p in layer.named_parameters():
            np.testing.assert_allclose(grads[f"{name}.{k}"], p.grad.numpy(), rtol=0, atol=1e-12)


def test_padding_does_not_change_the_tags():
    model, batch = _model("gru"), _batch()
    together = model.forward(batch.inputs, batch.mask)  # (B, T, C)
    for b, n in enumerate(LENGTHS):
        alone = model.forward(batch.inputs[b : b + 1, :n], batch.mask[b : b + 1, :n])
        np.testing.assert_allclose(together[b, :n], alone[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_only_a_bidirectional_tagger_sees_the_words_after(bidirectional):
    """'Teddy Roosevelt' vs 'Teddy bears': the tag of word 1 may depend on word 2 only
    when the tagger reads right to left too."""
    model = _model("lstm", layers=1, bidirectional=bidirectional)
    mask = np.ones((1, 3), dtype=bool)
    roosevelt = model.forward(np.array([[3, 5, 1]]), mask)  # (1, T, C)
    bears = model.forward(np.array([[3, 6, 1]]), mask)
    differs = not np.allclose(roosevelt[0, 0], bears[0, 0], rtol=0, atol=1e-12)
    assert differs == bidirectional


def test_padded_steps_add_no_loss():
    model, batch = _model("rnn"), _batch()
    loss, _, _ = model.loss_and_grads(batch)
    batch.targets[~batch.mask] = 3  # other targets at padded steps change nothing
    assert model.loss_and_grads(batch)[0] == loss
    assert model.loss(batch) == pytest.approx(loss * batch.num_tokens, rel=1e-12)


# -- words with their letters and shape, and the CRF head ------------------------------

F, W = 2, 4  # shape features, letters per word


def _word_model(crf=True, chars=True, shape=True, **kwargs):
    return SequenceTagger(
        4,
        True,
        crf=crf,
        char_vocab_size=7 if chars else None,
        char_embed_size=3,
        char_hidden_size=2,
        num_shape_features=F if shape else 0,
        vocab_size=9,
        embed_size=4,
        hidden_size=5,
        dtype=np.float64,
        rng=np.random.default_rng(0),
        **kwargs,
    )


def _word_batch(seed=1):
    """(B, T, 1 + F + W): word id, two 0/1 features, letters (a prefix of 1..4, then 0)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in LENGTHS:
        words = rng.integers(0, 9, size=(n, 1))  # (T, 1)
        shape = rng.integers(0, 2, size=(n, F))  # (T, F)
        letters = rng.integers(1, 7, size=(n, W)) * (np.arange(W) < rng.integers(1, W + 1, (n, 1)))
        rows.append(np.concatenate([words, shape, letters], axis=1))  # (T, 1 + F + W)
    inputs, mask = pad_sequences(rows)  # (B, T, P)
    targets = np.where(mask, rng.integers(0, 4, size=mask.shape), 0)  # (B, T)
    return SequenceBatch(inputs, mask, targets)


WORD_CASES = [(True, True, True), (False, True, False), (True, False, True), (True, False, False)]
WORD_CASES += [(True, "cnn", True), (False, "cnn", False)]


@pytest.mark.parametrize(("crf", "chars", "shape"), WORD_CASES)
def test_letters_shape_and_crf_gradients_match_finite_differences(crf, chars, shape):
    """Words + character BiLSTM (or CNN) + shape -> BiLSTM -> Linear -> CRF, every parameter."""
    encoder = "cnn" if chars == "cnn" else "lstm"
    model = _word_model(crf, bool(chars), shape, char_encoder=encoder)
    batch = _word_batch() if chars or shape else _batch()
    errors = gradcheck_model(model, batch, eps=1e-4, directions=4)
    assert set(errors) == set(model.params)
    letters = "char_rnn.weight_hh_l0_reverse" if encoder == "lstm" else "char_conv.weight"
    assert {"crf.transitions", letters} <= set(errors) or not (crf and chars)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


def test_crf_tagger_decodes_by_viterbi_and_its_probabilities_are_marginals():
    model, batch = _word_model(), _word_batch()
    tags = model.predict_tags(batch.inputs, batch.mask)  # (B, T)
    logits = model.forward(batch.inputs, batch.mask)  # (B, T, C)
    np.testing.assert_array_equal(tags, model.crf.decode(logits, batch.mask))
    probs = model.predict_proba(batch.inputs, batch.mask)  # (B, T, C)
    np.testing.assert_allclose(probs.sum(-1), batch.mask.astype(float), atol=1e-12)
    # loss(): the summed -log p(y | x) of the sentences; loss_and_grads: per real word
    total = model.loss(batch)
    assert model.loss_and_grads(batch)[0] == pytest.approx(total / batch.num_tokens, rel=1e-12)


@pytest.mark.parametrize("encoder", ["lstm", "cnn"])
def test_an_unknown_word_reads_by_its_letters_and_padding_changes_nothing(encoder):
    model, batch = _word_model(char_encoder=encoder), _word_batch()
    x = batch.inputs[:1, :2].copy()  # (1, 2, P)
    x[0, :, 0] = 0  # both words <unk>-like: the same word id
    x[0, 0, 1 + F :] = [1, 2, 3, 0]
    x[0, 1, 1 + F :] = [4, 5, 0, 0]
    e = model.embed(x, np.ones((1, 2), dtype=bool))  # (1, 2, E + 2Hc + F)
    assert not np.allclose(e[0, 0], e[0, 1])  # other letters, another vector
    together = model.forward(batch.inputs, batch.mask)  # (B, T, C)
    for b, n in enumerate(LENGTHS):
        alone = model.forward(batch.inputs[b : b + 1, :n], batch.mask[b : b + 1, :n])
        np.testing.assert_allclose(together[b, :n], alone[0], rtol=0, atol=1e-12)
    wider = np.concatenate([batch.inputs, np.zeros_like(batch.inputs[..., :3])], axis=-1)
    np.testing.assert_allclose(model.forward(wider, batch.mask), together, rtol=0, atol=1e-12)


def test_the_letters_cnn_is_a_max_over_a_width_3_convolution_of_the_word_alone():
    """One word by hand: zero-padded letters, the convolution, max per filter, tanh."""
    model = _word_model(char_encoder="cnn", shape=False)
    x = np.array([[[5, 1, 2, 3, 0]]])  # (1, 1, 1 + W): word 5, letters 1 2 3
    e = model.embed(x, np.ones((1, 1), dtype=bool))  # (1, 1, E + Hc)
    table = model.params["char_embedding.weight"]  # (7, Ec)
    c = np.concatenate([np.zeros((1, 3)), table[[1, 2, 3]], np.zeros((1, 3))])  # (5, Ec)
    w, b = model.params["char_conv.weight"], model.params["char_conv.bias"]  # (Hc, Ec, 3)
    y = np.stack([sum(w[..., i] @ c[j + i] for i in range(3)) + b for j in range(3)])  # (3, Hc)
    np.testing.assert_allclose(e[0, 0, 4:], np.tanh(y.max(axis=0)), rtol=1e-12)
    with pytest.raises(BpttError, match="char_encoder must be one of lstm, cnn; got 'gru'"):
        _word_model(char_encoder="gru")


def test_word_dropout_reads_training_words_as_unk_only_in_training():
    model, batch = _word_model(word_dropout=0.5, unk_id=1), _word_batch()
    model.embed(batch.inputs, batch.mask, training=True, rng=np.random.default_rng(0))
    seen = model.embedding._cache["cache"]["indices"][batch.mask]  # (N,) ids the table read
    real = batch.inputs[..., 0][batch.mask]  # (N,)
    changed = seen != real
    assert changed.any() and (seen[changed] == 1).all() and (~changed).any()
    model.embed(batch.inputs, batch.mask)  # evaluation: every word as it is
    np.testing.assert_array_equal(model.embedding._cache["cache"]["indices"][batch.mask], real)
