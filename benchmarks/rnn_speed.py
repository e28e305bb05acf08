"""Speed of bptt's recurrent layers against PyTorch's and ONNX Runtime's, on this CPU, in one run.

Each configuration is timed two ways:

    train   forward + backward w.r.t. every parameter and the input, from a
            fixed random upstream gradient G on the outputs
            (torch: ``out.backward(G)`` with ``x.requires_grad``), then one Adam
            update of every parameter (bptt.optim.Adam, torch.optim.Adam);
    infer   forward only (torch under ``torch.inference_mode()``);

and the generation (d) and streaming (s) configs a third way:

    gen     T single steps: the layer's forward with T = 1 and the carried
            state, as a language model generates (``LanguageModel.step``);
            torch runs its cell (nn.LSTMCell, GRUCell, RNNCell) once per step.

ONNX Runtime (the ``bench`` extra) runs the inference and gen rows too: the
layer as an ONNX graph of LSTM/GRU/RNN operators with the same weights
(:func:`onnx_model` maps PyTorch's gate order to ONNX's).

Next to the times: GFLOP/s of each library (the matrix-product FLOPs the step
must do: 2·T·B·G·H·(D_in + H) per layer and direction forward, three times
that for a training step; masked steps counted as real) and that rate as a
fraction of the machine's matrix-product peak, measured at start (an
(N, N) @ (N, N) float32 product with the same threads).

Each library runs in its own subprocess (two thread pools in one process fight
over the cores). For each (configuration, mode) the parent starts one worker
per library, all rows at once (about 55 workers of 0.2-0.65 GB each for the
default rows). Each round visits every row and asks its workers in turn for a
short timed slot (>= 1 step, >= --min-time seconds), rotating who goes first. So only one
library computes at any moment, the two libraries' slots are a fraction of a
second apart, and a row's rounds spread over the run instead of falling into
one slow spell of the machine. The --rounds rounds are split into --passes
passes, each with fresh workers, since one process can be slower than another
for its whole life. Once warmed up, every worker is pinned to the same CPUs
(--cpus), so neither library gets a core whose neighbour on the host is
busier. A cheap row repeats its pair of slots within a visit for up to --visit-time
seconds, so that short, noisy steps get more pairs. The headline ratio is the
median over pairs of each pair's ratio, printed with a distribution-free 95%
confidence interval.

All use the same number of threads: ``bptt.set_num_threads(n)``,
``torch.set_num_threads(n)``, ONNX Runtime's ``intra_op_num_threads`` and
``OPENBLAS/OMP/MKL_NUM_THREADS=n`` set before NumPy is imported; by default the
whole run is made twice, at one thread and at every CPU the process may use.
All build the same weights and inputs from one seed, so the table's last column
checks that they computed the same numbers. The header names the CPU, its SIMD
flags, the BLAS kernel and the measured peak; after each table come the routes
bptt's probe chose (bptt/functional/fast/_routes.py).

Usage (from the repository root):

    python benchmarks/rnn_speed.py                      # default rows, 1 thread, then all
    python benchmarks/rnn_speed.py --threads 1          # one thread only
    python benchmarks/rnn_speed.py --quick              # smoke test, seconds
    python benchmarks/rnn_speed.py --configs lstm-b --modes train --rounds 5
    python benchmarks/rnn_speed.py --cpus all           # let the OS place the workers
    python benchmarks/rnn_speed.py --configs a          # every cell at size a
    python benchmarks/rnn_speed.py --unset-coretype     # drop OPENBLAS_CORETYPE/_L2_SIZE
    python benchmarks/rnn_speed.py --list               # the config table

A worker can be run alone; it prints one JSON object:

    python benchmarks/rnn_speed.py --worker bptt --config lstm-tiny --mode train --quick

Shapes: B batch, T time steps, D input features, H hidden units, L layers,
K directions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from _timing import call_times

HERE = Path(__file__).resolve().parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CORETYPE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LIBS = ("bptt", "torch", "ort")  # bptt first: every ratio is (the other's time) / bptt's
MAX_REPEATS = 10  # pairs of slots per visit of a row (--visit-time)
MODES = ("train", "infer", "gen")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclasses.dataclass(frozen=True)
class Config:
    """One benchmark shape. ``size`` groups configs so ``--configs a`` picks all cells at a."""

    name: str
    cell: str  # "lstm", "gru" or "rnn"
    T: int
    B: int
    D: int
    H: int
    L: int = 1
    bidirectional: bool = False
    mask: bool = False  # random lengths in [T/4, T]; torch packs the batch
    size: str = ""
    default: bool = True  # run when --configs is not given
    generate: bool = False  # T single steps of B sequences ("gen" mode only)
    infer_only: bool = False  # an inference shape ("infer" mode only)

    def modes(self, asked: list[str]) -> list[str]:
        """The asked modes this config runs: "gen" for generation configs, else the others."""
        if self.infer_only:
            return [m for m in asked if m == "infer"]
        return [m for m in asked if (m == "gen") == self.generate]

    def flops(self, mode: str) -> float:
        """Product FLOPs of one timed call: forward 2·T·B·G·H·(D_in + H) per cell, x3 train."""
        K = 2 if self.bidirectional else 1
        G = GATES[self.cell]
        fwd = sum(
            2 * self.T * self.B * G * self.H * ((self.D if l == 0 else K * self.H) + self.H) * K
            for l in range(self.L)
        )
        return 3 * fwd if mode == "train" else fwd


# One line per configuration (issue 4's a-f). Add a row to benchmark a new shape.
CONFIGS = [
    Config("lstm-a", "lstm", T=100, B=32, D=128, H=128, size="a"),
    Config("lstm-b", "lstm", T=100, B=64, D=512, H=512, size="b"),
    # (c) the char-LM shape: 65 symbols embedded in D=64 (the LM preset), 2 layers of 256
    Config("lstm-c", "lstm", T=200, B=16, D=64, H=256, L=2, size="c"),
    # (d) generation: 1,000 single steps of one sequence (torch: LSTMCell, GRUCell, RNNCell)
    Config("lstm-d-gen", "lstm", T=1000, B=1, D=512, H=512, size="d", generate=True),
    Config("gru-d-gen", "gru", T=1000, B=1, D=512, H=512, size="d", generate=True),
    Config("rnn-d-gen", "rnn", T=1000, B=1, D=512, H=512, size="d", generate=True),
    # (e) inference on one sequence: B = 1
    Config("lstm-e", "lstm", T=50, B=1, D=256, H=256, size="e", infer_only=True),
    # (s) streaming: 200 calls of T = 1 with the carried state, B = 1, as a live input arrives
    Config("lstm-s-stream", "lstm", T=200, B=1, D=256, H=256, size="s", generate=True),
    Config("gru-a", "gru", T=100, B=32, D=128, H=128, size="a"),
    Config("gru-b", "gru", T=100, B=64, D=512, H=512, size="b"),
    Config("rnn-a", "rnn", T=100, B=32, D=128, H=128, size="a"),
    Config("rnn-b", "rnn", T=100, B=64, D=512, H=512, size="b"),
    # (f) bidirectional at size a, lengths from T/4 to T
    Config("lstm-f", "lstm", 100, 32, 128, 128, bidirectional=True, mask=True, size="f"),
    # (g, h) hidden sizes users pick that are no multiple of 16 (G*H: 300, 100, 900, 200):
    # the packed kernel's last panel is zero-padded. Not in the default run: --configs g,h.
    Config("gru-g", "gru", T=50, B=16, D=100, H=100, size="g", default=False),
    Config("rnn-g", "rnn", T=35, B=20, D=200, H=200, size="g", default=False),
    Config("gru-h", "gru", T=100, B=8, D=300, H=300, size="h", default=False),
    Config("rnn-h", "rnn", T=100, B=8, D=300, H=300, size="h", default=False),
    # Not in the default run; ask by name.
    Config("lstm-a-L2", "lstm", T=100, B=32, D=128, H=128, L=2, default=False),
    Config("lstm-tiny", "lstm", T=5, B=2, D=3, H=4, default=False),  # smoke tests
    Config("lstm-tiny-gen", "lstm", T=5, B=2, D=3, H=4, default=False, generate=True),
    Config("gru-tiny", "gru", T=5, B=2, D=3, H=4, default=False),
    Config("rnn-tiny-gen", "rnn", T=5, B=2, D=3, H=4, default=False, generate=True),
    Config("lstm-tiny-f", "lstm", 6, 3, 3, 4, L=2, bidirectional=True, mask=True, default=False),
]
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}


# --------------------------------------------------------------------------- worker


def make_problem(cfg: Config, param_shapes: dict[str, tuple[int, ...]], seed: int) -> dict:
    """The same weights, input, mask and upstream gradient for either library.

    Each parameter is drawn from its own stream, seeded by its PyTorch name, so the
    values do not depend on the order in which a library lists its parameters.
    PyTorch's init range U(-1/√H, 1/√H) keeps the gates out of saturation.
    """
    import numpy as np

    bound = 1.0 / np.sqrt(cfg.H)
    params = {}
    for name, shape in param_shapes.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        params[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)  # shape
    rng = np.random.default_rng(seed)
    K = 2 if cfg.bidirectional else 1
    x = rng.standard_normal((cfg.B, cfg.T, cfg.D)).astype(np.float32)  # (B, T, D)
    G = rng.standard_normal((cfg.B, cfg.T, K * cfg.H)).astype(np.float32)  # (B, T, K*H)
    mask = None
    if cfg.mask:
        lengths = rng.integers(max(1, cfg.T // 4), cfg.T + 1, size=cfg.B)  # (B,)
        lengths[0] = cfg.T  # one full row, so the padded output keeps T steps
        mask = np.arange(cfg.T)[None, :] < lengths[:, None]  # (B, T)
    return {"params": params, "x": x, "G": G, "mask": mask}


def _bptt_setup(cfg: Config, mode: str, seed: int):
    """Build a bptt layer on the shared problem; return the step to time and a checksum."""
    import numpy as np

    import bptt.nn
    import bptt.optim

    layer_cls = {"lstm": bptt.nn.LSTM, "gru": bptt.nn.GRU, "rnn": bptt.nn.RNN}[cfg.cell]
    layer = layer_cls(
        cfg.D, cfg.H, num_layers=cfg.L, bidirectional=cfg.bidirectional, dtype=np.float32,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    problem = make_problem(cfg, {k: v.shape for k, v in layer.params.items()}, seed)
    for name, value in problem["params"].items():
        layer.params[name][...] = value
    x, G, mask = problem["x"], problem["G"], problem["mask"]

    if mode == "train":
        opt = bptt.optim.Adam(lr=1e-3)

        def step():
            out, _ = layer.forward(x, mask=mask, training=True)  # (B, T, K*H)
            d_x = layer.backward(G)  # (B, T, D)
            opt.step(layer.params, layer.grads)
            return out, d_x, layer.grads

    elif mode == "gen":

        def step():
            state, outs = None, []
            for t in range(cfg.T):
                out, state = layer.forward(x[:, t : t + 1], state)  # (B, 1, H)
                outs.append(out)
            return np.concatenate(outs, axis=1), None, None  # (B, T, H)

    else:

        def step():
            out, _ = layer.forward(x, mask=mask, training=False)  # (B, T, K*H)
            return out, None, None

    step.layer = layer  # run_worker reads the cache's size after the first step
    return step, {"bptt": _bptt_version(), "jit": _bptt_jit()}


def _nbytes(obj) -> int:
    """Bytes of every distinct NumPy array in a nest of dicts, lists and tuples."""
    import numpy as np

    seen: dict[int, int] = {}

    def walk(o):
        if isinstance(o, np.ndarray):
            base = o if o.base is None else o.base
            if isinstance(base, np.ndarray):
                seen[id(base)] = base.nbytes
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list | tuple):
            for v in o:
                walk(v)

    walk(obj)
    return sum(seen.values())


def _bptt_jit() -> bool:
    from bptt.functional.fast import _fused

    return _fused.JIT


def _bptt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bptt")
    except PackageNotFoundError:
        return "unknown"


def _torch_setup(cfg: Config, mode: str, seed: int, threads: int):
    """Build a torch layer on the shared problem; return the step to time."""
    import torch

    torch.set_num_threads(threads)
    layer_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg.cell]
    layer = layer_cls(
        cfg.D, cfg.H, num_layers=cfg.L, bidirectional=cfg.bidirectional, batch_first=True,
        dtype=torch.float32,
    )  # fmt: skip
    shapes = {k: tuple(v.shape) for k, v in layer.named_parameters()}
    problem = make_problem(cfg, shapes, seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.from_numpy(problem["params"][name]))
    x = torch.from_numpy(problem["x"])  # (B, T, D)
    G = torch.from_numpy(problem["G"])  # (B, T, K*H)
    lengths = None
    if problem["mask"] is not None:
        lengths = torch.from_numpy(problem["mask"].sum(axis=1))  # (B,)
    pack = torch.nn.utils.rnn.pack_padded_sequence
    unpack = torch.nn.utils.rnn.pad_packed_sequence

    def run(inp):
        if lengths is None:
            return layer(inp)[0]  # (B, T, K*H)
        packed = pack(inp, lengths, batch_first=True, enforce_sorted=False)
        return unpack(layer(packed)[0], batch_first=True, total_length=cfg.T)[0]  # (B, T, K*H)

    if mode == "train":
        layer.train()
        x.requires_grad_(True)
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            x.grad = None
            out = run(x)
            out.backward(G)
            opt.step()
            return out, x.grad, {k: p.grad for k, p in layer.named_parameters()}

    elif mode == "gen":
        # Step by step a torch user writes the cell (nn.LSTM called once per step is ~5x slower).
        cell_cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}
        cell = cell_cls[cfg.cell](cfg.D, cfg.H, dtype=torch.float32).eval()
        with torch.no_grad():
            for name, p in cell.named_parameters():
                p.copy_(torch.from_numpy(problem["params"][f"{name}_l0"]))
        xs = [x[:, t].contiguous() for t in range(cfg.T)]  # T of (B, D)

        def step():
            state, outs = None, []
            with torch.inference_mode():
                for x_t in xs:
                    state = cell(x_t, state)  # (h, c) for the LSTM, h otherwise
                    outs.append(state[0] if cfg.cell == "lstm" else state)  # (B, H)
            return torch.stack(outs, dim=1), None, None  # (B, T, H)

    else:
        layer.eval()

        def step():
            with torch.inference_mode():
                return run(x), None, None

    info = {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_mkl": torch.backends.mkl.is_available(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
    }
    return step, info


def onnx_model(cfg: Config, params: dict, gen: bool):
    """An ONNX graph of the layer: PyTorch's weights mapped to the ONNX operator's gate order.

    ONNX orders the gates i, o, f, c (LSTM; PyTorch: i, f, g, o) and z, r, h (GRU;
    PyTorch: r, z, n, with ``linear_before_reset=1`` for PyTorch's reset); B
    concatenates the input and hidden biases. The graph takes X batch-first (B, T, D)
    and, with a mask, the lengths (sequence_lens); each layer's Y (T, K, B, H) is
    reshaped to the next layer's (T, B, K*H). ``gen``: one layer, T = 1, the state in
    and out (initial_h, initial_c -> Y_h, Y_c).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    H, K = cfg.H, 2 if cfg.bidirectional else 1
    order = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}[cfg.cell]  # torch -> onnx

    def regate(w):  # (G*H, ...) rows in torch's order -> onnx's
        return np.concatenate([w[g * H : (g + 1) * H] for g in order])

    inits, nodes = [], []
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["B", "T", cfg.D])]
    nodes.append(helper.make_node("Transpose", ["X"], ["x0"], perm=[1, 0, 2]))  # (T, B, D)
    seq_lens = ""
    if cfg.mask and not gen:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"]))
        seq_lens = "lengths"
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[cfg.cell]
    outputs = []
    prev = "x0"
    for l in range(cfg.L):
        suffixes = [f"_l{l}"] + ([f"_l{l}_reverse"] if cfg.bidirectional else [])
        W = np.stack([regate(params[f"weight_ih{s}"]) for s in suffixes])  # (K, G*H, D_in)
        R = np.stack([regate(params[f"weight_hh{s}"]) for s in suffixes])  # (K, G*H, H)
        Bias = np.stack(
            [np.concatenate([regate(params[f"bias_ih{s}"]), regate(params[f"bias_hh{s}"])])
             for s in suffixes]
        )  # (K, 2*G*H)  # fmt: skip
        for name, value in ((f"W{l}", W), (f"R{l}", R), (f"B{l}", Bias)):
            inits.append(helper.make_tensor(name, TensorProto.FLOAT, value.shape, value.ravel()))
        names = [prev, f"W{l}", f"R{l}", f"B{l}", seq_lens]
        attrs = {"hidden_size": H, "direction": "bidirectional" if K == 2 else "forward"}
        if cfg.cell == "gru":
            attrs["linear_before_reset"] = 1
        outs = [f"y{l}"]
        if gen:
            names.append("h0")
            inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "B", H]))
            outs.append("Y_h")
            if cfg.cell == "lstm":
                names.append("c0")
                inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, "B", H]))
                outs.append("Y_c")
        while names[-1] == "":  # an absent optional input at the end is left out
            names.pop()
        nodes.append(helper.make_node(op, names, outs, **attrs))
        nodes.append(helper.make_node("Transpose", [f"y{l}"], [f"yt{l}"], perm=[0, 2, 1, 3]))
        shape = f"shape{l}"
        inits.append(helper.make_tensor(shape, TensorProto.INT64, [3], [0, 0, K * H]))
        nodes.append(helper.make_node("Reshape", [f"yt{l}", shape], [f"x{l + 1}"]))  # (T, B, K*H)
        prev = f"x{l + 1}"
    nodes.append(helper.make_node("Transpose", [prev], ["Y"], perm=[1, 0, 2]))  # (B, T, K*H)
    outputs.append(helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["B", "T", K * H]))
    if gen:
        for name in ("Y_h", "Y_c")[: 2 if cfg.cell == "lstm" else 1]:
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "B", H]))
    graph = helper.make_graph(nodes, f"{cfg.name}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ort_setup(cfg: Config, mode: str, seed: int, threads: int):
    """ONNX Runtime's LSTM/GRU/RNN operator on the shared problem (inference and generation)."""
    import numpy as np
    import onnxruntime as ort

    shapes = {}
    K = 2 if cfg.bidirectional else 1
    G = GATES[cfg.cell]
    for l in range(cfg.L):
        d_in = cfg.D if l == 0 else K * cfg.H
        for s in [f"_l{l}"] + ([f"_l{l}_reverse"] if cfg.bidirectional else []):
            shapes |= {f"weight_ih{s}": (G * cfg.H, d_in), f"weight_hh{s}": (G * cfg.H, cfg.H)}
            shapes |= {f"bias_ih{s}": (G * cfg.H,), f"bias_hh{s}": (G * cfg.H,)}
    problem = make_problem(cfg, shapes, seed)
    gen = mode == "gen"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    model = onnx_model(cfg, problem["params"], gen)
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    x = problem["x"]  # (B, T, D)
    if gen:
        zeros = np.zeros((1, cfg.B, cfg.H), dtype=np.float32)  # (1, B, H)
        xs = [np.ascontiguousarray(x[:, t : t + 1]) for t in range(cfg.T)]  # T of (B, 1, D)

        def step():
            feed = {"h0": zeros, "c0": zeros} if cfg.cell == "lstm" else {"h0": zeros}
            outs = []
            for x_t in xs:
                feed["X"] = x_t
                result = session.run(None, feed)  # Y (B, 1, H), Y_h, [Y_c]
                outs.append(result[0])
                feed["h0"] = result[1]
                if cfg.cell == "lstm":
                    feed["c0"] = result[2]
            return np.concatenate(outs, axis=1), None, None  # (B, T, H)

    else:
        feed = {"X": x}
        if problem["mask"] is not None:
            feed["lengths"] = problem["mask"].sum(axis=1).astype(np.int32)  # (B,)

        def step():
            return session.run(["Y"], feed)[0], None, None  # (B, T, K*H)

    return step, {"ort": ort.__version__, "ort_threads": threads}


def _checksum(out, d_x, grads) -> dict[str, float]:
    """Sums of squares (positive, so a relative difference means something)."""
    import numpy as np

    def sq(a) -> float:
        a = np.asarray(a.detach() if hasattr(a, "detach") else a, dtype=np.float64)
        return float(np.sum(a * a))

    result = {"out_sq": sq(out)}
    if d_x is not None:
        result["dx_sq"] = sq(d_x)
        result["grads_sq"] = sum(sq(g) for g in grads.values())
    return result


def blas_info() -> dict[str, Any]:
    """NumPy's BLAS: the build's name and version, and the kernel chosen at run time."""
    import ctypes

    import numpy as np

    info: dict[str, Any] = {"numpy": np.__version__}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode; the rest still works
        info["blas"] = "unknown"
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            info["blas_corename"] = pools[0].get("architecture")
            info["blas_threads"] = pools[0].get("num_threads")
            return info
    except ImportError:
        pass
    # Without threadpoolctl: ask the OpenBLAS that NumPy already loaded.
    with open("/proc/self/maps") as maps:
        libs = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                fn = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                nt = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if fn is not None:
                    fn.restype = ctypes.c_char_p
                    info["blas_corename"] = fn().decode()
                    if nt is not None:
                        info["blas_threads"] = nt()
                    return info
    return info


SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "amx_tile",
    "neon",
    "asimd",
    "sve",
)


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and the SIMD extensions that matter to matrix kernels."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("model name", "Model") and model in ("", platform.machine()):
                    model = value.strip()
                elif name.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    simd = " ".join(f for f in SIMD_FLAGS if f in flags)
    return {"cpu_model": model, "simd": simd, "cpus_allowed": allowed}


