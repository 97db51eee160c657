r"""Regret bounds to draw beside a run: each method's theorem evaluated on the run's own quantities.

At checkpoint t the simulator holds, per seed, G_t = Σ_{s≤t} g_sg_sᵀ (when N ≤ ``MAX_DENSE``), the
coordinate sums Σ_{s≤t} g_s², the learner's η and the domain's D, D_∞; :func:`bound_at` turns them into the
bound of the learner's theorem through memopt_theory.bounds (one source of truth for every formula):

=============  =========================================================  =========================
method         bound at t (any fixed η; the theorems' η minimises it)     requires
=============  =========================================================  =========================
ogd            (3/2)·G·D·√t (η_t = D/(G√t)); G·D·√T (η = D/(G√T))         eta = "theory", δ = 0
adagrad_diag   (D_∞²/2η + η)·Σ_i √(δ + Σ_s g_{s,i}²)                      δ inside
adagrad_full   (D²/2η + η)·tr (G_t + δI)^{1/2} (δ-outside: A3's form)     N ≤ MAX_DENSE
s_adagrad      Sketchy Cor. 4 at η: (D²/2η + η)(tr G^{1/2} + √(d(d−ℓ)Ω_ℓ))  N ≤ MAX_DENSE
shampoo        (D²/2η + ηr̄)·Π_i tr (H^i_t)^{1/(2p)}  (§C1)                  exponent 1/(2p)
s_shampoo      (D²/2η + ηr̄)·Π_i tr (H̃^i_t)^{1/(2p)}  (§B5 chain, link 1)    β2 = 1
ext. tensor.   (D_∞²/2η + η)·Π_i Σ_k h^{(i)}_t[k]^{1/(2p)}  (§C2)           exponent 1/(2p)
sm3            (D_∞²/2η + η)·Σ_i √(ν_t(i) + ε)  (§C4)                       SM3-I (has a metric)
=============  =========================================================  =========================

The tensored bounds read the learner's state at t (``state=``): Shampoo's factors H^i_t, S-Shampoo's sketched
H̃^i_t = H̄^i_t + (ε + ρ^i)I, Extreme Tensoring's h^{(i)}_t, SM3-I's μ_t; r̄ = (Π_i min(n_i, N/n_i))^{1/p} is the
a-priori rank bound (memopt_theory.bounds.mode_rank_bound; min(m, n) for matrices), valid for every stream.
All are derived in memopt_theory/bounds/tensored.py.

All hold at every t ≤ T because η does not depend on t (OGD "sqrt": η_t does not depend on T; OGD
"constant": D²/(2η) + ηG²t/2 ≤ G·D·√T for t ≤ T at η = D/(G√T)). Projections must be in the H_t-norm
(Lemma L1), so a Euclidean-projection learner gets no bound. Anything else: no bound (None).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

__all__ = ["MAX_DENSE", "bound_name", "needs_dense_G", "bound_at"]

MAX_DENSE = 1024  # beyond this N the simulator does not keep the N×N G_t a bound would need

_NAMES = {
    "ogd": "OGD (3/2)GD√t",
    "adagrad_diag": "AdaGrad-diag (D∞²/2η+η)Σ‖g_i‖",
    "adagrad_full": "AdaGrad (D²/2η+η)tr G^½",
    "s_adagrad": "S-AdaGrad Cor. 4",
    "shampoo": "Shampoo (D²/2η+ηr)Π tr H_i^(1/2p)",
    "s_shampoo": "S-Shampoo (D²/2η+ηr)Π tr H~_i^(1/2p)",
    "extreme_tensoring": "ExtTensoring (D∞²/2η+η)Π Σh^(1/2p)",
    "sm3": "SM3-I (D∞²/2η+η)Σ√ν",
}


def bound_name(learner, n: int, eta_mode: Any) -> str | None:
    """The bound drawn for this learner, or None when no theorem covers it (see the module table)."""
    m, cfg = learner.method, learner.config
    if m not in _NAMES or learner.projection != "metric" or not math.isfinite(float(learner.domain.diameter)):
        return None
    if m == "ogd":
        if eta_mode != "theory" or cfg.delta != 0:
            return None
        return "OGD GD√T (η=D/(G√T))" if cfg.schedule == "constant" else _NAMES[m]
    if m == "adagrad_diag" and cfg.delta_mode != "inside":
        return None
    if m in ("adagrad_full", "s_adagrad") and n > MAX_DENSE:
        return None
    if m in ("shampoo", "extreme_tensoring") and cfg.exponent is not None:
        return None  # another exponent voids the theorem
    if m == "s_shampoo" and cfg.beta2 != 1.0:
        return None  # EW-FD factors: no guarantee
    if m == "sm3" and (cfg.variant != "I" or cfg.momentum > 0):
        return None  # SM3-II and momentum have no metric, so no H_t-norm projection (Lemma L1)
    return _NAMES[m]


def needs_dense_G(learner) -> bool:
    return learner.method in ("adagrad_full", "s_adagrad")


def bound_at(
    learner,
    t: int,
    T: int,
    *,
    G: Tensor | None,
    sum_sq: Tensor,
    grad_bound: Tensor | None,
    state: Any = None,
) -> Tensor:
    """The bound at checkpoint t, per seed (shape B). ``G``: B + (N, N) Σ g gᵀ; ``sum_sq``: B + S Σ g²;
    ``state``: the learner's method state after round t (the tensored bounds read their factors from it)."""
    from memopt_theory import bounds

    m, cfg, eta = learner.method, learner.config, learner.eta
    D, D_inf = float(learner.domain.diameter), float(learner.domain.diameter_inf)
    if m == "ogd":
        # η = D/G for "sqrt" (theory): G = D/η is the G the learner used
        schedule = cfg.schedule
        return bounds.ogd_regret_bound(D, grad_bound, T if schedule == "constant" else t, schedule=schedule)
    if m == "adagrad_diag":
        k = sum_sq.ndim - eta.ndim
        return bounds.adagrad_diag_regret_bound(
            (sum_sq + cfg.delta).flatten(start_dim=sum_sq.ndim - k), D_inf, eta
        )
    if m == "adagrad_full":
        return bounds.adagrad_full_regret_bound(G, D, eta, delta=cfg.delta, delta_mode=cfg.delta_mode)
    if m == "s_adagrad":
        kw = {"delta": cfg.delta} if getattr(cfg, "delta", 0.0) else {}
        return bounds.s_adagrad_regret_bound(G, D, eta, cfg.ell, form="cor4", **kw)
    if m in ("shampoo", "s_shampoo", "extreme_tensoring", "sm3"):
        if state is None:
            raise ValueError(f"bound_at: the {m} bound needs the learner's state at t (state=)")
        from memopt_theory.methods import s_shampoo, sm3

        if m == "shampoo":
            r = bounds.mode_rank_bound(learner.shape)
            return bounds.shampoo_regret_bound(tuple(state.H), D, r=r, eta=eta)
        if m == "s_shampoo":
            r = bounds.mode_rank_bound(learner.shape)
            return bounds.shampoo_regret_bound(s_shampoo.factors(state, cfg, 1.0), D, r=r, eta=eta)
        if m == "extreme_tensoring":
            return bounds.extreme_tensoring_regret_bound(tuple(state.h), D_inf, eta=eta)
        return bounds.sm3_regret_bound(sm3.nu(state, cfg) + cfg.eps, D_inf, eta=eta, nbatch=eta.ndim)
    raise ValueError(f"bound_at: no bound for method {m!r}")
