"""The encoder-decoder: its whole loss's gradients (attention included), PyTorch parity,
padding on both sides, and decoding (greedy, sampling, beam search)."""

import numpy as np
import pytest

from bptt.decode import beam_search, decode_greedy
from bptt.diagnostics import gradcheck_model
from bptt.errors import BpttError
from bptt.models.seq2seq import Seq2Seq, Seq2SeqBatch

VS, VT, E, H = 9, 8, 4, 5
BOS, EOS = 2, 3  # target ids, as a Vocabulary with <pad> <unk> <bos> <eos> numbers them


def _model(
    cell="lstm", attention="additive", bidirectional=True, layers=1, seed=0, dtype=np.float64
):
    return Seq2Seq(
        VS,
        VT,
        E,
        H,
        layers,
        cell,
        bidirectional,
        attention,
        attention_size=3,
        dtype=dtype,
        rng=np.random.default_rng(seed),
    )


def _batch(seed=1, src_lengths=(5, 2, 4), tgt_lengths=(4, 1, 3)):
    """Sources and targets of different lengths: padding on both sides."""
    rng = np.random.default_rng(seed)
    B, S, T = len(src_lengths), max(src_lengths), max(tgt_lengths)
    source = rng.integers(2, VS, size=(B, S))
    source_mask = np.arange(S)[None, :] < np.array(src_lengths)[:, None]  # (B, S)
    source[~source_mask] = 0  # <pad>
    target_mask = np.arange(T)[None, :] < np.array(tgt_lengths)[:, None]  # (B, T)
    target_out = rng.integers(4, VT, size=(B, T))
    target_out[np.arange(B), np.array(tgt_lengths) - 1] = EOS
    target_in = np.concatenate([np.full((B, 1), BOS), target_out[:, :-1]], axis=1)
    target_out[~target_mask] = target_in[~target_mask] = 0
    return Seq2SeqBatch(source, source_mask, target_in, target_out, target_mask)


CASES = [  # (cell, attention, bidirectional, layers)
    ("lstm", "additive", True, 1),
    ("lstm", "additive", True, 2),
    ("lstm", "dot", False, 2),
    ("gru", "dot", True, 2),
    ("rnn", "additive", True, 2),
    ("rnn", "none", False, 1),
    ("gru", "none", True, 2),
]


