"""Whether the compiled kernels run: numba (the optional ``fast`` extra) present, BPTT_NO_JIT unset.

One flag for the whole package, read once at import: ``_fused`` (the per-step
gate math), ``_gemm`` (the packed per-step product) and ``_time_loops`` (the
LSTM's loops over time) take their compiled path only when :data:`JIT` is True,
and their NumPy path otherwise.
"""

from __future__ import annotations

import os

try:  # the optional ``fast`` extra
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

#: True when the compiled kernels are in use (numba importable and BPTT_NO_JIT unset).
JIT = numba is not None and os.environ.get("BPTT_NO_JIT", "") in ("", "0")
