"""bptt: recurrent neural networks from the equations up, in NumPy.

The tanh RNN, the LSTM and the GRU, trained by backpropagation through time
(BPTT) that is derived and written by hand. Layers live in ``bptt.nn``, the
math they call in ``bptt.functional``.
"""

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (BLAS and the compiled kernels); the default is every CPU this
    process may use (``os.sched_getaffinity``), or ``BPTT_NUM_THREADS`` / ``OMP_NUM_THREADS``."""
    from bptt.functional.fast._threads import set_num_threads as set_threads

    set_threads(n)


def get_num_threads() -> int:
    """The number of threads bptt uses now (see :func:`set_num_threads`)."""
    from bptt.functional.fast._threads import get_num_threads as get_threads

    return get_threads()
