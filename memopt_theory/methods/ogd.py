r"""Online gradient descent — ``ogd`` (ALGORITHMS.md §A1; Zinkevich 2003).

Direction u_t = g_t/√(t + δ) (schedule "sqrt", the testbed form x_{t+1} = x_t − lr·g_t/√(t + δ), t from 1)
or u_t = g_t (schedule "constant"). With the learner's η = D/G and δ = 0 this is η_t = D/(G√t), the step of
the (3/2)·G·D·√T bound. Metric: I (Euclidean projection). State: t, one scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Identity
from memopt_theory.validation import check_choice, check_real


@dataclass(frozen=True, kw_only=True)
class Config:
    """OGD: ``schedule`` "sqrt" (η_t ∝ 1/√(t + δ)) or "constant"; ``delta`` δ ≥ 0 as in the testbed."""

    schedule: str = "sqrt"
    delta: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.schedule, "schedule", ("sqrt", "constant"), where="ogd.Config")
        check_real(self.delta, "delta", where="ogd.Config", low=0.0)


class State(NamedTuple):
    t: Tensor  # batch, steps taken
    shape: Static  # parameter shape S (static metadata, not stored memory)


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="ogd.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ogd.init")
    return State(t=torch.zeros(batch, dtype=dtype, device=device), shape=Static(shape))


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = g_t/√(t + δ) after t ← t + 1 (schedule "sqrt"), or g_t."""
    full = tuple(state.t.shape) + tuple(state.shape)
    g = prepare_grad(grad, full, state.t.dtype, where="ogd.update")
    check_param(param, full, where="ogd.update", needed=False)
    t = state.t + 1
    if config.schedule == "sqrt":
        scale = (t + config.delta).rsqrt().reshape(*t.shape, *([1] * len(state.shape)))
        u = g * scale
    else:
        u = g
    return u.to(grad.dtype), State(t=t, shape=state.shape)


def memory(shape, config: Config) -> int:
    return 1


def metric(state: State, config: Config) -> Identity:
    return Identity(
        shape=tuple(state.shape), batch_shape=tuple(state.t.shape), dtype=state.t.dtype, device=state.t.device
    )


METHODS = (
    Method("ogd", Config, init, update, memory, metric, reference="ALGORITHMS.md §A1", default_lr=3e-1),
)
