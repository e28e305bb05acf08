"""Data-parallel training over MPI: every rank a copy of the model, its own data shard.

With W ranks, each computing the gradient of its mean loss over its own B
streams, the update uses the average

    g = (1/W) * sum_r g_r

which is the gradient of the mean loss over all W*B streams when every rank
has the same number of tokens (the language model's windows do). Clipping and
the optimizer then run on the same ``g`` on every rank, so the parameters stay
identical without being sent again; only the start is broadcast from rank 0.

The communication is MPI's (``mpi4py``, extra ``mpi``): one ``Allreduce`` per
update over all gradients packed into one contiguous buffer, summed in place
(no pickling). Per update every rank sends and receives about
2 x (parameter bytes) with a ring allreduce.

With one process, or without ``mpi4py``, :func:`get_comm` gives a
:class:`LocalComm` that does nothing, and training runs unchanged.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from bptt.errors import BpttError

# Environment variables an MPI launcher sets: their presence means "started by mpirun/srun".
_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class LocalComm:
    """One process: averaging, broadcasting and checking are no-ops."""

    rank, size, is_root = 0, 1, True

    def allreduce_mean(self, grads: dict[str, np.ndarray], loss: float) -> tuple[dict, float]:
        return grads, loss

    def broadcast_params(self, params: dict[str, np.ndarray]) -> None:
        pass

    def check_params(self, params: dict[str, np.ndarray], step: int) -> None:
        pass

    def abort(self, code: int = 2) -> None:
        pass


class MPIComm:
    """W ranks of an ``mpi4py`` communicator.

    Args:
        comm: an ``mpi4py.MPI.Comm`` (default ``MPI.COMM_WORLD``).
        check_every: compare the parameter hashes of all ranks every this many updates.
    """

    def __init__(self, comm=None, check_every: int = 100):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        self.check_every = check_every
        self._buffer: np.ndarray | None = None

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

    def allreduce_mean(self, grads: dict[str, np.ndarray], loss: float) -> tuple[dict, float]:
        """Average the gradients (and the loss, in the buffer's last slot) over the ranks."""
        buffer = self._pack(grads, extra=1)  # (P + 1,)
        buffer[-1] = loss
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        buffer /= self.size
        out = {k: np.empty_like(g) for k, g in grads.items()}  # same shapes as the gradients
        self._unpack(buffer, out)
        return out, float(buffer[-1])

    def broadcast_params(self, params: dict[str, np.ndarray]) -> None:
        """Every rank starts from rank 0's parameters (written in place)."""
        buffer = self._pack(params)  # (P,)
        self.comm.Bcast(buffer, root=0)
        self._unpack(buffer, params)

    def check_params(self, params: dict[str, np.ndarray], step: int) -> None:
        """Every ``check_every`` updates: all ranks must hold the same parameters."""
        if self.check_every <= 0 or step % self.check_every:
            return
        digest = params_hash(params)
        hashes = self.comm.allgather(digest)  # W short strings
        if len(set(hashes)) > 1:
            differ = [r for r, h in enumerate(hashes) if h != hashes[0]]
            raise BpttError(
                f"parameters differ between ranks after update {step}: ranks {differ} disagree "
                f"with rank 0 (expected one hash, got {len(set(hashes))}); a nondeterministic "
                "step or a rank that skipped an update"
            )

    def abort(self, code: int = 2) -> None:
        """Stop all ranks (a rank that raised must not leave the others waiting)."""
        self.comm.Abort(code)


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


def get_comm(check_every: int = 100) -> LocalComm | MPIComm:
    """The MPI world when started by an MPI launcher with ``mpi4py`` installed, else local.

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
    comm = MPIComm(check_every=check_every)
    promised = os.environ.get("SLURM_NTASKS")
    if promised is not None and promised.isdigit() and int(promised) != comm.size:
        raise BpttError(
            f"MPI world has {comm.size} ranks but Slurm promised SLURM_NTASKS={promised}: "
            "launch with srun --mpi=pmix (or mpirun -np matching --ntasks)"
        )
    return comm if comm.size > 1 else LocalComm()
