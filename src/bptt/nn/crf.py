"""The CRF layer: transition, start and end scores over ``bptt.functional.crf``.

    s(y) = a_{y_1} + Σ_t e_t(y_t) + Σ_t A_{y_{t-1} y_t} + z_{y_L}    E = log Z - s(y)

Params (the names of pytorch-crf's ``CRF``): ``transitions`` A (C, C), A[i, j]
the score of tag i followed by tag j; ``start_transitions`` a (C,);
``end_transitions`` z (C,). All start at U(-0.1, 0.1) as in pytorch-crf.

:meth:`forward` returns each row's negative log-likelihood and keeps the cache;
:meth:`backward` takes ∂E'/∂E (B,) and returns ∂E'/∂emissions (B, T, C), filling
``grads``. :meth:`decode` is Viterbi (optionally constrained, e.g. to valid BIO);
:meth:`marginals` the posteriors p(y_t = j | x).

Shapes: B batch, T time steps, C tags.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bptt.functional.crf import crf_backward, crf_forward, crf_marginals, viterbi
from bptt.nn.init import uniform
from bptt.nn.layer import Layer, check_count, check_rng, layer_dtype


class CRF(Layer):
    """A linear-chain CRF over C tags.

    Args:
        num_tags: C.
        dtype: float32 (default) or float64, of the params and the emission gradient.
        rng: Generator for the initialisation; None means a fresh unseeded one.

    Attributes:
        allowed, allowed_start: (C, C) and (C,) bools or None, the constraints
            :meth:`decode` applies (``functional.crf.bio_constraints`` makes them).
    """

    def __init__(self, num_tags: int, dtype: Any = np.float32, rng=None) -> None:
        self.num_tags = check_count("num_tags", num_tags)
        self.dtype = layer_dtype(dtype)
        rng = check_rng(rng)
        C = self.num_tags
        self.params = {
            "transitions": uniform((C, C), 0.1, rng, self.dtype),  # (C, C)
            "start_transitions": uniform((C,), 0.1, rng, self.dtype),  # (C,)
            "end_transitions": uniform((C,), 0.1, rng, self.dtype),  # (C,)
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.allowed: np.ndarray | None = None
        self.allowed_start: np.ndarray | None = None
        self._cache: dict | None = None

    def _scores(self):
        p = self.params
        return p["transitions"], p["start_transitions"], p["end_transitions"]

    def forward(self, emissions, tags, mask=None) -> np.ndarray:
        """E_b (B,) float64, the negative log-likelihood of each row's tags."""
        loss, self._cache = crf_forward(emissions, tags, mask, *self._scores())
        return loss

    def backward(self, d_loss) -> np.ndarray:
        """∂/∂E (B,) -> ∂/∂emissions (B, T, C); replaces ``grads``."""
        g = crf_backward(d_loss, self._cache_or_raise())
        self.grads = {
            "transitions": g["transitions"].astype(self.dtype),
            "start_transitions": g["start"].astype(self.dtype),
            "end_transitions": g["end"].astype(self.dtype),
        }
        return g["emissions"]

    def decode(self, emissions, mask=None) -> np.ndarray:
        """The Viterbi path of every row (B, T) ints, within the constraints if set."""
        return viterbi(emissions, mask, *self._scores(), self.allowed, self.allowed_start)

    def marginals(self, emissions, mask=None) -> np.ndarray:
        """p(y_t = j | x) (B, T, C), zero at padded steps."""
        return crf_marginals(emissions, mask, *self._scores())

    __call__ = forward

    def __repr__(self) -> str:
        return f"CRF({self.num_tags}, dtype={self.dtype.name})"
