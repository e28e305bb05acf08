"""Split melodies by tune: harmonisations of one hymn tune never straddle train and test.

Two melodies are one tune when the edit distance of their interval sequences
(rests dropped, repeated notes merged, so transposition does not matter) is
under :data:`SAME_TUNE` of the longer's length; tunes are the connected groups,
shuffled with the seed and held out whole.

Shapes: M melodies, N' steps of a melody's interval sequence, W the longest plus one.
"""

from __future__ import annotations

import numpy as np

from bptt.errors import DataError
from bptt.tasks.text.chorale_events import Melody

SAME_TUNE = 0.35  # interval edit distance / length under which two melodies are one tune


def interval_skeleton(melody: Melody) -> np.ndarray:
    """The melody's steps in semitones, rests dropped and repeated notes merged (N',)."""
    pitches = [e.pitch for e in melody.events if e.pitch is not None]
    merged = [p for i, p in enumerate(pitches) if i == 0 or p != pitches[i - 1]]
    return np.diff(np.asarray(merged, dtype=np.int64))  # (N',)


def edit_distances(a: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Levenshtein distance of the int sequence ``a`` to each of ``others`` (M,).

    The usual row recurrence, all M rows at once,

        d_i[j] = min(d_{i-1}[j] + 1, d_i[j-1] + 1, d_{i-1}[j-1] + [a_i != b_j]),

    where the left-to-right term is a running minimum,
    d_i[j] = j + min_{k<=j} (t[k] - k) with t[k] the other two terms.
    """
    M = len(others)
    lengths = np.array([len(b) for b in others])  # (M,)
    width = int(lengths.max(initial=0)) + 1
    padded = np.full((M, width - 1), np.iinfo(np.int64).min)  # (M, W-1), never equal to a step
    for i, b in enumerate(others):
        padded[i, : len(b)] = b
    j = np.arange(width)  # (W,)
    prev = np.broadcast_to(j, (M, width)).copy()  # (M, W)
    for i, x in enumerate(a, 1):
        t = np.empty_like(prev)  # (M, W)
        t[:, 0] = i
        t[:, 1:] = np.minimum(prev[:, 1:] + 1, prev[:, :-1] + (padded != x))
        prev = np.minimum.accumulate(t - j, axis=1) + j  # (M, W)
    return prev[np.arange(M), lengths]  # (M,)


def tune_groups(melodies: list[Melody], threshold: float = SAME_TUNE) -> np.ndarray:
    """A group id per melody (M,): melodies joined when their interval sequences are closer
    than ``threshold`` x the longer one's length (edit distance), and groups closed under it."""
    skeletons = [interval_skeleton(m) for m in melodies]
    parent = list(range(len(melodies)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(melodies) - 1):
        rest = skeletons[i + 1 :]
        d = edit_distances(skeletons[i], rest)  # (M-i-1,)
        longest = np.maximum(len(skeletons[i]), [len(b) for b in rest])  # (M-i-1,)
        for k in np.flatnonzero(d < threshold * np.maximum(longest, 1)):
            parent[root(i + 1 + int(k))] = root(i)
    return np.array([root(i) for i in range(len(melodies))])  # (M,)


def split_by_tune(melodies: list[Melody], test_fraction: float, val_fraction: float, seed: int):
    """(train, val, test): whole tunes shuffled with ``seed``, the first ones held out until
    each held-out share is reached (at least one tune each)."""
    groups = tune_groups(melodies)
    tunes = sorted(set(groups.tolist()))
    if len(tunes) < 3:
        raise DataError(
            f"chorales needs at least 3 different tunes (train, validation, test); "
            f"got {len(tunes)} among {len(melodies)} melodies"
        )
    order = np.random.default_rng(seed).permutation(len(tunes))  # (G,)
    members = {t: [i for i in range(len(melodies)) if groups[i] == t] for t in tunes}
    held: list[list[int]] = [[], []]
    k = 0
    for part, share in enumerate((test_fraction, val_fraction)):
        want = max(1, round(share * len(melodies)))
        while len(held[part]) < want and k < len(tunes) - (2 - part):
            held[part] += members[tunes[order[k]]]
            k += 1
    train = [i for g in order[k:] for i in members[tunes[g]]]
    test, val = held
    return [melodies[i] for i in train], [melodies[i] for i in val], [melodies[i] for i in test]
