r"""Sketchy AdaGrad — ``s_adagrad`` (Feinberg et al. 2023, Algorithm 2; docs/theory/sketching.md §B3).

Update
------
On the flattened parameter (N coordinates): (ρ_t, Ḡ_t) = FD-update(Ḡ_{t−1}, g_tg_tᵀ) (B2), G̃_t = Ḡ_t + cI with
c = δ + ρ_{1:t}, direction G̃_t^{−1/2}g_t = U diag((s + c)^{−1/2})Uᵀg + c^{−1/2}(g − UUᵀg) in O(Nℓ); with c = 0 the
second term is dropped (pseudo-inverse, g ∈ span U). The FD-update always applies the B2 threshold, so the
paper's δ = 0 is safe (the official testbed diverges there, B3 pitfalls).

Official OCO testbed (B4), variant S_ADA with (c_sk, c_α, η_eff) = (1, 1, lr): identical to this module with
``delta`` = the testbed's δ and the learner's η = lr (its α is δ + ρ_{1:t}; it uses the state after g_t is
absorbed, as here). Memory min(ℓ−1, N)(N + 1) + 1 (the testbed's layout holds ℓN + ℓ + 2).

``sketch="buffer"`` (an option; ``"exact"``, the per-step FD-update above, stays the default and the reference)
replaces the FD-update by Liberty's 2ℓ-row buffer with a tracked Gram matrix (memopt_theory.sketches
.fd_buffer_update): one eigendecomposition of a 2ℓ×2ℓ matrix per step and one O(Nℓ²) shrink per ℓ + 1 steps
instead of a thin SVD of an N×ℓ matrix per step — amortised O(Nℓ). Ḡ_t = RᵀR, ρ_{1:t} = the buffer's escaped
mass Δ_t; it satisfies the same per-step sandwich and ρ_{1:t} ≤ Ω_ℓ, so the regret chain of
memopt_theory.bounds.sketchy holds unchanged (s_adagrad_regret_bound's docstring). Memory 2ℓN + 4ℓ² + 2.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): min(ℓ − 1, N)(N + 1) + 1: the sketch directions, their eigenvalues and ρ_{1:t}.

Guarantee
---------
``s_adagrad``: upper bound — R^lin_T ≤ (D²/(2η) + η)·(tr G_T^{1/2} + √(N(N − ℓ)·Ω_ℓ)), Ω_ℓ = min_{0≤k<ℓ} Σ_{i>k} λ_i(G_T)/(ℓ − k) (Feinberg et al. 2023 (Sketchy), Cor. 4); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Feinberg et al. 2023 (Sketchy), Alg. 2; docs/theory/sketching.md §B3.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("s_adagrad")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 92)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, Guarantee, eta_d_over_sqrt2
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods._sketch_common import apply_low_rank, pos_pow
from memopt_theory.metric import LowRankPlusScaled, RowSpanLowRank
from memopt_theory.sketches import (
    FDBufferState,
    FDState,
    fd_buffer_apply,
    fd_buffer_init,
    fd_buffer_metric,
    fd_buffer_update,
    fd_init,
    fd_update,
)
from memopt_theory.validation import check_choice, check_int, check_real, numel

SKETCHES = ("exact", "buffer")


@dataclass(frozen=True, kw_only=True)
class Config:
    """S-AdaGrad: sketch size ``ell`` ℓ ≥ 1 (ℓ > N allowed: then exact full-matrix AdaGrad), ``delta`` δ ≥ 0,
    ``sketch``: "exact" (per-step FD-update, the reference) or "buffer" (2ℓ-row buffer, amortised O(Nℓ))."""

    ell: int = 8
    delta: float = 0.0
    sketch: str = "exact"

    def __post_init__(self) -> None:
        check_int(self.ell, "ell", where="s_adagrad.Config", low=1)
        check_real(self.delta, "delta", where="s_adagrad.Config", low=0.0)
        check_choice(self.sketch, "sketch", SKETCHES, where="s_adagrad.Config")


class State(NamedTuple):
    sketch: FDState | FDBufferState  # exact: U: batch + (N, min(ℓ−1, N)), s, ρ_{1:t}; buffer: R, K, n, Δ
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="s_adagrad.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="s_adagrad.init")
    make = fd_buffer_init if config.sketch == "buffer" else fd_init
    return State(
        sketch=make(numel(shape), config.ell, batch=batch, dtype=dtype, device=device), shape=Static(shape)
    )


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = G̃_t^{−1/2}g_t, G̃_t = Ḡ_t + (δ + ρ_{1:t})I after g_t is absorbed (Alg. 2 steps 2–4)."""
    sketch = state.sketch
    batch = tuple(sketch.rho.shape)
    full = batch + tuple(state.shape)
    if config.sketch == "buffer":
        assert isinstance(sketch, FDBufferState), (
            "s_adagrad.update: sketch='buffer' needs init(sketch='buffer')"
        )
        dtype = sketch.K.dtype
    else:
        assert isinstance(sketch, FDState), "s_adagrad.update: sketch='exact' needs init(sketch='exact')"
        dtype = sketch.U.dtype
    g = prepare_grad(grad, full, dtype, where="s_adagrad.update")
    check_param(param, full, where="s_adagrad.update", needed=False)
    v = g.reshape(*batch, -1)
    if isinstance(sketch, FDBufferState):  # sketch == "buffer" (asserted above)
        sk, _ = fd_buffer_update(sketch, v)
        c = sk.rho + config.delta
        f_off = pos_pow(c, -0.5)
        u = fd_buffer_apply(sk, lambda lam: pos_pow(lam + c.unsqueeze(-1), -0.5), f_off, v, last_row=True)
        return u.reshape(grad.shape).to(grad.dtype), State(sketch=sk, shape=state.shape)
    fd, _ = fd_update(sketch, v.unsqueeze(-1), config.ell)
    c = fd.rho + config.delta
    u = apply_low_rank(fd.U, pos_pow(fd.s + c.unsqueeze(-1), -0.5), pos_pow(c, -0.5), v)
    return u.reshape(grad.shape).to(grad.dtype), State(sketch=fd, shape=state.shape)


