r"""Diagonal AdaGrad — ``adagrad_diag`` (docs/theory/baselines.md §A2; Duchi, Hazan, Singer 2011, JMLR 12).

Update
------
s_t = s_{t−1} + g_t² (s_0 = 0, or s_0 = δ1 for "inside"); H_t = diag(√s_t) ("inside") or δI + diag(√s_t)
("outside"); direction H_t^+ g_t: a coordinate with H_ii = 0 does not move. The testbed's ADA
(h_0 = δ1, w ← w − lr·g/√h, √h := 1 where h = 0) is the "inside" form: h = 0 forces g_i = 0 there.
State: s, one scalar per coordinate.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): N (the sums s of squared gradients).

Guarantee
---------
``adagrad_diag``: upper bound — R^lin_T ≤ (D_∞²/(2η) + η)·Σ_i ‖g_{1:T,i}‖_2 (= √2·D_∞·Σ_i ‖g_{1:T,i}‖_2 at η = D_∞/√2) (Duchi, Hazan, Singer 2011 (JMLR 12)); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Duchi, Hazan, Singer 2011 (JMLR 12); docs/theory/baselines.md §A2.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("adagrad_diag")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 12)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, Guarantee, Setting, eta_dinf_over_sqrt2
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Diagonal
from memopt_theory.validation import check_choice, check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """Diagonal AdaGrad: ``delta`` δ ≥ 0 (default 0) placed "inside" (s_0 = δ1) or "outside" (δI + diag √s)."""

    delta: float = 0.0
    delta_mode: str = "inside"

    def __post_init__(self) -> None:
        check_real(self.delta, "delta", where="adagrad_diag.Config", low=0.0)
        check_choice(self.delta_mode, "delta_mode", ("inside", "outside"), where="adagrad_diag.Config")


class State(NamedTuple):
    s: Tensor  # batch + S: Σ g² (+ δ inside)
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="adagrad_diag.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="adagrad_diag.init")
    s0 = config.delta if config.delta_mode == "inside" else 0.0
    return State(s=torch.full(batch + shape, s0, dtype=dtype, device=device), shape=Static(shape))


def _h(s: Tensor, config: Config) -> Tensor:
    root = s.clamp_min(0).sqrt()
    return root + config.delta if config.delta_mode == "outside" else root


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = H_t^+ g_t with H_t from s_t = s_{t−1} + g_t² (the state after g_t is absorbed)."""
    g = prepare_grad(grad, tuple(state.s.shape), state.s.dtype, where="adagrad_diag.update")
    check_param(param, tuple(state.s.shape), where="adagrad_diag.update", needed=False)
    s = state.s + g * g
    h = _h(s, config)
    u = torch.where(h > 0, g / torch.where(h > 0, h, torch.ones_like(h)), torch.zeros_like(g))
    return u.to(grad.dtype), State(s=s, shape=state.shape)


def memory(shape, config: Config) -> int:
    return numel(shape)


def metric(state: State, config: Config) -> Diagonal:
    """H_t = diag(√s_t) (inside) or δI + diag(√s_t) (outside)."""
    return Diagonal(h=_h(state.s, config), shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """(D_∞²/(2η) + η)·Σ_i √(δ + Σ_s g_{s,i}²)."""
    from memopt_theory import bounds

    k = q.sum_sq.ndim - q.eta.ndim
    return bounds.adagrad_diag_regret_bound(
        (q.sum_sq + q.config.delta).flatten(start_dim=q.sum_sq.ndim - k), q.D_inf, q.eta
    )


def _applies(config: Config, setting: Setting) -> str | None:
    if config.delta_mode != "inside":
        return f"delta_mode {config.delta_mode!r}: the bound is stated with δ inside the root"
    return None


GUARANTEE = Guarantee(
    title="AdaGrad-diag (D∞²/2η+η)Σ‖g_i‖",
    theorem="R^lin_T ≤ (D_∞²/(2η) + η)·Σ_i ‖g_{1:T,i}‖_2 (= √2·D_∞·Σ_i ‖g_{1:T,i}‖_2 at η = D_∞/√2)",
    reference="Duchi, Hazan, Singer 2011 (JMLR 12)",
    bound=_bound,
    theory_eta=eta_dinf_over_sqrt2,
    applies=_applies,
)

METHODS = (
    Method(
        "adagrad_diag",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/baselines.md §A2",
        guarantee=GUARANTEE,
        default_lr=1e-1,
    ),
)
