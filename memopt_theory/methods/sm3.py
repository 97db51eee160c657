r"""SM3 — ``sm3`` (docs/theory/tensored.md §C4; Anil, Gupta, Koren, Singer, NeurIPS 2019, arXiv 1901.11150).

Update
------
One accumulator μ(r) per cover set S_r; each coordinate takes the minimum over the sets that contain it.
Covers (``cover``): "slices" — the co-dimension-1 slices of an n_1×…×n_p tensor, one accumulator per index
of every mode (Σ n_i; a vector's slices are its singletons, so SM3 on a vector is diagonal AdaGrad);
"singletons" — {{i}} for every coordinate (N accumulators: exactly diagonal AdaGrad); "all" — the single
set {[N]} (one scalar).

SM3-I [reconstructed]:  μ_t(r) = μ_{t−1}(r) + max_{j∈S_r} g_t(j)²,  ν_t(i) = min_{r∋i} μ_t(r),
                        u_t(i) = g_t(i)/√ν_t(i);  H_t = diag(√ν_t).
SM3-II [code-verified]: ν'_t(i) = min_{r∋i} μ'_{t−1}(r) + g_t(i)²,  u_t(i) = g_t(i)/√ν'_t(i),
                        μ'_t(r) = max_{j∈S_r} ν'_t(j).
0/0 := 0 (a coordinate with ν = 0 has had only zero gradients). Optional ``momentum`` β, direction m_t (no
guarantee for β > 0; + N scalars), in one of two forms (``momentum_form``):
"average" (default) m_t = βm_{t−1} + (1−β)u_t — the authors' code (google-research/precondition ``sm3.py``), optax
``scale_by_sm3`` and pytorch-optimizer's ``SM3`` all average; "heavy_ball" m_t = βm_{t−1} + u_t, which is the
average times 1/(1−β) in the limit (10× at β = 0.9), so it needs a (1−β)-times smaller learning rate.

Metric: SM3-I diag(√ν_t), computed from μ_t. SM3-II steps with ν'_t, which the state does not hold (only μ'_t
with max_{j∈S_r}ν'_t(j) = μ'_t(r), not ν'_t itself), so it has no metric: unconstrained runs only. Both
satisfy ν_t(i) ≥ ν_{t−1}(i) + g_t(i)² (the bound's hypothesis, memopt_theory/bounds/tensored.py).
State: the accumulators (Σ n_i, N or 1) + N momentum if β > 0.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): Σ_i n_i accumulators for the slice cover (N for singletons, 1 for the one-set cover), + N with momentum.

Guarantee
---------
``sm3``: upper bound — R^lin_T ≤ (D_∞²/(2η) + η)·Σ_i √ν_T(i) (SM3-I) (Anil, Gupta, Koren, Singer 2019 (SM3)); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Anil, Gupta, Koren, Singer 2019 (SM3); docs/theory/tensored.md §C4.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("sm3")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 7)
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
    """SM3: ``variant`` "II" (code-verified, default) or "I"; ``cover`` "slices" | "singletons" | "all";
    ``momentum`` β ∈ [0, 1) (0: none); ``momentum_form`` "average" (m = βm + (1−β)u, the authors' form, default)
    or "heavy_ball" (m = βm + u); ``eps`` ε ≥ 0 added to ν before the root (μ_0 = 0)."""

    variant: str = "II"
    cover: str = "slices"
    momentum: float = 0.0
    momentum_form: str = "average"
    eps: float = 0.0

    def __post_init__(self) -> None:
        w = "sm3.Config"
        check_choice(self.variant, "variant", ("I", "II"), where=w)
        check_choice(self.cover, "cover", ("slices", "singletons", "all"), where=w)
        check_real(self.momentum, "momentum", where=w, low=0.0, high=1.0, high_open=True)
        check_choice(self.momentum_form, "momentum_form", ("average", "heavy_ball"), where=w)
        check_real(self.eps, "eps", where=w, low=0.0)


class State(NamedTuple):
    mu: tuple[Tensor, ...]  # slices: one batch + (n_i,) per mode; singletons: (batch + S,); all: (batch,)
    m: Tensor | None  # batch + S momentum, or None
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="sm3.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="sm3.init")
    z = lambda s: torch.zeros(batch + s, dtype=dtype, device=device)
    if config.cover == "slices":
        mu = tuple(z((n,)) for n in shape) if shape else (z(()),)
    elif config.cover == "singletons":
        mu = (z(shape),)
    else:
        mu = (z(()),)
    m = z(shape) if config.momentum > 0 else None
    return State(mu=mu, m=m, shape=Static(shape))


def _expand(mu: tuple[Tensor, ...], config: Config, shape: tuple[int, ...]) -> Tensor:
    """min_{r∋i} μ(r) for every coordinate i, shape batch + S."""
    if config.cover == "singletons":
        return mu[0]
    if config.cover == "all" or not shape:
        return mu[0].reshape(tuple(mu[0].shape) + (1,) * len(shape)).expand(tuple(mu[0].shape) + shape)
    p = len(shape)
    out = None
    for i, a in enumerate(mu):
        a = a.reshape(*a.shape[:-1], *([1] * i), a.shape[-1], *([1] * (p - 1 - i)))
        out = a if out is None else torch.minimum(out, a)
    assert out is not None  # mu holds one accumulator per axis, p ≥ 1
    return out


def _reduce_max(x: Tensor, config: Config, shape: tuple[int, ...]) -> tuple[Tensor, ...]:
    """max_{j∈S_r} x(j) for every cover set r, in the layout of State.mu."""
    nb = x.ndim - len(shape)
    if config.cover == "singletons":
        return (x,)
    axes = tuple(range(nb, x.ndim))
    if config.cover == "all" or not shape:
        return (x.amax(dim=axes) if axes else x,)
    return tuple(
        x.amax(dim=tuple(a for a in axes if a != nb + i)) if len(axes) > 1 else x for i in range(len(shape))
    )


def _batch(state: State, config: Config) -> tuple[int, ...]:
    shape, a = tuple(state.shape), state.mu[0]
    if config.cover == "singletons":
        return tuple(a.shape[: a.ndim - len(shape)])
    if config.cover == "all" or not shape:
        return tuple(a.shape)
    return tuple(a.shape[:-1])


def _inv_sqrt_times(g: Tensor, nu: Tensor, eps: float) -> Tensor:
    d = (nu + eps).sqrt()
    return torch.where(d > 0, g / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(g))


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """One SM3-I or SM3-II step (module docstring); direction u_t (or the momentum m_t)."""
    shape = tuple(state.shape)
    full = _batch(state, config) + shape
    g = prepare_grad(grad, full, state.mu[0].dtype, where="sm3.update")
    check_param(param, full, where="sm3.update", needed=False)
    g2 = g * g
    if config.variant == "I":
        mu = tuple(a + b for a, b in zip(state.mu, _reduce_max(g2, config, shape)))
        nu = _expand(mu, config, shape)
    else:
        nu = _expand(state.mu, config, shape) + g2
        mu = _reduce_max(nu, config, shape)
    u = _inv_sqrt_times(g, nu, config.eps)
    m = None
    if state.m is not None:
        b = config.momentum
        m = b * state.m + (u if config.momentum_form == "heavy_ball" else (1 - b) * u)
        u = m
    return u.to(grad.dtype), State(mu=mu, m=m, shape=state.shape)


def memory(shape, config: Config) -> int:
    shape = check_shape(shape, where="sm3.memory")
    n = numel(shape)
    acc = {"slices": sum(shape) if shape else 1, "singletons": n, "all": 1}[config.cover]
    return acc + (n if config.momentum > 0 else 0)


def nu(state: State, config: Config) -> Tensor:
    """min_{r∋i} μ_t(r), batch + S: SM3-I's ν_t; for SM3-II an upper bound on ν'_t (μ'_t(r) ≥ ν'_t(i), i ∈ S_r)."""
    return _expand(state.mu, config, tuple(state.shape))


def metric(state: State, config: Config) -> Diagonal | None:
    """SM3-I: H_t = diag(√(ν_t + ε)). SM3-II: None (ν'_t is not stored; see the module docstring)."""
    if config.variant == "II" or config.momentum > 0:
        return None
    return Diagonal(h=(nu(state, config) + config.eps).sqrt(), shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """(D_∞²/(2η) + η)·Σ_i √(ν_t(i) + ε), ν_t from SM3-I's accumulators."""
    from memopt_theory import bounds

    return bounds.sm3_regret_bound(
        nu(q.state, q.config) + q.config.eps, q.D_inf, eta=q.eta, nbatch=q.eta.ndim
    )


def _applies(config: Config, setting: Setting) -> str | None:
    if config.variant != "I" or config.momentum > 0:
        return "SM3-II and momentum have no metric, so no H_t-norm projection (variant 'I', momentum 0 only)"
    return None


GUARANTEE = Guarantee(
    title="SM3-I (D∞²/2η+η)Σ√ν",
    theorem="R^lin_T ≤ (D_∞²/(2η) + η)·Σ_i √ν_T(i) (SM3-I)",
    reference="Anil, Gupta, Koren, Singer 2019 (SM3)",
    bound=_bound,
    theory_eta=eta_dinf_over_sqrt2,
    applies=_applies,
    needs=frozenset({"state"}),
    instance_shape=(3, 2),
    instance_config={"variant": "I"},
)

METHODS = (
    Method(
        "sm3",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/tensored.md §C4",
        guarantee=GUARANTEE,
        default_lr=1e-1,
    ),
)
