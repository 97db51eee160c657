r"""``memopt verify`` checks of the AdaGrad-family regret bounds in the unconstrained linear game, through the
registered methods themselves.

K = R^d, so no projection is needed; the bounds hold for every fixed x* with D (D_∞) = max_{t≤T} ‖x_t − x*‖ against
that x*, and each instance reports the comparator of largest ratio measured/bound found by search
(memopt_theory/checks/_game.py). measured = R^lin_t(x*) = Σ_{s≤t} ⟨g_s, x_s − x*⟩, the quantity the theorems
bound; the pair returned is the worst over checkpoints t ≥ t₀ = T/10, with the pair at T.

Instances: seed ≡ 0 (mod 4) is the tightness construction, the threshold ±G adversary of _game.py along one
direction (T = 1000 for seed 0 mod 20, else 300; 200 fast; η = 1: the game is scale-free in η), which reaches ≈ 0.85 of these bounds; other
seeds are closed-loop logistic streams (gradients depend on the iterates) with η drawn in [0.2, 2].
"""

from __future__ import annotations

import numpy as np
import torch

from memopt_theory import methods
from memopt_theory.bounds.adagrad import adagrad_diag_regret_bound, adagrad_full_regret_bound
from memopt_theory.bounds.quantities import adaptive_coefficient, trace_sqrt
from memopt_theory.bounds.sketchy import s_adagrad_regret_bound
from memopt_theory.checks._game import adversary_horizon, late_checkpoints, measure, play
from memopt_theory.sketches import sketchy_covariance
from memopt_theory.verify import Check, Measurement

__all__ = ["CHECKS"]


def _logistic(seed: int, fast: bool, d: int, T: int):
    rng = np.random.default_rng(seed)
    eta = float(rng.uniform(0.2, 2.0))
    A = torch.from_numpy(rng.standard_normal((T, d)) * np.arange(1, d + 1) ** -0.5)
    y = torch.from_numpy(np.sign(rng.standard_normal(T)))
    return eta, A, y


def _play(name: str, config, seed: int, fast: bool, *, diagonal: bool = False):
    """(X, G, η, states at the checkpoints, checkpoints) of ``name`` on this seed's instance (module docstring)."""
    d = 8 if fast else 20
    if seed % 4 == 0:
        T = adversary_horizon(seed, fast)
        ck = late_checkpoints(T)
        if diagonal:
            v = torch.zeros(d, dtype=torch.float64)
            v[0] = 1.0
        else:
            v = torch.from_numpy(np.random.default_rng(seed + 1).standard_normal(d))
            v = v / v.norm()
        X, G, states = play(name, config, (d,), T, 1.0, v=v, keep=ck)
        return X, G, 1.0, states, ck
    T = 60 if fast else 400
    ck = late_checkpoints(T)
    eta, A, y = _logistic(seed, fast, d, T)
    m = methods.get(name)
    st = m.init((d,), config)
    x = torch.zeros(d, dtype=torch.float64)
    xs, grads, states = [], [], {}
    for t, (a, yy) in enumerate(zip(A, y), start=1):
        g = -yy * torch.sigmoid(-yy * (a @ x)) * a  # ∇ log(1 + exp(−y⟨a, x⟩))
        xs.append(x)
        grads.append(g)
        u, st = m.update(g, st, config)
        x = x - eta * u
        if t in ck:
            states[t] = st
    return torch.stack(xs), torch.stack(grads), eta, states, ck


