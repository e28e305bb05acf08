"""Gradient flow through time: what BPTT already computes, per time step and per lag.

The lecture's sum over k, for the loss E_t at step t and a recurrent weight W:

    ∂E_t/∂W = Σ_{k=1}^{t} ∂E_t/∂s_t (∏_{j=k+1}^{t} ∂s_j/∂s_{j-1}) ∂⁺s_k/∂W

where ∂⁺s_k/∂W is the immediate dependence of step k on W (s_{k-1} held
fixed). Everything here comes out of the cells' own backward functions
(``bptt.functional.*_backward``), which keep ∂E/∂s_k for every k when given
``state_grads={}``; nothing is differentiated a second time:

- ``‖∂E/∂s_k‖``: one backward with the full upstream gradient;
- ``‖∂E_T/∂s_k‖``: one backward with the upstream gradient of the last step only
  (for the LSTM also ``‖∂E_T/∂C_k‖``, the cell state's conveyor belt);
- the lag split ``∂E/∂W = Σ_ℓ G_ℓ`` with ``G_ℓ = Σ_t (term k = t - ℓ)``: one
  backward per source step t gives ∂E_t/∂s_k for all k; the immediate term
  of step k is then one step of the same backward, run on a one-step forward
  from s_{k-1} with ∂E_t/∂s_k as its final-state gradient. All steps k of a
  lag ℓ run together, stacked along the batch, so the backward's own sum over
  the batch adds them up;
- the Jacobian-product norms and the forget-gate (LSTM) or update-gate (GRU)
  path product, from the forward cache (:mod:`bptt.diagnostics.jacobian`).

Norms of state gradients are Frobenius norms over the whole batch, (B, H) at
each k. Models: a one-layer, one-direction recurrent layer (the lecture's).

Shapes: B batch, T time steps, D input features, H hidden units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bptt.diagnostics.jacobian import spectral_norms
from bptt.errors import BpttError
from bptt.losses import cross_entropy
from bptt.nn import Recurrent


def cell_of(layer: Any) -> tuple[str, Any, Any, dict]:
    """(cell name, functional forward, functional backward, forward kwargs) of a one-layer layer."""
    if not isinstance(layer, Recurrent):
        raise BpttError(
            f"gradient flow needs an RNN, LSTM or GRU layer; got {type(layer).__name__}"
        )
    if layer.num_layers != 1 or layer.bidirectional:
        raise BpttError(
            f"gradient flow needs one layer in one direction; this layer has "
            f"num_layers={layer.num_layers}, bidirectional={layer.bidirectional}"
        )
    # the very functions the layer trains with
    return layer.cell, layer.cell_forward, layer.cell_backward, layer.cell_kwargs()


def start_state(layer: Any, x: np.ndarray, state: Any) -> tuple[np.ndarray, ...]:
    """The one-layer cell's initial state for inputs x (B, T, D): zeros, or ``state`` as (B, H)s."""
    B, H = x.shape[0], layer.hidden_size
    if state is None:
        return tuple(np.zeros((B, H), dtype=x.dtype) for _ in layer.state_names)  # (B, H) each
    pieces = state if isinstance(state, tuple) else (state,)
    return tuple(np.asarray(p, dtype=x.dtype).reshape(B, H) for p in pieces)  # (B, H) each


def _check(layer: Any, x: np.ndarray, d_outputs: np.ndarray) -> None:
    if x.ndim != 3 or x.shape[2] != layer.input_size:
        raise BpttError(f"x must be (B, T, D={layer.input_size}); got shape {x.shape}")
    want = (*x.shape[:2], layer.hidden_size)
    if d_outputs.shape != want:
        raise BpttError(f"d_outputs must be (B, T, H) = {want}; got shape {d_outputs.shape}")


def state_gradients(
    layer: Any, x: np.ndarray, d_outputs: np.ndarray, state: Any = None
) -> dict[str, np.ndarray]:
    """BPTT's per-step state gradients: {"h": (T+1, B, H)} ∂E/∂h_k, k = 0..T, and "c" (LSTM).

    ``d_outputs`` (B, T, H) is ∂E/∂(the layer's outputs); the LSTM's "c" is
    ∂E/∂C_k as BPTT carries it (including the path through h_k = o_k tanh C_k).
    """
    _check(layer, x, d_outputs)
    _, forward, backward, kwargs = cell_of(layer)
    _, _, cache = forward(x, start_state(layer, x, state), *layer.cell_weights(), **kwargs)
    kept: dict[str, np.ndarray] = {}
    backward(d_outputs, None, cache, state_grads=kept)
    return kept


def last_step_only(d_outputs: np.ndarray) -> np.ndarray:
    """The upstream gradient of E_T alone: d_outputs kept at the last step, zero elsewhere."""
    d_last = np.zeros_like(d_outputs)  # (B, T, H)
    d_last[:, -1] = d_outputs[:, -1]
    return d_last


