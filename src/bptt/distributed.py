"""Data-parallel training over MPI: every rank a copy of the model, its own rows of each batch.

One update reads one *global* batch of N = W x K x B rows (W ranks, K micro-batches
of ``--accumulate``, B rows of ``--batch-size``), whatever the task: TBPTT windows,
bucketed padded examples or sentence pairs. :func:`shard_rows` cuts its rows into
W x K contiguous parts; rank r takes parts rK .. rK+K-1, one micro-batch each
(:func:`split_batch`, or the source's own ``next_batch_parts`` that pads only
them). Every task's loss is a mean over ``n`` terms (tokens, examples or labels:
``model.loss_count(batch)``), so with each part's mean loss E_p and gradient g_p
over n_p terms the update uses

    g = sum_p n_p g_p / sum_p n_p          E = sum_p n_p E_p / sum_p n_p

which is exactly the gradient of the mean loss over the whole global batch, the
gradient one process with N rows computes (up to rounding). Clipping and the
optimizer then run on the same ``g`` on every rank, so the parameters stay
identical without being sent again; only the start is broadcast from rank 0.

The communication is MPI's (``mpi4py``, extra ``mpi``): one ``Allreduce`` per
update over all the weighted gradient sums packed into one contiguous buffer with
the loss, the count and the Ctrl-C flag in its last slots, summed in place (no
pickling). Per update every rank sends and receives about 2 x (parameter bytes)
with a ring allreduce.

The watchdog. Every collective is started non-blocking and waited for at most
``timeout`` seconds. On entering collective number c a rank tells every other
rank so (a one-number message on a communicator of its own), so when the time
runs out the ranks that did arrive know which did not; the lowest of them prints
one line naming them and ``MPI_Abort`` ends every rank with a non-zero code.
Checkpoints are written atomically by rank 0 between collectives, so the last one
is whole whatever moment the job is stopped at.

Randomness: rank r draws its dropout masks from the trainer's Generator jumped
r x 2^127 steps (``bit_generator.jumped(r)``), independent streams that the seed
and the rank alone reproduce; rank 0 keeps the one-process stream.

With one process, or without ``mpi4py``, :func:`get_comm` gives a
:class:`LocalComm` that does nothing, and training runs unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time

import numpy as np

from bptt.errors import BpttError

# Environment variables an MPI launcher sets: their presence means "started by mpirun/srun".
_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
# Tests only: "RANK,COLLECTIVE,SECONDS" makes that rank sleep before that collective (1-based).
TEST_SLEEP_VAR = "BPTT_TEST_SLEEP_BEFORE_COLLECTIVE"
_ARRIVED_TAG = 22


def shard_rows(n: int, rank: int = 0, world: int = 1, parts: int = 1) -> list[slice]:
    """The rows of rank ``rank``'s ``parts`` micro-batches among ``n`` global rows.

    The rows 0..n-1 are cut into ``world * parts`` contiguous pieces as
    ``numpy.array_split`` cuts them (sizes differ by at most one, the larger first);
    rank r takes pieces r*parts .. r*parts + parts - 1, in order. A piece may be
    empty when n < world * parts.
    """
    pieces = world * parts
    bounds = [i * (n // pieces) + min(i, n % pieces) for i in range(pieces + 1)]
    first = rank * parts
    return [slice(bounds[i], bounds[i + 1]) for i in range(first, first + parts)]


def split_batch(batch, rows: list[slice]) -> list:
    """The batch's rows ``rows[k]`` as batches of the same kind (None where a slice is empty).

    A batch is a dataclass whose arrays are batch-first; every array field of
    length N along axis 0 is cut, everything else (``carry_state``, None) kept.
    """
    if not dataclasses.is_dataclass(batch):
        raise BpttError(f"a batch must be a dataclass to be split into rows; got {batch!r:.60}")
    values = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    arrays = {k: v for k, v in values.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    n = max(v.shape[0] for v in arrays.values())
    out = []
    for r in rows:
        if r.stop <= r.start:
            out.append(None)
            continue
        cut = {k: v[r] for k, v in arrays.items() if v.shape[0] == n}  # (b, ...) each
        out.append(dataclasses.replace(batch, **cut))
    return out


def split_state(state, rows: list[slice]):
    """A carried state (arrays (L*K, n, H), or a tuple of them) cut along the batch axis."""
    if state is None:
        return [None] * len(rows)
    if isinstance(state, tuple):
        return [tuple(s[:, r] for s in state) for r in rows]
    return [state[:, r] for r in rows]


def join_state(states: list):
    """The inverse of :func:`split_state`: the parts' states side by side (None if any is)."""
    if any(s is None for s in states):
        return None
    if len(states) == 1:
        return states[0]
    if isinstance(states[0], tuple):
        return tuple(np.concatenate(p, axis=1) for p in zip(*states, strict=True))
    return np.concatenate(states, axis=1)  # (L*K, n, H)


