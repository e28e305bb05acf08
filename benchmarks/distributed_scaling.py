"""The inputs of the data-parallel scaling model, measured here, and its predictions.

    python benchmarks/distributed_scaling.py compute > compute.json
    mpirun --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo -np 2 \\
        python benchmarks/distributed_scaling.py allreduce > allreduce.json
    python benchmarks/distributed_scaling.py model compute.json allreduce.json

``compute``: one process, one BLAS thread; the median seconds of one update
(``Trainer.update``: forward, backward, clipping, Adam) of (a) the default
character LM (``bptt train lm``: LSTM 1x256, embedding 64, 32 streams x 64
steps, float32) and (b) the sentiment preset's bidirectional classifier on
synthetic reviews of its shape (32 reviews of 100-300 words, 20,000 words,
embedding 64, LSTM 64 per direction, mean pooling, float32); and the seconds per
byte of summing two float32 arrays (the reduction inside an allreduce).

``allreduce``: under ``mpirun -np 2``: the seconds of one ``MPI_Allreduce`` (in
place, float32, sum; back-to-back calls, the fastest and the median of
``--repeats`` timings) at message sizes from 4 kB to 64 MB, and of the
trainer's whole ``allreduce_sum`` (pack, Allreduce, unpack) of each model's
gradients.

``model``: the alpha-beta model of a ring allreduce applied to the measured
compute and reduction costs (see docs/distributed.md): the predicted speedup at
2..64 ranks over 10 GbE and InfiniBand for both models, with B rows per rank
(the global batch grows with the ranks) and with a fixed global batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from _timing import call_times

SIZES = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]  # message bytes
RANKS = [1, 2, 4, 8, 16, 32, 64]
# Assumed networks (not measured here): per-message latency alpha (s) and seconds per
# byte beta of one link, typical MPI-level figures.
NETWORKS = {
    "10 GbE (TCP)": (50e-6, 1 / 1.1e9),  # ~50 us MPI latency over TCP, ~1.1 GB/s per link
    "InfiniBand HDR100": (2e-6, 1 / 11e9),  # ~2 us latency, ~11 GB/s per link (100 Gb/s)
}


def _median_time(fn, repeats: int) -> float:
    fn()  # a second warm-up call beside call_times' one (the first update allocates)
    return statistics.median(call_times(fn, repeats))


def _lm_trainer(comm=None):
    from bptt.config import Config
    from bptt.tasks.text.lm import build_trainer

    config = Config(task="lm", steps=10**6, eval_every=10**6)
    return build_trainer(config, "/tmp/bptt-scaling-lm", progress_bar=False, comm=comm)[0]


def _sentiment_trainer():
    from bptt.config import Config
    from bptt.data import Vocabulary
    from bptt.tasks import _examples, preset

    config = Config(task="sentiment", **{**preset("sentiment"), "steps": 10**6})
    rng = np.random.default_rng(0)
    vocab = Vocabulary.from_tokens([f"w{i}" for i in range(config.vocab_size - 4)], level="word")
    inputs = [rng.integers(4, len(vocab), size=rng.integers(100, 301)) for _ in range(640)]
    split = _examples.Split(inputs, [int(rng.integers(2)) for _ in inputs])
    data = _examples.TaskData(split, split.subset(range(8)), split.subset(range(8)),
                              ["negative", "positive"], "class", vocab=vocab)  # fmt: skip
    return _examples.make_trainer(config, "/tmp/bptt-scaling-cls", False, data,
                                  _examples.class_metrics)[0]  # fmt: skip


def compute(repeats: int) -> dict:
    out = {}
    for name, build in (("lm", _lm_trainer), ("sentiment", _sentiment_trainer)):
        trainer = build()
        params = trainer.model.num_parameters()
        out[name] = {
            "seconds_per_update": _median_time(trainer.update, repeats),
            "parameters": params,
            "gradient_bytes": sum(p.nbytes for p in trainer.model.params.values()),
        }
    a, b = np.ones(4 << 20, np.float32), np.ones(4 << 20, np.float32)  # 16 MB each
    out["sum_seconds_per_byte"] = _median_time(lambda: np.add(a, b, out=a), repeats) / a.nbytes
    return out


def allreduce(repeats: int) -> dict:
    from mpi4py import MPI

    from bptt.distributed import MPIComm

    comm = MPI.COMM_WORLD
    out = {"ranks": comm.Get_size(), "sizes": {}, "sizes_median": {}}
    for size in SIZES:
        buf = np.ones(size // 4, np.float32)  # (size / 4,)
        rounds = max(4, min(200, (64 << 20) // size // 4))  # back-to-back calls per timing

        def many(buf=buf, rounds=rounds):
            for _ in range(rounds):
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)  # warm: connections, buffers
        times = []
        for _ in range(repeats):
            comm.Barrier()
            t0 = time.perf_counter()
            many()
            times.append((time.perf_counter() - t0) / rounds)
        # the least disturbed timing: on a busy machine the others wait for a core
        out["sizes"][size], out["sizes_median"][size] = min(times), statistics.median(times)
    mpi = MPIComm(timeout=600.0)  # the trainer's path, with the watchdog on
    for name, build in (("lm", _lm_trainer), ("sentiment", _sentiment_trainer)):
        params = build().model.params if name == "sentiment" else _lm_trainer(mpi).model.params
        grads = {k: np.ones_like(v) for k, v in params.items()}
        out[f"{name}_allreduce_sum"] = _median_time(lambda g=grads: mpi.allreduce_sum(g, [0.0]),
                                                    repeats)  # fmt: skip
    return out


def ring_allreduce(nbytes: float, ranks: int, alpha: float, beta: float, gamma: float) -> float:
    """Seconds of a ring allreduce (reduce-scatter then allgather) of ``nbytes`` on ``ranks``:
    2(P-1) steps of latency alpha, 2(P-1)/P n bytes sent per rank at beta s/byte, and
    (P-1)/P n bytes summed at gamma s/byte."""
    if ranks == 1:
        return 0.0
    p = ranks
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta + (p - 1) / p * nbytes * gamma


def model(compute_json: str, allreduce_json: str) -> None:
    c = json.load(open(compute_json))
    a = json.load(open(allreduce_json))
    gamma = c["sum_seconds_per_byte"]
    print(f"measured here, {a['ranks']} ranks in shared memory (busy machine); summing "
          f"float32 costs gamma {gamma * 1e9:.3f} ns/byte")  # fmt: skip
    for size, t in a["sizes"].items():
        median = a["sizes_median"][size]
        print(f"  Allreduce {int(size) / 1024:>8,.0f} kB: {t * 1e3:8.3f} ms fastest "
              f"({int(size) / t / 1e9:6.2f} GB/s), {median * 1e3:8.3f} ms median")  # fmt: skip
    for name in ("lm", "sentiment"):
        m = c[name]
        t_c, n = m["seconds_per_update"], m["gradient_bytes"]
        print(f"\n{name}: {m['parameters']:,} parameters, {n / 1e6:.2f} MB of gradients, "
              f"{t_c * 1e3:.1f} ms per update on one core; trainer's allreduce_sum on 2 ranks "
              f"here {a[name + '_allreduce_sum'] * 1e3:.2f} ms")  # fmt: skip
        print("| network | " + " | ".join(f"P={p}" for p in RANKS[1:]) + " |")
        print("|---|" + "---:|" * (len(RANKS) - 1))
        for net, (alpha, beta) in NETWORKS.items():
            weak, strong = [], []
            for p in RANKS[1:]:
                t_ar = ring_allreduce(n, p, alpha, beta, gamma) + 2 * n * gamma  # + pack, unpack
                weak.append(f"{p * t_c / (t_c + t_ar):.1f} ({t_ar * 1e3:.1f} ms)")
                strong.append(f"{t_c / (t_c / p + t_ar):.1f}")
            print(f"| {net}, B per rank | " + " | ".join(weak) + " |")
            print(f"| {net}, fixed global batch | " + " | ".join(strong) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("compute", "allreduce", "model"))
    parser.add_argument("files", nargs="*", help="model: compute.json allreduce.json")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.mode == "compute":
        json.dump(compute(args.repeats), sys.stdout, indent=1)
    elif args.mode == "allreduce":
        result = allreduce(args.repeats)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            json.dump(result, sys.stdout, indent=1)
    else:
        model(*args.files)


if __name__ == "__main__":
    main()