def lag_split(
    layer: Any, x: np.ndarray, d_outputs: np.ndarray, state: Any = None, progress=None
) -> dict[str, np.ndarray]:
    """∂E/∂θ split by lag ℓ = t - k for every cell parameter θ: {name: (T, *θ.shape)}.

    Entry ℓ is G_ℓ = Σ_{t=ℓ+1}^{T} ∂E_t/∂s_{t-ℓ} ∂⁺s_{t-ℓ}/∂θ; summed over ℓ it is the
    full BPTT gradient. Cost: T backward passes and T one-step passes; memory
    T² B H (the incoming gradient of every (lag, step) pair). ``progress`` wraps
    the loop over source steps t (e.g. ``tqdm``).
    """
    _check(layer, x, d_outputs)
    _, forward, backward, kwargs = cell_of(layer)
    weights = layer.cell_weights()
    init = start_state(layer, x, state)
    B, T, D = x.shape
    H = layer.hidden_size
    _, _, cache = forward(x, init, *weights, **kwargs)
    states = (cache["h"],)  # (T+1, B, H) in every cell's cache
    if layer.state_arity == 2:  # the LSTM's cell state C
        states += (cache["c"],)  # (T+1, B, H)
        forget = _gate(layer, cache, layer.carry_gate)  # (T, B, H) f_1 .. f_T

    # incoming[ℓ, k-1] = ∂E_t/∂s_k with t = k + ℓ (for the LSTM the C part
    # from beyond step k only: the one-step backward adds the path through h_k itself).
    incoming = [np.zeros((T, T, B, H), dtype=x.dtype) for _ in states]  # (T, T, B, H) each
    d_src = np.zeros_like(d_outputs)  # (B, T, H)
    sources = range(1, T + 1)
    for t in sources if progress is None else progress(sources):
        d_src[:, t - 1] = d_outputs[:, t - 1]
        kept: dict[str, np.ndarray] = {}
        backward(d_src, None, cache, state_grads=kept)
        d_src[:, t - 1] = 0
        k = np.arange(1, t + 1)  # steps 1..t
        incoming[0][t - k, k - 1] = kept["h"][1 : t + 1]
        if layer.state_arity == 2:
            future = np.zeros((t, B, H), dtype=x.dtype)  # (t, B, H) ∂E_t/∂C_k via C_{k+1}
            future[:-1] = kept["c"][2 : t + 1] * forget[1:t]
            incoming[1][t - k, k - 1] = future

    params = [n[: -len("_l0")] for n in layer.params if n.endswith("_l0")]
    out = {n: np.zeros((T, *layer.params[f"{n}_l0"].shape), dtype=x.dtype) for n in params}
    for lag in range(T):
        n = T - lag  # steps k = 1..n have a source t = k + lag <= T
        x1 = x[:, :n].transpose(1, 0, 2).reshape(n * B, 1, D)  # (n*B, 1, D) x_k
        s0 = tuple(s[:n].reshape(n * B, H) for s in states)  # (n*B, H) s_{k-1}
        d_fin = tuple(g[lag, :n].reshape(n * B, H) for g in incoming)  # (n*B, H)
        _, _, c1 = forward(x1, s0, *weights, **kwargs)
        _, _, grads = backward(np.zeros((n * B, 1, H), dtype=x.dtype), d_fin, c1)
        for name in params:
            out[name][lag] = grads[name]
    return out


@dataclass
class GradientFlow:
    """Per-step gradient-flow numbers of one model on one batch (index k = 0..T, lag = T - k)."""

    cell: str
    last_h: np.ndarray  # (T+1,) ‖∂E_T/∂h_k‖
    full_h: np.ndarray  # (T+1,) ‖∂E/∂h_k‖
    jacobian: np.ndarray  # (T+1,) mean over the batch of ‖∏_{j=k+1}^T ∂s_j/∂s_{j-1}‖_2
    last_c: np.ndarray | None = None  # (T+1,) ‖∂E_T/∂C_k‖ (LSTM)
    full_c: np.ndarray | None = None  # (T+1,) ‖∂E/∂C_k‖ (LSTM)
    gate_path: np.ndarray | None = None  # (T+1,) mean ∏_{j=k+1}^T f_j (LSTM) or z_j (GRU)
    lag_norms: np.ndarray | None = None  # (T,) ‖G_ℓ‖ of weight_hh, ℓ = 0..T-1
    meta: dict = field(default_factory=dict)

    @property
    def T(self) -> int:
        return len(self.last_h) - 1

    def rows(self) -> list[dict]:
        """One row per k (lag T - k), the columns this model has: for CSV and JSON."""
        cols = {
            "last_h": self.last_h,
            "full_h": self.full_h,
            "jacobian": self.jacobian,
            "last_c": self.last_c,
            "full_c": self.full_c,
            "gate_path": self.gate_path,
        }
        cols = {k: v for k, v in cols.items() if v is not None}
        rows = []
        for k in range(self.T + 1):
            lag = self.T - k
            row = {"k": k, "lag": lag, **{n: float(v[k]) for n, v in cols.items()}}
            if self.lag_norms is not None:
                # the weight-gradient share of lag ℓ = T - k (defined for ℓ < T)
                row["lag_grad_weight_hh"] = float(self.lag_norms[lag]) if lag < self.T else None
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        return {"cell": self.cell, "T": self.T, **self.meta, "steps": self.rows()}


