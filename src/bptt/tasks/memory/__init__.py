"""The long-range memory problems (``problems``), their sweep over lags (``sweep``) and
the gradient-flow and sweep reports of ``bptt gradients`` and ``bptt memory`` (``report``).
"""
