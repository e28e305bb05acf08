"""tune_split: the vectorised edit distance against the textbook recurrence, and a split that
keeps every tune (a melody and its transposed, slightly changed variant) on one side."""

from fractions import Fraction

import numpy as np

from bptt.tasks.text import tune_split
from bptt.tasks.text.chorale_events import Event, Melody


def _levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[-1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_edit_distances_match_the_textbook_recurrence():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(-3, 4, size=rng.integers(0, 12)) for _ in range(30)]
    for a in seqs[:8]:
        got = tune_split.edit_distances(a, seqs)
        assert got.tolist() == [_levenshtein(a.tolist(), b.tolist()) for b in seqs]


def _tune(rng, n=24):
    steps = rng.choice([-4, -3, -2, -1, 1, 2, 3, 5], size=n)
    return 64 + np.cumsum(steps) % 12


def _melody(name, pitches, mode="major"):
    events = tuple(Event(int(p), Fraction(1)) for p in pitches)
    return Melody(name, mode, 0, "4/4", Fraction(0), events)


def test_split_keeps_every_tune_on_one_side():
    rng = np.random.default_rng(1)
    melodies = []
    for t in range(30):
        tune = _tune(rng)
        melodies.append(_melody(f"t{t}", tune))
        if t % 3 == 0:  # another harmonisation: transposed, one note changed
            variant = tune + 5
            variant[7] += 1
            melodies.append(_melody(f"t{t}-b", variant))
    groups = tune_split.tune_groups(melodies)
    assert len(set(groups.tolist())) == 30  # the variants found, the other tunes apart
    train, val, test = tune_split.split_by_tune(melodies, 0.2, 0.1, seed=0)
    assert len(train) + len(val) + len(test) == len(melodies)
    assert 0.2 * len(melodies) <= len(test) <= 0.2 * len(melodies) + 2
    side = {m.name: k for k, part in enumerate((train, val, test)) for m in part}
    for t in range(0, 30, 3):
        assert side[f"t{t}"] == side[f"t{t}-b"]
    # Seeded: the same split again, another with another seed.
    assert tune_split.split_by_tune(melodies, 0.2, 0.1, seed=0)[2] == test
    assert tune_split.split_by_tune(melodies, 0.2, 0.1, seed=1)[2] != test
