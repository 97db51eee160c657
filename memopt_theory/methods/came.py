r"""CAME — ``came`` (docs/theory/tensored.md §C5; Luo et al., ACL 2023, arXiv 2307.02047; code-verified against
yangluo7/CAME).

Update
------
Adafactor's factored second moment plus a factored *confidence* statistic of the momentum. For a parameter
with ≥ 2 axes (last two factored, shape (…, n, m)):

    u = G² + ε1;  r = β2r + (1−β2)·mean_m u;  c = β2c + (1−β2)·mean_n u;  V̂ = (r/mean r)cᵀ;
    U = G/√V̂;  U ← U/max(1, RMS(U)/d);  m = β1m + (1−β1)U;
    res = (U − m)² + ε2;  R = β3R + (1−β3)·mean_m res;  C = β3C + (1−β3)·mean_n res;  Ŝ = (R/mean R)Cᵀ;
    step = η·wd·θ + η·m/√Ŝ.

Vectors: v = β2v + (1−β2)u, U = G/√v, the same clipping and momentum, step = η·wd·θ + η·m (no confidence
factor). No bias correction and no step counter. (r/mean r)cᵀ is Adafactor's V̂ = rcᵀ/1ᵀr up to the
row/column-mean scaling (tests/theory/test_tensored_methods.py). No regret guarantee.
State: m (N) + r, c, R, C (2A(n + m) for A leading slices); vectors m, v (2N).

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): N + 2A(n + m) for a parameter with ≥ 2 axes (A the product of the leading axes); 2N for a vector.

Guarantee
---------
``came``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/tensored.md §C5.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("came")
>>> cfg = m.Config(lr=0.001)
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 26)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.validation import check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """CAME: ``lr`` η > 0 (required, as in the official code); β1, β2, β3 ∈ [0, 1); ``eps1`` ε1 ≥ 0,
    ``eps2`` ε2 ≥ 0; ``clip_threshold`` d > 0; decoupled ``weight_decay`` ≥ 0."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    beta3: float = 0.9999
    eps1: float = 1e-30
    eps2: float = 1e-16
    clip_threshold: float = 1.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        w = "came.Config"
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        for name in ("beta1", "beta2", "beta3"):
            check_real(getattr(self, name), name, where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.eps1, "eps1", where=w, low=0.0)
        check_real(self.eps2, "eps2", where=w, low=0.0)
        check_real(self.clip_threshold, "clip_threshold", where=w, low=0.0, low_open=True)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)


class State(NamedTuple):
    m: Tensor  # batch + S: EMA of the clipped update U
    r: Tensor | None  # batch + S[:-2] + (n,)  (factored) or None
    c: Tensor | None  # batch + S[:-2] + (m,)
    R: Tensor | None  # batch + S[:-2] + (n,): confidence statistics
    C: Tensor | None  # batch + S[:-2] + (m,)
    v: Tensor | None  # batch + S: dense second moment (vectors) or None
    shape: Static


def factored(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 2


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="came.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="came.init")
    z = lambda s: torch.zeros(batch + s, dtype=dtype, device=device)
    if factored(shape):
        rows, cols = shape[:-1], shape[:-2] + shape[-1:]
        return State(m=z(shape), r=z(rows), c=z(cols), R=z(rows), C=z(cols), v=None, shape=Static(shape))
    return State(m=z(shape), r=None, c=None, R=None, C=None, v=z(shape), shape=Static(shape))


def approx_inv_sqrt(row: Tensor, col: Tensor) -> Tensor:
    """((row/mean row) colᵀ)^{−1/2}, batch + S: the official ``_approx_sq_grad``."""
    r_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt().unsqueeze(-1)
    return r_factor * col.unsqueeze(-2).rsqrt()


def _rms(x: Tensor, k: int) -> Tensor:
    axes = tuple(range(x.ndim - k, x.ndim))
    return x.square().mean(dim=axes, keepdim=True).sqrt() if k else x.abs()


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole CAME step (module docstring); the caller applies θ ← θ − step."""
    shape = tuple(state.shape)
    full = tuple(state.m.shape)
    g = prepare_grad(grad, full, state.m.dtype, where="came.update")
    check_param(param, full, where="came.update", needed=config.weight_decay > 0)
    b1, b2, b3 = config.beta1, config.beta2, config.beta3
    k = len(shape)
    u2 = g * g + config.eps1
    r = c = R = C = v = None
    if factored(shape):
        assert state.r is not None and state.c is not None  # init keeps r, c for factored shapes
        r = b2 * state.r + (1 - b2) * u2.mean(dim=-1)
        c = b2 * state.c + (1 - b2) * u2.mean(dim=-2)
        U = g * approx_inv_sqrt(r, c)
    else:
        assert state.v is not None  # init keeps v for non-factored shapes
        v = b2 * state.v + (1 - b2) * u2
        U = g * v.rsqrt()
    U = U / (_rms(U, k) / config.clip_threshold).clamp_min(1.0)
    m = b1 * state.m + (1 - b1) * U
    if factored(shape):
        assert state.R is not None and state.C is not None  # init keeps R, C for factored shapes
        res = (U - m).square() + config.eps2
        R = b3 * state.R + (1 - b3) * res.mean(dim=-1)
        C = b3 * state.C + (1 - b3) * res.mean(dim=-2)
        step = config.lr * m * approx_inv_sqrt(R, C)
    else:
        step = config.lr * m
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=...) refused None
        step = step + config.lr * config.weight_decay * param.to(g.dtype)
    return step.to(grad.dtype), State(m=m, r=r, c=c, R=R, C=C, v=v, shape=state.shape)


def memory(shape, config: Config) -> int:
    shape = check_shape(shape, where="came.memory")
    N = numel(shape)
    if factored(shape):
        return N + 2 * numel(shape[:-2]) * (shape[-2] + shape[-1])
    return 2 * N


def metric(state: State, config: Config) -> None:
    return None  # own step rule, no H-norm: unconstrained runs only (§0)


METHODS = (
    Method(
        "came",
        Config,
        init,
        update,
        memory,
        metric,
        full_step=True,
        reference="docs/theory/tensored.md §C5",
        roles={"lr": "lr"},
        default_lr=2e-4,
    ),
)
