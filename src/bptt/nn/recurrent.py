"""Recurrent layers: RNN, LSTM and GRU, stacked, one- or two-directional, masked.

One base class, :class:`Recurrent`, holds everything that is the same for all
three cells — stacking, direction, masks, inter-layer dropout, parameters,
validation, state dicts — once. The cells themselves (:mod:`bptt.nn.cells`:
``RNN``, ``LSTM``, ``GRU`` and the registry ``CELLS`` of their names) only name
their functional forward/backward (``bptt.functional.rnn``/``lstm``/``gru``),
their gate count G and their state arrays (1: h; 2 for the LSTM: h and C).

Stacking (layer l = 0..L-1, direction k = 0 forward, 1 reverse):

    y^(0)      = x                                             (B, T, D)
    h^(l,0)    = cell_l,0(y^(l))                               forward in time
    h^(l,1)    = flip(cell_l,1(flip(y^(l))))                   reverse in time
    y^(l+1)    = dropout([h^(l,0), h^(l,1)])                   (B, T, K*H)
    outputs    = [h^(L-1,0), h^(L-1,1)]                        no dropout after the last layer

flip reverses the time axis of the inputs *and* the mask. A sequence padded at
the end is padded at the start once flipped; padded steps carry the state
unchanged, so the reverse direction starts from h0 at each sequence's last real
step — what PyTorch's packed sequences compute.

In the lecture's symbols, per layer and direction: U ≡ ``weight_ih``,
W ≡ ``weight_hh``, s_t ≡ h_t; the output layer's V is a separate ``Linear``.

Parameters follow PyTorch's names and layouts exactly, so ``state_dict()``
loads into ``torch.nn.RNN/LSTM/GRU`` and back without renaming:

    weight_ih_l{l}[_reverse]   (G*H, D_in)   D_in = D for l = 0, K*H above
    weight_hh_l{l}[_reverse]   (G*H, H)
    bias_ih_l{l}[_reverse]     (G*H,)
    bias_hh_l{l}[_reverse]     (G*H,)

States are PyTorch's too: (L*K, B, H), row l*K + k for layer l, direction k.

Shapes: B batch, T time steps, D input features, H hidden units, L layers,
K directions, G gates (RNN 1, LSTM 4 in order i, f, g, o, GRU 3 in order r, z, n).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from bptt.errors import BpttError
from bptt.functional.linear import dropout_backward, dropout_forward
from bptt.functional.recompute import checkpointed_backward, checkpointed_forward
from bptt.nn.batch_order import longest_first, rows_back, rows_to
from bptt.nn.init import uniform_default
from bptt.nn.layer import (
    Layer,
    as_layer_dtype,
    check_count,
    check_probability,
    check_rng,
    layer_dtype,
)
from bptt.nn.step import forward_one

State = np.ndarray | tuple[np.ndarray, ...]


class Recurrent(Layer):
    """A stacked, optionally bidirectional recurrent layer over a functional cell.

    A cell (:mod:`bptt.nn.cells`) sets ``cell`` (its name), ``gates`` (G),
    ``state_names`` (("h0",) or ("h0", "c0")), ``gate_names``, ``carry_gate`` and
    ``cell_forward``/``cell_backward`` (the functional pair the layer runs).

    Args:
        input_size: D, features per time step.
        hidden_size: H, units per direction.
        num_layers: L, layers stacked; layer l > 0 reads the K*H outputs of l - 1.
        bidirectional: K = 2 if True (a forward and a reverse cell per layer).
        dropout: p in [0, 1), inverted dropout on the outputs of every layer but
            the last, only when ``forward(..., training=True)``. With one layer
            it has no effect (as in PyTorch).
        bias: whether the layer has ``bias_ih``/``bias_hh``.
        dtype: float32 (default) or float64; params, grads and outputs use it.
        rng: Generator for the initialisation U(-1/√H, 1/√H) (PyTorch's). None
            means a fresh unseeded ``np.random.default_rng()``: not reproducible.
        **options: the cell's own keyword arguments (the RNN's ``nonlinearity``).

    Attributes:
        checkpoint_steps: None (default) keeps every step's activations for
            backward, T × B × H per layer; an int k keeps one state per k steps
            and recomputes the rest during backward (``functional.recompute``):
            memory / (T / k) for about a third more training time.
        params: {name: array} with PyTorch's names and shapes.
        grads: same keys; replaced (not accumulated) by every :meth:`backward`.
        d_initial_state: ∂E/∂(initial state), same structure as the state,
            set by :meth:`backward`.
    """

    cell: str = ""  # the cell's name in ``bptt.nn.CELLS``: "rnn", "lstm", "gru"
    gates: int = 1
    state_names: tuple[str, ...] = ("h0",)
    gate_names: tuple[str, ...] = ()  # the G gate blocks, in order (none for the RNN)
    carry_gate: str | None = None  # the gate that carries the state on (LSTM f, GRU z)
    cell_forward: Callable  # the functional forward and backward this layer runs
    cell_backward: Callable
    cell_step: Callable  # one step at B <= 3 (bptt.nn.step), the fast route's

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(inspect.signature(self._configure).parameters))
        if unknown:  # as Python says it for any function, with the layer's name
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}"
            )
        self._configure(**options)
        self.input_size = check_count("input_size", input_size)
        self.hidden_size = check_count("hidden_size", hidden_size)
        self.num_layers = check_count("num_layers", num_layers)
        if not isinstance(bidirectional, bool | np.bool_):
            raise BpttError(f"bidirectional must be True or False, got {bidirectional!r}")
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.dropout = check_probability("dropout", dropout)
        self.bias = bool(bias)
        self.dtype = layer_dtype(dtype)
        rng = check_rng(rng)

        G, H, K = self.gates, self.hidden_size, self.num_directions
        self.params: dict[str, np.ndarray] = {}
        for l in range(self.num_layers):
            d_in = self.input_size if l == 0 else K * H
            for k in range(K):
                sfx = self._suffix(l, k)
                # Drawn in PyTorch's order, every tensor U(-1/√H, 1/√H).
                self.params[f"weight_ih{sfx}"] = uniform_default((G * H, d_in), H, rng, self.dtype)
                self.params[f"weight_hh{sfx}"] = uniform_default((G * H, H), H, rng, self.dtype)
                if self.bias:
                    self.params[f"bias_ih{sfx}"] = uniform_default((G * H,), H, rng, self.dtype)
                    self.params[f"bias_hh{sfx}"] = uniform_default((G * H,), H, rng, self.dtype)
        self.grads: dict[str, np.ndarray] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.d_initial_state: State | None = None
        self.checkpoint_steps: int | None = None
        self._cache: dict | None = None
        # Per layer and direction, the memory of the last forward's cache, reused by the next.
        self._workspaces: dict[int, dict] = {}

    # -- what a subclass provides ------------------------------------------------

    def _configure(self) -> None:
        """Take the cell's own options (the RNN's ``nonlinearity``); none by default."""

    def cell_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments of the functional forward (the RNN's nonlinearity)."""
        return {}

    def cell_weights(self, l: int = 0, k: int = 0) -> tuple[np.ndarray, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer ``l``, direction ``k``.

        The functional cell's weight arguments, in its order; the biases are None
        without ``bias``.
        """
        sfx, p = self._suffix(l, k), self.params
        return (
            p[f"weight_ih{sfx}"],
            p[f"weight_hh{sfx}"],
            p.get(f"bias_ih{sfx}"),
            p.get(f"bias_hh{sfx}"),
        )

    # -- helpers -----------------------------------------------------------------

    @staticmethod
    def _suffix(l: int, k: int) -> str:
        return f"_l{l}" + ("_reverse" if k == 1 else "")

    @property
    def state_arity(self) -> int:
        """Number of state arrays: 1 (h) for RNN and GRU, 2 (h, C) for the LSTM."""
        return len(self.state_names)

    def initial_state(self, batch_size: int) -> State:
        """Zeros in the state's structure: (L*K, B, H), or a tuple of two for the LSTM."""
        return self._pack(self._zeros(batch_size))

    def _zeros(self, B: int) -> tuple[np.ndarray, ...]:
        shape = self._state_shape(B)
        return tuple(np.zeros(shape, dtype=self.dtype) for _ in self.state_names)  # (L*K, B, H)

    def _pack(self, arrays: tuple[np.ndarray, ...]) -> State:
        return arrays[0] if self.state_arity == 1 else tuple(arrays)

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _unpack(self, state: Any, B: int, what: str, allow_none_pieces: bool) -> tuple:
        """Validate a state-like structure; return a tuple of arrays (or None pieces)."""
        pieces = (state,) if self.state_arity == 1 else state
        shape, dtype = self._state_shape(B), self.dtype
        if type(pieces) is tuple and len(pieces) == self.state_arity:  # the usual case, quickly
            ok = [type(p) is np.ndarray and p.dtype == dtype and p.shape == shape for p in pieces]
            if all(ok) and all(p.flags.c_contiguous for p in pieces):
                return pieces
        name = type(self).__name__
        # pieces are named like torch's: h0, c0 for the state; d_hn, d_cn for its gradient
        names = self.state_names
        if what == "d_final_state":
            names = tuple("d_" + n.replace("0", "n") for n in names)
        if self.state_arity == 1:
            if isinstance(state, tuple | list):
                raise BpttError(
                    f"{name} takes {what} as one array {self._state_shape(B)}, "
                    f"got a {type(state).__name__}"
                )
            pieces = (state,)
        else:
            if not isinstance(state, tuple | list) or len(state) != self.state_arity:
                got = (
                    f"a {type(state).__name__} of length {len(state)}"
                    if isinstance(state, tuple | list)
                    else type(state).__name__
                )
                raise BpttError(f"{name} takes {what} as a tuple ({', '.join(names)}), got {got}")
            pieces = tuple(state)
        out = []
        for piece_name, piece in zip(names, pieces, strict=True):
            if piece is None:
                if not allow_none_pieces:
                    raise BpttError(f"{piece_name} is None; pass an array or state=None for zeros")
                out.append(None)
                continue
            piece = as_layer_dtype(piece_name, piece, self.dtype)
            if piece.shape != self._state_shape(B):
                raise BpttError(
                    f"{piece_name} has shape {piece.shape}, expected {self._state_shape(B)} "
                    f"(L*K, B, H)"
                )
            out.append(np.ascontiguousarray(piece))
        return tuple(out)

    def _check_input(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3:
            raise BpttError(f"input must be 3-D (B, T, D), got shape {x.shape}")
        B, T, D = x.shape
        if D != self.input_size:
            raise BpttError(f"input has {D} features, the layer expects {self.input_size}")
        if B == 0:
            raise BpttError(f"empty batch: input has shape {x.shape}, need B >= 1")
        if T == 0:
            raise BpttError(f"zero-length sequences: input has shape {x.shape}, need T >= 1")
        return as_layer_dtype("input", x, self.dtype)

    @staticmethod
    def _check_mask(mask: Any, B: int, T: int) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != (B, T):
            raise BpttError(f"mask has shape {mask.shape}, expected (B, T) = {(B, T)}")
        if mask.dtype != np.bool_:
            raise BpttError(
                f"mask must be boolean (True at real steps), got dtype {mask.dtype}; "
                f"use mask.astype(bool)"
            )
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise BpttError(
                f"sequence(s) {empty.tolist()} have no real step (mask row all False); "
                f"every sequence needs at least one"
            )
        return mask

    # -- the layer ---------------------------------------------------------------

    def forward(
        self,
        x: np.ndarray,
        state: State | None = None,
        mask: np.ndarray | None = None,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, State]:
        """Run every layer and direction over the whole sequence.

        Args:
            x: inputs (B, T, D), batch-first. Integer/bool/float16 inputs are
                cast to the layer's dtype; the other float precision is refused.
            state: initial state, (L*K, B, H) for RNN/GRU, (h0, c0) for the
                LSTM; None means zeros.
            mask: (B, T) booleans, True at real steps; None means all real.
                Every sequence needs at least one real step.
            training: apply inter-layer dropout (if ``dropout > 0``).
            rng: Generator for the dropout masks; required when dropout acts.

        Returns:
            outputs (B, T, K*H) (zero at padded steps; forward direction in
            [..., :H], reverse in [..., H:]) and the final state in the
            structure of ``state``, row l*K + k.

        The activations :meth:`backward` needs are kept in ``self._cache``,
        replaced by each call: call ``backward`` after the forward it belongs to.
        A single step (T = 1, B <= 3) takes :func:`bptt.nn.step.forward_one`.
        """
        one = forward_one(self, x, state, mask, training)
        if one is not None:
            return one
        x = self._check_input(x)
        B, T, _ = x.shape
        mask = self._check_mask(mask, B, T)
        if state is None:
            states = self._zeros(B)
        else:
            states = self._unpack(state, B, "state", allow_none_pieces=False)
        order, x, mask, states = longest_first(x, mask, states)  # the fast loops skip ended rows
        drop = training and self.dropout > 0 and self.num_layers > 1
        if drop and not isinstance(rng, np.random.Generator):
            raise BpttError(
                f"training with dropout={self.dropout} needs rng=np.random.Generator, "
                f"got {type(rng).__name__}"
            )

        cell_forward = self.cell_forward
        if self.checkpoint_steps is not None:
            cell_forward = partial(checkpointed_forward, cell_forward, chunk=self.checkpoint_steps)
        kwargs = self.cell_kwargs()
        reuse = self.checkpoint_steps is None  # chunked caches are made and dropped in backward
        L, K, H = self.num_layers, self.num_directions, self.hidden_size
        finals = tuple(np.empty_like(s) for s in states)  # (L*K, B, H) each, every row set below
        mask_rev = None if mask is None else np.ascontiguousarray(mask[:, ::-1])  # (B, T)
        caches: list[dict] = []
        drop_masks: list[np.ndarray | None] = []
        layer_in = x  # (B, T, D) then (B, T, K*H)
        for l in range(L):
            outputs = None if K == 1 else np.empty((B, T, K * H), dtype=self.dtype)  # (B, T, K*H)
            for k in range(K):
                idx = l * K + k
                # (B, T, D_in); reversed as a view: the cell copies x time-major anyway
                x_k = layer_in if k == 0 else layer_in[:, ::-1]
                out, final, cache = cell_forward(
                    x_k,
                    tuple(s[idx] for s in states),
                    *self.cell_weights(l, k),
                    mask=mask if k == 0 else mask_rev,
                    workspace=self._workspaces.setdefault(idx, {}) if reuse else None,
                    **kwargs,
                )
                if K == 1:
                    outputs = out  # (B, T, H) already a fresh array of its own
                else:
                    outputs[:, :, k * H : (k + 1) * H] = out if k == 0 else out[:, ::-1]
                for f_all, f in zip(finals, final, strict=True):
                    f_all[idx] = f
                caches.append(cache)
            dm = None
            if drop and l < L - 1:  # between layers only, never after the last
                outputs, dm = dropout_forward(outputs, self.dropout, rng)  # (B, T, K*H)
            drop_masks.append(dm)
            layer_in = outputs
        self._cache = {"caches": caches, "drop_masks": drop_masks, "B": B, "T": T, "order": order}
        layer_in, finals = rows_back(order, layer_in, finals)
        return layer_in, self._pack(finals)

    def backward(self, d_outputs: np.ndarray, d_final_state: State | None = None) -> np.ndarray:
        """BPTT through every layer and direction of the last :meth:`forward`.

        Args:
            d_outputs: ∂E/∂outputs (B, T, K*H); values at padded steps are ignored.
            d_final_state: ∂E/∂(final state) in the state's structure, or None
                (zero); for the LSTM either piece of the tuple may be None.

        Returns:
            ∂E/∂x (B, T, D), exactly zero at padded steps. Also sets ``grads``
            (fresh arrays, not accumulated over calls) and ``d_initial_state``.
        """
        cache = self._cache_or_raise()
        B, T = cache["B"], cache["T"]
        L, K, H = self.num_layers, self.num_directions, self.hidden_size
        d_outputs = as_layer_dtype("d_outputs", d_outputs, self.dtype)
        if d_outputs.shape != (B, T, K * H):
            raise BpttError(
                f"d_outputs has shape {d_outputs.shape}, expected (B, T, K*H) = {(B, T, K * H)}"
            )
        d_final = (
            None
            if d_final_state is None
            else self._unpack(d_final_state, B, "d_final_state", allow_none_pieces=True)
        )

        order = cache.get("order")  # the forward's rows, longest sequence first, or None
        d_outputs, d_final = rows_to(order, d_outputs, d_final)
        cell_forward, cell_backward = self.cell_forward, self.cell_backward
        caches, drop_masks = cache["caches"], cache["drop_masks"]
        grads: dict[str, np.ndarray] = {}
        d_init = self._zeros(B)  # (L*K, B, H) each
        d_layer = d_outputs  # (B, T, K*H) ∂E/∂(outputs of layer l)
        for l in range(L - 1, -1, -1):
            if drop_masks[l] is not None:
                d_layer = dropout_backward(d_layer, drop_masks[l])  # (B, T, K*H)
            d_in_size = self.input_size if l == 0 else K * H
            d_in = None if K == 1 else np.zeros((B, T, d_in_size), dtype=self.dtype)  # (B, T, D_in)
            for k in range(K):
                idx, sfx = l * K + k, self._suffix(l, k)
                d_out_k = d_layer[:, :, k * H : (k + 1) * H]  # (B, T, H) a view
                if k == 1:
                    d_out_k = d_out_k[:, ::-1]  # back into the reversed cell's time order
                d_fin_k = (
                    None
                    if d_final is None
                    else tuple(None if d is None else d[idx] for d in d_final)
                )
                if caches[idx].get("checkpointed"):  # recompute the activations chunk by chunk
                    d_x_k, d_s0, g = checkpointed_backward(
                        cell_forward, cell_backward, d_out_k, d_fin_k, caches[idx]
                    )
                else:
                    d_x_k, d_s0, g = cell_backward(d_out_k, d_fin_k, caches[idx])
                if K == 1:
                    d_in = d_x_k  # (B, T, D_in) the cell's own array: no sum to make
                else:
                    d_in += d_x_k if k == 0 else d_x_k[:, ::-1]
                for d_all, d in zip(d_init, d_s0, strict=True):
                    d_all[idx] = d
                for name, value in g.items():
                    grads[f"{name}{sfx}"] = value
            d_layer = d_in
        d_layer, d_init = rows_back(order, d_layer, d_init)
        self.grads = grads
        self.d_initial_state = self._pack(d_init)
        return d_layer

    __call__ = forward

    def __repr__(self) -> str:
        extra = f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        extra += f", dropout={self.dropout}" if self.dropout else ""
        extra += ", bias=False" if not self.bias else ""
        name, sizes = type(self).__name__, f"{self.input_size}, {self.hidden_size}"
        return f"{name}({sizes}{extra}, dtype={self.dtype.name})"