def s_adagrad_regret_gtilde(seed: int, fast: bool) -> Measurement:
    r"""S-AdaGrad (Feinberg et al. 2023, Alg. 2), first link of Thm 3's proof (L1 + L2 with X_t = G̃_t):
    R^lin_T ≤ (D²/2η + η)·tr G̃_T^{1/2}, G̃_T = Ḡ_T + ρ_{1:T}I, ℓ = d/4."""
    d = 8 if fast else 20
    cfg = methods.get("s_adagrad").Config(ell=d // 4)
    X, G, eta, sts, ck = _play("s_adagrad", cfg, seed, fast)
    return measure(
        X,
        G,
        ck,
        lambda t, D, Di: adaptive_coefficient(D, eta) * trace_sqrt(sketchy_covariance(sts[t].sketch)),
    )


def s_adagrad_regret_cor4(seed: int, fast: bool) -> Measurement:
    r"""S-AdaGrad Corollary 4 (Feinberg et al. 2023) at fixed η: R^lin_T ≤ (D²/2η + η)(tr G_T^{1/2} + √(d(d−ℓ)Ω_ℓ))."""
    d = 8 if fast else 20
    ell = d // 4
    X, G, eta, _, ck = _play("s_adagrad", methods.get("s_adagrad").Config(ell=ell), seed, fast)
    return measure(
        X, G, ck, lambda t, D, Di: s_adagrad_regret_bound(G[:t].T @ G[:t], D, eta, ell, form="cor4")
    )


def adagrad_full_regret(seed: int, fast: bool) -> Measurement:
    r"""Full-matrix AdaGrad δ-inside (Duchi et al. 2011) at fixed η: R^lin_T ≤ (D²/2η + η)·tr(G_T + δI)^{1/2}."""
    cfg = methods.get("adagrad_full").Config(delta=1e-3)
    X, G, eta, _, ck = _play("adagrad_full", cfg, seed, fast)
    return measure(X, G, ck, lambda t, D, Di: adagrad_full_regret_bound(G[:t].T @ G[:t], D, eta, delta=1e-3))


def adagrad_diag_regret(seed: int, fast: bool) -> Measurement:
    r"""Diagonal AdaGrad (Duchi et al. 2011), δ = 0, fixed η: R^lin_T ≤ (D_∞²/2η + η)·Σ_i ‖g_{1:T,i}‖_2."""
    X, G, eta, _, ck = _play("adagrad_diag", methods.get("adagrad_diag").Config(), seed, fast, diagonal=True)
    return measure(X, G, ck, lambda t, D, Di: adagrad_diag_regret_bound((G[:t] ** 2).sum(0), Di, eta))


CHECKS = (
    Check(
        "S-AdaGrad regret <= c(D,eta) tr Gtilde^1/2 (unconstr.)",
        "Feinberg et al. 2023, Thm 3 proof",
        s_adagrad_regret_gtilde,
        theorem="S-AdaGrad, fixed eta: R^lin_T <= (D^2/2eta + eta) tr (Gbar_T + rho_1:T I)^1/2",
        regret=True,
        t0="T/10",
    ),
    Check(
        "S-AdaGrad regret <= Cor. 4 (unconstr.)",
        "Feinberg et al. 2023, Cor. 4",
        s_adagrad_regret_cor4,
        theorem="S-AdaGrad, fixed eta: R^lin_T <= (D^2/2eta + eta)(tr G_T^1/2 + sqrt(d(d-l) Omega_l))",
        regret=True,
        t0="T/10",
    ),
    Check(
        "AdaGrad-full regret <= c(D,eta) tr(G+dI)^1/2 (unconstr.)",
        "Duchi et al. 2011",
        adagrad_full_regret,
        theorem="full-matrix AdaGrad, delta inside, fixed eta: R^lin_T <= (D^2/2eta + eta) tr (G_T + delta I)^1/2",
        regret=True,
        t0="T/10",
    ),
    Check(
        "AdaGrad-diag regret <= c(Dinf,eta) sum|g_i| (unconstr.)",
        "Duchi et al. 2011",
        adagrad_diag_regret,
        theorem="diagonal AdaGrad, fixed eta: R^lin_T <= (Dinf^2/2eta + eta) sum_i |g_1:T,i|",
        regret=True,
        t0="T/10",
    ),
)
