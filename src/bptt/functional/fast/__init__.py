"""The fast route: the same cells as :mod:`bptt.functional.rnn`, ``lstm`` and ``gru``, for speed.

Packed per-step products (``_gemm``, routes chosen by a probe in ``_routes``),
fused and numba-compiled gate kernels (``_fused``, ``_time_loops``, ``_jit``),
thread control (``_threads``) and reused workspaces (``_workspace``). The
public cell functions dispatch here by default; ``bptt.functional.use_reference``
(or ``BPTT_REFERENCE=1``) runs the plain reference loop instead.
"""
