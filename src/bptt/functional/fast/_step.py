"""One time step at a small batch, as generation and streaming call it: one compiled call.

A language model generating text, or a layer fed a live input, calls the layer
with T = 1, B = 1 once per symbol. At that shape the work is two matrix-vector
products, weight_ih x_t and weight_hh h_{t-1}, which read every weight once
((G*H, D+H) floats: 8 MiB for an LSTM at D = H = 512), and the gate math on
G*H numbers. The sequence route (input projection by the probed route, a
``StepProduct``, the compiled time loop) spends as long again on its setup as
on the arithmetic at this shape, so for T = 1, no mask and one to three rows
each cell's fast forward calls this module instead: both products, both biases
and the gate kernel of :mod:`~bptt.functional.fast._fused` in one compiled
function, writing the same cache the sequence route writes (so the backward,
:mod:`~bptt.functional.fast.lstm` and its siblings, is unchanged).

Nothing is packed or kept between calls: the products read the weights' rows
in place (the kernel of :mod:`~bptt.functional.fast._dot`; at one to three
rows, packing would buy no reuse), so a weight changed in place by an optimizer,
``load_state_dict`` or the user is read as it is at the next step, and a new
array in ``params`` is simply passed in. With several threads the weight rows
are split over them in one parallel region (the same sums per element, so the
numbers equal the one-thread kernel's bit for bit); whether that is faster is
measured by the route probe (kind "step1": "fused" or "fused_mt").

Shapes: B batch (1 to 3), D input features, H hidden units, N = G*H weight rows
(G gates: RNN 1, LSTM 4 in order i, f, g, o, GRU 3 in order r, z, n).
"""

from __future__ import annotations

import numpy as np

from bptt.functional.fast import _dot, _fused, _routes
from bptt.functional.fast._jit import JIT, numba
from bptt.functional.fast._threads import compiled_threads, pool_threads
from bptt.functional.fast._workspace import cell_cache

MAX_ROWS = 3  # up to this many rows (batch) a step runs here; more take the sequence route
_FLOATS = (np.float32, np.float64)

if numba is not None:
    _jit = numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True)

    @_jit
    def _products(x, w_ih, b_ih, h, w_hh, b_hh, zx, zh, n0, n1, back):
        """zx[:, n0:n1] = x @ w_ih[n0:n1]ᵀ + b_ih, zh[:, n0:n1] = h @ w_hh[n0:n1]ᵀ + b_hh.

        A bias of length 0 is absent. ``back``: w_hh first, both walked back (a call
        after one that walked forward finds the rows it read last still in the caches)."""
        if back:
            _dot._dot_rows(h, w_hh, zh, n0, n1, True)
            _dot._dot_rows(x, w_ih, zx, n0, n1, True)
        else:
            _dot._dot_rows(x, w_ih, zx, n0, n1, False)
            _dot._dot_rows(h, w_hh, zh, n0, n1, False)
        for b in range(zx.shape[0]):
            if b_ih.shape[0]:
                for n in range(n0, n1):
                    zx[b, n] += b_ih[n]
            if b_hh.shape[0]:
                for n in range(n0, n1):
                    zh[b, n] += b_hh[n]

    @_jit
    def _both(x, w_ih, b_ih, h, w_hh, b_hh, zx, zh, threads, back):
        """Both products of a step, on ``threads`` threads (1: this thread)."""
        if threads > 1:
            _products_par(x, w_ih, b_ih, h, w_hh, b_hh, zx, zh, threads, back)
        else:
            _products(x, w_ih, b_ih, h, w_hh, b_hh, zx, zh, 0, w_ih.shape[0], back)

    @numba.njit(cache=True, error_model="numpy", boundscheck=False, nogil=True, parallel=True)
    def _products_par(x, w_ih, b_ih, h, w_hh, b_hh, zx, zh, chunks, back):
        """_products with the weight rows split into ``chunks`` (_dot.dot_span), one region."""
        for j in numba.prange(chunks):
            n0, n1 = _dot.dot_span(w_ih.shape[0], j, chunks)
            _products(x, w_ih, b_ih, h, w_hh, b_hh, zx, zh, n0, n1, back)

    @_jit
    def _copy(src, dst):
        """dst[...] = src for two (B, K) arrays; a compiled loop, no NumPy call."""
        for b in range(src.shape[0]):
            for k in range(src.shape[1]):
                dst[b, k] = src[b, k]

    @_jit
    def _lstm_one(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, xh, h, c, gates, rec, tanh_c, real, threads, back
    ):
        _copy(x, xh[0, :, : x.shape[1]])  # [x_t | ·], the backward fills in h_{t-1}
        _copy(h0, h[0])
        _copy(c0, c[0])
        _both(x, w_ih, b_ih, h[0], w_hh, b_hh, gates[0], rec, threads, back)  # biases in
        no_bias = np.zeros(rec.shape[1], dtype=rec.dtype)  # (4H,)
        _fused._lstm_forward_jit(gates[0], rec, no_bias, c[0], h[0], real, c[1], tanh_c[0], h[1])

    @_jit
    def _gru_one(x, h0, w_ih, w_hh, b_ih, b_hh, x_tm, a, h, c, gates, hn, real, threads, back):
        _copy(x, x_tm[0])
        _copy(h0, h[0])
        _both(x, w_ih, b_ih, h[0], w_hh, b_hh, a[0], c, threads, back)  # W_i x + b_i, W_h h + b_h
        _fused._gru_forward_jit(a[0], c, h[0], real, gates[0], hn[0], h[1])

    @_jit
    def _rnn_one(x, h0, w_ih, w_hh, b_ih, b_hh, x_tm, a, s, rec, real, relu, threads, back):
        _copy(x, x_tm[0])
        _copy(h0, s[0])
        _both(x, w_ih, b_ih, s[0], w_hh, b_hh, a[0], rec, threads, back)
        _fused._rnn_forward_jit(a[0], rec, s[0], real, relu, s[1])


