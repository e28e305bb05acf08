"""Gradient checking and, later, gradient flow through time."""

from bptt.diagnostics.gradcheck import (
    format_report,
    gradcheck,
    gradcheck_directions,
    gradcheck_layer,
    gradcheck_model,
    numeric_gradient,
    relative_error,
)

__all__ = [
    "format_report",
    "gradcheck",
    "gradcheck_directions",
    "gradcheck_layer",
    "gradcheck_model",
    "numeric_gradient",
    "relative_error",
]
