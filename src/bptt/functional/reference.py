"""The reference route: a plain loop over time around each cell's step pair, and the switch.

Each cell module (:mod:`bptt.functional.rnn`, ``lstm``, ``gru``) writes one
step of its equations as a pair, the forward beside its backward:

    step_forward(x_t, state, weights)   -> (state_t, cache_t)
    step_backward(d_state_t, cache_t)   -> (∂E/∂x_t, ∂E/∂state_{t-1}, ∂E/∂weights)

and BPTT is then the loop below: forward for t = 1..T keeping every cache_t,
backward for t = T..1 summing the weight gradients over the steps. Masks:
where mask[b, t] is False the step is padding, the state is carried unchanged
(state_t = state_{t-1}), the output is zero, and the gradient passes the step
untouched, so nothing there receives gradient; a padded input is never read (even a
NaN there cannot leak in). So a padded batch gives what each sequence gives alone.

The fast route (:mod:`bptt.functional.fast`) computes the same numbers with
packed products and fused kernels. It runs by default; ``use_reference(True)``
or the environment variable ``BPTT_REFERENCE=1`` runs this loop everywhere.

Shapes: B batch, T time steps, D input features, H hidden units, G gates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from bptt.errors import BpttError

ENV = "BPTT_REFERENCE"
_forced: bool | None = None  # set by use_reference; None: read the environment


def use_reference(on: bool | None = True) -> None:
    """Run the cells on the reference loop (True), the fast route (False), or as the env says.

    None reads ``BPTT_REFERENCE`` again (set to 1 for the reference).
    """
    global _forced
    _forced = None if on is None else bool(on)


@contextmanager
def forced(on: bool) -> Iterator[None]:
    """Within the block, the reference (True) or the fast route (False); then as before."""
    global _forced
    before = _forced
    _forced = bool(on)
    try:
        yield
    finally:
        _forced = before


def reference_on() -> bool:
    """Whether the cells run the reference loop now."""
    if _forced is not None:
        return _forced
    return os.environ.get(ENV, "").strip() not in ("", "0", "false", "no")


def check_cell(
    cell: str,
    gates: int,
    x: np.ndarray,
    state: tuple[np.ndarray, ...],
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray | None,
    bias_hh: np.ndarray | None,
    mask: np.ndarray | None,
    names: tuple[str, ...] = ("h0",),
) -> None:
    """Raise a BpttError that names the expected and the received shape (G = ``gates``)."""
    G = "" if gates == 1 else str(gates)
    if getattr(x, "ndim", None) != 3:
        raise BpttError(f"{cell} input must be (B, T, D), got shape {np.shape(x)}")
    B, T, D = x.shape
    hh = weight_hh.shape
    if len(hh) != 2 or hh[0] != gates * hh[1]:
        raise BpttError(f"{cell} weight_hh must be ({G}H, H), got {weight_hh.shape}")
    H = hh[1]
    if weight_ih.shape != (gates * H, D):
        if weight_ih.ndim == 2 and weight_ih.shape[0] == gates * H:
            raise BpttError(
                f"{cell} input has {D} features, the layer expects {weight_ih.shape[1]}"
            )
        raise BpttError(
            f"{cell} weight_ih must be ({G}H, D) = {(gates * H, D)}, got {weight_ih.shape}"
        )
    for name, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if b is not None and b.shape != (gates * H,):
            raise BpttError(f"{cell} {name} must be ({G}H,) = {(gates * H,)}, got {b.shape}")
    if not isinstance(state, tuple | list) or len(state) != len(names):
        raise BpttError(
            f"{cell} state must be a tuple ({', '.join(names)}), got {type(state).__name__}"
        )
    for name, s in zip(names, state, strict=True):
        if getattr(s, "shape", None) != (B, H) and np.shape(s) != (B, H):  # arrays, then lists
            raise BpttError(f"{cell} {name} must be (B, H) = {(B, H)}, got {np.shape(s)}")
    if mask is not None and np.shape(mask) != (B, T):
        raise BpttError(f"{cell} mask must be (B, T) = {(B, T)}, got {np.shape(mask)}")


def _one_dtype(x, state, weights) -> tuple:
    """x, the state and the weights in the dtype NumPy's promotion gives them together, as
    the loop below computes: float64 inputs with float32 weights run in float64. The fast
    route's compiled kernels take one dtype (its float32 packed kernel refused float64
    rows). Only arrays decide it: a state given as nested lists (which the checks take)
    is made an array of that dtype. Arrays already in it are passed as they are."""
    arrays = [a for a in (x, *state, *weights) if isinstance(a, np.ndarray)]
    dtype = np.result_type(*arrays)
    if len(arrays) == 3 + len(state) and all(a.dtype == dtype for a in arrays):
        return x, state, weights
    cast = lambda a: None if a is None else np.asarray(a, dtype=dtype)  # noqa: E731
    return cast(x), tuple(cast(s) for s in state), tuple(cast(w) for w in weights)


def as_weights(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> dict:
    """The ``weights`` dict a step function takes; a bias may be None (absent)."""
    return {"weight_ih": weight_ih, "weight_hh": weight_hh, "bias_ih": bias_ih, "bias_hh": bias_hh}


def bias_sum(weights: dict) -> np.ndarray | float:
    """bias_ih + bias_hh, either of them absent (None); 0 when both are."""
    total = 0.0
    for name in ("bias_ih", "bias_hh"):
        if weights.get(name) is not None:
            total = total + weights[name]
    return total


@dataclass(frozen=True)
class Route:
    """One cell's two routes and the switch between them: the loop below over its step
    pair when :func:`reference_on`, else its fast route (``bptt.functional.fast``).

    ``state`` names the cache's state histories (("h",), or ("h", "c") for the LSTM),
    ``stacked`` the step-cache entries kept time-major, ``total`` the LSTM's total
    ∂E/∂C_t (see :func:`backward_loop`) and ``names`` the states in errors (h0, c0).
    """

    cell: str
    gates: int
    state: tuple[str, ...]
    step_forward: Callable
    step_backward: Callable
    fast_forward: Callable
    fast_backward: Callable
    stacked: tuple[str, ...] = ()
    total: Callable | None = None
    names: tuple[str, ...] = ("h0",)

    def forward(self, x, state, weights: tuple, mask, workspace, **step_kwargs):
        """The cell's forward: checked (:func:`check_cell`), then on the route of the moment.

        Args, as every cell's ``*_forward`` takes them:
            x: inputs (B, T, D).
            state: the initial state, a tuple of (B, H) arrays (``names``).
            weights: (weight_ih (GH, D), weight_hh (GH, H), bias_ih, bias_hh); a bias
                (GH,) or None for no bias.
            mask: (B, T) booleans, True at real steps; None means all real.
            workspace: a dict whose arrays the fast route's cache may reuse from the
                last call (see :mod:`bptt.functional.fast._workspace`); None: all new.
            step_kwargs: the RNN's nonlinearity, to either route by name.

        Returns outputs (B, T, H) (zero at padded steps), the final state (the state
        after each sequence's last real step) and the cache for :meth:`backward`.
        """
        check_cell(self.cell, self.gates, x, state, *weights, mask, self.names)
        if not reference_on():
            kinds = tuple(None if w is None else w.dtype for w in weights)
            x, state, weights = _one_dtype(x, state, weights)
            out = self.fast_forward(x, state, *weights, mask, workspace=workspace, **step_kwargs)
            out[2]["weight_dtypes"] = kinds  # each gradient in its weight's dtype, as below
            return out
        loop_weights = as_weights(*weights)
        step, kept = self.step_forward, self.stacked
        return forward_loop(
            step, x, tuple(state), loop_weights, mask, self.state, kept, **step_kwargs
        )

    def backward(self, d_outputs, d_final_state, cache: dict, state_grads: dict | None):
        """The cell's BPTT on the route its forward took (the cache says which).

        Args, as every cell's ``*_backward`` takes them:
            d_outputs: ∂E/∂outputs (B, T, H).
            d_final_state: ∂E/∂ the final state, a tuple (an entry may be None, zero),
                or None.
            cache: from :meth:`forward`.
            state_grads: if a dict, BPTT's per-step gradients are kept in it, one
                (T+1, B, H) array per state name (``"h"``, and ``"c"`` for the LSTM),
                ∂E/∂state_t for t = 0..T.

        Returns ∂E/∂x (B, T, D), ∂E/∂ the initial state and the weight gradients
        {"weight_ih", "weight_hh", "bias_ih", "bias_hh"} (each bias only if used).
        """
        if not cache.get("reference"):
            d_x, d_state, grads = self.fast_backward(d_outputs, d_final_state, cache, state_grads)
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            for name, kind in zip(names, cache.get("weight_dtypes", ()), strict=False):
                if name in grads and grads[name].dtype != kind:
                    grads[name] = grads[name].astype(kind)
            return d_x, d_state, grads
        step, d_final = self.step_backward, d_final_state
        return backward_loop(step, d_outputs, d_final, cache, self.state, state_grads, self.total)


def forward_loop(
    step_forward: Callable,
    x: np.ndarray,
    state: tuple[np.ndarray, ...],
    weights: dict,
    mask: np.ndarray | None,
    state_names: tuple[str, ...],
    stacked: tuple[str, ...] = (),
    **step_kwargs,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], dict]:
    """The reference forward: state_t, cache_t = step_forward(x_t, state_{t-1}) for t = 1..T.

    Returns outputs (B, T, H) (h_t, zero at padding), the final state and the
    cache: the per-step caches, and time-major stacks ``state_names`` (T+1, B, H)
    (state_0 .. state_T) and ``stacked`` (T, B, ·) of the named step-cache entries.
    """
    T = x.shape[1]
    m = None if mask is None else np.asarray(mask, dtype=bool)  # (B, T)
    history = [[s] for s in state]  # each: T+1 arrays (B, H)
    steps = []
    for t in range(T):
        x_t = x[:, t] if m is None else np.where(m[:, t, None], x[:, t], 0)  # (B, D)
        new, step_cache = step_forward(x_t, state, weights, **step_kwargs)
        if m is not None:  # padding carries the state
            new = tuple(np.where(m[:, t, None], n, s) for n, s in zip(new, state, strict=True))
        for kept, s in zip(history, new, strict=True):
            kept.append(s)
        steps.append(step_cache)
        state = new
    h = np.stack(history[0])  # (T+1, B, H)
    outputs = h[1:].transpose(1, 0, 2).copy()  # (B, T, H)
    if m is not None:
        outputs *= m[:, :, None]
    cache = {
        "reference": True,
        "steps": steps,
        "mask": m,
        "m": None if m is None else m.T[:, :, None],  # (T, B, 1)
        "x_shape": x.shape,
        "weights": weights,
        "weight_ih": weights["weight_ih"],
        "weight_hh": weights["weight_hh"],
        "has_bias_ih": weights.get("bias_ih") is not None,
        "has_bias_hh": weights.get("bias_hh") is not None,
        **step_kwargs,
    }
    for name, kept in zip(state_names, history, strict=True):
        cache[name] = np.stack(kept)  # (T+1, B, H)
    for name in stacked:
        cache[name] = np.stack([c[name] for c in steps]) if steps else None  # (T, B, ·)
    return outputs, tuple(s.copy() for s in state), cache


def backward_loop(
    step_backward: Callable,
    d_outputs: np.ndarray,
    d_final_state: tuple[np.ndarray | None, ...] | None,
    cache: dict,
    state_names: tuple[str, ...],
    state_grads: dict | None = None,
    total: Callable | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, ...], dict[str, np.ndarray]]:
    """The reference BPTT: for t = T..1, ∂E/∂x_t, ∂E/∂state_{t-1}, ∂E/∂W_t = step_backward(...).

    ∂E/∂h_t is the output's gradient plus what step t+1 sends back; ∂E/∂W = Σ_t ∂E/∂W_t.
    ``state_grads`` (a dict) receives (T+1, B, H) per state name, ∂E/∂state_t;
    ``total(d_state, cache_t)`` gives the total ∂E/∂state_t to keep where a
    state also reaches the output through another (the LSTM's C_t through h_t).
    """
    B, T, D = cache["x_shape"]
    H = cache["h"].shape[2]
    dtype = cache["h"].dtype
    if d_outputs.shape != (B, T, H):
        raise BpttError(f"d_outputs must be (B, T, H) = {(B, T, H)}, got {d_outputs.shape}")
    m = cache["mask"]  # (B, T) or None
    d_state = [np.zeros((B, H), dtype=dtype) for _ in state_names]  # ∂E/∂state_T
    for k, d in enumerate(d_final_state or ()):
        if d is not None:
            d_state[k] = d_state[k] + d
    d_x = np.zeros((B, T, D), dtype=dtype)  # (B, T, D)
    grads = {n: np.zeros_like(w) for n, w in cache["weights"].items() if w is not None}
    keep = None if state_grads is None else np.empty((len(state_names), T + 1, B, H), dtype=dtype)
    for t in range(T - 1, -1, -1):
        real = None if m is None else m[:, t, None]  # (B, 1)
        d_out = d_outputs[:, t] if real is None else np.where(real, d_outputs[:, t], 0)
        d_state[0] = d_state[0] + d_out  # ∂E/∂h_t: from the output and from step t+1
        d_real = d_state if real is None else [np.where(real, d, 0) for d in d_state]
        d_x_t, d_prev, d_w = step_backward(tuple(d_real), cache["steps"][t])
        if keep is not None:
            kept = d_state if total is None else total(d_state, cache["steps"][t])
            for k, d in enumerate(kept):
                keep[k, t + 1] = d if real is None else np.where(real, d, d_state[k])
        if real is not None:  # padding passes the gradient through untouched
            d_prev = [p + np.where(real, 0, d) for p, d in zip(d_prev, d_state, strict=True)]
        d_x[:, t] = d_x_t
        for name in grads:
            grads[name] += d_w[name]
        d_state = list(d_prev)
    if keep is not None:
        for k, name in enumerate(state_names):
            keep[k, 0] = d_state[k]
            state_grads[name] = keep[k]
    return d_x, tuple(d_state), grads
