"""DNA, both kinds: is a transcription-factor motif in this sequence (many-to-one), and
which bases are it (many-to-many: the lecture's AG[CCCCTGTGAGGAACTAG] highlighted)?

Data: real binding motifs from JASPAR (PyPI ``pyjaspar``, extra ``dna``):
CTCF, TP53, REST and NFKB1, each a position frequency matrix, its weak flanks
(under half a bit of information) trimmed. Half of the random background
sequences (uniform bases) get one instance of one motif, drawn base by base
from its matrix, on either strand, at a random position. Validation and test
sets are drawn from their own fixed seeds, never from the training draws.

``--head tags`` (the preset) trains a tagger: per-base F1 of the motif bases,
and presence AUROC from the tagger's highest per-base probability;
``--head class`` trains a classifier: presence AUROC and accuracy. Beside
them, a k-mer baseline: logistic regression on the counts of every 5-mer.

Shapes: N sequences, T bases, C = 2 (background, motif; or absent, present).
"""

from __future__ import annotations

import sys

import numpy as np

from bptt.data import PAD, UNK, Vocabulary
from bptt.errors import BpttError
from bptt.tasks._examples import (
    Split,
    TaskData,
    example_task,
    format_metrics,
    load_model,
    make_trainer,
    mean_loss,
    predict,
    predict_one,
    predict_tags,
    require_package,
)

PACKAGE, EXTRA = "pyjaspar", "dna"
RELEASE = "JASPAR2024"  # pinned: a newer pyjaspar's default release may renumber motifs
MOTIF_IDS = ("MA0139.1", "MA0106.3", "MA0138.2", "MA0105.4")  # CTCF, TP53, REST, NFKB1
MIN_BITS = 0.5  # flank columns with less information than this are trimmed
LENGTH = 100  # bases per sequence
SEEDS = {"train": 201, "val": 202, "test": 203}
HELD_OUT = 1000  # validation and test sequences each
BASES = "ACGT"
K = 5  # the baseline's k-mer length


def vocabulary() -> Vocabulary:
    """<pad>, <unk> (any base other than A, C, G, T) and the four bases."""
    return Vocabulary([PAD, UNK, *BASES], level="char", specials=(PAD, UNK))


def load_motifs() -> list[tuple[str, np.ndarray]]:
    """(name, base probabilities (4, W)) of each motif, flanks trimmed, from JASPAR."""
    require_package(PACKAGE, EXTRA, "the dna task")
    from pyjaspar import jaspardb

    db = jaspardb(release=RELEASE)
    motifs = []
    for motif_id in MOTIF_IDS:
        m = db.fetch_motif_by_id(motif_id)
        counts = np.array([m.counts[b] for b in BASES], dtype=np.float64)  # (4, W)
        p = (counts + 0.25) / (counts + 0.25).sum(axis=0)  # (4, W) a pseudocount per base
        bits = 2 + (p * np.log2(p)).sum(axis=0)  # (W,) information per column
        strong = np.flatnonzero(bits >= MIN_BITS)  # (W',)
        motifs.append((f"{m.name} {motif_id}", p[:, strong[0] : strong[-1] + 1]))
    return motifs


def generate(n: int, seed: int, motifs) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """``n`` sequences as base indices 0..3 (LENGTH,), presence (n,), motif masks (LENGTH,)."""
    rng = np.random.default_rng(seed)
    seqs = rng.integers(0, 4, size=(n, LENGTH))  # (n, T) uniform background
    present = rng.random(n) < 0.5  # (n,)
    marks = np.zeros((n, LENGTH), dtype=np.int64)  # (n, T) 1 at motif bases
    for i in np.flatnonzero(present):
        _, p = motifs[rng.integers(len(motifs))]
        W = p.shape[1]
        below = rng.random(W)[None, :] > np.cumsum(p, axis=0)  # (4, W)
        site = np.minimum(below.sum(axis=0), 3)  # (W,) one base drawn from each column
        if rng.random() < 0.5:
            site = 3 - site[::-1]  # the reverse strand: complement (A<->T, C<->G), reversed
        start = rng.integers(0, LENGTH - W + 1)
        seqs[i, start : start + W] = site
        marks[i, start : start + W] = 1
    return list(seqs), present.astype(np.int64), list(marks)


