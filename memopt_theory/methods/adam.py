r"""Adam / AdamW — ``adam`` (docs/theory/baselines.md §A4; Kingma & Ba 2014; Loshchilov & Hutter 2017).

Update
------
m = β1m + (1−β1)g; v = β2v + (1−β2)g²; m̂ = m/(1−β1^t); v̂ = v/(1−β2^t); the whole step is
lr·wd·x + lr·m̂/(√v̂ + ε) (decoupled decay; the caller subtracts it). ``eps_mode="hat"`` is the
HF/GaLore form lr·(√(1−β2^t)/(1−β1^t))·m/(√v + ε), i.e. ε → ε/√(1−β2^t). State: m, v, t: 2N + 1.
No regret guarantee for constant β2 (Reddi, Kale, Kumar 2019).

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): 2N + 1 (m, v and the step counter).

Guarantee
---------
``adam``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/baselines.md §A4.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("adam")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 25)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.validation import check_choice, check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """Adam(W): lr η > 0, β1 ∈ [0, 1), β2 ∈ [0, 1), ε ≥ 0, decoupled weight_decay ≥ 0, eps_mode."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    eps_mode: str = "standard"

    def __post_init__(self) -> None:
        w = "adam.Config"
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.eps, "eps", where=w, low=0.0)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)
        check_choice(self.eps_mode, "eps_mode", ("standard", "hat"), where=w)


class State(NamedTuple):
    m: Tensor  # batch + S
    v: Tensor  # batch + S
    t: Tensor  # batch
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="adam.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="adam.init")
    z = torch.zeros(batch + shape, dtype=dtype, device=device)
    return State(m=z, v=z.clone(), t=torch.zeros(batch, dtype=dtype, device=device), shape=Static(shape))


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole AdamW step (lr and decoupled decay included); the caller applies x ← x − step."""
    full = tuple(state.m.shape)
    g = prepare_grad(grad, full, state.m.dtype, where="adam.update")
    check_param(param, full, where="adam.update", needed=config.weight_decay > 0)
    b1, b2 = config.beta1, config.beta2
    t = state.t + 1
    m = b1 * state.m + (1 - b1) * g
    v = b2 * state.v + (1 - b2) * g * g
    tb = t.reshape(tuple(t.shape) + (1,) * len(state.shape))
    c1, c2 = 1 - b1**tb, 1 - b2**tb
    if config.eps_mode == "standard":
        u = (m / c1) / ((v / c2).sqrt() + config.eps)
    else:
        u = (c2.sqrt() / c1) * m / (v.sqrt() + config.eps)
    step = config.lr * u
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=weight_decay > 0) refused None
        step = step + config.lr * config.weight_decay * param.to(step.dtype)
    return step.to(grad.dtype), State(m=m, v=v, t=t, shape=state.shape)


def memory(shape, config: Config) -> int:
    return 2 * numel(shape) + 1


def metric(state: State, config: Config) -> None:
    return None  # no H-norm: unconstrained runs only (§0)


METHODS = (
    Method(
        "adam",
        Config,
        init,
        update,
        memory,
        metric,
        full_step=True,
        reference="docs/theory/baselines.md §A4",
        roles={"lr": "lr"},
        default_lr=1e-3,
    ),
)