@pytest.mark.parametrize(("cell", "attention", "bidirectional", "layers"), CASES)
def test_whole_loss_gradients_match_finite_differences(cell, attention, bidirectional, layers):
    """Every parameter of encoder, bridge, attention, decoder, embeddings and head, float64,
    along random directions (single elements go down to ~1e-9, below what differences of a
    mean loss resolve; the element-wise check is below)."""
    model = _model(cell, attention, bidirectional, layers)
    errors = gradcheck_model(model, _batch(), eps=1e-4, directions=2)
    assert set(errors) == set(model.params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-5, f"{worst}: relative error {errors[worst]:.2e}"


def test_whole_loss_gradients_element_by_element():
    model = _model("lstm", "additive", True, 1)
    errors = gradcheck_model(model, _batch(), max_checks_per_param=5)
    worst = max(errors, key=errors.get)
    # attention.weight_query's elements are ~1e-6 here, where the differences' round-off
    # (~1e-13) is ~1e-6 relative; the torch test below agrees with them to 1e-12.
    assert errors[worst] < 2e-5, f"{worst}: relative error {errors[worst]:.2e}"


def test_padding_changes_nothing():
    """A padded batch's loss and gradients are what its sentences give one by one."""
    model, batch = _model("gru", "additive", True, 2), _batch()
    loss, grads, _ = model.loss_and_grads(batch)
    grads = {k: v * batch.num_tokens for k, v in grads.items()}  # back to the sum over tokens
    total, summed = 0.0, {k: np.zeros_like(v) for k, v in grads.items()}
    for b in range(3):
        s, t = batch.source_mask[b].sum(), batch.target_mask[b].sum()
        one = Seq2SeqBatch(
            batch.source[b : b + 1, :s],
            batch.source_mask[b : b + 1, :s],
            batch.target_in[b : b + 1, :t],
            batch.target_out[b : b + 1, :t],
            batch.target_mask[b : b + 1, :t],
        )
        l1, g1, _ = model.loss_and_grads(one)
        total += l1 * t
        for k, v in g1.items():
            summed[k] += v * t
    assert abs(loss * batch.num_tokens - total) < 1e-12
    for k in grads:
        np.testing.assert_allclose(grads[k], summed[k], rtol=0, atol=1e-12, err_msg=k)


@pytest.mark.parametrize(("attention", "layers"), [("additive", 2), ("dot", 1)])
def test_loss_and_gradients_equal_a_torch_reimplementation(attention, layers):
    """Bidirectional LSTM encoder (packed sequences), bridge, attention, LSTMCell decoder."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional
    model, batch = _model("lstm", attention, True, layers), _batch()
    loss, grads, _ = model.loss_and_grads(batch)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    enc = nn.LSTM(E, H, layers, batch_first=True, bidirectional=True).double()
    enc_params = {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("encoder.")}
    lengths = torch.tensor(batch.source_mask.sum(axis=1))
    x = p["source_embedding.weight"][torch.tensor(batch.source)]  # (B, S, E)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, (h_n, c_n) = torch.func.functional_call(enc, enc_params, (packed,))
    values, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (B, S, 2H)
    B = values.shape[0]

    def bridge(f, name):
        joined = f.view(layers, 2, B, H).permute(0, 2, 1, 3).reshape(layers, B, 2 * H)
        return F.linear(joined, p[f"{name}.weight"], p[f"{name}.bias"])

    h = list(torch.tanh(bridge(h_n, "bridge_h")))
    c = list(bridge(c_n, "bridge_c"))
    keys = values @ p["attention.weight_key"].T
    mask = torch.tensor(batch.source_mask)
    logits = []
    for t in range(batch.target_in.shape[1]):
        q = h[-1]
        if attention == "additive":
            u = keys + (q @ p["attention.weight_query"].T)[:, None]
            e = torch.tanh(u) @ p["attention.v"]
        else:
            e = (keys @ q[:, :, None])[:, :, 0]
        alpha = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=-1)
        ctx = (alpha[:, :, None] * values).sum(1)
        inp = torch.cat([p["target_embedding.weight"][torch.tensor(batch.target_in[:, t])], ctx], 1)
        for l in range(layers):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            w = {k: p[f"decoder.{k}_l{l}"] for k in names}
            cell = nn.LSTMCell(inp.shape[1], H).double()
            h[l], c[l] = torch.func.functional_call(cell, w, (inp, (h[l], c[l])))
            inp = h[l]
        logits.append(F.linear(torch.cat([inp, ctx], 1), p["head.weight"], p["head.bias"]))
    logits = torch.stack(logits, 1)
    m = torch.tensor(batch.target_mask)
    expected = F.cross_entropy(logits[m], torch.tensor(batch.target_out)[m])
    expected.backward()
    assert abs(loss - expected.item()) < 1e-12
    for k, v in p.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=0, atol=1e-12, err_msg=k)


def test_constructor_and_input_errors():
    with pytest.raises(BpttError, match="attention must be one of"):
        _model(attention="luong")
    with pytest.raises(BpttError, match="cell must be one of"):
        _model(cell="transformer")
    with pytest.raises(BpttError, match="no real position"):
        _model().encode(np.zeros((2, 3), dtype=int), np.zeros((2, 3), dtype=bool))


# -- decoding ----------------------------------------------------------------------


def _sources(seed=5, lengths=(6, 1, 3, 5, 2)):
    rng = np.random.default_rng(seed)
    S = max(lengths)
    mask = np.arange(S)[None, :] < np.array(lengths)[:, None]  # (B, S)
    return np.where(mask, rng.integers(2, VS, size=(len(lengths), S)), 0), mask


@pytest.mark.parametrize(
    ("cell", "attention"), [("lstm", "additive"), ("gru", "dot"), ("rnn", "none")]
)
def test_beam_width_one_is_greedy(cell, attention):
    model = _model(cell, attention, True, 2, seed=7, dtype=np.float32)
    source, mask = _sources()
    greedy, g_att = decode_greedy(model, source, mask, BOS, EOS, max_length=12)
    beam, b_att, _ = beam_search(model, source, mask, BOS, EOS, 12, beam_width=1)
    for g, b in zip(greedy, beam, strict=True):
        np.testing.assert_array_equal(g, b)
    for g, b in zip(g_att, b_att, strict=True):
        assert (g is None and b is None) or np.array_equal(g, b)


def _rigged(symbol, seed=0):
    """A model whose head always prefers ``symbol`` by far."""
    model = _model(seed=seed)
    model.head.params["bias"][symbol] = 100.0
    return model


@pytest.mark.parametrize("width", [1, 3])
def test_eos_at_once_gives_empty_outputs(width):
    source, mask = _sources()
    ids, att, _ = beam_search(_rigged(EOS), source, mask, BOS, EOS, 10, beam_width=width)
    assert all(len(i) == 0 for i in ids)
    # one row of attention (the step that wrote <eos>) over each source's real positions
    assert [a.shape for a in att] == [(1, n) for n in mask.sum(axis=1)]
    ids, _ = decode_greedy(_rigged(EOS), source, mask, BOS, EOS, 10)
    assert all(len(i) == 0 for i in ids)


@pytest.mark.parametrize("width", [1, 4])
def test_maximum_length_stops_a_model_that_never_ends(width):
    source, mask = _sources()
    ids, att, _ = beam_search(_rigged(5), source, mask, BOS, EOS, 7, beam_width=width)
    assert all(i.tolist() == [5] * 7 for i in ids)
    assert all(a.shape[0] == 7 for a in att)
    ids, _ = decode_greedy(_rigged(5), source, mask, BOS, EOS, 7)
    assert all(i.tolist() == [5] * 7 for i in ids)
    # with 5 excluded, the runner-up is written instead
    ids, _ = decode_greedy(_rigged(5), source, mask, BOS, EOS, 7, exclude=(5,))
    assert all(5 not in i for i in ids)


class _Scripted:
    """A stand-in model: row b writes scripts[b], then <eos>, then 4s if asked to go on."""

    class Rows:
        def __init__(self, rows):
            self.rows = rows

        def take(self, idx):
            return _Scripted.Rows(self.rows[idx])

    def __init__(self, scripts):
        self.scripts = scripts

    def encode(self, source, mask):
        return self.Rows(np.arange(len(source))), (np.zeros((1, len(source), 1)),)

    def step(self, prev, state, memory):
        logits = np.zeros((len(prev), VT))  # (R, V)
        for r, (b, k) in enumerate(zip(memory.rows, state[0][0, :, 0].astype(int), strict=True)):
            script = self.scripts[b]
            logits[r, script[k] if k < len(script) else EOS if k == len(script) else 4] = 10.0
        return logits, (state[0] + 1,), None


@pytest.mark.parametrize("width", [1, 3])
def test_each_row_stops_at_its_own_eos(width):
    """Rows end at different steps; nothing after a row's <eos> reaches its output."""
    scripts = [[5, 6, 7], [], [6], [7, 7, 7, 7, 7, 7]]
    model, source = _Scripted(scripts), np.ones((4, 2), dtype=int)
    mask = np.ones((4, 2), dtype=bool)
    ids, _, _ = beam_search(model, source, mask, BOS, EOS, 10, beam_width=width)
    assert [i.tolist() for i in ids] == scripts
    ids, _ = decode_greedy(model, source, mask, BOS, EOS, 10)
    assert [i.tolist() for i in ids] == scripts
    ids, _ = decode_greedy(model, source, mask, BOS, EOS, 2)  # the limit cuts the long ones
    assert [i.tolist() for i in ids] == [[5, 6], [], [6], [7, 7]]


def test_beam_score_is_the_models_log_probability_and_rows_are_independent():
    model = _model(seed=11)
    source, mask = _sources()
    ids, _, scores = beam_search(model, source, mask, BOS, EOS, 9, beam_width=4, length_penalty=0.0)
    for b, out in enumerate(ids):
        n = mask[b].sum()
        alone, _, s1 = beam_search(
            model,
            source[b : b + 1, :n],
            mask[b : b + 1, :n],
            BOS,
            EOS,
            9,
            beam_width=4,
            length_penalty=0.0,
        )
        np.testing.assert_array_equal(alone[0], out)
        assert abs(s1[0] - scores[b]) < 1e-9
        ended = len(out) < 9  # a finished hypothesis is scored with its <eos>
        target = np.concatenate([out, [EOS]]) if ended else out
        one = Seq2SeqBatch(
            source[b : b + 1, :n],
            mask[b : b + 1, :n],
            np.concatenate([[BOS], target[:-1]])[None],
            target[None],
            np.ones((1, len(target)), dtype=bool),
        )
        assert abs(-model.loss(one) - scores[b]) < 1e-9


def test_sampling_is_seeded_and_decode_arguments_are_checked():
    model = _model(seed=2, dtype=np.float32)
    source, mask = _sources()
    a, _ = decode_greedy(model, source, mask, BOS, EOS, 8, 1.0, None, np.random.default_rng(0))
    b, _ = decode_greedy(model, source, mask, BOS, EOS, 8, 1.0, None, np.random.default_rng(0))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(BpttError, match="max_length"):
        decode_greedy(model, source, mask, BOS, EOS, 0)
    with pytest.raises(BpttError, match="beam width"):
        beam_search(model, source, mask, BOS, EOS, 5, beam_width=0)
    with pytest.raises(BpttError, match="needs rng"):
        decode_greedy(model, source, mask, BOS, EOS, 5, temperature=1.0)
