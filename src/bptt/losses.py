"""Losses: softmax cross-entropy over time, with a mask for padding.

The lecture's output layer and error, per step t (V ≡ the output Linear's
weight, s_t ≡ h_t; here ``logits`` z_t = V s_t + c already include it):

    ŷ_t = softmax(z_t)
    E_t = -log ŷ_t[y_t]
    E   = Σ_t E_t                        summed over time (and over the batch)

and its gradient with respect to the logits, the start of BPTT:

    ∂E_t/∂z_t = ŷ_t - onehot(y_t)

Padded steps (mask False) add nothing to E and get exactly zero gradient.

With label smoothing ε (torch's ``label_smoothing``) the target is a mix of the
one-hot and the uniform distribution, q_t = (1 - ε) onehot(y_t) + ε / V, and

    E_t = -Σ_v q_t[v] log ŷ_t[v],        ∂E_t/∂z_t = ŷ_t - q_t

so training never pushes a model all the way to certainty on its training data.

Shapes: B batch, T time steps, V vocabulary (classes).
"""

from __future__ import annotations

import numpy as np

from bptt.errors import BpttError
from bptt.functional.activations import log_softmax

REDUCTIONS = ("sum", "mean", "mean_batch")


def cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    reduction: str = "sum",
    label_smoothing: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy E = Σ_{b,t real} -log softmax(z_{b,t})[y_{b,t}] and ∂E/∂z.

    Args:
        logits: z, (B, T, V) for a sequence or (B, V) for one step per example
            (a many-to-one classifier). Floating point; the gradient keeps its dtype.
        targets: y, integer class indices (B, T) or (B,), each in [0, V) at real
            positions. Values at masked positions are ignored (any pad index works).
        mask: (B, T) or (B,) booleans, True at real positions; None means all real.
        reduction: how E is scaled, with N = the number of real positions:
            ``"sum"``: E, the lecture's sum over time and batch;
            ``"mean"``: E / N, the mean per real token (what
            ``torch.nn.functional.cross_entropy(reduction="mean")`` gives with
            ``ignore_index`` at masked positions); with N = 0 the loss is 0.0;
            ``"mean_batch"``: E / B, summed over time and averaged over sequences.
        label_smoothing: ε in [0, 1): the target (1 - ε) onehot(y) + ε / V, as
            ``torch.nn.functional.cross_entropy(label_smoothing=ε)``; 0 is the plain loss.

    Returns:
        (loss, d_logits): the loss as a Python float and ∂loss/∂z, same shape
        and dtype as ``logits``: (ŷ - q) * scale (q = onehot(y) without smoothing),
        exactly zero at masked positions.

    Raises:
        BpttError: on mismatched shapes, non-integer targets, a target outside
            [0, V) at a real position, an unknown reduction, or ε outside [0, 1).
    """
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if reduction not in REDUCTIONS:
        raise BpttError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise BpttError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if logits.ndim not in (2, 3):
        raise BpttError(f"logits must be (B, T, V) or (B, V), got shape {logits.shape}")
    if not np.issubdtype(logits.dtype, np.floating):
        raise BpttError(f"logits must be floating point, got dtype {logits.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise BpttError(
            f"targets have shape {targets.shape}, logits {logits.shape} expect {logits.shape[:-1]}"
        )
    if not np.issubdtype(targets.dtype, np.integer):
        raise BpttError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if mask is None:
        real = np.ones(targets.shape, dtype=bool)  # (B, T) or (B,)
    else:
        real = np.asarray(mask)
        if real.shape != targets.shape:
            raise BpttError(f"mask has shape {real.shape}, targets have {targets.shape}")
        if real.dtype != np.bool_:
            raise BpttError(f"mask must be boolean (True at real steps), got dtype {real.dtype}")

    V = logits.shape[-1]
    bad = real & ((targets < 0) | (targets >= V))  # (B, T) or (B,)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BpttError(
            f"target {int(targets[where])} at position {where} is outside the "
            f"vocabulary [0, {V}) (V = {V})"
        )

    z = logits.reshape(-1, V)  # (N, V) N = B*T rows
    y = np.where(real, targets, 0).reshape(-1)  # (N,) masked rows read class 0, then dropped
    m = real.reshape(-1)  # (N,)
    rows = np.arange(y.shape[0])  # (N,)

    log_p = log_softmax(z)  # (N, V) log ŷ, stable for any finite logits
    n_real = int(m.sum())
    eps = float(label_smoothing)
    total = -float(log_p[rows[m], y[m]].sum())  # E = Σ_real -log ŷ[y]
    if eps:  # E = Σ_real -(1 - ε) log ŷ[y] - (ε / V) Σ_v log ŷ[v]
        total = (1.0 - eps) * total - eps / V * float(log_p[m].sum())

    if reduction == "sum":
        scale = 1.0
    elif reduction == "mean":
        scale = 1.0 / n_real if n_real else 0.0
    else:  # "mean_batch"
        scale = 1.0 / logits.shape[0]

    d = np.exp(log_p)  # (N, V) ŷ = exp(log ŷ), as torch's log-softmax backward forms it
    if eps:
        d[rows, y] -= 1.0 - eps  # ŷ - q, q = (1 - ε) onehot(y) + ε / V
        d -= eps / V
    else:
        d[rows, y] -= 1.0  # ŷ - onehot(y)
    d *= scale
    d[~m] = 0.0  # padding gets exactly zero gradient
    return total * scale, d.reshape(logits.shape)