def matmul_peak(n: int = 1024, reps: int = 15) -> dict[str, float]:
    """The machine's float32 matrix-product rate: (n, n) @ (n, n), best and median of reps.

    Timed twice, through NumPy's BLAS and through bptt's packed kernel
    (functional/fast/_gemm.py, which beats OpenBLAS on this VM); the faster is the peak.
    """
    import numpy as np

    from bptt.functional.fast import _gemm

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
    out = np.empty((n, n), dtype=np.float32)  # (n, n)
    routes = {"blas": lambda: np.matmul(a, a, out=out)}
    if _gemm.JIT:
        panels = _gemm.pack(np.ascontiguousarray(a.T))  # a @ a = a @ (aᵀ)ᵀ
        routes["packed"] = lambda: _gemm.matmul_packed(a, panels, out)
    flops = 2.0 * n**3
    rates = {}
    for name, product in routes.items():
        times = call_times(product, reps)
        rates[name] = (flops / min(times) / 1e9, flops / statistics.median(times) / 1e9)
    best = max(rates, key=lambda k: rates[k][0])
    return {
        "peak_gflops": rates[best][0],
        "median_gflops": rates[best][1],
        "peak_route": best,
        "rates_gflops": rates,
        "n": n,
    }


def prepare_worker(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Build one (library, config, mode) step, run it once for the checksums, warm it up."""
    cfg = CONFIG_BY_NAME[args.config]
    if args.worker == "bptt":
        import bptt

        bptt.set_num_threads(args.threads)
        step, info = _bptt_setup(cfg, args.mode, args.seed)
    elif args.worker == "ort":
        step, info = _ort_setup(cfg, args.mode, args.seed, args.threads)
    else:
        step, info = _torch_setup(cfg, args.mode, args.seed, args.threads)
    info["rss_setup_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info["check"] = _checksum(*step())
    if args.worker == "bptt":  # the routes the probe chose (or the cache held) for this row
        from bptt.functional.fast import _routes

        info["routes"] = {k: v["route"] for k, v in _routes.used().items()}
    layer = getattr(step, "layer", None)
    if layer is not None and args.mode == "train":
        info["cache_mb"] = _nbytes(layer._cache) / 2**20  # what backward keeps: T x B x H per layer
    # Warm up (thread pools, allocator, first-touch pages) for >= 1 step and >= 0.2 s.
    warm_time = 0.0 if args.quick else 0.2
    warmup, start = 1, time.perf_counter()
    while warmup < 10 and time.perf_counter() - start < warm_time:
        step()
        warmup += 1
    info["warmup"] = warmup
    return step, info


def time_steps(step, args: argparse.Namespace) -> list[float]:
    """Seconds of each timed step: >= 1 step and >= min_time (or --iters, or 2 with --quick)."""
    min_iters, max_iters, min_time = 1, 200, args.min_time
    if args.quick:
        min_iters, max_iters, min_time = 2, 2, 0.0
    if args.iters:
        min_iters = max_iters = args.iters
    times: list[float] = []
    start = time.perf_counter()
    # Stop at max_iters, or once min_iters and min_time are both reached, or (on a busy
    # machine, where steps can be many times slower) after max_time with >= 1 step.
    while len(times) < max_iters and (
        len(times) < min_iters or time.perf_counter() - start < min_time
    ):
        if times and time.perf_counter() - start > args.max_time:
            break
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def summarize(args: argparse.Namespace, info: dict[str, Any], times: list[float]) -> dict:
    """One timed slot as the parent combines it: the times, their statistics, the setup info."""
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return {
        "lib": args.worker,
        "config": args.config,
        "mode": args.mode,
        "threads": args.threads,
        "n": len(times),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "q1_s": q1,
        "q3_s": q3,
        "iqr_s": q3 - q1,
        "times_s": times,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "env": {k: os.environ.get(k) for k in THREAD_VARS + CORETYPE_VARS},
        "loadavg_1min": os.getloadavg()[0],  # other work on the machine skews the times
        **info,
        **blas_info(),
    }


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one (library, config, mode) once; the result is what the parent combines."""
    pin_threads(args.pin)  # alone on the machine: pinned from the start (servers: after setup)
    step, info = prepare_worker(args)
    return summarize(args, info, time_steps(step, args))


def serve_worker(args: argparse.Namespace) -> None:
    """Prepare once, print "ready", then time one slot per "run" line on stdin until EOF.

    The parent keeps a bptt and a torch server alive side by side and asks each
    in turn, so the two libraries' slots interleave within a second (each in its
    own process, never both at once) and a slow spell of the machine falls on both.
    """
    step, info = prepare_worker(args)
    # Pinned only now, so that all servers build and warm up on every core at once.
    pin_threads(args.pin)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps(summarize(args, info, time_steps(step, args))), flush=True)


