"""Scratch arrays the time loops reuse from one call to the next.

A large NumPy array is fresh memory from the operating system, and its first
touch costs a page fault per 4 KiB page. A recurrent layer's forward makes
several (T, B, G*H) arrays per layer and direction (the time-major input, the
gate and state histories backward reads, the gate gradients), so a call of the
lstm-c benchmark's shape (T=200, B=16, H=256, two layers) took about 4,000
page faults and 10-25 ms of system time (``resource.getrusage``), every call.

A *workspace* is a plain dict the caller owns: each named array is kept there
and handed out again on the next call, grown when a call needs more. Only
arrays whose life ends before the next call may come from it: the cache that
backward reads (so a workspace serves one forward/backward pair at a time, which
is the nn layers' contract: each forward replaces the last one's cache), never
the outputs, final states or gradients handed to the caller. ``None`` means no
reuse: every array is new, as for callers that keep several caches alive.
"""

from __future__ import annotations

import math

import numpy as np


def scratch(workspace: dict | None, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array of ``shape``: the workspace's memory when it has some, else new."""
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    size = math.prod(shape)
    flat = workspace.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = workspace[name] = np.empty(size, dtype=dtype)  # (size,) grown, kept
    return flat[:size].reshape(shape)
