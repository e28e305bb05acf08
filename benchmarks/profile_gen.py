"""Where one generation step (T = 1, B = 1) spends its time, bptt against torch's cell.

    python benchmarks/profile_gen.py --cell lstm --threads 1
    python benchmarks/profile_gen.py --cell gru --size 256 --threads 2

Times each entry in blocks of ``--block`` calls (as the harness gives each library
a slot of its own, so its weights stay in the caches), the blocks interleaved (one
block of each in turn, many rounds, so a busy machine slows all of them alike), and
prints the median per call and its spread (the interquartile range over blocks) in µs:

- ``layer``: ``layer.forward(x_t, state)`` with T = 1, as ``rnn_speed.py``'s gen rows
  and ``LanguageModel.step`` call it;
- ``torch``: ``nn.LSTMCell``/``GRUCell``/``RNNCell`` under ``inference_mode``;
- ``blas``: the step's matrix products alone, ``x @ weight_ihᵀ`` and ``h @ weight_hhᵀ``
  by ``np.matmul`` (the floor of the products: (G*H, D+H) float32 read once);
- ``kernel``: bptt's compiled one-step kernel alone (``functional/fast/_step.py``),
  called as the layer calls it, without the layer's Python around it.

then cProfile's top functions of the layer's calls by own time. The layer's
Python cost is ``layer`` minus what its compiled and BLAS calls take.

Shapes: B batch, D input features, H hidden units, G gates.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

if __name__ == "__main__":  # the thread count, before NumPy loads its BLAS
    _ask = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _ask.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    _ask.add_argument("--size", type=int, default=512, help="D = H")
    _ask.add_argument("--batch", type=int, default=1)
    _ask.add_argument("--threads", type=int, default=1)
    _ask.add_argument("--rounds", type=int, default=40)
    _ask.add_argument("--block", type=int, default=50)
    _ask.add_argument("--top", type=int, default=12)
    _ask.add_argument("--no-torch", action="store_true")
    ARGS = _ask.parse_args()
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(ARGS.threads)

import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def interleaved(runs: dict, rounds: int, block: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of each entry, one block of ``block`` calls per entry and round:
    wall-clock and this thread's CPU time (on a shared machine the wall clock also counts
    the time other processes held the core; at one thread the CPU time does not)."""
    times = {name: {"wall": [], "cpu": []} for name in runs}
    for fn in runs.values():
        for _ in range(block):
            fn()
    for _ in range(rounds):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(block):
                fn()
            times[name]["cpu"].append((time.thread_time() - c0) / block)
            times[name]["wall"].append((time.perf_counter() - t0) / block)
    return times


def one_step_kernel(layer, x, state) -> dict:
    """{"kernel": a call of the compiled step alone}, or {} when the layer's step runs elsewhere."""
    from bptt.functional.fast import _step

    weights = layer.cell_weights(0, 0)
    if not _step.applies(x, None, weights):
        return {}
    forward = {"lstm": _step.lstm_forward, "gru": _step.gru_forward, "rnn": _step.rnn_forward}
    fn, args = (
        forward[layer.cell],
        (x, tuple(s[0] for s in (state if isinstance(state, tuple) else (state,)))),
    )
    workspace: dict = {}
    return {"kernel": lambda: fn(*args, weights, workspace, **layer.cell_kwargs())}


def main() -> None:
    import bptt
    import bptt.nn

    bptt.set_num_threads(ARGS.threads)
    cell, D, B = ARGS.cell, ARGS.size, ARGS.batch
    H, G = D, GATES[cell]
    layer = bptt.nn.CELLS[cell](D, H, dtype=np.float32, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((B, 1, D)).astype(np.float32)  # (B, 1, D)
    state = layer.initial_state(B)
    _, state = layer.forward(x, state)  # (B, 1, H)

    def step():
        layer.forward(x, state)

    w_ih, w_hh = layer.params["weight_ih_l0"], layer.params["weight_hh_l0"]
    x2, h2 = x[:, 0], np.ascontiguousarray(state[0][0] if cell == "lstm" else state[0])
    z_x = np.empty((B, G * H), np.float32)  # (B, G*H)
    z_h = np.empty((B, G * H), np.float32)  # (B, G*H)
    nbytes = w_ih.nbytes + w_hh.nbytes

    def blas():
        np.matmul(x2, w_ih.T, out=z_x)
        np.matmul(h2, w_hh.T, out=z_h)

    runs = {"layer": step, "blas": blas, **one_step_kernel(layer, x, state)}
    if not ARGS.no_torch:
        import torch

        torch.set_num_threads(ARGS.threads)
        cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[cell]
        tcell = cls(D, H).eval()
        with torch.no_grad():
            for name, p in tcell.named_parameters():
                p.copy_(torch.from_numpy(layer.params[f"{name}_l0"]))
        tx = torch.from_numpy(x[:, 0].copy())  # (B, D)
        tstate = tcell(tx)

        def torch_step():
            with torch.inference_mode():
                tcell(tx, tstate)

        runs["torch"] = torch_step

    times = interleaved(runs, ARGS.rounds, ARGS.block)
    mb = nbytes / 2**20
    print(f"{cell} step, B={B}, D=H={D}, {ARGS.threads} thread(s); weights {mb:.1f} MiB")
    for name, clocks in times.items():
        line = f"  {name:8s}"
        for clock, ts in clocks.items():
            q = statistics.quantiles(ts, n=4)
            med, lo, hi, fastest = (v * 1e6 for v in (statistics.median(ts), q[0], q[2], min(ts)))
            line += f"  {clock} median {med:7.1f} µs (IQR {lo:6.1f}-{hi:6.1f}, min {fastest:6.1f})"
        print(f"{line}  {nbytes / min(clocks['wall']) / 1e9:5.1f} GB/s of weights at the fastest")
    if "torch" in times:
        for clock in ("wall", "cpu"):
            pairs = zip(times["torch"][clock], times["layer"][clock], strict=True)
            ratio = statistics.median(t / b for t, b in pairs)
            print(f"  torch/bptt ({clock}): median of per-round ratios {ratio:.2f}")

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(200):
        step()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(ARGS.top)
    print("\n".join(text.getvalue().splitlines()[: ARGS.top + 12]))


if __name__ == "__main__":
    sys.exit(main())