# --------------------------------------------------------------------------- parent


def worker_env(threads: int, unset_coretype: bool) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if unset_coretype:
        for var in CORETYPE_VARS:
            env.pop(var, None)
    return env


def worker_cpus(spec: str, threads: int) -> list[int] | None:
    """The CPUs every worker is pinned to (None: not pinned), from ``--cpus``.

    "auto" takes the last ``threads`` CPUs this process may use, when there are more
    than that: both libraries then run on the same cores. On a VM the cores differ
    by what the host runs beside them, and a worker the OS placed on the busier
    one would lose by more than the libraries differ.
    """
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if spec == "all" or (spec == "auto" and len(allowed) <= threads):
        return None
    if spec == "auto":
        return allowed[-threads:]
    try:
        cpus = sorted({int(c) for c in spec.split(",")})
    except ValueError:
        msg = f"--cpus {spec!r}: expected auto, all or a comma list of CPU numbers"
        raise SystemExit(msg) from None
    if not set(cpus) <= set(allowed):
        raise SystemExit(f"--cpus {spec!r}: this process may only use CPUs {allowed}")
    return cpus


def pin_args(cpus: list[int] | None) -> list[str]:
    """The worker arguments that pin it to ``cpus`` (none when not pinned)."""
    return [] if cpus is None else ["--pin", ",".join(map(str, cpus))]


