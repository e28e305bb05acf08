"""Gradient checking: hand-written gradients against centered finite differences.

For every checked element θ_i of an array (a weight, the input, the initial state):

    n_i = (E(θ + ε e_i) - E(θ - ε e_i)) / 2ε          numeric, centered differences
    err_i = |a_i - n_i| / max(|a_i| + |n_i|, tiny)     a_i the analytic gradient

and the worst err_i per array is reported. In float64 with ε = 1e-6, a correct
gradient gives errors around 1e-8 or smaller; a wrong one gives 1e-3 to 1. Checks
need float64: in float32 the rounding of E swamps the differences (a BpttError
says so).

Three entry points, from the most general:

- :func:`gradcheck` takes a loss closure and the arrays it reads;
- :func:`gradcheck_layer` takes a layer (``params``/``grads``/``forward``/``backward``)
  and checks every parameter, the input and the initial state against a random
  upstream gradient;
- :func:`gradcheck_model` takes a model with ``params`` and ``loss_and_grads(batch)``.

:func:`format_report` turns the result into one line per array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bptt.errors import BpttError

State = np.ndarray | tuple[np.ndarray, ...]


def _require_float64(name: str, a: Any) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        got = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise BpttError(
            f"gradient checks need float64 arrays, {name!r} is {got}; build the layer or "
            f"model with dtype=np.float64 (in float32, rounding swamps the differences)"
        )


def gradcheck(
    f: Callable[[], float],
    params: dict[str, np.ndarray],
    analytic: dict[str, np.ndarray],
    eps: float = 1e-6,
    max_checks_per_param: int | None = None,
    rng: np.random.Generator | None = None,
    tiny: float = 1e-10,
) -> dict[str, float]:
    """Worst relative error between ``analytic`` and centered differences of ``f``.

    Args:
        f: the loss E, evaluated with the CURRENT contents of the arrays in
            ``params``; it is called twice per checked element.
        params: {name: float64 array}. Each element is perturbed in place by ±eps
            and restored exactly (bit for bit) afterwards.
        analytic: {name: ∂E/∂params[name]}, same keys and shapes as ``params``.
        eps: the finite-difference step ε.
        max_checks_per_param: check at most this many elements per array, drawn
            without replacement; None checks every element.
        rng: Generator for that draw; None means ``np.random.default_rng(0)``,
            so the same elements are checked every run.
        tiny: floor of the denominator, so that a_i = n_i = 0 gives error 0.

    Returns:
        {name: worst err_i over the checked elements} (0.0 for an empty array).

    Raises:
        BpttError: an array that is not float64, or keys/shapes that differ.
    """
    if set(params) != set(analytic):
        raise BpttError(
            f"analytic gradients have keys {sorted(analytic)}, params have {sorted(params)}"
        )
    for name, p in params.items():
        _require_float64(name, p)
        a = np.asarray(analytic[name])
        if a.shape != p.shape:
            raise BpttError(
                f"analytic gradient {name!r} has shape {a.shape}, the array has {p.shape}"
            )
    rng = np.random.default_rng(0) if rng is None else rng

    errors: dict[str, float] = {}
    for name, p in params.items():
        a = np.asarray(analytic[name], dtype=np.float64)  # like p
        flat = np.arange(p.size)  # (n,) which elements to check
        if max_checks_per_param is not None and p.size > max_checks_per_param:
            flat = rng.choice(p.size, size=max_checks_per_param, replace=False)  # (n,)
        errs = np.zeros(flat.shape[0])  # (n,)
        for j, i in enumerate(flat):
            idx = np.unravel_index(i, p.shape)  # index p itself, never a reshaped copy
            orig = p[idx]
            try:
                p[idx] = orig + eps
                e_plus = float(f())
                p[idx] = orig - eps
                e_minus = float(f())
            finally:
                p[idx] = orig
            num = (e_plus - e_minus) / (2.0 * eps)
            ana = float(a[idx])
            errs[j] = abs(ana - num) / max(abs(ana) + abs(num), tiny)
        errors[name] = float(errs.max()) if errs.size else 0.0  # max keeps a nan
    return errors


def _pieces(state: State) -> tuple[np.ndarray, ...]:
    """A state as a tuple of arrays: (h,) for an array, the tuple itself otherwise."""
    return (state,) if isinstance(state, np.ndarray) else tuple(state)


def _state_items(layer: Any, state: State) -> list[tuple[str, np.ndarray]]:
    """Name the initial-state arrays: "initial_state", or "initial_state/<piece>" for a tuple."""
    if isinstance(state, np.ndarray):
        return [("initial_state", state)]
    names = getattr(layer, "state_names", None)
    if names is None or len(names) != len(state):
        names = [str(i) for i in range(len(state))]
    return [(f"initial_state/{n}", s) for n, s in zip(names, state, strict=True)]


def gradcheck_layer(
    layer: Any,
    x: np.ndarray,
    state: State | None = None,
    mask: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    eps: float = 1e-6,
    max_checks_per_param: int | None = None,
) -> dict[str, float]:
    """Check a layer's backward against finite differences of its forward.

    The loss is a random linear function of everything the layer returns,

        E = Σ outputs * G_out + Σ final_state * G_state,   G ~ N(0, 1)

    so every output and final state receives an independent upstream gradient.
    One forward and backward give the analytic gradients; then every array in
    ``layer.params``, the input ``"input"`` (if x is floating point and
    backward returns a gradient) and, when ``state`` is given, the initial state
    (``"initial_state"`` for an array, ``"initial_state/h0"``,
    ``"initial_state/c0"`` for the LSTM's tuple) is checked.

    Layer contract. A recurrent layer: ``forward(x, state=..., mask=...)``
    returns a tuple ``(outputs, final_state)``, ``backward(d_outputs,
    d_final_state)`` returns ∂E/∂x, replaces ``layer.grads`` and sets
    ``layer.d_initial_state``. A stateless layer (Linear, Embedding):
    ``forward(x)`` returns an array and ``backward(d_outputs)`` returns ∂E/∂x
    (or None for integer inputs). The kind is told by what forward returns: a
    tuple means recurrent. ``state`` and ``mask`` are passed only when given;
    ``training`` is left at its default (False), so dropout is off.

    Args:
        layer: the layer, built with dtype float64.
        x: the input; copied, so the caller's array is never touched.
        state: the initial state (copied), or None (the layer's zeros, not checked).
        mask: (B, T) booleans, passed through to forward.
        rng: Generator for G and for sampling elements; None means
            ``np.random.default_rng(0)``.
        eps, max_checks_per_param: as in :func:`gradcheck`.

    Returns:
        {name: worst relative error}, as :func:`gradcheck`.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    x = np.array(x, copy=True)
    for name, p in layer.params.items():
        _require_float64(name, p)
    check_input = np.issubdtype(x.dtype, np.floating)
    if check_input:
        _require_float64("input", x)
    kwargs: dict[str, Any] = {}
    state_items: list[tuple[str, np.ndarray]] = []
    if state is not None:
        if isinstance(state, np.ndarray):
            state = state.copy()
        else:
            state = tuple(np.array(s, copy=True) for s in state)
        state_items = _state_items(layer, state)
        for name, s in state_items:
            _require_float64(name, s)
        kwargs["state"] = state
    if mask is not None:
        kwargs["mask"] = mask

    first = layer.forward(x, **kwargs)
    recurrent = isinstance(first, tuple)
    outputs, final = first if recurrent else (first, None)
    g_out = rng.standard_normal(np.shape(outputs))  # like outputs
    g_final: State | None = None
    if recurrent:
        if isinstance(final, np.ndarray):
            g_final = rng.standard_normal(final.shape)  # like final_state
        else:
            g_final = tuple(rng.standard_normal(s.shape) for s in final)  # like each piece

    def loss() -> float:
        res = layer.forward(x, **kwargs)
        out, fin = res if recurrent else (res, None)
        total = float(np.sum(out * g_out))
        if recurrent:
            for piece, g in zip(_pieces(fin), _pieces(g_final), strict=True):
                total += float(np.sum(piece * g))
        return total

    # Analytic gradients from the forward above, copied before loss() reruns forward.
    d_x = layer.backward(g_out, g_final) if recurrent else layer.backward(g_out)
    analytic = {k: np.array(v, copy=True) for k, v in layer.grads.items()}
    arrays = dict(layer.params)
    if check_input and d_x is not None:
        arrays["input"], analytic["input"] = x, np.array(d_x, copy=True)
    if state_items:
        for (name, s), d in zip(state_items, _pieces(layer.d_initial_state), strict=True):
            arrays[name], analytic[name] = s, np.array(d, copy=True)
    return gradcheck(loss, arrays, analytic, eps, max_checks_per_param, rng)


def gradcheck_model(
    model: Any,
    batch: Any,
    eps: float = 1e-6,
    max_checks_per_param: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """Check ``model.loss_and_grads(batch)`` against finite differences of its loss.

    The model needs ``params`` ({name: float64 array}, the arrays it computes
    with) and ``loss_and_grads(batch) -> (loss, grads)`` with grads keyed like
    params. The loss must be deterministic for a fixed batch (no dropout).

    Returns:
        {name: worst relative error} for every parameter, as :func:`gradcheck`.
    """
    params = model.params
    for name, p in params.items():
        _require_float64(name, p)
    _, grads = model.loss_and_grads(batch)
    analytic = {k: np.array(v, copy=True) for k, v in grads.items()}

    def loss() -> float:
        return float(model.loss_and_grads(batch)[0])

    return gradcheck(loss, params, analytic, eps, max_checks_per_param, rng)


def format_report(errors: dict[str, float], tol: float = 1e-6) -> str:
    """One line per array: name, worst relative error, and ``ok`` or ``FAIL`` (err > tol).

    Example::

        weight_hh_l0   3.2e-10  ok
        bias_ih_l0     4.1e-03  FAIL
    """
    if not errors:
        return ""
    width = max(len(name) for name in errors)
    return "\n".join(
        f"{name:<{width}}  {err:8.1e}  {'ok' if err <= tol else 'FAIL'}"
        for name, err in errors.items()
    )