def applies(x: np.ndarray, mask, weights: tuple) -> bool:
    """Whether a forward of ``x`` (B, T, D) runs here: compiled kernels, T = 1, no mask,
    B <= 3, and the weights (weight_ih, weight_hh, bias_ih, bias_hh) all of x's float dtype."""
    B, T, _ = x.shape
    dt = x.dtype
    return (
        JIT
        and T == 1
        and mask is None
        and B <= MAX_ROWS
        and dt in _FLOATS
        and all(w is None or w.dtype == dt for w in weights)
    )


def _threads(w_ih: np.ndarray, w_hh: np.ndarray, B: int) -> int:
    """The threads the step's products run on: the route probe's choice, "fused" or "fused_mt".

    Sets numba's count (``compiled_threads``) only when the route is "fused_mt": this runs
    once a generated symbol, and setting it costs more than the check (``pool_threads``)."""
    if pool_threads() == 1:
        return 1
    (N, D), H = w_ih.shape, w_hh.shape[1]
    dtype = w_ih.dtype

    def candidates():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, D)).astype(dtype)  # (B, D)
        h = rng.standard_normal((B, H)).astype(dtype)  # (B, H)
        w_x = rng.standard_normal((N, D)).astype(dtype)  # (N, D)
        w_h = rng.standard_normal((N, H)).astype(dtype)  # (N, H)
        bias = np.zeros(N, dtype=dtype)  # (N,)
        zx, zh = np.empty((B, N), dtype=dtype), np.empty((B, N), dtype=dtype)  # (B, N) each

        def run(threads):  # walking the weights forward and back in turn, as steps do
            return lambda n: [
                _both(x, w_x, bias, h, w_h, bias, zx, zh, threads, i % 2 == 1) for i in range(n)
            ]

        return {"fused": run(1), "fused_mt": run(compiled_threads())}

    route = _routes.choose("step1", dtype, B, D + H, N, candidates, ("fused", "fused_mt"))
    return compiled_threads() if route == "fused_mt" else 1


def _weights(weight_ih, weight_hh, bias_ih, bias_hh, none):
    """The weights as the kernels take them: contiguous rows, an absent bias as ``none`` (0,)."""
    return (
        np.ascontiguousarray(weight_ih),
        np.ascontiguousarray(weight_hh),
        none if bias_ih is None else bias_ih,
        none if bias_hh is None else bias_hh,
    )


# Per cell, the shapes of a step's arrays: the cache the backward reads (as the sequence
# route names them, T = 1) and the product's scratch (rec, c).
_SHAPES = {
    "lstm": lambda B, D, H: {
        "xh": (1, B, D + H),
        "h": (2, B, H),
        "c": (2, B, H),
        "gates": (1, B, 4 * H),
        "tanh_c": (1, B, H),
        "rec": (B, 4 * H),
    },
    "gru": lambda B, D, H: {
        "x_tm": (1, B, D),
        "a": (1, B, 3 * H),
        "h": (2, B, H),
        "gates": (1, B, 3 * H),
        "hn": (1, B, H),
        "c": (B, 3 * H),
    },
    "rnn": lambda B, D, H: {"x_tm": (1, B, D), "a": (1, B, H), "h": (2, B, H), "rec": (B, H)},
}


