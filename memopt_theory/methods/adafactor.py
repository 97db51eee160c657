r"""Adafactor — ``adafactor`` (docs/theory/tensored.md §C3; Shazeer & Stern, ICML 2018, arXiv 1804.04235;
code-verified against tensorflow/tensor2tensor ``utils/adafactor.py`` @e1f0e3a).

Update
------
For a parameter with ≥ 2 axes the last two are factored (shape (…, n, m); leading axes are independent
n×m slices, as in later T2T); vectors and scalars keep a dense second moment. With t = 1, 2, …:

1. β̂2t = 1 − t^{c}, c = ``decay_rate`` (−0.8; β̂21 = 0); or, with ``beta2`` β2 given, the bias-corrected
   schedule β̂2t = β2(1 − β2^{t−1})/(1 − β2^t) (Shazeer & Stern §7.1), under which the dense v_t is exactly
   Adam's v̂_t = v^{Adam}_t/(1 − β2^t) (induction: (1−β2^t)v̂_t = β2(1−β2^{t−1})v̂_{t−1} + (1−β2)g_t²).
2. R_t = β̂2tR_{t−1} + (1−β̂2t)(G_t² + ε1)1_m,  C_t = β̂2tC_{t−1} + (1−β̂2t)1_nᵀ(G_t² + ε1),
   V̂_t = R_tC_t/(1_nᵀR_t)            (dense: v_t = β̂2tv_{t−1} + (1−β̂2t)(g_t² + ε1), V̂_t = v_t).
3. U = G_t/√V̂_t;  Û = U/max(1, RMS(U)/d)   (RMS over the whole parameter, d = ``clip_threshold``).
4. α_t = ρ_t·(max(ε2, RMS(X_{t−1})) if ``scale_parameter`` else 1), ρ_t = min(1e−2, 1/√t) (``lr`` None:
   the relative step) or ρ_t = ``lr``.
5. Step s_t = α_tÛ; with β1 > 0 the *scaled, clipped update* is averaged (m_t = β1m_{t−1} + (1−β1)s_t, the
   reference codes' convention, §C3 pitfalls) and s_t = m_t. Decoupled decay adds α_t·wd·X_{t−1} (HF transformers' placement).
The direction returned is the whole step; the caller applies X_t = X_{t−1} − step (full_step). Reading
``param`` (X_{t−1}) is required when ``scale_parameter`` or ``weight_decay`` > 0.

Oracles (tests/theory/test_tensored_methods.py): V̂_t = (V_t1)(1ᵀV_t)/(1ᵀV_t1) with V_t the dense EMA of
G² + ε1; it equals V_t when V_t has rank one; with β2t = β2(1−β2^{t−1})/(1−β2^t) the dense v_t is Adam's v̂_t.
State: R, C, t (A(m + n) + 1 for A leading slices), dense v, t (N + 1), + N momentum if β1 > 0.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): A(n + m) + 1 factored (N + 1 for a vector), + N first moment when β1 > 0.

Guarantee
---------
``adafactor``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/tensored.md §C3.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("adafactor")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 8)
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
    """Adafactor (T2T defaults): ``lr`` None (relative step min(1e−2, 1/√t); ``make_optimizer("adafactor", params,
    lr=None)`` selects it) or ρ > 0; ``eps1`` ε1 ≥ 0,
    ``eps2`` ε2 ≥ 0, ``clip_threshold`` d > 0, ``decay_rate`` c < 0 (or ``beta2`` ∈ (0, 1): bias-corrected
    schedule instead), ``beta1`` ∈ [0, 1),
    ``scale_parameter`` (multiply by max(ε2, RMS(X))), ``weight_decay`` ≥ 0 (decoupled)."""

    lr: float | None = None
    eps1: float = 1e-30
    eps2: float = 1e-3
    clip_threshold: float = 1.0
    decay_rate: float = -0.8
    beta2: float | None = None
    beta1: float = 0.0
    scale_parameter: bool = True
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        w = "adafactor.Config"
        if self.lr is not None:
            check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_real(self.eps1, "eps1", where=w, low=0.0)
        check_real(self.eps2, "eps2", where=w, low=0.0)
        check_real(self.clip_threshold, "clip_threshold", where=w, low=0.0, low_open=True)
        check_real(self.decay_rate, "decay_rate", where=w, high=0.0, high_open=True)
        if self.beta2 is not None:
            check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0, low_open=True, high_open=True)
        check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        if not isinstance(self.scale_parameter, bool):
            raise TypeError(f"{w}: scale_parameter must be a bool; got {self.scale_parameter!r}")
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)


class State(NamedTuple):
    R: Tensor | None  # batch + S[:-2] + (n,): row statistics (factored) or None
    C: Tensor | None  # batch + S[:-2] + (m,): column statistics (factored) or None
    v: Tensor | None  # batch + S: dense second moment (vectors, scalars) or None
    m: Tensor | None  # batch + S: first moment of the step (β1 > 0) or None
    t: Tensor  # batch
    shape: Static


def factored(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 2


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="adafactor.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="adafactor.init")
    z = lambda s: torch.zeros(batch + s, dtype=dtype, device=device)
    R = C = v = None
    if factored(shape):
        R, C = z(shape[:-1]), z(shape[:-2] + shape[-1:])
    else:
        v = z(shape)
    m = z(shape) if config.beta1 > 0 else None
    return State(R=R, C=C, v=v, m=m, t=z(()), shape=Static(shape))


def _rms(x: Tensor, k: int) -> Tensor:
    """Root mean square over the last k axes, kept as size-1 axes for broadcasting."""
    axes = tuple(range(x.ndim - k, x.ndim))
    return x.square().mean(dim=axes, keepdim=True).sqrt() if k else x.abs()


def second_moment(state: State) -> Tensor:
    """V̂_t of the state, batch + S: R_tC_t/(1ᵀR_t) (factored) or v_t (dense)."""
    if state.v is not None:
        return state.v
    R, C = state.R, state.C
    assert R is not None and C is not None  # a state without v is factored
    return R.unsqueeze(-1) * C.unsqueeze(-2) / R.sum(dim=-1, keepdim=True).unsqueeze(-1)


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole Adafactor step (module docstring); the caller applies X_t = X_{t−1} − step."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    full = batch + shape
    g = prepare_grad(grad, full, state.t.dtype, where="adafactor.update")
    needs = config.scale_parameter or config.weight_decay > 0
    check_param(param, full, where="adafactor.update", needed=needs)
    k = len(shape)
    t = state.t + 1
    tb = t.reshape(tuple(batch) + (1,) * k)
    if config.beta2 is None:
        beta = 1 - tb.pow(config.decay_rate)  # β̂2t, 0 at t = 1
    else:
        bb = config.beta2
        beta = bb * (1 - bb ** (tb - 1)) / (1 - bb**tb)
    u2 = g * g + config.eps1
    R = C = v = None
    if factored(shape):
        b1 = beta.squeeze(-1)  # broadcast against batch + S[:-1]
        b2 = beta.squeeze(-2)  # against batch + S[:-2] + (m,)
        assert state.R is not None and state.C is not None  # init keeps R, C for factored shapes
        R = b1 * state.R + (1 - b1) * u2.sum(dim=-1)
        C = b2 * state.C + (1 - b2) * u2.sum(dim=-2)
    else:
        assert state.v is not None  # init keeps v for non-factored shapes
        v = beta * state.v + (1 - beta) * u2
    new = State(R=R, C=C, v=v, m=None, t=t, shape=state.shape)
    U = g / second_moment(new).sqrt()
    U = U / (_rms(U, k) / config.clip_threshold).clamp_min(1.0)
    rho = (1.0 / tb.sqrt()).clamp_max(1e-2) if config.lr is None else torch.full_like(tb, config.lr)
    alpha = rho
    if config.scale_parameter:
        assert param is not None  # check_param(needed=scale_parameter or weight_decay > 0) refused None
        alpha = rho * _rms(param.to(g.dtype), k).clamp_min(config.eps2)
    step = alpha * U
    m = None
    if state.m is not None:
        m = config.beta1 * state.m + (1 - config.beta1) * step
        step = m
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=...) refused None
        step = step + alpha * config.weight_decay * param.to(g.dtype)
    return step.to(grad.dtype), new._replace(m=m)


def memory(shape, config: Config) -> int:
    shape = check_shape(shape, where="adafactor.memory")
    N = numel(shape)
    stats = numel(shape[:-2]) * (shape[-2] + shape[-1]) if factored(shape) else N
    return stats + 1 + (N if config.beta1 > 0 else 0)


def metric(state: State, config: Config) -> None:
    return None  # own step rule, no H-norm: unconstrained runs only (§0)


METHODS = (
    Method(
        "adafactor",
        Config,
        init,
        update,
        memory,
        metric,
        full_step=True,
        reference="docs/theory/tensored.md §C3",
        roles={"lr": "lr"},
        default_lr=None,
    ),
)