def memory(shape, config: Config) -> int:
    n = numel(shape)
    if config.sketch == "buffer":
        return 2 * config.ell * n + 4 * config.ell**2 + 2
    return min(config.ell - 1, n) * (n + 1) + 1


def metric(state: State, config: Config) -> LowRankPlusScaled | RowSpanLowRank:
    """H_t = G̃_t^{1/2} = U diag(√(s + c))Uᵀ + √c(I − UUᵀ), c = δ + ρ_{1:t}."""
    sk = state.sketch
    c = sk.rho + config.delta
    if config.sketch == "buffer":
        assert isinstance(sk, FDBufferState), "s_adagrad.metric: sketch='buffer' needs init(sketch='buffer')"
        return fd_buffer_metric(sk, lambda lam: (lam + c.unsqueeze(-1)).sqrt(), c.sqrt(), state.shape)
    assert isinstance(sk, FDState), "s_adagrad.metric: sketch='exact' needs init(sketch='exact')"
    return LowRankPlusScaled(U=sk.U, s=(sk.s + c.unsqueeze(-1)).sqrt(), c=c.sqrt(), shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """Sketchy Cor. 4 at η: (D²/(2η) + η)·(tr G_t^{1/2} + √(N(N − ℓ)Ω_ℓ))."""
    from memopt_theory import bounds

    kw = {"delta": q.config.delta} if q.config.delta else {}
    return bounds.s_adagrad_regret_bound(q.need("G"), q.D, q.eta, q.config.ell, form="cor4", **kw)


GUARANTEE = Guarantee(
    title="S-AdaGrad Cor. 4",
    theorem="R^lin_T ≤ (D²/(2η) + η)·(tr G_T^{1/2} + √(N(N − ℓ)·Ω_ℓ)), Ω_ℓ = min_{0≤k<ℓ} Σ_{i>k} λ_i(G_T)/(ℓ − k)",
    reference="Feinberg et al. 2023 (Sketchy), Cor. 4",
    bound=_bound,
    theory_eta=eta_d_over_sqrt2,
    needs=frozenset({"dense_G"}),
)

METHODS = (
    Method(
        "s_adagrad",
        Config,
        init,
        update,
        memory,
        metric,
        reference="Feinberg et al. 2023 (Sketchy), Alg. 2; docs/theory/sketching.md §B3",
        guarantee=GUARANTEE,
        default_lr=1e-1,
        roles={"sketch_size": "ell"},
    ),
)
