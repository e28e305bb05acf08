"""Metrics more than one task scores with, and the n-gram baseline a model must beat.

:func:`edit_distance` (phoneme and digit error rates: g2p, ctc-digits), and the
n-gram baselines of the text and music tasks (:class:`NGram`, :func:`ngram_baselines`,
:func:`ngram_bits`). Shapes: V vocabulary.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from bptt.errors import BpttError


def edit_distance(a: list, b: list) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions from a to b."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


class NGram:
    """An n-gram model of token ids with interpolated Kneser-Ney smoothing:

        P_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h) + D_k u_k(h) / c_k(h) P_{k-1}(w | h')
        P_0(w)     = 1 / V

    h the last k-1 tokens, h' = h without its first token, u_k(h) the number of distinct
    tokens seen after h, D_k = n_1 / (n_1 + 2 n_2) from the counts of k-grams seen once and
    twice. c_n is the count in the training sequences; a lower order k < n counts the
    distinct tokens seen before h w instead (how many contexts w follows h in). An unseen h
    gives P_{k-1}. Every P_k sums to 1 over the V tokens; sequences are padded on the left
    with their first token (e.g. <eos>). ``order=1`` is the add-one unigram (N tokens):
    P(w) = (c(w) + 1) / (N + V).
    """

    def __init__(self, order: int, V: int):
        if order < 1:
            raise BpttError(f"an n-gram needs order >= 1; got {order}")
        self.order, self.V = order, V

    def _padded(self, seq: np.ndarray) -> list[int]:
        return [int(seq[0])] * (self.order - 1) + [int(x) for x in seq]

    def fit(self, sequences: list[np.ndarray]) -> NGram:
        n = self.order
        unigram = np.ones(self.V)  # (V,) add-one counts
        grams: Counter = Counter()  # n-grams (tuples) and their counts
        for seq in sequences:
            np.add.at(unigram, seq[1:], 1.0)
            s = self._padded(seq)
            grams.update(tuple(s[i - n + 1 : i + 1]) for i in range(n, len(s)))
        self.unigram = unigram / unigram.sum()  # (V,)
        # tables[k]: context (k-1 tokens) -> {next token: count}, k = 1..n
        self.tables: list[dict] = [defaultdict(Counter) for _ in range(n + 1)]
        for g, c in grams.items():
            self.tables[n][g[:-1]][g[-1]] += c
        for k in range(n - 1, 0, -1):  # continuation counts: distinct tokens before
            for ctx, nxt in self.tables[k + 1].items():
                for w in nxt:
                    self.tables[k][ctx[1:]][w] += 1
        self.discount = [0.0] * (n + 1)
        for k in range(1, n + 1):
            counts = Counter(c for nxt in self.tables[k].values() for c in nxt.values())
            n1, n2 = counts[1], counts[2]
            self.discount[k] = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
        return self

    def dist(self, history) -> np.ndarray:
        """P(next | history) over the V tokens (V,); only the last order-1 tokens matter."""
        if self.order == 1:
            return self.unigram
        history = tuple(int(x) for x in history)[-(self.order - 1) :]
        p = np.full(self.V, 1.0 / self.V)  # (V,)
        for k in range(1, self.order + 1):
            seen = self.tables[k].get(history[len(history) - k + 1 :] if k > 1 else ())
            if not seen:
                break  # a longer context ending in an unseen one is unseen too
            counts = np.zeros(self.V)  # (V,)
            counts[list(seen)] = list(seen.values())
            D, total = self.discount[k], counts.sum()
            p = np.maximum(counts - D, 0.0) / total + D * len(seen) / total * p  # (V,)
        return p

    def nll(self, sequences: list[np.ndarray], start: int) -> float:
        """Summed -log P (nats) of the tokens after position ``start`` of each sequence."""
        total, pad = 0.0, self.order - 1
        for seq in sequences:
            s = self._padded(seq)
            for i in range(start + 1, len(seq)):
                total -= math.log(self.dist(s[i : i + pad])[seq[i]])
        return total


def ngram_bits(train_ids: np.ndarray, test_ids: np.ndarray, V: int) -> dict[str, float]:
    """Bits per character of add-one unigram and bigram models of the training ids, on test."""
    uni = np.bincount(train_ids, minlength=V).astype(np.float64) + 1.0  # (V,)
    uni /= uni.sum()
    bi = np.ones((V, V))  # (V, V) counts of (previous, next), add-one
    np.add.at(bi, (train_ids[:-1], train_ids[1:]), 1.0)
    bi /= bi.sum(axis=1, keepdims=True)
    return {
        "unigram": float(-np.log2(uni[test_ids[1:]]).mean()),
        "bigram": float(-np.log2(bi[test_ids[:-1], test_ids[1:]]).mean()),
    }


def ngram_baselines(train, held_out, V: int, orders, start: int, count) -> dict:
    """{"unigram", "2-gram", ...: [loss on each list of sequences in ``held_out``]} of the
    unigram and the ``orders``-gram models of the ``train`` sequences: the nats of the
    tokens after position ``start`` of each sequence over ``count(sequences)`` (events)."""
    out = {}
    for order in (1, *orders):
        model = NGram(order, V).fit(train)
        name = "unigram" if order == 1 else f"{order}-gram"
        out[name] = [model.nll(seqs, start) / count(seqs) for seqs in held_out]
    return out
