"""Optimizers, learning-rate schedules and global-norm gradient clipping.

The contract between model, optimizer and trainer is narrow:

    loss, grads = model.loss_and_grads(batch)    # grads keyed like model.params
    clip_grad_norm(grads, max_norm)              # optional, in place
    optimizer.lr = schedule(n, base_lr)          # optional
    optimizer.step(model.params, grads)          # updates the param arrays in place

``step`` writes into the arrays held in ``params`` (never rebinds the keys), so
every layer holding those arrays sees the new values. Each optimizer keeps its
own state per parameter name; a parameter with no entry in ``grads`` is skipped
this step (as torch skips a parameter whose ``.grad`` is None).

The update formulas are torch.optim's, operation for operation (see each class),
so the same gradients give the same parameters to rounding.

State dicts are flat: ``{key: value}`` where a value is either a JSON-friendly
scalar (str, int, float, bool: the optimizer name, hyperparameters, step counts)
or an ``np.ndarray`` (per-parameter buffers, keyed ``"<buffer>/<param name>"``,
e.g. ``"exp_avg/weight_hh_l0"``). A checkpoint can therefore write the arrays
to safetensors and the rest to JSON, and join them again for
:meth:`Optimizer.load_state_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bptt.errors import BpttError

Scalar = str | int | float | bool
StateDict = dict[str, Scalar | np.ndarray]


class Optimizer:
    """Base class: validation, the per-parameter loop and state dicts.

    Subclasses set ``name``, ``hyperparameters`` (attribute names saved in the
    state dict besides ``lr``), ``buffers`` (per-parameter arrays) and
    ``counts_steps`` (whether a per-parameter step count is kept), and write
    :meth:`_update` for one parameter.
    """

    name: ClassVar[str]
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    buffers: ClassVar[tuple[str, ...]] = ()
    counts_steps: ClassVar[bool] = False

    def __init__(self, lr: float) -> None:
        if not lr >= 0.0:
            raise BpttError(f"learning rate must be >= 0, got {lr}")
        self.lr = float(lr)  # a schedule may set this between steps
        self.steps = 0  # calls to step()
        self.state: dict[str, dict[str, np.ndarray]] = {}  # param name -> buffer -> array
        self.param_steps: dict[str, int] = {}  # param name -> updates applied to it

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Apply one update to every parameter that has a gradient, in place.

        Raises:
            BpttError: a gradient for an unknown parameter, a shape mismatch, or a
                parameter that is not a writable floating-point array.
        """
        for key, grad in grads.items():
            if key not in params:
                raise BpttError(
                    f"gradient for {key!r} has no parameter; parameters are {sorted(params)}"
                )
            param = params[key]
            if not isinstance(param, np.ndarray) or not np.issubdtype(param.dtype, np.floating):
                raise BpttError(
                    f"parameter {key!r} must be a floating-point numpy array, got "
                    f"{type(param).__name__} {getattr(param, 'dtype', '')}".rstrip()
                )
            grad = np.asarray(grad)
            if grad.shape != param.shape:
                raise BpttError(
                    f"gradient for {key!r} has shape {grad.shape}, the parameter has {param.shape}"
                )
            if self.counts_steps:
                self.param_steps[key] = self.param_steps.get(key, 0) + 1
            self._update(key, param, grad)
        self.steps += 1

    def _update(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def _buffer(self, key: str, buffer: str) -> np.ndarray | None:
        return self.state.get(key, {}).get(buffer)

    def _set_buffer(self, key: str, buffer: str, value: np.ndarray) -> None:
        self.state.setdefault(key, {})[buffer] = value

    def state_dict(self) -> StateDict:
        """Everything needed to resume: a flat dict of scalars and arrays (copies).

        Keys: ``"optimizer"`` (the name in :data:`OPTIMIZERS`), ``"lr"``, each
        hyperparameter by name, ``"steps"`` (calls to step()), ``"step/<param>"``
        (updates applied to that parameter, where the optimizer counts them) and
        ``"<buffer>/<param>"`` arrays.
        """
        out: StateDict = {"optimizer": self.name, "lr": self.lr, "steps": self.steps}
        for h in self.hyperparameters:
            out[h] = getattr(self, h)
        for key, count in self.param_steps.items():
            out[f"step/{key}"] = count
        for key, bufs in self.state.items():
            for buffer, array in bufs.items():
                out[f"{buffer}/{key}"] = array.copy()
        return out

    def load_state_dict(self, state: StateDict) -> None:
        """Restore exactly what :meth:`state_dict` returned, hyperparameters included.

        Raises:
            BpttError: the state belongs to another optimizer, or has a key this
                optimizer does not know.
        """
        if state.get("optimizer") != self.name:
            raise BpttError(
                f"state dict is for optimizer {state.get('optimizer')!r}, this is {self.name!r}"
            )
        known = {"optimizer", "lr", "steps", *self.hyperparameters}
        self.state, self.param_steps = {}, {}
        for k, v in state.items():
            if k in known:
                continue
            buffer, sep, key = k.partition("/")
            if sep and buffer == "step" and self.counts_steps:
                self.param_steps[key] = int(v)
            elif sep and buffer in self.buffers:
                self._set_buffer(key, buffer, np.array(v, copy=True))
            else:
                raise BpttError(
                    f"unexpected key {k!r} in {self.name} state dict; expected "
                    f"{sorted(known)} and '<buffer>/<param>' with buffer in "
                    f"{('step', *self.buffers) if self.counts_steps else self.buffers}"
                )
        self.lr = float(state["lr"])
        self.steps = int(state["steps"])
        for h in self.hyperparameters:
            setattr(self, h, type(getattr(self, h))(state[h]))


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

    With g the gradient, μ the momentum, λ the weight decay and b the buffer:

        g ← g + λ θ
        b ← g                      (first step)
        b ← μ b + g                (later steps)
        g ← g + μ b   if nesterov, else  g ← b
        θ ← θ - lr g
    """

    name = "sgd"
    hyperparameters = ("momentum", "nesterov", "weight_decay")
    buffers = ("momentum_buffer",)

    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr)
        if not momentum >= 0.0:
            raise BpttError(f"momentum must be >= 0, got {momentum}")
        if not weight_decay >= 0.0:
            raise BpttError(f"weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum == 0.0:
            raise BpttError("nesterov momentum needs momentum > 0, got momentum 0.0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def _update(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        if self.weight_decay != 0.0:
            grad = grad + self.weight_decay * param  # like param: θ's shape
        if self.momentum != 0.0:
            buf = self._buffer(key, "momentum_buffer")
            if buf is None:
                buf = grad.astype(param.dtype, copy=True)  # like param
                self._set_buffer(key, "momentum_buffer", buf)
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf  # like param
        param -= self.lr * grad


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad (no lr decay, no weight decay).

    With s the running sum of squared gradients (starting at
    ``initial_accumulator_value``):

        s ← s + g²
        θ ← θ - lr g / (√s + eps)
    """

    name = "adagrad"
    hyperparameters = ("eps", "initial_accumulator_value")
    buffers = ("sum",)
    counts_steps = True

    def __init__(
        self, lr: float = 1e-2, eps: float = 1e-10, initial_accumulator_value: float = 0.0
    ) -> None:
        super().__init__(lr)
        if not eps >= 0.0:
            raise BpttError(f"eps must be >= 0, got {eps}")
        if not initial_accumulator_value >= 0.0:
            raise BpttError(
                f"initial_accumulator_value must be >= 0, got {initial_accumulator_value}"
            )
        self.eps = float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _update(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        s = self._buffer(key, "sum")
        if s is None:
            s = np.full_like(param, self.initial_accumulator_value)  # like param
            self._set_buffer(key, "sum", s)
        s += grad * grad
        std = np.sqrt(s)  # like param
        std += self.eps
        param += -self.lr * grad / std


class Adam(Optimizer):
    """Adam, as torch.optim.Adam (weight decay as L2 added to the gradient, not AdamW).

    With m, v the first and second moments and k the step count of this parameter:

        g ← g + λ θ
        m ← m + (1 - β1)(g - m)          (torch's lerp)
        v ← β2 v + (1 - β2) g²
        θ ← θ - lr / (1 - β1^k) · m / (√v / √(1 - β2^k) + eps)
    """

    name = "adam"
    hyperparameters = ("beta1", "beta2", "eps", "weight_decay")
    buffers = ("exp_avg", "exp_avg_sq")
    counts_steps = True

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr)
        beta1, beta2 = betas
        for label, beta in (("betas[0]", beta1), ("betas[1]", beta2)):
            if not 0.0 <= beta < 1.0:
                raise BpttError(f"{label} must be in [0, 1), got {beta}")
        if not eps >= 0.0:
            raise BpttError(f"eps must be >= 0, got {eps}")
        if not weight_decay >= 0.0:
            raise BpttError(f"weight_decay must be >= 0, got {weight_decay}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    @property
    def betas(self) -> tuple[float, float]:
        return self.beta1, self.beta2

    def _update(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        m = self._buffer(key, "exp_avg")
        if m is None:
            m = np.zeros_like(param)  # like param
            v = np.zeros_like(param)  # like param
            self._set_buffer(key, "exp_avg", m)
            self._set_buffer(key, "exp_avg_sq", v)
        else:
            v = self._buffer(key, "exp_avg_sq")
        if self.weight_decay != 0.0:
            grad = grad + self.weight_decay * param  # like param
        _lerp_(m, grad, 1.0 - self.beta1)
        v *= self.beta2
        v += (1.0 - self.beta2) * grad * grad
        k = self.param_steps[key]
        step_size = self.lr / (1.0 - self.beta1**k)
        denom = np.sqrt(v)  # like param
        denom /= (1.0 - self.beta2**k) ** 0.5
        denom += self.eps
        param += -step_size * m / denom


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start ← start + weight (end - start) in place, in torch.lerp's two-sided form."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1.0 - weight)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}


# ---------------------------------------------------------------------------
# Learning-rate schedules: lr = schedule(n, base_lr), where n is the number of
# optimizer steps already taken (0 before the first update).
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """lr(n) = base_lr."""

    def __call__(self, n: int, base_lr: float) -> float:
        return base_lr


@dataclass(frozen=True)
class StepDecay:
    """lr(n) = base_lr · gamma^⌊n / every⌋ (torch's StepLR with step_size = every)."""

    every: int
    gamma: float

    def __post_init__(self) -> None:
        if self.every < 1:
            raise BpttError(f"step_decay needs every >= 1, got {self.every}")
        if not self.gamma > 0.0:
            raise BpttError(f"step_decay needs gamma > 0, got {self.gamma}")

    def __call__(self, n: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (n // self.every)


@dataclass(frozen=True)
class Cosine:
    """Linear warmup, then cosine decay from base_lr to min_lr at n = total_steps.

        n < warmup:          lr = base_lr · (n + 1) / warmup
        warmup <= n:         p  = min(1, (n - warmup) / (total_steps - warmup))
                             lr = min_lr + (base_lr - min_lr) · (1 + cos(π p)) / 2

    With warmup = 0 this is torch's CosineAnnealingLR(T_max=total_steps,
    eta_min=min_lr) up to n = total_steps; after that lr stays at min_lr
    (torch's would rise again).
    """

    total_steps: int
    warmup: int = 0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.warmup < self.total_steps:
            raise BpttError(
                f"cosine needs 0 <= warmup < total_steps, got warmup {self.warmup}, "
                f"total_steps {self.total_steps}"
            )
        if not self.min_lr >= 0.0:
            raise BpttError(f"cosine needs min_lr >= 0, got {self.min_lr}")

    def __call__(self, n: int, base_lr: float) -> float:
        if n < self.warmup:
            return base_lr * (n + 1) / self.warmup
        p = min(1.0, (n - self.warmup) / (self.total_steps - self.warmup))
        return self.min_lr + (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * p)) / 2.0


# The names the trainer and the CLI use.
constant = Constant
step_decay = StepDecay
cosine = Cosine
SCHEDULES: dict[str, type] = {"constant": Constant, "step_decay": StepDecay, "cosine": Cosine}


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most max_norm.

        norm  = √(Σ_k Σ g_k²)              over every array in grads
        scale = max_norm / (norm + 1e-6)
        g_k  ← g_k · scale   for every k, only if scale < 1

    as torch.nn.utils.clip_grad_norm_. The norm is accumulated in float64.

    Returns:
        the norm BEFORE clipping. If it is not finite (inf or nan) nothing is
        scaled and the norm is returned as is: the trainer decides (skip the
        step, stop, or lower the learning rate).
    """
    if not max_norm > 0.0:
        raise BpttError(f"max_norm must be > 0, got {max_norm}")
    total = 0.0
    for g in grads.values():
        total += float(np.sum(np.square(g, dtype=np.float64)))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        return norm
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        for g in grads.values():
            g *= scale
    return norm