def prepare_data(config, vocab: Vocabulary | None = None) -> TaskData:
    """Generated train, validation and test sets for the model the config's head names."""
    head = "tags" if config.head == "auto" else config.head
    if config.dataset != "default":
        raise BpttError(
            f"dna generates its data; --dataset takes no value here, got {config.dataset!r}"
        )
    motifs = load_motifs()
    vocab = vocabulary() if vocab is None else vocab
    offset = vocab.index("A")  # base index 0..3 -> vocabulary id
    sizes = {"train": config.max_examples or 4000, "val": HELD_OUT, "test": HELD_OUT}
    splits, raw = {}, {}
    for k, seed in SEEDS.items():
        seqs, present, marks = generate(sizes[k], seed, motifs)
        inputs = [s + offset for s in seqs]
        splits[k] = Split(inputs, list(present) if head == "class" else marks)
        raw[k] = {"bases": seqs, "present": present, "marks": marks}
    labels = ["absent", "present"] if head == "class" else ["background", "motif"]
    names = ", ".join(name for name, _ in motifs)
    source = f"{LENGTH}-base random DNA, half with one planted motif of {names} ({RELEASE})"
    return TaskData(
        splits["train"],
        splits["val"],
        splits["test"],
        labels,
        head,
        vocab=vocab,
        source=source,
        raw=raw,
        extra={"motifs": names},
    )


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random
    negative (ties count half), by the Mann-Whitney rank sum."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        raise BpttError(f"AUROC needs both classes; got {n1} positive, {n0} negative")
    order = np.argsort(scores, kind="mergesort")  # (N,)
    _, inverse, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2  # (U,) 1-based, ties averaged
    ranks = np.empty(len(scores))  # (N,)
    ranks[order] = mean_rank[inverse]
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def base_scores(true: list[np.ndarray], pred: list[np.ndarray]) -> dict[str, float]:
    """Per-base precision, recall and F1 of the motif class (1) over all sequences."""
    t, p = np.concatenate(true).astype(bool), np.concatenate(pred).astype(bool)  # (N*T,)
    tp = int((t & p).sum())
    precision = tp / p.sum() if p.any() else 0.0
    recall = tp / t.sum() if t.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"base_precision": precision, "base_recall": recall, "base_f1": f1}


def metrics(model, split: Split) -> dict:
    probs = predict(model, split)
    out = {"loss": mean_loss(probs, split)}
    if np.ndim(split.targets[0]) == 0:  # a classifier
        y = np.array(split.targets)  # (N,)
        score = np.array([p[1] for p in probs])  # (N,)
        return out | {"auroc": auroc(score, y), "accuracy": float(np.mean((score > 0.5) == y))}
    present = np.array([t.any() for t in split.targets])  # (N,)
    peak = np.array([p[:, 1].max() for p in probs])  # (N,) the most motif-like base
    pred = predict_tags(model, split)  # argmax, or a CRF head's Viterbi path
    return out | base_scores(split.targets, pred) | {"auroc": auroc(peak, present)}


def kmer_counts(seqs: list[np.ndarray], k: int = K) -> np.ndarray:
    """Counts of each of the 4^k k-mers in each sequence (N, 4^k)."""
    x = np.stack(seqs)  # (N, T) bases 0..3
    codes = np.zeros((x.shape[0], x.shape[1] - k + 1), dtype=np.int64)  # (N, T-k+1)
    for j in range(k):
        codes = codes * 4 + x[:, j : x.shape[1] - k + 1 + j]
    counts = np.zeros((x.shape[0], 4**k))  # (N, 4^k)
    np.add.at(counts, (np.arange(x.shape[0])[:, None], codes), 1.0)
    return counts


