r"""Online gradient descent — ``ogd`` (docs/theory/baselines.md §A1; Zinkevich 2003).

Update
------
Direction u_t = g_t/√(t + δ) (schedule "sqrt", the testbed form x_{t+1} = x_t − lr·g_t/√(t + δ), t from 1)
or u_t = g_t (schedule "constant"). With the learner's η = D/G and δ = 0 this is η_t = D/(G√t), the step of
the (3/2)·G·D·√T bound. Metric: I (Euclidean projection). State: t, one scalar.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): 1 (the round counter t).

Guarantee
---------
``ogd``: upper bound — R^lin_T ≤ (3/2)·G·D·√T at η_t = D/(G√t); R^lin_T ≤ G·D·√T at η = D/(G√T) (schedule 'constant') (Zinkevich 2003; Hazan, Introduction to Online Convex Optimization, Thm 3.1); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Zinkevich 2003; Hazan, Introduction to Online Convex Optimization, Thm 3.1; docs/theory/baselines.md §A1.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("ogd")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, EtaInputs, Guarantee, Setting
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
        scale = (t + config.delta).rsqrt().reshape(tuple(t.shape) + (1,) * len(state.shape))
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


def _theory_eta(q: EtaInputs) -> Tensor:
    """η = D/G ("sqrt": the direction already carries 1/√t, so η_t = D/(G√t)) or D/(G√T) ("constant")."""
    scale = 1.0 if q.config.schedule == "sqrt" else 1.0 / math.sqrt(q.T)
    G = q.need_grad_bound()
    return float(q.D) * scale / G.clamp_min(torch.finfo(G.dtype).tiny)


def _bound(q: BoundInputs) -> Tensor:
    from memopt_theory import bounds

    schedule = q.config.schedule
    return bounds.ogd_regret_bound(
        q.D, q.need("grad_bound"), q.T if schedule == "constant" else q.t, schedule=schedule
    )


def _applies(config: Config, setting: Setting) -> str | None:
    if setting.eta_mode != "theory":
        return "the bound is for the theorem's step η = D/G (eta='theory')"
    if config.delta != 0:
        return f"delta = {config.delta}: the bound is for η_t = D/(G√t), delta = 0"
    return None


GUARANTEE = Guarantee(
    title="OGD (3/2)GD√t",
    theorem="R^lin_T ≤ (3/2)·G·D·√T at η_t = D/(G√t); R^lin_T ≤ G·D·√T at η = D/(G√T) (schedule 'constant')",
    reference="Zinkevich 2003; Hazan, Introduction to Online Convex Optimization, Thm 3.1",
    bound=_bound,
    theory_eta=_theory_eta,
    applies=_applies,
    needs=frozenset({"grad_bound"}),
    title_for=lambda c: "OGD GD√T (η=D/(G√T))" if c.schedule == "constant" else "OGD (3/2)GD√t",
)

METHODS = (
    Method(
        "ogd",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/baselines.md §A1",
        guarantee=GUARANTEE,
        default_lr=3e-1,
    ),
)
