"""The lecture's Jacobian product ∏_{j=k+1}^{T} ∂s_j/∂s_{j-1}, built from a forward cache.

The lecture's vanishing-gradient argument reads, for the tanh RNN,

    ∂E_T/∂s_k = (∏_{j=k+1}^{T} ∂s_j/∂s_{j-1})^T ∂E_T/∂s_T,
    ∂s_j/∂s_{j-1} = diag(1 - s_j²) W                         (H, H)

so the norm of the product bounds how much of the loss at step T reaches step
k. This module builds each step's Jacobian from the activations the forward
pass already cached, per example, and multiplies them from T down to k:

    P_T = I,    P_k = P_{k+1} ∂s_{k+1}/∂s_k        (B, S, S), S the state size

RNN (S = H):   ∂s_j/∂s_{j-1} = diag(1 - s_j²) W          (relu: diag([s_j > 0]) W)

LSTM (S = 2H, the state is (h, C); W_i, W_f, W_g, W_o the (H, H) blocks of weight_hh):

    ∂C_j/∂h_{j-1} = diag(C_{j-1} f(1-f)) W_f + diag(g i(1-i)) W_i + diag(i (1-g²)) W_g
    ∂C_j/∂C_{j-1} = diag(f_j)                                 the belt: only the forget gate
    ∂h_j/∂h_{j-1} = diag(tanh(C_j) o(1-o)) W_o + diag(o (1-tanh²C_j)) ∂C_j/∂h_{j-1}
    ∂h_j/∂C_{j-1} = diag(o (1-tanh²C_j) f_j)

GRU (S = H; W_r, W_z, W_n the blocks of weight_hh, c^n = W_hn h_{j-1} + b_hn):

    ∂h_j/∂h_{j-1} = diag(z) + diag((h_{j-1} - n) z(1-z)) W_z
                    + diag((1-z)(1-n²)) (diag(c^n r(1-r)) W_r + diag(r) W_n)

The spectral norm ‖P_k‖_2 is exact (an SVD per example), estimated by power
iteration on P_k^T P_k (a fixed number of steps, warm-started from step k+1's
vector), or, by default ("auto"), subspace iteration run to a certified
tolerance: a block of 8 vectors multiplied by P_k^T P_k, with Rayleigh-Ritz; for
the top Ritz value ρ with unit vector y, the residual r = ‖P_k^T P_k y - ρ y‖
bounds the distance from ρ to an eigenvalue of P_k^T P_k, so iterating until
r <= 1e-10 ρ gives σ to about 1e-10 relative; an example that does not get there
in 10 steps takes the top eigenvalue of P_k^T P_k (exact, about half an SVD's cost;
long products, whose top singular value stands far above the rest, converge in a
few steps), and any small state (S <= 128, where an SVD is cheap) the SVD.

Shapes: B batch, T time steps, H hidden units, S state size (H, or 2H for the LSTM).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bptt.errors import BpttError
from bptt.nn.cells import state_size

METHODS = ("auto", "exact", "power")
EXACT_BELOW = 128  # "auto" takes the SVD for states this small: it costs little there


def _rnn_jacobian(cache: dict, j: int) -> np.ndarray:
    """∂s_j/∂s_{j-1} = diag(φ'(a_j)) W: (B, H, H)."""
    W = cache["weight_hh"]  # (H, H)
    s = cache["h"][j]  # (B, H)
    slope = 1 - s * s if cache["nonlinearity"] == "tanh" else (s > 0).astype(s.dtype)  # (B, H)
    return slope[:, :, None] * W[None]  # (B, H, H)


def _lstm_jacobian(cache: dict, j: int) -> np.ndarray:
    """∂[h_j; C_j]/∂[h_{j-1}; C_{j-1}]: (B, 2H, 2H)."""
    W = cache["weight_hh"]  # (4H, H)
    H = W.shape[1]
    a = cache["gates"][j - 1]  # (B, 4H) i, f, g, o
    i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    Wi, Wf, Wg, Wo = W[:H], W[H : 2 * H], W[2 * H : 3 * H], W[3 * H :]
    c_prev = cache["c"][j - 1]  # (B, H)
    tc = cache["tanh_c"][j - 1]  # (B, H)
    k = o * (1 - tc * tc)  # (B, H) ∂h_j/∂C_j
    dc_dh = (
        (c_prev * f * (1 - f))[:, :, None] * Wf
        + (g * i * (1 - i))[:, :, None] * Wi
        + (i * (1 - g * g))[:, :, None] * Wg
    )  # (B, H, H)
    J = np.zeros((a.shape[0], 2 * H, 2 * H), dtype=a.dtype)  # (B, 2H, 2H)
    J[:, :H, :H] = (tc * o * (1 - o))[:, :, None] * Wo + k[:, :, None] * dc_dh
    J[:, H:, :H] = dc_dh
    diag = np.arange(H)
    J[:, diag, H + diag] = k * f  # ∂h_j/∂C_{j-1}
    J[:, H + diag, H + diag] = f  # ∂C_j/∂C_{j-1}
    return J


def _gru_jacobian(cache: dict, j: int) -> np.ndarray:
    """∂h_j/∂h_{j-1}: (B, H, H)."""
    W = cache["weight_hh"]  # (3H, H)
    H = W.shape[1]
    a = cache["gates"][j - 1]  # (B, 3H) r, z, n
    r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
    Wr, Wz, Wn = W[:H], W[H : 2 * H], W[2 * H :]
    hn = cache["hn"][j - 1]  # (B, H)
    h_prev = cache["h"][j - 1]  # (B, H)
    dn_dh = (hn * r * (1 - r))[:, :, None] * Wr + r[:, :, None] * Wn  # (B, H, H)
    J = ((h_prev - n) * z * (1 - z))[:, :, None] * Wz  # (B, H, H)
    J += ((1 - z) * (1 - n * n))[:, :, None] * dn_dh
    diag = np.arange(H)
    J[:, diag, diag] += z
    return J


# cell name (bptt.nn.CELLS) -> its one-step Jacobian from a functional forward's cache
STEP_JACOBIANS = {"rnn": _rnn_jacobian, "lstm": _lstm_jacobian, "gru": _gru_jacobian}


def step_jacobian(cell: str, cache: dict, j: int) -> np.ndarray:
    """∂s_j/∂s_{j-1} for step j = 1..T, per example, from a functional forward's cache.

    Args:
        cell: "rnn", "lstm" or "gru" (which functional forward made ``cache``).
        cache: the cache of ``rnn_forward``/``lstm_forward``/``gru_forward`` (no mask).
        j: the step, 1..T (it maps s_{j-1} to s_j).

    Returns:
        (B, S, S); for the LSTM the state is [h; C], so rows and columns are
        h_j, C_j and h_{j-1}, C_{j-1} in that order.
    """
    if cell not in STEP_JACOBIANS:
        raise BpttError(f"cell must be one of rnn, lstm, gru; got {cell!r}")
    return STEP_JACOBIANS[cell](cache, j)


def jacobian_products(cell: str, cache: dict) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (k, P_k) for k = T, T-1, ..., 0, with P_k = ∏_{j=k+1}^{T} ∂s_j/∂s_{j-1} (B, S, S).

    Only one product is held at a time (memory B S², not T B S²).
    """
    h = cache["h"]  # (T+1, B, H) in every cell's cache
    T, B, H = h.shape[0] - 1, h.shape[1], h.shape[2]
    S = state_size(cell, H)  # H, or 2H for the LSTM's [h; C]
    P = np.broadcast_to(np.eye(S, dtype=h.dtype), (B, S, S)).copy()  # (B, S, S) P_T = I
    yield T, P
    for k in range(T - 1, -1, -1):
        P = P @ step_jacobian(cell, cache, k + 1)  # (B, S, S) P_k = P_{k+1} ∂s_{k+1}/∂s_k
        yield k, P


def spectral_norms(
    cell: str,
    cache: dict,
    method: str = "auto",
    iterations: int = 30,
    rng: np.random.Generator | None = None,
    progress=None,
) -> np.ndarray:
    """‖P_k‖_2 for k = 0..T, per example: (T+1, B).

    Args:
        cell, cache: as for :func:`step_jacobian`.
        method: "auto" (subspace iteration to a certified 1e-10, else the SVD:
            equal to "exact" to about 1e-10 relative, and much faster for large
            states), "exact" (SVD of each P_k) or "power" (power iteration on
            P_k^T P_k, ``iterations`` steps, warm-started from P_{k+1}'s vector).
        rng: Generator for the power iteration's start vector (default seed 0).
        progress: wraps the iteration over k, e.g. ``functools.partial(tqdm, total=T+1)``.
    """
    if method not in METHODS:
        raise BpttError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    norms = None
    v = None
    products = jacobian_products(cell, cache)
    for k, P in products if progress is None else progress(products):
        if norms is None:
            norms = np.empty((k + 1, P.shape[0]), dtype=np.float64)  # (T+1, B)
        if method == "exact" or (method == "auto" and P.shape[1] <= EXACT_BELOW):
            norms[k] = np.linalg.norm(P, ord=2, axis=(1, 2))
            continue
        if method == "auto":
            norms[k], v = _certified_norms(P, v, rng)  # v: (B, S, 8) the warm block
            continue
        if v is None:
            rng = np.random.default_rng(0) if rng is None else rng
            v = rng.standard_normal(P.shape[:2])  # (B, S)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        Pv = np.einsum("bij,bj->bi", P, v)  # (B, S)
        for _ in range(iterations):
            v = np.einsum("bij,bi->bj", P, Pv)  # (B, S) P^T P v
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.finfo(v.dtype).tiny)
            Pv = np.einsum("bij,bj->bi", P, v)  # (B, S)
        norms[k] = np.linalg.norm(Pv, axis=1)
    return norms


def _certified_norms(
    P: np.ndarray,
    V: np.ndarray | None,
    rng: np.random.Generator | None,
    tol: float = 1e-10,
    max_iterations: int = 10,
    block: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """‖P‖_2 per example (B,) by subspace iteration on A = P^T P with a block of
    ``block`` vectors and Rayleigh-Ritz, until the top Ritz pair (θ, y) has residual
    ‖A y - θ y‖ <= tol θ; examples that do not converge take the SVD.

    ``V`` (B, S, block) warm-starts the block (the previous product's Ritz vectors);
    returns the norms and the block for the next product.
    """
    B, S = P.shape[0], P.shape[2]
    m = min(block, S)
    if V is None:
        rng = np.random.default_rng(0) if rng is None else rng
        V = rng.standard_normal((B, S, m))  # (B, S, m)
    tiny = np.finfo(np.float64).tiny
    for _ in range(max_iterations):
        V, _ = np.linalg.qr(V)  # (B, S, m) orthonormal columns
        AV = np.matmul(P.transpose(0, 2, 1), np.matmul(P, V))  # (B, S, m) P^T P V
        theta, Y = np.linalg.eigh(np.matmul(V.transpose(0, 2, 1), AV))  # (B, m), (B, m, m)
        V, AV = np.matmul(V, Y), np.matmul(AV, Y)  # (B, S, m) Ritz vectors, ascending
        top = theta[:, -1]  # (B,)
        residual = np.linalg.norm(AV[:, :, -1] - top[:, None] * V[:, :, -1], axis=1)  # (B,)
        done = residual <= tol * np.maximum(top, tiny)
        if done.all():
            break
        V = AV  # one more multiplication by A, then orthonormalise again
    norms = np.sqrt(np.maximum(top, 0.0))  # (B,)
    if not done.all():  # slow to converge (close top singular values): exact for those,
        Q = P[~done]  # (b, S, S) by the top eigenvalue of P^T P (half an SVD's cost)
        norms[~done] = np.sqrt(np.linalg.eigvalsh(np.matmul(Q.transpose(0, 2, 1), Q))[:, -1])
    return norms, V