def _frob(g: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("kbh,kbh->k", g, g, dtype=np.float64))  # (T+1,)


def _gate(layer: Any, cache: dict, name: str) -> np.ndarray:
    """The values (T, B, H) of the gate ``name`` from a forward's cache."""
    i, H = layer.gate_names.index(name), layer.hidden_size
    return cache["gates"][:, :, i * H : (i + 1) * H]  # (T, B, H)


def _gate_path(layer: Any, cache: dict) -> np.ndarray | None:
    if layer.carry_gate is None:  # the RNN has no gate
        return None
    gate = _gate(layer, cache, layer.carry_gate)  # (T, B, H) LSTM f_j; GRU z_j
    T = gate.shape[0]
    path = np.ones((T + 1, *gate.shape[1:]), dtype=np.float64)  # (T+1, B, H)
    for k in range(T - 1, -1, -1):
        path[k] = path[k + 1] * gate[k]  # ∏_{j=k+1}^T
    return path.mean(axis=(1, 2))  # (T+1,)


def gradient_flow(
    layer: Any,
    x: np.ndarray,
    d_outputs: np.ndarray,
    state: Any = None,
    method: str = "auto",
    lags: bool = True,
    progress=None,
) -> GradientFlow:
    """All the per-step numbers for ``layer`` on inputs ``x`` with upstream ``d_outputs``.

    Args:
        layer: a one-layer, one-direction :class:`bptt.nn.RNN`, ``LSTM`` or ``GRU``.
        x: the layer's inputs (B, T, D).
        d_outputs: ∂E/∂(layer outputs) (B, T, H) for the full loss E = Σ_t E_t.
        state: initial state (B, H) (or (h0, c0)); None means zeros.
        method: "auto" (default: equal to "exact" to ~1e-10, fast for large states),
            "exact" or "power" for the Jacobian-product spectral norms
            (:func:`bptt.diagnostics.jacobian.spectral_norms`).
        lags: also split ∂E/∂weight_hh by lag (T extra backward passes).
        progress: ``progress(iterable, desc)`` wraps the two long loops (the
            Jacobian products, the lag split), e.g. ``functools.partial(tqdm, leave=False)``.
    """
    cell, forward, _, kwargs = cell_of(layer)
    full = state_gradients(layer, x, d_outputs, state)
    last = state_gradients(layer, x, last_step_only(d_outputs), state)
    _, _, cache = forward(x, start_state(layer, x, state), *layer.cell_weights(), **kwargs)

    def wrap(what: str, total: int):
        return None if progress is None else lambda it: progress(it, desc=what, total=total)

    T = x.shape[1]
    norms = spectral_norms(cell, cache, method, progress=wrap("Jacobian products", T + 1))
    lag_norms = None
    if lags:
        split = lag_split(layer, x, d_outputs, state, progress=wrap("lag split", T))
        split = split["weight_hh"]  # (T, G*H, H)
        lag_norms = np.sqrt(np.einsum("lij,lij->l", split, split, dtype=np.float64))  # (T,)
    return GradientFlow(
        cell=cell,
        last_h=_frob(last["h"]),
        full_h=_frob(full["h"]),
        jacobian=norms.mean(axis=1),
        last_c=_frob(last["c"]) if "c" in last else None,
        full_c=_frob(full["c"]) if "c" in full else None,
        gate_path=_gate_path(layer, cache),
        lag_norms=lag_norms,
        meta={"batch_size": int(x.shape[0]), "hidden_size": int(layer.hidden_size)},
    )


def recurrent_io(model: Any, batch: Any) -> tuple[Any, np.ndarray, np.ndarray, Any]:
    """(layer, x, d_outputs, state): a model's recurrent layer, its inputs and upstream gradient.

    A model may provide ``recurrent_io(batch)`` itself; the language model
    (embedding, recurrent layer, head, mean cross-entropy) is handled here.
    Dropout is off (evaluation mode).
    """
    if hasattr(model, "recurrent_io"):
        return model.recurrent_io(batch)
    if not all(hasattr(model, a) for a in ("embedding", "rnn", "head")):
        raise BpttError(
            f"gradient flow needs a model with a recurrent layer; {type(model).__name__} "
            f"has no recurrent_io(batch) and is not a language model"
        )
    x = model.embedding.forward(batch.inputs)  # (B, T, E)
    s, _ = model.rnn.forward(x)  # (B, T, H)
    _, d_logits = cross_entropy(model.head.forward(s), batch.targets, batch.mask, "mean")
    return model.rnn, x, model.head.backward(d_logits), None
