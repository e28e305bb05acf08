"""Optimizers against torch.optim, state dicts, schedules and gradient clipping."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bptt.errors import BpttError
from bptt.optim import (
    OPTIMIZERS,
    SCHEDULES,
    SGD,
    Adagrad,
    Adam,
    clip_grad_norm,
    constant,
    cosine,
    step_decay,
)

SHAPES = {"weight": (4, 3), "bias": (4,)}

# (bptt optimizer, torch optimizer) built from the same hyperparameters.
CASES = {
    "sgd": (lambda: SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd_momentum_wd": (
        lambda: SGD(0.05, momentum=0.9, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    ),
    "sgd_nesterov": (
        lambda: SGD(0.05, momentum=0.8, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    ),
    "adagrad": (lambda: Adagrad(0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    "adagrad_init": (
        lambda: Adagrad(0.2, eps=1e-6, initial_accumulator_value=0.5),
        lambda p: torch.optim.Adagrad(p, lr=0.2, eps=1e-6, initial_accumulator_value=0.5),
    ),
    "adam": (lambda: Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam_wd": (
        lambda: Adam(0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    ),
    "adam_low_beta1": (  # 1 - β1 >= 0.5 takes torch.lerp's other branch
        lambda: Adam(0.02, betas=(0.3, 0.9)),
        lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.3, 0.9)),
    ),
}


def _params(rng, dtype):
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}  # like SHAPES


def _grad_sequence(rng, dtype, n):
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()} for _ in range(n)]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_matches_torch_for_five_steps(case, dtype, tol):
    make_ours, make_torch = CASES[case]
    rng = np.random.default_rng(0)
    params = _params(rng, dtype)
    grads_seq = _grad_sequence(rng, dtype, 5)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours, theirs = make_ours(), make_torch(list(tparams.values()))
    held = dict(params)  # the same array objects a layer would hold
    for grads in grads_seq:
        ours.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        theirs.step()
        for k in params:
            assert params[k] is held[k]  # updated in place, not rebound
            assert params[k].dtype == dtype
            np.testing.assert_allclose(
                params[k], tparams[k].detach().numpy(), rtol=tol, atol=tol, err_msg=f"{case} {k}"
            )


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_resume_is_exact(case):
    make_ours, _ = CASES[case]
    rng = np.random.default_rng(1)
    start = _params(rng, np.float64)
    grads_seq = _grad_sequence(rng, np.float64, 6)

    straight = {k: v.copy() for k, v in start.items()}
    opt = make_ours()
    for grads in grads_seq:
        opt.step(straight, grads)

    resumed = {k: v.copy() for k, v in start.items()}
    first = make_ours()
    for grads in grads_seq[:3]:
        first.step(resumed, grads)
    state = first.state_dict()
    # Through the checkpoint split: scalars to JSON, arrays kept aside.
    scalars = json.loads(json.dumps({k: v for k, v in state.items() if not hasattr(v, "shape")}))
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    first.lr = 123.0  # mutating the old optimizer must not reach the saved state
    second = OPTIMIZERS[scalars["optimizer"]](lr=9.9)  # hyperparameters come from the state
    second.load_state_dict({**scalars, **arrays})
    for grads in grads_seq[3:]:
        second.step(resumed, grads)
    assert second.steps == 6
    for k in start:
        assert np.array_equal(resumed[k], straight[k]), k


def test_state_dict_format():
    opt = Adam(0.01)
    params = {"w": np.ones((2, 2))}
    opt.step(params, {"w": np.full((2, 2), 0.5)})
    state = opt.state_dict()
    assert state["optimizer"] == "adam"
    assert state["steps"] == 1
    assert state["step/w"] == 1
    assert set(state) == {
        "optimizer",
        "lr",
        "steps",
        "beta1",
        "beta2",
        "eps",
        "weight_decay",
        "step/w",
        "exp_avg/w",
        "exp_avg_sq/w",
    }
    np.testing.assert_allclose(state["exp_avg/w"], 0.05)


def test_load_state_dict_rejects_other_optimizer_and_unknown_keys():
    sgd_state = SGD(0.1, momentum=0.9).state_dict()
    with pytest.raises(BpttError, match=r"'sgd'.*'adam'"):
        Adam(0.1).load_state_dict(sgd_state)
    with pytest.raises(BpttError, match="unexpected key 'velocity/w'"):
        SGD(0.1).load_state_dict({**sgd_state, "velocity/w": np.zeros(2)})


def test_parameter_without_gradient_is_skipped():
    params = {"a": np.ones(3), "b": np.ones(3)}
    opt = Adam(0.1)
    opt.step(params, {"a": np.ones(3)})
    np.testing.assert_array_equal(params["b"], np.ones(3))
    assert opt.state_dict()["step/a"] == 1
    assert "step/b" not in opt.state_dict()


def test_step_validates():
    params = {"w": np.zeros((2, 3))}
    with pytest.raises(BpttError, match=r"shape \(3, 2\), the parameter has \(2, 3\)"):
        SGD(0.1).step(params, {"w": np.zeros((3, 2))})
    with pytest.raises(BpttError, match="'v' has no parameter"):
        SGD(0.1).step(params, {"v": np.zeros((2, 3))})
    with pytest.raises(BpttError, match="floating-point numpy array"):
        SGD(0.1).step({"w": [0.0, 1.0]}, {"w": np.zeros(2)})


def test_hyperparameters_are_validated():
    with pytest.raises(BpttError, match="learning rate"):
        SGD(-1.0)
    with pytest.raises(BpttError, match="nesterov"):
        SGD(0.1, nesterov=True)
    with pytest.raises(BpttError, match=r"betas\[1\] must be in \[0, 1\), got 1.0"):
        Adam(0.1, betas=(0.9, 1.0))


def test_lr_attribute_is_used_at_each_step():
    params = {"w": np.zeros(1)}
    opt = SGD(1.0)
    opt.step(params, {"w": np.ones(1)})
    opt.lr = 0.5
    opt.step(params, {"w": np.ones(1)})
    np.testing.assert_array_equal(params["w"], [-1.5])


def test_optimizers_table():
    assert OPTIMIZERS == {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}
    assert set(SCHEDULES) == {"constant", "step_decay", "cosine"}


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------


def _torch_lrs(make_scheduler, base_lr, n):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_constant():
    assert [constant()(n, 0.3) for n in range(3)] == [0.3, 0.3, 0.3]


def test_step_decay_matches_torch_step_lr():
    ours = [step_decay(every=3, gamma=0.1)(n, 0.5) for n in range(10)]
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.1), 0.5, 10)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_cosine_matches_torch_cosine_annealing():
    total = 10
    ours = [cosine(total_steps=total, min_lr=0.01)(n, 0.5) for n in range(total + 1)]
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.01),
        0.5,
        total + 1,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    assert cosine(total_steps=total, min_lr=0.01)(total + 5, 0.5) == 0.01  # stays at the floor


def test_cosine_warmup():
    s = cosine(total_steps=12, warmup=4, min_lr=0.0)
    assert [s(n, 1.0) for n in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s(4, 1.0) == 1.0  # decay starts from the top
    assert s(8, 1.0) == pytest.approx(0.5)  # half way through the decay
    assert s(12, 1.0) == pytest.approx(0.0, abs=1e-15)


def test_schedules_validate():
    with pytest.raises(BpttError, match="every >= 1"):
        step_decay(every=0, gamma=0.5)
    with pytest.raises(BpttError, match="warmup 5, total_steps 5"):
        cosine(total_steps=5, warmup=5)


# ---------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(max_norm, dtype):
    rng = np.random.default_rng(2)
    grads = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}  # like SHAPES
    tensors = []
    for v in grads.values():
        t = torch.zeros(v.shape, dtype=torch.float64 if dtype == np.float64 else torch.float32)
        t.grad = torch.tensor(v.copy())
        tensors.append(t)
    ref_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm).item()
    norm = clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(ref_norm, rel=1e-12 if dtype == np.float64 else 1e-6)
    for v, t in zip(grads.values(), tensors, strict=True):
        assert v.dtype == dtype
        np.testing.assert_allclose(v, t.grad.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    after = math.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in grads.values()))
    assert after <= max_norm * (1 + 1e-6)


def test_clip_grad_norm_non_finite_returns_norm_and_leaves_grads():
    grads = {"a": np.array([1.0, np.inf]), "b": np.array([3.0])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    np.testing.assert_array_equal(grads["b"], [3.0])
    grads = {"a": np.array([np.nan, 1.0])}
    assert math.isnan(clip_grad_norm(grads, 1.0))
    assert grads["a"][1] == 1.0


def test_clip_grad_norm_no_overflow_in_float32():
    grads = {"a": np.full(4, 1e30, dtype=np.float32)}  # squares overflow float32
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(2e30, rel=1e-6)
    np.testing.assert_allclose(grads["a"], 0.5, rtol=1e-6)
