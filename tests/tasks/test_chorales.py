"""chorales (events): the encoding round-trips real chorales exactly (what it keeps), the split
keeps each tune on one side, the n-gram baselines are distributions, the mode label changes
what the network predicts, and `bptt train chorales` / eval run end to end."""

import functools
from fractions import Fraction

import numpy as np
import pytest

from bptt.cli import main
from bptt.config import Config
from bptt.data import Vocabulary
from bptt.data.vocabulary import EOS, UNK
from bptt.tasks.metrics import NGram
from bptt.tasks.text import chorale_events, chorales, lm
from bptt.tasks.text.chorale_events import Event, Melody

# Chorales that exercise the encoding: a pickup in 3/4 with fermatas (bwv269), ties across
# bar lines and rests (bwv311, bwv8.6), a tie inside a bar (bwv183.5), 32nd notes (bwv432),
# grace notes (bwv299, dropped).
ROUND_TRIP = [
    "bach/bwv269",
    "bach/bwv311",
    "bach/bwv8.6",
    "bach/bwv183.5",
    "bach/bwv432",
    "bach/bwv299",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BPTT_CACHE", str(tmp_path / "cache"))  # never the user's cache


def _music21():
    return pytest.importorskip("music21", reason="the music extra (music21) is not installed")


@functools.cache
def _score(name):
    """A chorale of music21's corpus, parsed once per session (~0.3 s each)."""
    from music21 import corpus

    return corpus.parse(name)


def _sounding(part):
    """(onset, MIDI pitch or None, length) of every sounding note and rest, as music21 merges
    ties (its own stripTies, not the encoder's), grace notes left out."""
    from music21 import note

    return [
        (
            Fraction(n.offset),
            n.pitch.midi if isinstance(n, note.Note) else None,
            Fraction(n.duration.quarterLength),
        )
        for n in part.stripTies().flatten().notesAndRests
        if not n.duration.isGrace
    ]


def _fermata_onsets(part):
    """Onsets of the sounding notes (tied chains) that carry a fermata."""
    onsets, start = set(), None
    for n in part.flatten().notesAndRests:
        if n.duration.isGrace:
            continue
        if not (n.tie and n.tie.type in ("stop", "continue")):
            start = Fraction(n.offset)
        if any(type(x).__name__ == "Fermata" for x in n.expressions):
            onsets.add(start)
    return onsets


def _written(part):
    """Every written note and rest with its tie: (onset, pitch, length, tie type)."""
    from music21 import note

    return [
        (
            Fraction(n.offset),
            n.pitch.midi if isinstance(n, note.Note) else None,
            Fraction(n.duration.quarterLength),
            n.tie.type if n.tie else None,
        )
        for n in part.flatten().notesAndRests
        if not n.duration.isGrace
    ]


def _bars(part):
    from music21 import stream

    return [Fraction(m.offset) for m in part.getElementsByClass(stream.Measure)]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip_keeps_onsets_pitches_durations_fermatas_bars(name):
    _music21()
    score = _score(name)
    original = chorale_events.soprano(score)
    melody = chorale_events.melody_from_score(score, name)

    # tokens -> melody: exact (the tokens carry no tonic; the melody is in C when trained)
    back = chorale_events.from_tokens(chorale_events.to_tokens(melody))
    assert (back.mode, back.meter, back.pickup, back.events) == (
        melody.mode,
        melody.meter,
        melody.pickup,
        melody.events,
    )
    in_c = melody.in_c()
    shift = next(
        a.pitch - b.pitch
        for a, b in zip(in_c.events, melody.events, strict=True)
        if b.pitch is not None
    )
    assert in_c.tonic == 0 and abs(shift) <= 6
    assert in_c.transposed(-shift) == melody  # transposing to C loses nothing

    decoded = chorale_events.to_part(melody)
    # Kept exactly: every sounding note's and rest's onset, pitch and length ...
    assert _sounding(decoded) == _sounding(original)
    assert [
        (t, e.pitch, e.duration) for t, e in zip(melody.onsets(), melody.events, strict=True)
    ] == _sounding(original)
    # ... which notes carry a fermata ...
    assert _fermata_onsets(decoded) == _fermata_onsets(original)
    # ... and the bar lines: each one drawn is one of the score's (the score adds one where a
    # repeat sign splits a bar into an ending and a pickup).
    assert set(_bars(decoded)) <= set(_bars(original))
    assert _bars(decoded)[:2] == _bars(original)[:2]  # the pickup
    # Dropped: the lyrics.
    assert any(n.lyrics for n in original.flatten().notes)
    assert not any(n.lyrics for n in decoded.flatten().notes)


def test_written_ties_and_bars_come_back_where_bars_are_regular():
    _music21()
    for name in ("bach/bwv8.6", "bach/bwv197.5"):  # one meter, full bars, ties (and rests)
        original = chorale_events.soprano(_score(name))
        decoded = chorale_events.to_part(chorale_events.melody_from_score(_score(name), name))
        assert any(tie for *_, tie in _written(original))
        assert _written(decoded) == _written(original), name
        assert _bars(decoded) == _bars(original), name
    # A tie inside a bar (a syncopation written as two tied notes) comes back as one note.
    original = chorale_events.soprano(_score("bach/bwv183.5"))
    melody = chorale_events.melody_from_score(_score("bach/bwv183.5"), "bwv183.5")
    assert _written(chorale_events.to_part(melody)) != _written(original)
    assert _sounding(chorale_events.to_part(melody)) == _sounding(original)


def test_tokens_look_as_documented_and_bad_tokens_are_refused():
    events = (Event(67, Fraction(1)), Event(None, Fraction(1, 2)), Event(63, Fraction(3), True))
    m = Melody("x", "minor", 0, "4/4", Fraction(1), events)
    assert chorale_events.to_tokens(m) == "minor meter:4/4 pickup:1 G4 q1 R q1/2 Eb4 q3^".split()
    assert chorale_events.pitch_token(60) == "C4" and chorale_events.pitch_token(61) == "C#4"
    with pytest.raises(chorales.BpttError, match="expected a duration token"):
        chorale_events.from_tokens(["major", "meter:4/4", "pickup:0", "C4", "C4"])
    with pytest.raises(chorales.BpttError, match="label major or minor"):
        chorale_events.from_tokens(["4/4", "meter:4/4", "pickup:0", "C4", "q1"])
    with pytest.raises(chorales.BpttError, match="pairs"):
        chorale_events.from_tokens(["major", "meter:4/4", "pickup:0", "C4"])


def _melody(name, pitches, mode="major"):
    events = tuple(Event(int(p), Fraction(1)) for p in pitches)
    return Melody(name, mode, 0, "4/4", Fraction(0), events)


def test_ngram_probabilities_sum_to_one_and_learn():
    rng = np.random.default_rng(2)
    V = 9
    train = [np.concatenate([[1], rng.integers(2, V, size=20), [1]]) for _ in range(15)]
    for order in (1, 2, 3, 5):
        model = NGram(order, V).fit(train)
        for history in ([], [1], [3, 4], [8, 8, 8, 8], rng.integers(0, V, size=6).tolist()):
            p = model.dist(history)
            assert p.shape == (V,) and np.all(p > 0)
            assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # Add-one unigram: (count + 1) / (N + V).
    uni = NGram(1, 3).fit([np.array([0, 1, 1, 2])])
    assert uni.dist([]).tolist() == pytest.approx([1 / 6, 3 / 6, 2 / 6])
    # A sequence where the previous token says the next: the bigram knows, the unigram not.
    cycle = [np.array([1] + [2, 3, 4] * 20 + [1])]
    assert NGram(2, 5).fit(cycle).nll(cycle, 0) < 0.2 * (NGram(1, 5).fit(cycle).nll(cycle, 0))


def _labelled_data(n=40, length=4):
    """Melodies that start on the third of C, E in major and Eb in minor, then wander over C
    and G: only the label tells the first note."""
    rng = np.random.default_rng(3)
    melodies = []
    for i in range(n):
        mode = ("major", "minor")[rng.integers(2)]
        third = 64 if mode == "major" else 63
        pitches = [third, *rng.choice([60, 67], size=length - 1)]
        melodies.append(_melody(f"m{i}", pitches, mode))
    tokens = [t for m in melodies for t in chorale_events.to_tokens(m)]
    vocab = Vocabulary.from_tokens(tokens, specials=(UNK, EOS), level="word")
    return chorales.ChoraleData(vocab, melodies[:32], melodies[32:36], melodies[36:], "toy")


def test_the_label_changes_the_predicted_distribution(tmp_path):
    data = _labelled_data()
    config = Config(
        task="chorales",
        embed_size=8,
        hidden_size=16,
        batch_size=4,
        window=16,
        steps=150,
        eval_every=150,
        lr=2e-2,
        seed=0,
    )
    streams = data.stream(data.train), data.stream(data.val)
    trainer, _ = lm.text_trainer(config, tmp_path, "chorales", data.vocab, *streams, False)
    trainer.run()
    model, vocab = trainer.model, data.vocab
    e, eb = vocab.index("E4"), vocab.index("Eb4")
    first = {}
    for mode in ("major", "minor"):
        ids = vocab.encode([EOS, mode, "meter:4/4", "pickup:0"])[None, :]  # (1, 4)
        logits, _ = model.forward(ids)  # (1, 4, V)
        z = logits[0, -1] - logits[0, -1].max()  # (V,)
        first[mode] = np.exp(z) / np.exp(z).sum()  # (V,) the first pitch, given the label
    assert first["major"][e] > 0.5 > first["minor"][e], first
    assert first["minor"][eb] > 0.5 > first["major"][eb], first
    # The same seen in whole sampled melodies.
    for mode, (hi, lo) in (("major", (0, 1)), ("minor", (1, 0))):
        drawn = chorales.sample_tokens(model, vocab, mode, 20, 1.0, seed=0, max_tokens=60)
        melodies = [chorales.well_formed(t) for t in drawn]
        shares = chorales.third_shares([m for m in melodies if m is not None])
        assert shares[hi] > 2 * shares[lo], (mode, shares)


def test_event_nll_counts_events_and_ends():
    data = _labelled_data(length=12)
    ids = data.ids(data.test)  # 4 melodies of 12 events: 13 scored events each (end included)
    assert chorales.events_of(ids) == 4 * 13
    assert all(len(s) == 2 * 12 + 5 for s in ids)

    class Uniform:  # every token equally likely: log V nats per token, 2 tokens per event
        def loss(self, batch):
            return float(batch.mask.sum()) * np.log(len(data.vocab)), None

    nats = chorales.event_nll(Uniform(), ids)["loss"]
    assert nats == pytest.approx((2 * 12 + 1) / 13 * np.log(len(data.vocab)))


def test_train_eval_end_to_end(tmp_path, capsys):
    _music21()
    names = tmp_path / "chorales.txt"
    names.write_text(
        "# a few chorales\nbach/bwv269\nbach/bwv347\nbach/bwv311\nbach/bwv8.6\n"
        "bach/bwv432\nbach/bwv299\nbach/bwv183.5\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    flags = ["--text", str(names), "--hidden-size", "16", "--embed-size", "8", "--steps", "4"]
    flags += ["--eval-every", "2", "--batch-size", "2", "--window", "16", "--out", str(out)]
    flags += ["--test-fraction", "0.2", "--val-fraction", "0.2"]
    assert main(["train", "chorales", "--quiet", *flags]) == 0
    printed = capsys.readouterr().out
    assert "melodies: " in printed and "whole tunes held out" in printed
    assert "test NLL per event: LSTM" in printed and "3-gram" in printed
    assert "100 samples labelled major" in printed and "100 samples labelled minor" in printed
    assert main(["eval", str(out / "best.safetensors")]) == 0
    assert "test NLL per event" in capsys.readouterr().out
    assert main(["sample", str(out / "best.safetensors"), "--prompt", "minor"]) == 0
    assert capsys.readouterr().out.startswith("minor meter:")
    assert main(["sample", str(out / "best.safetensors"), "--prompt", "lydian"]) == 2
    assert "major, minor; got 'lydian'" in capsys.readouterr().err
    assert main(["eval", str(out / "best.safetensors"), "--text", str(names)]) == 0
    assert "7 melodies" in capsys.readouterr().out


def test_write_melody_writes_event_list_and_midi(tmp_path):
    _music21()
    events = (Event(67, Fraction(1)), Event(64, Fraction(4), True), Event(60, Fraction(1)))
    m = Melody("toy", "major", 0, "3/4", Fraction(1), events)
    paths = chorales.write_melody(m, tmp_path / "toy")
    names = {p.name for p in paths}
    assert {"toy.txt", "toy.mid", "toy.wav"} <= names
    lines = (tmp_path / "toy.txt").read_text().splitlines()
    assert lines[2].split() == ["0", "1", "G4"] and lines[3].split() == ["1", "4", "E4", "fermata"]
    assert (tmp_path / "toy.mid").read_bytes()[:4] == b"MThd"


@pytest.mark.slow  # parses all 350 chorales: about 2 minutes
def test_round_trip_over_the_whole_corpus():
    m21 = _music21()
    names = chorales.score_names()
    sounding = fermatas = ties = bars = 0
    for name in names:
        score = m21.corpus.parse(name)
        original = chorale_events.soprano(score)
        decoded = chorale_events.to_part(chorale_events.melody_from_score(score, name))
        sounding += _sounding(decoded) == _sounding(original)
        fermatas += _fermata_onsets(decoded) == _fermata_onsets(original)
        ties += _written(decoded) == _written(original)
        bars += set(_bars(decoded)) <= set(_bars(original))
    print(
        f"{len(names)} chorales: sounding notes {sounding}, fermatas {fermatas}, written ties "
        f"{ties}, bar lines among the score's {bars}"
    )
    assert len(names) == 350
    assert sounding == fermatas == 350
    assert ties >= 337 and bars >= 340  # the rest: ties inside bars, meter changes
