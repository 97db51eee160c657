r"""``memopt verify`` checks of the AdaGrad-family regret bounds on closed-loop logistic streams (docs/theory/README.md
§0 L1–L2, §A2, §A3, §B3), through the registered methods themselves.

Unconstrained K = R^d, so no projection is needed and D (D_∞) is the a-posteriori max_{t≤T} ‖x_t − x*‖ for the
comparator x* the regret is measured against (the bounds hold for every fixed x*). Gradients depend on the
iterates (an adaptive adversary, which L1 allows). Each instance reports the worst of several comparators
(see ``_worst``); η is fixed per instance.
measured = R^lin_T(x*) = Σ_t ⟨g_t, x_t − x*⟩ (an upper bound on the regret of the convex losses).
"""

from __future__ import annotations

import numpy as np
import torch

from memopt_theory import methods
from memopt_theory.bounds.adagrad import adagrad_diag_regret_bound, adagrad_full_regret_bound
from memopt_theory.bounds.quantities import adaptive_coefficient, trace_sqrt
from memopt_theory.bounds.sketchy import s_adagrad_regret_bound
from memopt_theory.sketches import sketchy_covariance
from memopt_theory.verify import Check

__all__ = ["CHECKS"]


def _play(name: str, config, seed: int, fast: bool):
    """Run ``name`` on a logistic stream; return (iterates x_1..x_T (T, d), gradients (T, d), η, final state)."""
    rng = np.random.default_rng(seed)
    d = 8 if fast else 20
    T = 60 if fast else 400
    eta = float(rng.uniform(0.2, 2.0))
    A = torch.from_numpy(rng.standard_normal((T, d)) * np.arange(1, d + 1) ** -0.5)
    y = torch.from_numpy(np.sign(rng.standard_normal(T)))
    m = methods.get(name)
    st = m.init((d,), config)
    x = torch.zeros(d, dtype=torch.float64)
    xs, grads = [], []
    for a, yy in zip(A, y):
        g = -yy * torch.sigmoid(-yy * (a @ x)) * a  # ∇ log(1 + exp(−y⟨a, x⟩))
        xs.append(x)
        grads.append(g)
        u, st = m.update(g, st, config)
        x = x - eta * u
    return torch.stack(xs), torch.stack(grads), eta, st


def _worst(X: torch.Tensor, G: torch.Tensor, bound) -> tuple[float, float]:
    """The (R^lin_T(x*), bound(D, D_∞)) pair of largest ratio over comparators x* = −R·Σg/‖Σg‖, R ∈ {¼, …, 16}
    (the x* of norm R maximising R^lin_T; the theorem holds for each fixed x*, D and D_∞ measured against it)."""
    s = G.sum(0)
    direction = -s / s.norm()
    best = (-np.inf, 0.0, 1.0)
    for R in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        x_star = R * direction
        regret = float((G * (X - x_star)).sum())
        D, Dinf = float((X - x_star).norm(dim=1).max()), float((X - x_star).abs().max())
        b = float(bound(D, Dinf))
        if regret / b > best[0]:
            best = (regret / b, regret, b)
    return best[1], best[2]


def s_adagrad_regret_gtilde(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-AdaGrad (Feinberg et al. 2023, Alg. 2), first link of Thm 3's proof (L1 + L2 with X_t = G̃_t):
    R^lin_T ≤ (D²/2η + η)·tr G̃_T^{1/2}, G̃_T = Ḡ_T + ρ_{1:T}I, ℓ = d/4."""
    d = 8 if fast else 20
    cfg = methods.get("s_adagrad").Config(ell=d // 4)
    X, G, eta, st = _play("s_adagrad", cfg, seed, fast)
    tr = trace_sqrt(sketchy_covariance(st.sketch))
    return _worst(X, G, lambda D, Dinf: adaptive_coefficient(D, eta) * tr)


def s_adagrad_regret_cor4(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-AdaGrad Corollary 4 (Feinberg et al. 2023) at fixed η: R^lin_T ≤ (D²/2η + η)(tr G_T^{1/2} + √(d(d−ℓ)Ω_ℓ))."""
    d = 8 if fast else 20
    ell = d // 4
    X, G, eta, _ = _play("s_adagrad", methods.get("s_adagrad").Config(ell=ell), seed, fast)
    return _worst(X, G, lambda D, Dinf: s_adagrad_regret_bound(G.T @ G, D, eta, ell, form="cor4"))


def adagrad_full_regret(seed: int, fast: bool) -> tuple[float, float]:
    r"""Full-matrix AdaGrad δ-inside (Duchi et al. 2011; A3) at fixed η: R^lin_T ≤ (D²/2η + η)·tr(G_T + δI)^{1/2}."""
    cfg = methods.get("adagrad_full").Config(delta=1e-3)
    X, G, eta, _ = _play("adagrad_full", cfg, seed, fast)
    return _worst(X, G, lambda D, Dinf: adagrad_full_regret_bound(G.T @ G, D, eta, delta=1e-3))


def adagrad_diag_regret(seed: int, fast: bool) -> tuple[float, float]:
    r"""Diagonal AdaGrad (Duchi et al. 2011; A2), δ = 0, fixed η: R^lin_T ≤ (D_∞²/2η + η)·Σ_i ‖g_{1:T,i}‖_2."""
    X, G, eta, _ = _play("adagrad_diag", methods.get("adagrad_diag").Config(), seed, fast)
    return _worst(X, G, lambda D, Dinf: adagrad_diag_regret_bound((G**2).sum(0), Dinf, eta))


CHECKS = (
    Check(
        "S-AdaGrad regret <= c(D,eta) tr Gtilde^1/2 (unconstr.)",
        "Feinberg et al. 2023, Thm 3 proof; docs/theory/sketching.md §B3",
        s_adagrad_regret_gtilde,
    ),
    Check(
        "S-AdaGrad regret <= Cor. 4 (unconstr.)",
        "Feinberg et al. 2023, Cor. 4; docs/theory/sketching.md §B3",
        s_adagrad_regret_cor4,
    ),
    Check(
        "AdaGrad-full regret <= c(D,eta) tr(G+dI)^1/2 (unconstr.)",
        "Duchi et al. 2011; docs/theory/baselines.md §A3",
        adagrad_full_regret,
    ),
    Check(
        "AdaGrad-diag regret <= c(Dinf,eta) sum|g_i| (unconstr.)",
        "Duchi et al. 2011; docs/theory/baselines.md §A2",
        adagrad_diag_regret,
    ),
)
