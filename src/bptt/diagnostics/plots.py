"""PNG figures of the vanishing (and exploding) gradient, with matplotlib (the ``plot`` extra).

Every function writes one PNG and returns its path, or None when matplotlib
is not installed (the numbers are still in the JSON/CSV reports).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

COLORS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}
AT_INIT = "at init"  # a label ending so is a model before training: drawn thin and faded


def _line_style(label: str, cell: str) -> dict:
    faded = label.endswith(AT_INIT)
    return {"color": COLORS.get(cell), "lw": 0.9 if faded else 1.6, "alpha": 0.45 if faded else 1}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def _relative(v: np.ndarray) -> np.ndarray:
    """v (T+1,) indexed by k, as a function of lag T - k, divided by its value at lag 0."""
    r = v[::-1].astype(np.float64)  # (T+1,) lag 0 .. T
    return r / r[0] if r[0] > 0 else r


def _flow_axes(ax, flows: dict[str, Any], title: str) -> None:
    for label, flow in flows.items():
        style = _line_style(label, flow.cell)
        lags = np.arange(flow.T + 1)
        ax.semilogy(lags, _relative(flow.last_h), **style, label=f"{label}: ‖∂E_T/∂h_k‖")
        if flow.last_c is not None:
            ax.semilogy(
                lags, _relative(flow.last_c), **style, ls="--", label=f"{label}: ‖∂E_T/∂C_k‖"
            )
    ax.set_xlabel("lag T - k (steps back from the loss)")
    ax.set_ylabel("gradient norm / its value at lag 0")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def plot_gradient_flow(flows: dict[str, Any], path, title: str | None = None) -> Path | None:
    """Gradient norm against lag (log scale) for several models, and their Jacobian products.

    ``flows``: label -> :class:`bptt.diagnostics.flow.GradientFlow`.
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    _flow_axes(a, flows, title or "How much of the last step's loss reaches step k")
    for label, flow in flows.items():
        style = _line_style(label, flow.cell)
        lags = np.arange(flow.T + 1)
        b.semilogy(lags, flow.jacobian[::-1], **style, label=f"{label}: ‖∏ ∂s_j/∂s_j-1‖₂")
        if flow.gate_path is not None:
            gate = "∏ f_j" if flow.cell == "lstm" else "∏ z_j"
            b.semilogy(lags, flow.gate_path[::-1], **style, ls=":", label=f"{label}: {gate}")
    b.set_xlabel("lag T - k")
    b.set_ylabel("norm (mean over the batch)")
    b.set_title("Jacobian product and gate path")
    b.grid(alpha=0.3, which="both")
    b.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_exploding(
    vanishing: dict[str, Any], exploding: dict[str, Any], logs: dict[str, dict], path, clip: float
) -> Path | None:
    """Vanishing beside exploding gradient flow, and the clipping log of the exploding RNN.

    ``logs``: label -> {"grad_norm": [...], "loss": [...], "diverged_at": int | None},
    one per training run (with and without clipping).
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    _flow_axes(axes[0], vanishing, "Vanishing: spectral radius < 1")
    _flow_axes(axes[1], exploding, "Exploding: spectral radius > 1")
    ax = axes[2]
    for (label, log), color in zip(logs.items(), ("tab:purple", "tab:orange"), strict=False):
        norms = np.array([np.nan if v is None else v for v in log["grad_norm"]], dtype=np.float64)
        steps = np.arange(1, len(norms) + 1)
        ax.semilogy(steps, norms, color=color, lw=0.8, label=f"{label}: gradient norm")
        if any(log.get("clipped", [])):
            fired = np.flatnonzero(log["clipped"]) + 1
            ax.plot(fired, norms[fired - 1], ".", color=color, ms=3, label=f"{label}: clipped")
        if log.get("diverged_at"):
            ax.axvline(log["diverged_at"], color=color, ls="--", lw=1)
            ax.text(
                log["diverged_at"],
                0.02,
                f" diverged at update {log['diverged_at']}",
                transform=ax.get_xaxis_transform(),
                fontsize=8,
                color=color,
            )
    ax.axhline(clip, color="k", ls=":", lw=1, label=f"clip threshold {clip}")
    ax.set_xlabel("update")
    ax.set_ylabel("global gradient norm (before clipping)")
    ax.set_title("Clipping log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_memory_sweep(results: list, threshold: float, chance: float, path) -> Path | None:
    """Held-out accuracy against lag per cell: mean over seeds, bars from min to max."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    cells = list(dict.fromkeys(r.cell for r in results))
    for cell in cells:
        lags = sorted({r.lag for r in results if r.cell == cell})
        accs = [[r.accuracy for r in results if r.cell == cell and r.lag == lag] for lag in lags]
        mean = np.array([np.mean(a) for a in accs])
        lo = mean - np.array([np.min(a) for a in accs])
        hi = np.array([np.max(a) for a in accs]) - mean
        ax.errorbar(
            lags,
            mean,
            yerr=[lo, hi],
            marker="o",
            capsize=3,
            color=COLORS.get(cell),
            label=f"{cell.upper()} ({len(accs[0])} seeds)",
        )
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"learned: accuracy >= {threshold}")
    ax.axhline(chance, color="gray", ls=":", lw=1, label=f"chance {chance:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("lag (steps between the clue and the answer)")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_truncation(reports: dict[str, Any], path) -> Path | None:
    """Relative error of truncated BPTT(k) against full BPTT (``label -> TruncationBias``)."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, tb in reports.items():
        color = COLORS.get(label.split()[0].lower())
        for error, style, way in (
            (tb.windowed_error, "o-", "windows of k"),
            (tb.sliding_error, "s--", "each loss k back"),
        ):
            ax.semilogy(
                tb.windows, np.maximum(error, 1e-17), style, color=color, label=f"{label}: {way}"
            )
    ax.set_xlabel("truncation k (steps)")
    ax.set_ylabel("‖g_k - g‖ / ‖g‖")
    ax.set_title("Truncation bias")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_history(metrics_path: str | Path, out_png: str | Path) -> Path | None:
    """Training and validation loss (bits per symbol) against updates, from a run's
    ``metrics.jsonl``, as a PNG. Returns None when matplotlib (the ``plot`` extra) is
    not installed."""
    plt = _pyplot()
    if plt is None:
        return None
    bits = 1 / math.log(2.0)  # nats to bits
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line]
    val = [r for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] * bits for r in rows], lw=0.8, label="train")
    ax.plot([r["step"] for r in val], [r["val_loss"] * bits for r in val], "o-", label="validation")
    ax.set_xlabel("update")
    ax.set_ylabel("bits per symbol")
    ax.legend()
    ax.grid(alpha=0.3)
    path = _save(fig, out_png)
    plt.close(fig)
    return path