def kmer_baseline(data: TaskData, steps: int = 300, l2: float = 1e-3) -> float:
    """Test AUROC of logistic regression on 5-mer counts, fitted on the training set."""
    x_train, x_test = (
        kmer_counts(data.raw["train"]["bases"]),
        kmer_counts(data.raw["test"]["bases"]),
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8  # (4^k,)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y = data.raw["train"]["present"].astype(np.float64)  # (N,)
    w, b = np.zeros(x_train.shape[1]), 0.0  # (4^k,)
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)  # Adam moments, (4^k,)
    for t in range(1, steps + 1):
        p = 1 / (1 + np.exp(-(x_train @ w + b)))  # (N,)
        g_w = x_train.T @ (p - y) / len(y) + l2 * w  # (4^k,)
        b -= 0.1 * float(np.mean(p - y))
        m_w = 0.9 * m_w + 0.1 * g_w
        v_w = 0.999 * v_w + 0.001 * g_w**2
        w -= 0.01 * (m_w / (1 - 0.9**t)) / (np.sqrt(v_w / (1 - 0.999**t)) + 1e-8)
    return auroc(x_test @ w + b, data.raw["test"]["present"])


def build_trainer(config, out_dir, progress_bar: bool = True):
    return make_trainer(config, out_dir, progress_bar, prepare_data(config), metrics)


def held_out_report(path) -> str:
    """Test metrics of the checkpoint at ``path``, beside the k-mer baseline's AUROC."""
    model, config, _, vocab = load_model(path, "dna")
    data = prepare_data(config, vocab)
    return (
        f"test ({len(data.test):,} held-out sequences): "
        f"{format_metrics(metrics(model, data.test))} "
        f"| {K}-mer logistic regression: auroc {kmer_baseline(data):.4f}"
    )


def predict_checkpoint(path, text: str) -> str:
    """Presence and, for a tagger, the sequence with the motif bases in [brackets]."""
    model, _, meta, vocab = load_model(path, "dna")
    seq = "".join(text.split()).upper()
    if not seq:
        raise BpttError("predict needs a DNA sequence such as ACGTTGCA...; got an empty text")
    ids = vocab.encode(seq)  # (T,) anything but A, C, G, T reads as <unk>
    probs = predict_one(model, ids)  # (2,) or (T, 2)
    if meta["head"] == "class":  # probs (2,)
        return f"motif present {probs[1]:.2f}"
    marked = probs[:, 1] > 0.5  # (T,)
    shown, inside = [], False
    for base, m in zip(seq, marked, strict=True):
        if m != inside:
            shown.append("[" if m else "]")
            inside = bool(m)
        shown.append(base)
    shown.append("]" if inside else "")
    return f"motif present {probs[:, 1].max():.2f}: {''.join(shown)}"


PRESET = {
    "out": "runs/dna",
    "head": "tags",  # the tagger marks the motif's bases; its peak also says "present"
    "embed_size": 8,  # 4 bases (and <unk>) need no wide embedding
    "hidden_size": 48,  # per direction
    "num_layers": 2,  # layer 2 combines both directions: "motif on my left AND right"
    "bidirectional": True,  # a base belongs to a motif by what lies on both sides
    "pooling": "max",  # classifier: presence is "somewhere", a max over positions
    "max_examples": 100000,  # fresh sequences are cheap: 1 layer overfit 20,000
    "batch_size": 64,
    "lr": 5e-3,
    "steps": 3000,  # ~2 epochs: test base F1 0.94 in ~8 minutes on 2 busy cores
    "eval_every": 500,  # each evaluation reads 1,000 validation sequences
}

TASK = example_task(
    sys.modules[__name__],
    "dna",
    "dataset head max_examples embed_size pooling crf word_dropout embed_dropout vectors",
)