def rank_generator(rng: np.random.Generator, rank: int) -> np.random.Generator:
    """Rank ``rank``'s own stream: ``rng`` itself for rank 0, else its state jumped ``rank``
    x 2^127 draws (PCG64), so every rank's dropout masks differ and the seed reproduces them."""
    if rank == 0:
        return rng
    jumped = getattr(rng.bit_generator, "jumped", None)
    if jumped is None:
        raise BpttError(
            f"data-parallel dropout needs a bit generator with jumped() (PCG64, Philox, MT19937);"
            f" got {type(rng.bit_generator).__name__}"
        )
    return np.random.Generator(jumped(rank))


def global_batch_size(config, comm) -> int:
    """Rows one update reads: ``--batch-size`` x ``--accumulate`` x the ranks. A task builds
    its batches of this size; the trainer gives each rank and micro-batch its rows."""
    return config.batch_size * config.accumulate * comm.size


def describe_parallel(config, comm, unit: str) -> list[str]:
    """The summary line for ranks and micro-batches (none for one process, one batch)."""
    K, B = config.accumulate, config.batch_size
    micro = f", {K} micro-batches each" if K > 1 else ""
    if comm.size > 1:
        return [
            f"data parallel: {comm.size} MPI ranks x {B} {unit}{micro} "
            f"({global_batch_size(config, comm)} per update)"
        ]
    if K > 1:
        return [f"gradient accumulation: {K} micro-batches of {B} {unit} ({K * B} per update)"]
    return []


class LocalComm:
    """One process: reducing, broadcasting, gathering and checking are no-ops."""

    rank, size, is_root, timeout = 0, 1, True, 0.0

    def allreduce_sum(self, arrays: dict[str, np.ndarray], scalars: list[float]):
        return arrays, list(scalars)

    def broadcast_params(self, params: dict[str, np.ndarray]) -> None:
        pass

    def gather(self, obj) -> list:
        return [obj]

    def broadcast_object(self, obj):
        return obj

    def check_params(self, params: dict[str, np.ndarray], step: int) -> None:
        pass

    def abort(self, code: int = 2) -> None:
        pass


