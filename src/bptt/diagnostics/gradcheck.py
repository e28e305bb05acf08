"""Gradient checking: hand-written gradients against centered finite differences.

For every checked element θ_i of an array (a weight, the input, the initial state),
with a_i the analytic gradient and E_{±k} = E(θ ± kε e_i):

    n_i   = (8 (E_{+1} - E_{-1}) - (E_{+2} - E_{-2})) / 12ε     centered differences
    err_i = |a_i - n_i| / max(|a_i| + |n_i|, ρ · max_j |a_j|, tiny)

and the worst err_i per array is reported.

Why this form. The plain two-point difference (E_{+1} - E_{-1}) / 2ε at ε = 1e-6
has an absolute error near ulp(E) / ε ≈ 2e-10 for a loss of order 1, which is
a relative error of 1e-5 on a gradient element of 1e-5: correct gradients of a
small model with a mean loss fail a 1e-6 test. The five-point stencil's
truncation error is O(ε⁴), so ε can be 1e-3 and the rounding error drops to
about 1e-12. The floor ρ · max_j |a_j| (ρ = 1e-2 by default) compares elements
far smaller than the array's largest gradient at that scale, below which the
differences cannot resolve them; a wrong gradient still scores 1e-3 to 1.
In float64 a correct gradient scores about 1e-8. Checks need float64: in
float32 the rounding of E swamps the differences (a BpttError says so). For a
ReLU network pass a smaller ε, so that θ ± 2ε does not cross a kink.

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
EPS = 1e-3  # the default ε of the five-point stencil (rounding and truncation balance)


def _validate(params: dict[str, np.ndarray], analytic: dict[str, np.ndarray]) -> None:
    """Same keys, float64 arrays, matching shapes; else a BpttError naming the difference."""
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


def _require_float64(name: str, a: Any) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        got = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise BpttError(
            f"gradient checks need float64 arrays, {name!r} is {got}; build the layer or "
            f"model with dtype=np.float64 (in float32, rounding swamps the differences)"
        )


STEPS = (1, -1, 2, -2)  # the stencil's offsets, in units of ε


def _central_difference(e: dict[int, float], eps: float) -> float:
    """dE/dt at 0 from e[k] = E(kε), k in STEPS: the five-point stencil, error O(ε⁴)."""
    return (8.0 * (e[1] - e[-1]) - (e[2] - e[-2])) / (12.0 * eps)


def numeric_gradient(f: Callable[[], float], arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """∂f/∂arr by centered differences (f(a + ε) - f(a - ε)) / 2ε, one entry at a time.

    ``arr`` is perturbed in place and restored exactly; ``f()`` must read it.
    """
    grad = np.zeros_like(arr)  # like arr
    for i in np.ndindex(arr.shape):
        orig = arr[i]
        try:
            arr[i] = orig + eps
            plus = float(f())
            arr[i] = orig - eps
            minus = float(f())
        finally:
            arr[i] = orig
        grad[i] = (plus - minus) / (2.0 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """‖a - n‖ / max(‖a‖, ‖n‖): one number per array, safe where entries are exactly zero."""
    scale = max(float(np.linalg.norm(analytic)), float(np.linalg.norm(numeric)), 1e-12)
    return float(np.linalg.norm(analytic - numeric)) / scale


def gradcheck(
    f: Callable[[], float],
    params: dict[str, np.ndarray],
    analytic: dict[str, np.ndarray],
    eps: float = EPS,
    max_checks_per_param: int | None = None,
    rng: np.random.Generator | None = None,
    rel_floor: float = 1e-2,
    tiny: float = 1e-10,
) -> dict[str, float]:
    """Worst relative error between ``analytic`` and centered differences of ``f``.

    Args:
        f: the loss E, evaluated with the CURRENT contents of the arrays in
            ``params``; it is called four times per checked element.
        params: {name: float64 array}. Each element is perturbed in place by
            ±ε and ±2ε and restored exactly (bit for bit) afterwards.
        analytic: {name: ∂E/∂params[name]}, same keys and shapes as ``params``.
        eps: the finite-difference step ε.
        max_checks_per_param: check at most this many elements per array, drawn
            without replacement; None checks every element.
        rng: Generator for that draw; None means ``np.random.default_rng(0)``,
            so the same elements are checked every run.
        rel_floor: ρ, the floor of the denominator relative to the array's
            largest analytic gradient.
        tiny: the absolute floor of the denominator, so a_i = n_i = 0 gives 0.

    Returns:
        {name: worst err_i over the checked elements} (0.0 for an empty array).

    Raises:
        BpttError: an array that is not float64, or keys/shapes that differ.
    """
    _validate(params, analytic)
    rng = np.random.default_rng(0) if rng is None else rng

    errors: dict[str, float] = {}
    for name, p in params.items():
        a = np.asarray(analytic[name], dtype=np.float64)  # like p
        floor = max(rel_floor * float(np.abs(a).max(initial=0.0)), tiny)
        flat = np.arange(p.size)  # (n,) which elements to check
        if max_checks_per_param is not None and p.size > max_checks_per_param:
            flat = rng.choice(p.size, size=max_checks_per_param, replace=False)  # (n,)
        errs = np.zeros(flat.shape[0])  # (n,)
        for j, i in enumerate(flat):
            idx = np.unravel_index(i, p.shape)  # index p itself, never a reshaped copy
            orig = p[idx]
            e = {}
            try:
                for k in STEPS:
                    p[idx] = orig + k * eps
                    e[k] = float(f())
            finally:
                p[idx] = orig
            num = _central_difference(e, eps)
            ana = float(a[idx])
            errs[j] = abs(ana - num) / max(abs(ana) + abs(num), floor)
        errors[name] = float(errs.max()) if errs.size else 0.0  # max keeps a nan
    return errors


def gradcheck_directions(
    f: Callable[[], float],
    params: dict[str, np.ndarray],
    analytic: dict[str, np.ndarray],
    num_directions: int = 3,
    eps: float = EPS,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """Worst relative error of directional derivatives, per parameter array.

    For random unit directions u (one array at a time), compares the analytic
    ⟨∂E/∂p, u⟩ with the five-point difference of t -> E(p + t u) at t = 0.
    Four loss evaluations check a whole array, so this suits big models, and
    it stays accurate where single elements have gradients too small for
    centered differences to resolve (a mean loss of ~1 with some gradients
    near 1e-8).

    Args:
        f, params, analytic, eps, rng: as in :func:`gradcheck`; rng draws u.
        num_directions: how many directions per array.

    Returns:
        {name: worst relative error over the directions}.
    """
    _validate(params, analytic)
    rng = np.random.default_rng(0) if rng is None else rng
    errors: dict[str, float] = {}
    for name, p in params.items():
        errs = np.zeros(num_directions)  # (num_directions,)
        for j in range(num_directions):
            u = rng.standard_normal(p.shape)  # like p
            u /= np.linalg.norm(u) or 1.0
            orig = p.copy()  # like p
            e = {}
            try:
                for k in STEPS:
                    np.add(orig, (k * eps) * u, out=p)
                    e[k] = float(f())
            finally:
                np.copyto(p, orig)
            num = _central_difference(e, eps)
            ana = float(np.vdot(np.asarray(analytic[name], dtype=np.float64), u))
            errs[j] = abs(ana - num) / max(abs(ana) + abs(num), 1e-10)
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
    eps: float = EPS,
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
    eps: float = EPS,
    max_checks_per_param: int | None = None,
    rng: np.random.Generator | None = None,
    directions: int | None = None,
) -> dict[str, float]:
    """Check ``model.loss_and_grads(batch)`` against finite differences of its loss.

    Element by element, or with ``directions`` set, along that many random
    directions per array (:func:`gradcheck_directions`).

    The model needs ``params`` ({name: float64 array}, the arrays it computes
    with) and ``loss_and_grads(batch) -> (loss, grads)`` with grads keyed like
    params (a model with carried state, such as the language model, returns the
    final state third; it is ignored here). The loss must be deterministic for
    a fixed batch (no dropout).

    Returns:
        {name: worst relative error} for every parameter, as :func:`gradcheck`.
    """
    params = model.params
    for name, p in params.items():
        _require_float64(name, p)
    grads = model.loss_and_grads(batch)[1]
    analytic = {k: np.array(v, copy=True) for k, v in grads.items()}

    def loss() -> float:
        return float(model.loss_and_grads(batch)[0])

    if directions:
        return gradcheck_directions(loss, params, analytic, directions, eps, rng)
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