def _step_arrays(workspace: dict | None, cell: str, B: int, D: int, H: int, dtype) -> dict:
    """The step's arrays, kept in the workspace (under "step") and made again only when the
    shape or dtype changes; new ones without a workspace. Like the workspace's other arrays
    they hold the cache of the last call only. Also ``real`` (1, B) all True and ``none``
    (0,), an absent bias."""
    key = (cell, B, D, H, dtype)
    kept = None if workspace is None else workspace.get("step")
    if kept is not None and kept["key"] == key:
        return kept
    arrays: dict = {"key": key}
    for name, shape in _SHAPES[cell](B, D, H).items():
        arrays[name] = np.empty(shape, dtype=dtype)  # (1 or 2, B, ·), or (B, ·) for scratch
    arrays["real"] = np.ones((1, B), dtype=bool)  # (1, B)
    arrays["none"] = np.empty(0, dtype=dtype)  # (0,)
    arrays["back"] = False  # the next call walks the weights back (see _walk_back)
    if workspace is not None:
        workspace["step"] = arrays
    return arrays


def _walk_back(arrays: dict) -> bool:
    """Whether this call walks the weights back: every other call with the same arrays
    (_dot._dot_rows), so each starts with the rows the last one read, still in the caches."""
    back = arrays["back"]
    arrays["back"] = not back
    return back


def _rows(x: np.ndarray) -> np.ndarray:
    """x_1 (B, D) of x (B, 1, D), contiguous: a step's input is often a view into a longer
    sequence (x[:, t:t+1]), and the kernels compiled for a strided layout do not vectorise
    (2.2x slower a step at B = 2, D = H = 512 on an AMD EPYC)."""
    return np.ascontiguousarray(x[:, 0])


def lstm_forward(x, state, weights, workspace):
    """:func:`bptt.functional.fast.lstm.lstm_forward` for one step of up to three rows."""
    B, _, D = x.shape
    H = weights[1].shape[1]
    dt = x.dtype
    h0, c0 = (np.asarray(piece, dtype=dt) for piece in state)  # (B, H) each
    a = _step_arrays(workspace, "lstm", B, D, H, dt)
    w_ih, w_hh, b_ih, b_hh = _weights(*weights, a["none"])
    xh, h, c, gates, tanh_c, real = a["xh"], a["h"], a["c"], a["gates"], a["tanh_c"], a["real"]
    run = (_threads(w_ih, w_hh, B), _walk_back(a))  # threads, and the order the rows are read
    _lstm_one(
        _rows(x), h0, c0, w_ih, w_hh, b_ih, b_hh, xh, h, c, gates, a["rec"], tanh_c, real[0], *run
    )
    outputs = h[1:].transpose(1, 0, 2).copy()  # (B, 1, H) the caller's own
    cache = cell_cache(None, real, weights, workspace, xh=xh, h=h, c=c, gates=gates, tanh_c=tanh_c)
    return outputs, (h[1].copy(), c[1].copy()), cache


def gru_forward(x, state, weights, workspace):
    """:func:`bptt.functional.fast.gru.gru_forward` for one step of up to three rows."""
    B, _, D = x.shape
    H = weights[1].shape[1]
    h0 = np.asarray(state[0], dtype=x.dtype)  # (B, H)
    a = _step_arrays(workspace, "gru", B, D, H, x.dtype)
    w_ih, w_hh, b_ih, b_hh = _weights(*weights, a["none"])
    x_tm, h, gates, hn, real = a["x_tm"], a["h"], a["gates"], a["hn"], a["real"]
    run = (_threads(w_ih, w_hh, B), _walk_back(a))  # threads, and the order the rows are read
    x1 = _rows(x)  # (B, D)
    _gru_one(x1, h0, w_ih, w_hh, b_ih, b_hh, x_tm, a["a"], h, a["c"], gates, hn, real[0], *run)
    outputs = h[1:].transpose(1, 0, 2).copy()  # (B, 1, H) the caller's own
    cache = cell_cache(None, real, weights, workspace, x_tm=x_tm, h=h, gates=gates, hn=hn)
    return outputs, (h[1].copy(),), cache


def rnn_forward(x, state, weights, workspace, nonlinearity="tanh"):
    """:func:`bptt.functional.fast.rnn.rnn_forward` for one step of up to three rows."""
    B, _, D = x.shape
    H = weights[1].shape[0]
    h0 = np.asarray(state[0], dtype=x.dtype)  # (B, H)
    a = _step_arrays(workspace, "rnn", B, D, H, x.dtype)
    w_ih, w_hh, b_ih, b_hh = _weights(*weights, a["none"])
    x_tm, s, real = a["x_tm"], a["h"], a["real"]
    relu = nonlinearity == "relu"
    run = (_threads(w_ih, w_hh, B), _walk_back(a))  # threads, and the order the rows are read
    _rnn_one(_rows(x), h0, w_ih, w_hh, b_ih, b_hh, x_tm, a["a"], s, a["rec"], real[0], relu, *run)
    outputs = s[1:].transpose(1, 0, 2).copy()  # (B, 1, H) the caller's own
    cache = cell_cache(None, real, weights, workspace, x_tm=x_tm, h=s, nonlinearity=nonlinearity)
    return outputs, (s[1].copy(),), cache