def pin_threads(spec: str | None) -> None:
    """Move every thread of this process (BLAS's pool included) to the CPUs ``spec`` lists."""
    if spec:
        cpus = [int(c) for c in spec.split(",")]
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), cpus)


def spawn(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({' '.join(argv)}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def serve(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a worker server (``serve_worker``); ``wait_ready`` waits for its step."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--serve"]
    err = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would block
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    proc.err = err  # type: ignore[attr-defined]
    proc.what = " ".join(argv)  # type: ignore[attr-defined]
    return proc


def wait_ready(proc: subprocess.Popen) -> None:
    """Wait until a worker server has built and warmed its step."""
    line = proc.stdout.readline()
    if not line or not json.loads(line).get("ready"):
        raise RuntimeError(f"worker failed to start ({proc.what}):\n{stderr_of(proc)}")


def stderr_of(proc: subprocess.Popen) -> str:
    """The last 3000 characters a worker server wrote to stderr."""
    proc.wait(timeout=60)
    proc.err.seek(0)  # type: ignore[attr-defined]
    return proc.err.read()[-3000:]  # type: ignore[attr-defined]


def ask(proc: subprocess.Popen) -> dict[str, Any]:
    """One timed slot from a worker server; returns once its threads have gone to sleep."""
    proc.stdin.write("run\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"worker died:\n{stderr_of(proc)}")
    wait_quiet(proc.pid)
    return json.loads(line)


def running_threads(pid: int) -> int:
    """How many threads of process ``pid`` are running or runnable (Linux: /proc)."""
    count = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread ended while we looked
        count += state == "R"
    return count


def wait_quiet(pid: int, limit_s: float = 1.0) -> None:
    """Wait (up to ``limit_s``) until no thread of a worker that just answered still runs.

    A thread pool spins for a while after its work before it sleeps: ONNX Runtime's
    for 50-200 ms here, torch's and bptt's for under 10 ms. The next slot, another
    library's, would share the cores with that spinning, which a user running one
    library never meets; at two threads it halved some rows (lstm-e, with slots of
    0.1 s, after an ONNX Runtime slot). Without /proc this waits 0.2 s instead.
    """
    if not Path(f"/proc/{pid}/task").is_dir():
        time.sleep(0.2)
        return
    deadline = time.perf_counter() + limit_s
    while running_threads(pid) and time.perf_counter() < deadline:
        time.sleep(0.001)


def timed_pass(
    pairs, common, env, cpus, rounds: range, visit_time: float, verbose: bool
) -> list[dict[str, Any]]:
    """Fresh servers for every (config, mode) in ``pairs``, alive for ``rounds``; each round
    visits every row and asks its two servers in turn for one slot each, a pair of slots,
    and repeats the pair while the visit is under ``visit_time`` seconds.

    Why all rows at once: this VM has slow spells of ~10 s in which the libraries slow
    down by different amounts (torch's GRU by 1.5x, bptt's by 1.25x), and a row timed
    within one spell gave a ratio 15% off the next run's; visiting every row in every
    round spreads a row's rounds over the pass. Why fresh servers per pass: one torch
    process can run a step 20% slower than another for its whole life (lstm-f training,
    363 vs 450 ms), so each row's median pools several processes of each library.
    """
    servers: dict[tuple[str, str, str], subprocess.Popen] = {}
    runs = []
    pin = pin_args(cpus)
    try:
        for cfg, mode in pairs:
            for lib in libs_for(mode):
                argv = ["--worker", lib, "--config", cfg.name, "--mode", mode, *common, *pin]
                servers[lib, cfg.name, mode] = serve(argv, env)
        for proc in servers.values():
            wait_ready(proc)
        repeats: dict[tuple[str, str], int] = {}  # pairs of slots per visit, after the first
        for rnd in rounds:
            for cfg, mode in pairs:
                start = time.perf_counter()
                libs = libs_for(mode)
                for again in range(repeats.get((cfg.name, mode), 1)):
                    # rotate who goes first
                    turn = (rnd + again) % len(libs)
                    for lib in libs[turn:] + libs[:turn]:
                        result = ask(servers[lib, cfg.name, mode])
                        result["round"] = rnd
                        runs.append(result)
                        if verbose:
                            print(
                                f"  round {rnd} {lib:5s} {cfg.name:14s} {mode:5s} "
                                f"{result['median_s'] * 1e3:9.2f} ms (n={result['n']})",
                                flush=True,
                            )
                if (cfg.name, mode) not in repeats:
                    # A cheap row times more pairs per visit: its steps are short and noisy
                    # (torch's lstm-f training step ranges over 270-660 ms), the costly rows
                    # keep one pair, so the run stays under 20 minutes.
                    pair_s = time.perf_counter() - start
                    repeats[cfg.name, mode] = max(1, min(MAX_REPEATS, int(visit_time / pair_s)))
    finally:
        for proc in servers.values():
            proc.stdin.close()  # EOF: the server exits
            proc.wait(timeout=60)
            proc.err.close()
    return runs


def measure_routes(pairs, threads: int, env: dict[str, str], cpus) -> None:
    """Let bptt's route probe run one row at a time, before the timed passes.

    The servers of a pass all build and warm up at once; a probe among them would
    time its routes on a crowded machine. Here each row's bptt worker runs alone
    (its first step probes whatever the route cache lacks and stores it), so the
    servers then read every route from the cache (bptt/functional/fast/_routes.py).
    """
    t0 = time.perf_counter()
    for cfg, mode in pairs:
        argv = ["--worker", "bptt", "--config", cfg.name, "--mode", mode, "--quick"]
        spawn([*argv, "--threads", str(threads), *pin_args(cpus)], env)
    print(f"routes measured one row at a time: {time.perf_counter() - t0:.0f} s", flush=True)


def ort_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def libs_for(mode: str) -> tuple[str, ...]:
    """Who runs a row: bptt and torch always; ONNX Runtime for inference and generation."""
    if mode == "train" or not ort_available():
        return LIBS[:2]
    return LIBS


def select_configs(spec: str | None) -> list[Config]:
    if not spec:
        return [c for c in CONFIGS if c.default]
    chosen: list[Config] = []
    for token in spec.split(","):
        token = token.strip()
        match = [c for c in CONFIGS if token in (c.name, c.size)]
        if not match:
            names = ", ".join(c.name for c in CONFIGS)
            raise SystemExit(
                f"unknown config {token!r}; expected a size (a, b, c, d, e, f, g, h, s) "
                f"or one of {names}"
            )
        chosen += [c for c in match if c not in chosen]
    return chosen


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the per-iteration times of every round for one (lib, config, mode)."""
    times = [t for r in results for t in r["times_s"]]
    q1, med, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return {
        "median_s": statistics.median(times),
        "iqr_rel": (q3 - q1) / med if med else 0.0,
        "round_medians_s": [r["median_s"] for r in results],
        "min_s": min(times),
        "max_s": max(times),
        "n": len(times),
        "rss_peak_mb": max(r["rss_peak_mb"] for r in results),
        "cache_mb": results[0].get("cache_mb"),
        "check": results[0]["check"],
        "routes": {k: v for r in results for k, v in (r.get("routes") or {}).items()},
    }


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval of the median: the k-th smallest and the k-th
    largest value, k the largest with P(Binomial(n, 1/2) < k) <= (1 - level) / 2."""
    x = sorted(values)
    n, tail, k = len(x), 0.0, 0
    while tail + math.comb(n, k) / 2**n <= (1 - level) / 2:
        tail += math.comb(n, k) / 2**n
        k += 1
    return (x[0], x[-1]) if k == 0 else (x[k - 1], x[n - k])


def check_column(a: dict | None, *others: dict | None) -> str:
    """ "ok" when every other library's checksums are within 1e-3 of bptt's (``a``)."""
    if a is None or not others or any(b is None for b in others):
        return "-"
    rel = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-30) for b in others for k in a if k in b)
    return "ok" if rel < 1e-3 else f"DIFF {rel:.1e}"


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (config, mode): sizes, medians, ratios, spreads, memory, check."""
    header = (
        f"{'config':14s} {'cell':4s} {'T':>4s} {'B':>4s} {'D':>4s} {'H':>4s} {'L':>2s} {'K':>2s} "
        f"{'mask':4s} {'mode':5s} {'bptt ms':>9s} {'torch ms':>9s} {'torch/bptt':>10s} "
        f"{'95% CI':>10s} {'(min)':>5s} {'ort ms':>8s} {'ort/bptt':>8s} {'95% CI':>10s} "
        f"{'spread b/t':>11s} {'GF/s b/t':>9s} {'%peak':>5s} {'RSS MB b/t':>10s} {'cache':>5s}"
        "  check"
    )
    lines = [header]
    for row in rows:
        cfg = CONFIG_BY_NAME[row["config"]]
        b, t = row["bptt"], row["torch"]
        spread = f"±{b['iqr_rel'] * 50:.0f}%/±{t['iqr_rel'] * 50:.0f}%"
        ci = "{:.2f}-{:.2f}".format(*row["ratio_ci95"])
        ort_ms, ort_ratio, ort_ci = "-", "-", "-"
        if "ort" in row:
            ort_ms = f"{row['ort']['median_s'] * 1e3:.2f}"
            ort_ratio = f"{row['ratio_ort']:.2f}"
            ort_ci = "{:.2f}-{:.2f}".format(*row["ratio_ort_ci95"])
        rss = f"{b['rss_peak_mb']:.0f}/{t['rss_peak_mb']:.0f}"
        gf = f"{row['gflops_bptt']:.0f}/{row['gflops_torch']:.0f}"
        cache = "-" if b.get("cache_mb") is None else f"{b['cache_mb']:.0f}"
        lines.append(
            f"{cfg.name:14s} {cfg.cell:4s} {cfg.T:4d} {cfg.B:4d} {cfg.D:4d} {cfg.H:4d} {cfg.L:2d} "
            f"{2 if cfg.bidirectional else 1:2d} {'yes' if cfg.mask else 'no':4s} "
            f"{row['mode']:5s} {b['median_s'] * 1e3:9.2f} {t['median_s'] * 1e3:9.2f} "
            f"{row['ratio']:10.2f} {ci:>10s} {row['ratio_min']:5.2f} {ort_ms:>8s} {ort_ratio:>8s} "
            f"{ort_ci:>10s} {spread:>11s} {gf:>9s} {row['peak_frac_bptt']:5.0%} {rss:>10s} "
            f"{cache:>5s}  {row['check']}"
        )
    return lines


def format_routes(rows: list[dict[str, Any]]) -> list[str]:
    """The routes bptt's workers took per row (kind|dtype|MxKxN|threads: route)."""
    lines = []
    for row in rows:
        routes = row["bptt"].get("routes") or {}
        text = ", ".join(f"{k.split('|')[0]} {k.split('|')[2]} {v}" for k, v in routes.items())
        lines.append(f"  {row['config']:14s} {row['mode']:5s} {text or '-'}")
    return lines


def machine_lines(probe: dict[str, Any]) -> list[str]:
    """The CPU (model, SIMD flags) as the probe worker saw it."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return [
        f"cpu: {probe.get('cpu_model', '?')}, {os.cpu_count()} cpus ({allowed} allowed to this "
        f"process); SIMD: {probe.get('simd') or '?'}",
    ]


def thread_counts(spec: str) -> list[int]:
    """``--threads``: a comma list of counts; "all" is every CPU this process may use."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = []
    for token in spec.split(","):
        token = token.strip()
        n = (allowed or 1) if token == "all" else int(token) if token.isdigit() else 0
        if n < 1:
            raise SystemExit(f"--threads {spec!r}: expected counts >= 1 or 'all', got {token!r}")
        if n not in counts:
            counts.append(n)
    return counts


def run_parent(args: argparse.Namespace) -> None:
    """One full run (every row, every round) per thread count of ``--threads``."""
    configs = select_configs(args.configs)
    modes = [m.strip() for m in args.modes.split(",")]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}; expected one of {MODES}")
    for threads in thread_counts(args.threads):
        run_threads(args, configs, modes, threads)
        print(flush=True)


