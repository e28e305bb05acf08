"""A masked batch run longest sequence first, and its results put back in the caller's order.

At each step the fast time loops leave out the batch rows after the last one still
running there and carry their state (``bptt.functional.fast._fused._rows_running``),
as PyTorch's packed sequences do. That skips the most when the rows are sorted by
length, longest first, so a recurrent layer given a mask sorts its batch so, runs, and
returns every result in the caller's row order. On several threads the loop gives each
thread a share of the rows, so the sorted rows are dealt to the shares in turn (each a
mix of long and short, longest first): sorted outright, one thread got the short ones
and waited for the other. A sequence's outputs and states are the
same bits in any row; the weight gradients, sums over the rows, may round differently.

Shapes: B batch, T time steps; batch-first arrays (B, ...), states (L*K, B, H).
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast._threads import loop_shares


def longest_first(x, mask, states) -> tuple:
    """(order, x, mask, states) with the batch's rows sorted by their real steps, most
    first (ties in the caller's order); order None, and the rest as given, without a
    mask or when it is sorted already."""
    lengths = None if mask is None else mask.sum(axis=1)  # (B,)
    if lengths is None or np.all(lengths[:-1] >= lengths[1:]):
        return None, x, mask, states
    order = np.argsort(-lengths, kind="stable")  # (B,)
    shares = loop_shares(len(order))
    order = np.concatenate([order[k::shares] for k in range(shares)])  # (B,) dealt in turn
    x, states = rows_to(order, x, states)
    return order, x, mask[order], states


def rows_to(order, batch_first, states) -> tuple:
    """``batch_first`` (B, ...) and ``states`` (a tuple of (L*K, B, H), any None, or None)
    in row order ``order`` (None: as they are)."""
    if order is None:
        return batch_first, states
    if states is not None:
        states = tuple(None if s is None else s[:, order] for s in states)
    return batch_first[order], states


def rows_back(order, batch_first, states) -> tuple:
    """The inverse of :func:`rows_to`: results computed on rows ``order``, in the caller's
    order."""
    if order is None:
        return batch_first, states
    inverse = np.argsort(order)  # (B,)
    return rows_to(inverse, batch_first, states)
