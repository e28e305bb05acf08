"""What a layer's call costs around its kernel, one step at a time (generation, streaming).

    python benchmarks/step_overhead.py             # one thread, then two
    python benchmarks/step_overhead.py --threads 2 --hidden 512

Prints, for the RNN, LSTM and GRU layers, the time of one ``layer.forward`` call at
T = 1, B = 1 with the carried state, as ``LanguageModel.step`` calls it: the best of
``--repeats`` loops of 1,000 calls, per call. At the default H = 16 the step's products
and gate math take about a microsecond, so what is printed is the Python around them
(checks, the route's thread count, the cache, the copies of the outputs); at H = 512 it
is the step of the ``*-d-gen`` rows of ``rnn_speed.py``.

Shapes: B batch (1), T time steps (1 per call), H hidden units (= the input's D).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads its BLAS

import numpy as np

import bptt
import bptt.nn
from _timing import call_times

CELLS = {"rnn": bptt.nn.RNN, "lstm": bptt.nn.LSTM, "gru": bptt.nn.GRU}


def per_call_us(layer, x: np.ndarray, repeats: int) -> float:
    """The fastest of ``repeats`` loops over x's T steps (one call each), per call, in µs."""
    T = x.shape[1]

    def loop() -> None:
        state = None
        for t in range(T):
            _, state = layer.forward(x[:, t : t + 1], state)  # (1, 1, H)

    return min(call_times(loop, repeats)) / T * 1e6  # the warm-up compiles and probes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--hidden", type=int, default=16, help="H = D (default 16: the overhead)")
    p.add_argument("--repeats", type=int, default=15, help="loops of 1,000 calls (default 15)")
    args = p.parse_args()
    H = args.hidden
    x = np.random.default_rng(0).standard_normal((1, 1000, H)).astype(np.float32)  # (B, T, D)
    for threads in (int(n) for n in args.threads.split(",")):
        bptt.set_num_threads(threads)
        times = {name: per_call_us(cell(H, H), x, args.repeats) for name, cell in CELLS.items()}
        shown = ", ".join(f"{name} {us:.1f} µs" for name, us in times.items())
        print(f"H = {H}, {threads} thread(s), a call at T = 1, B = 1: {shown}")


if __name__ == "__main__":
    main()