class MPIComm:
    """W ranks of an ``mpi4py`` communicator, every collective under the watchdog.

    Args:
        comm: an ``mpi4py.MPI.Comm`` (default ``MPI.COMM_WORLD``).
        check_every: compare the parameter hashes of all ranks every this many updates.
        timeout: seconds a collective may wait for the slowest rank (0: forever).
    """

    def __init__(self, comm=None, check_every: int = 100, timeout: float = 0.0):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        self.check_every, self.timeout = check_every, float(timeout)
        self._buffer: np.ndarray | None = None
        self._watch = self.comm.Dup()  # the watchdog's arrival notes, apart from all else
        self._count = 0  # collectives entered so far
        self._arrived = np.zeros(self.size, dtype=np.int64)  # (W,) last collective seen per rank
        self._sends: list = []  # (request, buffer) of arrival notes in flight
        self._sleep = _test_sleep(self.rank)

    # -- the watchdog ----------------------------------------------------------

    def _watched(self, start, what: str):
        """Enter one collective: say so to the others, start it, wait for it under the timeout."""
        self._count += 1
        if self._sleep and self._sleep[0] == self._count:
            time.sleep(self._sleep[1])  # tests: this rank hangs, alive
        if self.timeout > 0:
            note = np.array([self._count], dtype=np.int64)  # (1,)
            self._sends = [(r, b) for r, b in self._sends if not r.Test()]
            for p in range(self.size):
                if p != self.rank:
                    self._sends.append((self._watch.Isend(note, dest=p, tag=_ARRIVED_TAG), note))
        request = start()
        if self.timeout <= 0:
            request.Wait()
            return
        deadline, nap = time.monotonic() + self.timeout, 2e-5
        while not request.Test():
            self._read_notes()
            if time.monotonic() > deadline:
                self._give_up(what)
            time.sleep(nap)
            nap = min(2 * nap, 2e-3)  # quick when the others are close, cheap when not
        self._read_notes()  # the others' notes of this collective: none left queued

    def _read_notes(self) -> None:
        status, note = self.MPI.Status(), np.zeros(1, dtype=np.int64)  # (1,)
        while self._watch.Iprobe(source=self.MPI.ANY_SOURCE, tag=_ARRIVED_TAG, status=status):
            source = status.Get_source()
            self._watch.Recv(note, source=source, tag=_ARRIVED_TAG)
            self._arrived[source] = max(self._arrived[source], note[0])

    def _give_up(self, what: str) -> None:
        """The time is out: name the ranks that did not arrive (once), then stop every rank."""
        self._read_notes()
        self._arrived[self.rank] = self._count
        missing = [p for p in range(self.size) if self._arrived[p] < self._count]
        if self.rank == min(p for p in range(self.size) if p not in missing):
            ranks = ", ".join(map(str, missing)) or "none (all arrived; the network stalled)"
            print(
                f"bptt: error: rank(s) {ranks} of {self.size} did not reach {what} (collective "
                f"{self._count}) within the watchdog's {self.timeout:g} s; stopping every rank "
                "(the last checkpoint is kept; --watchdog sets the limit)",
                file=sys.stderr,
                flush=True,
            )
        else:
            time.sleep(0.5)  # let the named line go first
        self.comm.Abort(3)

    # -- collectives -----------------------------------------------------------

    def _pack(self, arrays: dict[str, np.ndarray], extra: int = 0) -> np.ndarray:
        """All arrays (sorted by name) copied into one reused contiguous buffer (P + extra,)."""
        names = sorted(arrays)
        dtype = np.result_type(*(arrays[k].dtype for k in names))
        total = sum(arrays[k].size for k in names) + extra
        if self._buffer is None or self._buffer.size != total or self._buffer.dtype != dtype:
            self._buffer = np.empty(total, dtype=dtype)  # (P + extra,)
        offset = 0
        for k in names:
            n = arrays[k].size
            self._buffer[offset : offset + n] = arrays[k].ravel()
            offset += n
        return self._buffer

    @staticmethod
    def _unpack(buffer: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        offset = 0
        for k in sorted(arrays):
            n = arrays[k].size
            arrays[k][...] = buffer[offset : offset + n].reshape(arrays[k].shape)
            offset += n

    def allreduce_sum(self, arrays: dict[str, np.ndarray], scalars: list[float]):
        """Sum ``arrays`` and ``scalars`` over the ranks: one flat in-place Allreduce.

        Returns (new arrays of the same shapes, the summed scalars as floats).
        """
        buffer = self._pack(arrays, extra=len(scalars))  # (P + S,)
        buffer[buffer.size - len(scalars) :] = scalars
        self._watched(
            lambda: self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM),
            "the gradient Allreduce",
        )
        out = {k: np.empty_like(g) for k, g in arrays.items()}  # same shapes as the inputs
        self._unpack(buffer, out)
        return out, [float(x) for x in buffer[buffer.size - len(scalars) :]]

    def broadcast_params(self, params: dict[str, np.ndarray]) -> None:
        """Every rank starts from rank 0's parameters (written in place)."""
        buffer = self._pack(params)  # (P,)
        self._watched(lambda: self.comm.Ibcast(buffer, root=0), "the broadcast of parameters")
        self._unpack(buffer, params)

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` (small: states, RNG positions) on rank 0, None elsewhere."""
        self._watched(self.comm.Ibarrier, "the gathering of what the ranks carry")
        return self.comm.gather(obj, root=0)  # all arrived: completes at once

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (small: metrics) on every rank, so all take the same decisions."""
        self._watched(self.comm.Ibarrier, "the broadcast of metrics")
        return self.comm.bcast(obj, root=0)  # all arrived: completes at once

    def check_params(self, params: dict[str, np.ndarray], step: int) -> None:
        """Every ``check_every`` updates: all ranks must hold the same parameters."""
        if self.check_every <= 0 or step % self.check_every:
            return
        mine = np.frombuffer(bytes.fromhex(params_hash(params)), dtype=np.uint8)  # (32,)
        table = np.empty((self.size, mine.size), dtype=np.uint8)  # (W, 32)
        self._watched(lambda: self.comm.Iallgather(mine, table), "the parameter check")
        differ = [r for r in range(self.size) if not np.array_equal(table[r], table[0])]
        if differ:
            raise BpttError(
                f"parameters differ between ranks after update {step}: ranks {differ} disagree "
                f"with rank 0 (expected one hash, got {len({t.tobytes() for t in table})}); a "
                "nondeterministic step or a rank that skipped an update"
            )

    def abort(self, code: int = 2) -> None:
        """Stop all ranks (a rank that raised must not leave the others waiting)."""
        self.comm.Abort(code)


def _test_sleep(rank: int) -> tuple[int, float] | None:
    value = os.environ.get(TEST_SLEEP_VAR)
    if not value:
        return None
    try:
        who, at, seconds = value.split(",")
        return (int(at), float(seconds)) if int(who) == rank else None
    except ValueError:
        expected = "RANK,COLLECTIVE,SECONDS"
        raise BpttError(f"{TEST_SLEEP_VAR} must be {expected}; got {value!r}") from None


def params_hash(params: dict[str, np.ndarray]) -> str:
    """SHA-256 over the parameters' names, shapes and bytes."""
    h = hashlib.sha256()
    for k in sorted(params):
        a = np.ascontiguousarray(params[k])
        h.update(f"{k}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARS)


def get_comm(check_every: int = 100, timeout: float = 0.0) -> LocalComm | MPIComm:
    """The MPI world when started by an MPI launcher with ``mpi4py`` installed, else local.

    ``timeout``: the watchdog's seconds per collective (0: wait forever).

    Raises BpttError when started by a launcher without ``mpi4py``, or when the
    world size differs from what Slurm promised (``SLURM_NTASKS``).
    """
    if not launched_by_mpi():
        return LocalComm()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise BpttError(
            "started by an MPI launcher but mpi4py is not installed "
            "(expected the 'mpi' extra: pip install 'bptt[mpi]')"
        ) from None
    comm = MPIComm(check_every=check_every, timeout=timeout)
    promised = os.environ.get("SLURM_NTASKS")
    if promised is not None and promised.isdigit() and int(promised) != comm.size:
        raise BpttError(
            f"MPI world has {comm.size} ranks but Slurm promised SLURM_NTASKS={promised}: "
            "launch with srun --mpi=pmix (or mpirun -np matching --ntasks)"
        )
    return comm if comm.size > 1 else LocalComm()
