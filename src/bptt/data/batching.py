"""Batches: truncated-BPTT windows over long text, padding with masks, length buckets.

Truncated BPTT (the language model). A corpus of N ids is cut into B
contiguous streams of L = N // B ids each (the last N - B*L ids are dropped);
stream b is ids[b*L : (b+1)*L]. Each stream is read in consecutive windows of
k steps; window j holds

    inputs  = streams[:, j*k     : j*k + k]         (B, k)
    targets = streams[:, j*k + 1 : j*k + k + 1]     (B, k)  the next symbol

so the state after window j is exactly the right initial state for window
j + 1: the trainer carries it across windows (detached: gradients stop at the
window boundary) and resets it to zero when an epoch starts. Every
(input, next-symbol) pair of a stream occurs in exactly one window. The last
window is shorter when k does not divide L - 1; it is kept (``drop_last=False``,
the default) or dropped.

Variable-length sequences (the other tasks): :func:`pad_sequences` stacks
them with a (B, T) mask, True at real steps; :func:`bucket_batches` groups
similar lengths so little of a batch is padding, and :class:`BucketedBatches`
serves such batches endlessly, a new order each epoch, resumable.

Shapes: N corpus length, B streams (batch), L steps per stream, k window, T
longest sequence, D features.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bptt.errors import BpttError


def make_streams(ids: np.ndarray, batch_streams: int) -> np.ndarray:
    """Cut ``ids`` (N,) into ``batch_streams`` contiguous streams (B, N // B).

    Stream b is ``ids[b*L : (b+1)*L]`` with L = N // B; the returned array is a
    view of ``ids`` when it can be.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise BpttError(f"ids must have shape (N,), got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise BpttError(f"ids must be integers, got dtype {ids.dtype}")
    B = int(batch_streams)
    if B < 1:
        raise BpttError(f"batch_streams must be at least 1, got {batch_streams}")
    N = ids.shape[0]
    if N < B:
        raise BpttError(f"corpus has {N} ids, too few for {B} streams (needs at least {B})")
    L = N // B
    return ids[: B * L].reshape(B, L)  # (B, L)


def num_windows(steps: int, window: int, drop_last: bool = False) -> int:
    """How many windows of ``window`` steps a stream of ``steps`` ids gives (see module doc)."""
    pairs = steps - 1  # (input, target) pairs in one stream
    return pairs // window if drop_last else -(-pairs // window)


def tbptt_windows(
    streams: np.ndarray, window: int, drop_last: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive truncated-BPTT windows over ``streams`` (B, L).

    Returns:
        a list of (inputs (B, k), targets (B, k)) views, targets being the
        inputs shifted by one step within each stream; the last window may be
        shorter than k unless ``drop_last``.
    """
    streams = np.asarray(streams)
    if streams.ndim != 2:
        raise BpttError(f"streams must have shape (B, L), got shape {streams.shape}")
    B, L = streams.shape
    _check_window(window, B, L)
    n = num_windows(L, window, drop_last)
    return [_window(streams, j, window) for j in range(n)]


def _check_window(window: int, B: int, L: int) -> None:
    if window < 1:
        raise BpttError(f"window must be at least 1 step, got {window}")
    if L < window + 1:
        raise BpttError(
            f"streams have {L} steps, a window of {window} needs at least {window + 1} "
            f"(a corpus of at least B*(window+1) = {B * (window + 1)} ids)"
        )


def _window(streams: np.ndarray, j: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    start = j * window
    stop = min(start + window, streams.shape[1] - 1)
    inputs = streams[:, start:stop]  # (B, k)
    targets = streams[:, start + 1 : stop + 1]  # (B, k)
    return inputs, targets


class TBPTTBatches:
    """Truncated-BPTT windows over a corpus that know where they are.

    The position is (epoch, window): the next window to hand out. Iterating
    hands out the rest of the current epoch and advances the position as each
    window is handed out, rolling to (epoch + 1, 0) after the last. So a
    :meth:`state_dict` taken after a window's update, saved in a checkpoint
    and given to :meth:`load_state_dict`, resumes at exactly the next window.
    The trainer's loop::

        while batches.epoch < epochs:
            if batches.window == 0:
                state = zeros                      # the streams start over
            for inputs, targets in batches:        # (B, k), (B, k)
                loss, grads, state = step(inputs, targets, state)
                save(..., batches.state_dict(), state)   # resumable here

    Args:
        ids: the corpus as ids (N,).
        batch_streams: B, the number of parallel streams.
        window: k, the steps per window (BPTT truncation length).
        drop_last: drop the last window when it is shorter than k.
    """

    def __init__(
        self, ids: np.ndarray, batch_streams: int, window: int, drop_last: bool = False
    ) -> None:
        self.streams = make_streams(ids, batch_streams)  # (B, L)
        B, L = self.streams.shape
        N = np.asarray(ids).shape[0]
        if window < 1:
            raise BpttError(f"window must be at least 1 step, got {window}")
        if N < B * (window + 1):
            raise BpttError(
                f"corpus has {N} ids, {B} streams with a window of {window} need at least "
                f"B*(window+1) = {B * (window + 1)}"
            )
        self.batch_streams = B
        self.window_size = int(window)
        self.drop_last = bool(drop_last)
        self.num_windows = num_windows(L, window, drop_last)
        # A fingerprint of the streams, so a position is never restored onto other data.
        self.data_crc32 = zlib.crc32(np.ascontiguousarray(self.streams, dtype=np.int64).tobytes())
        self.epoch = 0
        self.window = 0

    def __len__(self) -> int:
        """Windows per epoch."""
        return self.num_windows

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The windows left in the current epoch, advancing the position."""
        for j in range(self.window, self.num_windows):
            if j + 1 < self.num_windows:
                self.window = j + 1
            else:
                self.epoch, self.window = self.epoch + 1, 0
            yield _window(self.streams, j, self.window_size)

    def state_dict(self) -> dict[str, Any]:
        """The position, and what it depends on, as a small JSON-able dict."""
        return {
            "epoch": self.epoch,
            "window": self.window,
            "batch_streams": self.batch_streams,
            "window_size": self.window_size,
            "drop_last": self.drop_last,
            "num_windows": self.num_windows,
            "data_crc32": self.data_crc32,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position from :meth:`state_dict`; the data and sizes must match."""
        if not isinstance(state, dict):
            raise BpttError(f"a batches state must be a dict, got {type(state).__name__}")
        mine = self.state_dict()
        missing = sorted(set(mine) - set(state))
        if missing:
            raise BpttError(f"batches state lacks the keys {missing}")
        for key in ("batch_streams", "window_size", "drop_last", "num_windows", "data_crc32"):
            if state[key] != mine[key]:
                raise BpttError(
                    f"batches state was saved with {key}={state[key]!r}, "
                    f"these batches have {key}={mine[key]!r}"
                )
        epoch, window = state["epoch"], state["window"]
        if not (isinstance(epoch, int) and epoch >= 0):
            raise BpttError(f"batches state epoch must be an int >= 0, got {epoch!r}")
        if not (isinstance(window, int) and 0 <= window < self.num_windows):
            raise BpttError(
                f"batches state window must be in 0..{self.num_windows - 1}, got {window!r}"
            )
        self.epoch, self.window = epoch, window


def pad_sequences(
    seqs: Sequence[np.ndarray], pad_value: float = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of different lengths, padded at the end, with a mask.

    Args:
        seqs: B sequences, all 1-D ids (T_b,) or all 2-D features (T_b, D).
        pad_value: the value at padded steps.

    Returns:
        batch (B, T) or (B, T, D) in the sequences' common dtype, T = max T_b,
        and mask (B, T) bool, True at real steps.
    """
    if len(seqs) == 0:
        raise BpttError("pad_sequences needs at least one sequence, got none")
    arrays = [np.asarray(s) for s in seqs]
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1 or ndims.pop() not in (1, 2):
        shapes = [a.shape for a in arrays]
        raise BpttError(
            f"sequences must be all (T,) or all (T, D), got shapes {shapes[:5]}"
            + (" ..." if len(shapes) > 5 else "")
        )
    feature_shape = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.shape[1:] != feature_shape:
            raise BpttError(
                f"sequence {i} has {a.shape[1]} features, sequence 0 has {feature_shape[0]}"
            )
    lengths = np.array([a.shape[0] for a in arrays])  # (B,)
    B, T = len(arrays), int(lengths.max())
    dtype = np.result_type(*arrays)
    batch = np.full((B, T, *feature_shape), pad_value, dtype=dtype)  # (B, T[, D])
    for b, a in enumerate(arrays):
        batch[b, : a.shape[0]] = a
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return batch, mask


def bucket_batches(
    lengths: Sequence[int] | np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of indices whose sequences have similar lengths, in random order.

    The indices are shuffled, sorted by length (stable, so equal lengths stay
    shuffled), cut into batches of ``batch_size`` (the last may be smaller),
    and the batches are shuffled. Every index appears in exactly one batch.

    Returns:
        a list of index arrays (b,) int64, b <= batch_size.
    """
    if not isinstance(rng, np.random.Generator):
        raise BpttError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if batch_size < 1:
        raise BpttError(f"batch_size must be at least 1, got {batch_size}")
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise BpttError(f"lengths must have shape (N,), got shape {lengths.shape}")
    n = lengths.shape[0]
    if n == 0:
        return []
    perm = rng.permutation(n)  # (N,)
    order = perm[np.argsort(lengths[perm], kind="stable")]  # (N,) by length, ties shuffled
    batches = [order[i : i + batch_size].astype(np.int64) for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class BucketedBatches:
    """Endless length-bucketed batches, in a new order each epoch, resumable.

    The order of epoch e is :func:`bptt.data.bucket_batches` with the Generator
    seeded by (seed, e), so a position (epoch, batch) alone restores it. A subclass
    says what a batch of indices is (``_batch``) and which of its attributes a saved
    state must match (``CHECKED``).
    """

    CHECKED: tuple[str, ...] = ("batch_size", "seed")

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.epoch, self.position = 0, 0
        self._order = self._epoch_order()

    def _batch(self, idx: np.ndarray):
        raise NotImplementedError

    def _epoch_order(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        return bucket_batches(self.lengths, self.batch_size, rng)

    def _next_indices(self) -> np.ndarray:
        if self.position == len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._epoch_order()
        self.position += 1
        return self._order[self.position - 1]

    def next_batch(self):
        return self._batch(self._next_indices())

    def next_batch_parts(self, cut) -> list:
        """The next batch's rows ``cut(n)`` (slices; this rank's micro-batches) as batches,
        each padded to its own longest example; None for an empty slice."""
        idx = self._next_indices()
        return [self._batch(idx[r]) if r.stop > r.start else None for r in cut(len(idx))]

    def state_dict(self) -> dict:
        checked = {key: getattr(self, key) for key in self.CHECKED}
        return {"epoch": self.epoch, "position": self.position, **checked}

    def load_state_dict(self, state: dict) -> None:
        for key in self.CHECKED:
            if state.get(key) != getattr(self, key):
                raise BpttError(
                    f"batches state was saved with {key}={state.get(key)!r}, "
                    f"these batches have {key}={getattr(self, key)!r}{_hint(key)}"
                )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order()


def _hint(key: str) -> str:
    """Why a saved batch size may differ: it counts every rank's and micro-batch's rows."""
    if key != "batch_size":
        return ""
    return " (rows per update: --batch-size x --accumulate x MPI ranks; resume with the same)"
