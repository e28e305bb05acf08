"""The pieces learn together: an LSTM memorises a sequence; clipping tames an exploding RNN."""

import numpy as np

from bptt.losses import cross_entropy
from bptt.models.language_model import LanguageModel, LMBatch
from bptt.nn import RNN, Linear
from bptt.optim import SGD, Adam, clip_grad_norm


def test_tiny_lstm_overfits_a_fixed_sequence():
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 6, size=(2, 21))  # two fixed random sequences over 6 symbols
    batch = LMBatch(seq[:, :-1], seq[:, 1:])
    model = LanguageModel(6, 8, 32, cell="lstm", dtype=np.float64, rng=rng)
    optimizer = Adam(lr=0.02)
    losses = []
    for _ in range(300):
        loss, grads, _ = model.loss_and_grads(batch)
        optimizer.step(model.params, grads)
        losses.append(loss)
    assert losses[0] > 1.5  # about ln 6 at the start
    assert losses[-1] < 0.01, losses[-1]


def test_exploding_rnn_trains_200_steps_with_clipping_and_stays_finite():
    rng = np.random.default_rng(1)
    B, T, D, H, V = 4, 30, 5, 16, 3
    rnn = RNN(D, H, dtype=np.float64, rng=rng)
    head = Linear(H, V, dtype=np.float64, rng=rng)
    W = rng.standard_normal((H, H))
    W *= 3.0 / np.max(np.abs(np.linalg.eigvals(W)))  # spectral radius 3: explodes
    rnn.params["weight_hh_l0"][...] = W
    x = rng.standard_normal((B, T, D))
    y = rng.integers(0, V, size=(B, T))
    params = {**{f"rnn.{k}": v for k, v in rnn.params.items()}, **head.params}
    optimizer = SGD(lr=0.5)
    norms, losses = [], []
    for _ in range(200):
        s, _ = rnn.forward(x)  # (B, T, H)
        loss, d_logits = cross_entropy(head.forward(s), y, reduction="mean")
        rnn.backward(head.backward(d_logits))
        grads = {**{f"rnn.{k}": v for k, v in rnn.grads.items()}, **head.grads}
        norms.append(clip_grad_norm(grads, 1.0))
        optimizer.step(params, grads)
        losses.append(loss)
    assert all(np.isfinite(v).all() for v in params.values())
    assert np.isfinite(losses).all() and np.isfinite(norms).all()
    assert max(norms) > 1.0  # clipping did fire
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
