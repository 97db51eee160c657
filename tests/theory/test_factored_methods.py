"""Adafactor (docs/theory/tensored.md §C3) and CAME (§C5): factored second moments against dense float64 oracles.

Oracles: the dense EMA of G² + ε1 computed here, its rank-one fit (V1)(1ᵀV)/(1ᵀV1), Adam (the bias-corrected
schedule), and first steps derived by hand. Tolerance 1e-10 relative: ≤ 8 float64 steps of elementwise
arithmetic lose ~1e-15.
"""

from __future__ import annotations

import pytest
import torch

from memopt_theory import methods
from memopt_theory.methods import adafactor as adafactor_mod
from memopt_theory.methods.came import approx_inv_sqrt

RTOL = 1e-10


def _grads(shape, T, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((T, *shape), generator=gen, dtype=torch.float64)


def _run(name, cfg, G, param=None):
    m = methods.get(name)
    st_ = m.init(tuple(G.shape[1:]), cfg)
    out = []
    for g in G:
        u, st_ = m.update(g, st_, cfg, param=param)
        out.append(u)
    return torch.stack(out), st_


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * float(b.abs().max()))


# ---------------------------------------------------------------- Adafactor (§C3) and CAME (§C5)


def _dense_ema(G, eps1, betas):
    V = torch.zeros_like(G[0])
    for g, b in zip(G, betas):
        V = b * V + (1 - b) * (g * g + eps1)
    return V


def test_adafactor_factored_moment_is_rank_one_factorisation_of_dense_ema():
    """V̂_t = R_tC_t/(1ᵀR_t) with R_t = V_t1, C_t = 1ᵀV_t (row/column sums are linear in the EMA), V_t the dense
    EMA of G² + ε1 under β̂2t = 1 − t^{−0.8}: V̂_t = (V_t1)(1ᵀV_t)/(1ᵀV_t1) exactly."""
    G = _grads((2, 4, 5), 6, 12)
    cfg = methods.get("adafactor").Config(eps1=1e-3)
    _, st_ = _run("adafactor", cfg, G, param=torch.ones(2, 4, 5, dtype=torch.float64))
    V = _dense_ema(G, 1e-3, [1 - (t + 1) ** -0.8 for t in range(6)])
    ref = V.sum(-1, keepdim=True) * V.sum(-2, keepdim=True) / V.sum((-1, -2), keepdim=True)
    _close(adafactor_mod.second_moment(st_), ref)


def test_adafactor_is_exact_on_rank_one_second_moment():
    """G_t = s_t·abᵀ ⇒ G_t² = s_t²(a²)(b²)ᵀ, so with ε1 = 0 the dense EMA V_t is rank one and V̂_t = V_t."""
    a, b = _grads((4,), 1, 13)[0], _grads((3,), 1, 14)[0]
    s = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    G = s[:, None, None] * torch.outer(a, b)
    cfg = methods.get("adafactor").Config(eps1=0.0)
    _, st_ = _run("adafactor", cfg, G, param=torch.ones(4, 3, dtype=torch.float64))
    _close(adafactor_mod.second_moment(st_), _dense_ema(G, 0.0, [1 - (t + 1) ** -0.8 for t in range(4)]))


@pytest.mark.parametrize("shape", [(6,), (1, 6)])
def test_adafactor_bias_corrected_schedule_is_adams_v_hat(shape):
    """With β̂2t = β2(1−β2^{t−1})/(1−β2^t) the dense v_t equals Adam's v̂_t, so with β1 = 0, ε1 = ε = 0, no clipping
    (d = ∞ in effect) and a constant ρ, Adafactor's step ρ·g/√v̂ is Adam's (β1 = 0). A 1×n matrix is factored, but
    V̂ = R C/(1ᵀR) with one row is the dense v exactly (n = 1 case of §C3 oracles)."""
    G = _grads(shape, 8, 15)
    af = methods.get("adafactor").Config(
        lr=0.01, beta2=0.9, eps1=0.0, clip_threshold=1e300, scale_parameter=False
    )
    ad = methods.get("adam").Config(lr=0.01, beta1=0.0, beta2=0.9, eps=0.0)
    a, _ = _run("adafactor", af, G)
    b, _ = _run("adam", ad, G)
    _close(a, b)


def test_adafactor_first_step_by_hand():
    """t = 1: β̂21 = 0 so V̂_1 = rank-one fit of G² + ε1; U = G/√V̂; clipping to RMS ≤ 1; α_1 = min(1e−2, 1)·max(ε2, RMS(X_0))."""
    G = _grads((3, 4), 1, 16)[0]
    X0 = 2 * torch.ones(3, 4, dtype=torch.float64)
    cfg = methods.get("adafactor").Config()
    step, _ = methods.get("adafactor").update(G, methods.get("adafactor").init((3, 4), cfg), cfg, param=X0)
    V = G**2 + 1e-30
    Vh = V.sum(1, keepdim=True) * V.sum(0, keepdim=True) / V.sum()
    U = G / Vh.sqrt()
    U = U / max(1.0, float(U.square().mean().sqrt()))
    _close(step, 1e-2 * 2.0 * U)


def test_came_factored_moment_is_adafactors():
    """(r/mean r)cᵀ with r, c the β2-EMAs of row/column *means* equals Adafactor's R Cᵀ/1ᵀR from row/column sums
    (the 1/m and 1/n scalings cancel): checked against the dense EMA of G² + ε1 with constant β2."""
    G = _grads((4, 5), 5, 17)
    cfg = methods.get("came").Config(lr=1e-2, eps1=1e-3)
    _, st_ = _run("came", cfg, G)
    V = _dense_ema(G, 1e-3, [cfg.beta2] * 5)
    ref = V.sum(-1, keepdim=True) * V.sum(-2, keepdim=True) / V.sum()
    _close(approx_inv_sqrt(st_.r, st_.c) ** -2, ref)


def test_came_first_step_by_hand():
    """t = 1 on a vector (no confidence factor): v = (1−β2)(g² + ε1), U = g/√v clipped to RMS ≤ 1, m = (1−β1)U,
    step = η·m."""
    g = _grads((5,), 1, 18)[0]
    cfg = methods.get("came").Config(lr=0.1)
    step, _ = methods.get("came").update(g, methods.get("came").init((5,), cfg), cfg)
    U = g / ((1 - 0.999) * (g * g + 1e-30)).sqrt()
    U = U / max(1.0, float(U.square().mean().sqrt()))
    _close(step, 0.1 * (1 - 0.9) * U)