def run_threads(args: argparse.Namespace, configs, modes, threads: int) -> None:
    env = worker_env(threads, args.unset_coretype)
    cpus = worker_cpus(args.cpus, threads)
    per_pass = -(-args.rounds // args.passes)  # rounds per pass, rounded up
    probe = spawn(["--worker", "probe", "--threads", str(threads), *pin_args(cpus)], env)

    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if args.unset_coretype:
        core_note = f"removed by --unset-coretype (parent had {coretype or 'none'})"
    else:
        core_note = f"{coretype} (inherited)" if coretype else "unset (inherited)"
    header = [
        f"rnn_speed  {datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.processor() or ''} "
        f"{platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}",
        *machine_lines(probe),
        f"threads={threads} (bptt.set_num_threads, torch.set_num_threads, ORT intra_op, "
        f"{'/'.join(THREAD_VARS)})  "
        f"rounds={args.rounds} in {-(-args.rounds // per_pass)} passes  "
        f"iters/worker="
        f"{'2 (--quick)' if args.quick else args.iters or f'auto (>=1, >={args.min_time}s)'}  "
        f"workers on cpus: {'any' if cpus is None else ','.join(map(str, cpus))}",
        f"numpy {probe['numpy']}, BLAS {probe['blas']}, runtime core "
        f"{probe.get('blas_corename')}, {probe.get('blas_threads')} threads; "
        f"OPENBLAS_CORETYPE: {core_note}",
        f"matrix-product peak ({probe['n']}^3 float32, {threads} threads): "
        f"{probe['peak_gflops']:.0f} GFLOP/s best, {probe['median_gflops']:.0f} median "
        f"({probe['peak_route']}; "
        + ", ".join(f"{k} {v[0]:.0f}" for k, v in probe["rates_gflops"].items())
        + ")",
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
        f"(1, 5, 15 min; above ~0 other processes share the {os.cpu_count()} cpus)",
    ]
    print("\n".join(header), flush=True)

    runs: list[dict[str, Any]] = []
    common = ["--threads", str(threads), "--seed", str(args.seed)]
    common += ["--min-time", str(args.min_time), "--max-time", str(args.max_time)]
    if args.quick:
        common.append("--quick")
    if args.iters:
        common += ["--iters", str(args.iters)]
    t_start = time.perf_counter()
    pairs = [(cfg, mode) for cfg in configs for mode in cfg.modes(modes)]
    if not args.quick:
        measure_routes(pairs, threads, env, cpus)
    for first in range(0, args.rounds, per_pass):
        rounds = range(first, min(first + per_pass, args.rounds))
        runs += timed_pass(pairs, common, env, cpus, rounds, args.visit_time, args.verbose)
    rows = []
    for cfg in configs:
        for mode in cfg.modes(modes):
            row: dict[str, Any] = {"config": cfg.name, "mode": mode}
            for lib in libs_for(mode):
                key = (lib, cfg.name, mode)
                mine = [r for r in runs if (r["lib"], r["config"], r["mode"]) == key]
                row[lib] = combine(mine)
            # Each round runs the two libraries back to back, so a round's ratio sees one
            # state of the machine; the median over rounds resists drift between rounds
            # (the VM's matrix-product peak moved 70 -> 85 GFLOP/s within minutes).
            per_round = [
                t / b
                for t, b in zip(
                    row["torch"]["round_medians_s"], row["bptt"]["round_medians_s"], strict=True
                )
            ]
            row["round_ratios"] = per_round
            row["ratio"] = statistics.median(per_round)
            row["ratio_ci95"] = median_ci(per_round)
            row["ratio_pooled"] = row["torch"]["median_s"] / row["bptt"]["median_s"]
            # The fastest step is least disturbed by other processes: a second opinion.
            row["ratio_min"] = row["torch"]["min_s"] / row["bptt"]["min_s"]
            if "ort" in row:  # ONNX Runtime's slots ran in the same visits
                per_round = [
                    o / b
                    for o, b in zip(
                        row["ort"]["round_medians_s"], row["bptt"]["round_medians_s"], strict=True
                    )
                ]
                row["ratio_ort"] = statistics.median(per_round)
                row["ratio_ort_ci95"] = median_ci(per_round)
            others = [row[lib]["check"] for lib in libs_for(mode)[1:]]
            row["check"] = check_column(row["bptt"]["check"], *others)
            for lib in libs_for(mode):
                row[f"gflops_{lib}"] = cfg.flops(mode) / row[lib]["median_s"] / 1e9
            row["peak_frac_bptt"] = row["gflops_bptt"] / probe["peak_gflops"]
            rows.append(row)

    print()
    print("\n".join(format_table(rows)))
    print(
        f"\nroutes bptt took ({threads} threads; kind MxKxN route, "
        "see bptt.functional.fast._routes):"
    )
    print("\n".join(format_routes(rows)))
    torch_run = next(r for r in runs if r["lib"] == "torch")
    ort_run = next((r for r in runs if r["lib"] == "ort"), None)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        "\nms: median over all timed steps; torch/bptt (ort/bptt): the median over visits of "
        "each visit's ratio of medians (the libraries run back to back);\n95% CI: a "
        "distribution-free 95% confidence interval of that median; "
        "(min): the ratio of the fastest steps; spread: ±half the IQR relative to the median; "
        "ratio > 1 means bptt is faster.\n"
        "GF/s: matrix-product FLOPs / median time; %peak: bptt's GF/s over the measured peak; "
        f"cache: MB bptt keeps for backward; bptt JIT: {runs[0].get('jit', '-')}.\n"
        f"torch {torch_run['torch']} (MKL {torch_run['torch_mkl']}, oneDNN "
        f"{torch_run['torch_mkldnn']}, {torch_run['torch_threads']} threads); RSS is each "
        f"worker's peak including imports; wall {time.perf_counter() - t_start:.0f} s.\n"
        f"torch in gen rows: nn.LSTMCell/GRUCell/RNNCell, one call per step. ONNX Runtime: "
        f"{ort_run['ort'] if ort_run else 'not installed (pip install bptt[bench])'}, its "
        f"LSTM/GRU/RNN operator, intra_op threads = {threads}.\n"
        f"load average after: {load}"
    )

    stamp = f"{datetime.datetime.now():%Y%m%d-%H%M%S}"
    path = Path(args.json) if args.json else HERE / "results" / f"rnn_speed-{stamp}.json"
    path = path.with_name(f"{path.stem}-t{threads}{path.suffix}")  # one file per thread count
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "header": header,
        "args": vars(args),
        "probe": probe,
        "configs": [dataclasses.asdict(c) for c in configs],
        "rows": rows,
        "runs": runs,
    }
    path.write_text(json.dumps(record, indent=1))
    print(f"results: {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", help="comma list of config names or sizes (a, b); see --list")
    p.add_argument("--modes", default="train,infer,gen", help="comma list of train, infer, gen")
    p.add_argument("--rounds", type=int, default=30, help="alternating slots per library")
    p.add_argument("--passes", type=int, default=3, help="fresh worker processes per pass")
    p.add_argument(
        "--visit-time", type=float, default=1.5, help="a row repeats its pair of slots up to this"
    )
    p.add_argument("--iters", type=int, default=0, help="timed iterations per worker (0: auto)")
    p.add_argument("--min-time", type=float, default=0.1, help="auto iters: seconds per slot")
    p.add_argument("--max-time", type=float, default=15.0, help="cap on one worker's timed loop")
    p.add_argument(
        "--threads", default="1,all", help="thread counts, one full run each (default: 1,all)"
    )
    p.add_argument("--cpus", default="auto", help="pin workers: auto, all, or e.g. 1 or 0,1")
    p.add_argument("--unset-coretype", action="store_true", help="drop " + "/".join(CORETYPE_VARS))
    p.add_argument("--quick", action="store_true", help="1 warm-up, 2 iterations: a smoke test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="where to write results (default benchmarks/results/...)")
    p.add_argument("--list", action="store_true", help="print the config table and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="print every worker's median")
    p.add_argument("--worker", choices=[*LIBS, "probe"], help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pin", help=argparse.SUPPRESS)  # CPUs a worker moves to once set up
    p.add_argument("--mode", choices=MODES, default="train", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and "--rounds" not in (argv or sys.argv):
        args.rounds = 1
    if args.rounds < 1 or args.passes < 1:
        p.error(f"--rounds and --passes must be at least 1; got {args.rounds}, {args.passes}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        for c in CONFIGS:
            print(dataclasses.asdict(c))
        return
    if args.worker:
        counts = thread_counts(args.threads)
        if len(counts) != 1:
            raise SystemExit(f"a worker runs one thread count, got --threads {args.threads!r}")
        args.threads = counts[0]
        # Thread counts must be in the environment before NumPy loads its BLAS.
        for var in THREAD_VARS:
            os.environ[var] = str(args.threads)
        if args.worker == "probe":
            pin_threads(args.pin)
            print(json.dumps({**blas_info(), **matmul_peak(), **cpu_info()}))
            return
        if args.config not in CONFIG_BY_NAME:
            names = list(CONFIG_BY_NAME)
            raise SystemExit(f"unknown config {args.config!r}; expected one of {names}")
        if args.serve:
            serve_worker(args)
        else:
            print(json.dumps(run_worker(args)))
        return
    run_parent(args)


if __name__ == "__main__":
    main()
