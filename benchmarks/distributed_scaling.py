"""Tokens per second of the language model on 1 or W MPI ranks, and one allreduce's time.

    mpirun --allow-run-as-root --oversubscribe -np 1 python benchmarks/distributed_scaling.py
    mpirun --allow-run-as-root --oversubscribe -np 2 python benchmarks/distributed_scaling.py

Each rank trains the default character LM (``bptt train lm`` defaults: batch B per
rank) for ``--updates`` updates after ``--warmup``; the throughput is all ranks'
tokens over the slowest rank's time. The allreduce is timed on the model's real
gradient dictionary (mean of ``--repeats``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bptt.config import Config
from bptt.distributed import LocalComm, MPIComm, launched_by_mpi
from bptt.tasks.lm import build_trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    comm = MPIComm() if launched_by_mpi() else LocalComm()
    config = Config(task="lm")
    trainer, _ = build_trainer(config, "/tmp/bptt-scaling", progress_bar=False, comm=comm)
    for _ in range(args.warmup):
        trainer.update()
    barrier = getattr(getattr(comm, "comm", None), "Barrier", lambda: None)
    barrier()
    started, tokens = time.perf_counter(), 0
    for _ in range(args.updates):
        tokens += trainer.update()[2]
    elapsed = time.perf_counter() - started
    if comm.size > 1:
        elapsed = comm.comm.allreduce(elapsed, op=comm.MPI.MAX)
    grads = {k: np.ones_like(v) for k, v in trainer.model.params.items()}  # like the gradients
    nbytes = sum(g.nbytes for g in grads.values())
    barrier()
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        comm.allreduce_mean(grads, 0.0)
    per_allreduce = (time.perf_counter() - t0) / args.repeats
    if comm.is_root:
        print(
            f"ranks {comm.size}: {tokens * comm.size / elapsed:,.0f} tokens/s "
            f"({args.updates} updates of {config.batch_size}x{config.window} per rank, "
            f"{elapsed:.2f} s); allreduce of {nbytes / 1e6:.2f} MB gradients "
            f"{per_allreduce * 1e3:.3f} ms"
        )


if __name__ == "__main__":
    main()
