r"""Theorem checks of the compressed family for ``memopt verify`` (docs/theory/compressed.md §D1–D3).

Each check runs the implementation itself (memopt_theory.compressors, methods.ggt) and returns
(measured, bound); the constants are [reconstructed] in the spec and derived in the docstring of
memopt_theory.compressors (D1, D2) and below (D3).
"""

from __future__ import annotations

import math

import torch

from memopt_theory import methods
from memopt_theory.compressors import ErrorFeedback, TopK
from memopt_theory.verify import Check

__all__ = ["CHECKS"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(7_919 * seed + 3)


def _heavy(shape, gen) -> torch.Tensor:
    """Heavy-tailed entries (Gaussian times a log-normal scale): top-k's constant is tight when the mass is
    spread, loose when it is concentrated; both occur."""
    return torch.randn(shape, generator=gen, dtype=torch.float64) * torch.exp(
        2 * torch.randn(shape, generator=gen, dtype=torch.float64)
    )


def top_k_contraction(seed: int, fast: bool) -> tuple[float, float]:
    """Top-k is k/d-contractive (§D1): ‖top_k(x) − x‖² ≤ (1 − k/d)‖x‖², for every x ∈ R^d, 1 ≤ k ≤ d.

    Returns (‖top_k(x) − x‖², (1 − k/d)‖x‖²) for a random d, k and heavy-tailed x.
    """
    gen = _gen(seed)
    d = int(torch.randint(2, 40 if fast else 400, (1,), generator=gen))
    k = int(torch.randint(1, d, (1,), generator=gen))
    # equal magnitudes make the bound tight (every coordinate carries ‖x‖²/d): alternate the two regimes
    x = torch.ones(d, dtype=torch.float64) if seed % 4 == 0 else _heavy((d,), gen)
    c, _, _ = TopK(k=k).compress(x)
    return float(((c - x) ** 2).sum()), (1 - k / d) * float((x**2).sum()) * (
        1 + 1e-12
    )  # d-term sum round-off


def truncated_svd_contraction(seed: int, fast: bool) -> tuple[float, float]:
    """The rank-r truncated SVD is r/min(a, b)-contractive (§D1): ‖M − M_r‖_F² ≤ (1 − r/min(a, b))‖M‖_F², as the
    r largest of the min(a, b) squared singular values carry at least their average share.

    Returns (‖M − M_r‖_F², (1 − r/min(a, b))‖M‖_F²); M_r from torch.linalg.svd.
    """
    gen = _gen(seed)
    a, b = (int(torch.randint(2, 12 if fast else 60, (1,), generator=gen)) for _ in range(2))
    r = int(torch.randint(1, min(a, b), (1,), generator=gen))
    M = _heavy((a, b), gen)
    s = torch.linalg.svdvals(M)
    return float((s[r:] ** 2).sum()), (1 - r / min(a, b)) * float((s**2).sum()) * (1 + 1e-12)


def error_feedback_bound(seed: int, fast: bool) -> tuple[float, float]:
    """Error feedback with a δ-contractive compressor (§D2, Stich et al. 2018): if ‖g_t‖ ≤ G for all t then
    ‖e_t‖ ≤ qG/(1 − q), q = √(1 − δ), since ‖e_{t+1}‖ ≤ q‖e_t + g_t‖ ≤ q(‖e_t‖ + G).

    Runs ErrorFeedback(TopK(k)) (δ = k/d) on T random gradients, half of them a repeated direction (which makes
    the error accumulate). Returns (max_t ‖e_t‖, qG/(1 − q)).
    """
    gen = _gen(seed)
    d = int(torch.randint(2, 30 if fast else 200, (1,), generator=gen))
    k = int(torch.randint(1, d, (1,), generator=gen))
    T = 50 if fast else 500
    fixed = torch.randn(d, generator=gen, dtype=torch.float64)
    g = torch.randn((T, d), generator=gen, dtype=torch.float64)
    g[::2] = fixed
    ef = ErrorFeedback(TopK(k=k))
    st = ef.init((d,))
    worst = 0.0
    for gt in g:
        _, _, st = ef.step(gt, st)
        worst = max(worst, float(st.e.norm()))
    q = math.sqrt(1 - k / d)
    G = float(g.norm(dim=1).max())
    return worst, q * G / (1 - q)


def ggt_full_window_regret(seed: int, fast: bool) -> tuple[float, float]:
    """GGT with r ≥ T, β2 = 1, β1 = 0 is full-matrix AdaGrad δ-outside with δ = ε (§D3), so A3 applies:
    R^lin_T(x*) ≤ (D²/2η)(tr G_T^{1/2} + dε) + η·tr G_T^{1/2} for any fixed η > 0 and x*.

    Derivation: H_t = εI + G_t^{1/2} is non-decreasing (Löwner–Heinz) and u_t = H_t^{−1}g_t; L1 on K = R^d gives
    R^lin ≤ (D²/2η)tr H_T + (η/2)Σ_t g_tᵀH_t^{−1}g_t, and H_t ⪰ G_t^{1/2} with L2 gives Σ_t g_tᵀH_t^{−1}g_t ≤
    2 tr G_T^{1/2}; tr H_T = tr G_T^{1/2} + dε. Linear game f_t(x) = ⟨g_t, x⟩, x_1 = 0, x_{t+1} = x_t − ηu_t,
    x* = −c·Σg/‖Σg‖ (c = 1), D = max_{t≤T+1} ‖x_t − x*‖ a posteriori; η log-uniform in [0.05, 5].
    Returns (R^lin_T(x*), bound).
    """
    gen = _gen(seed)
    d = int(torch.randint(2, 6 if fast else 12, (1,), generator=gen))
    T = 30 if fast else 150
    eps = float(10 ** (-3 * torch.rand(1, generator=gen)))
    eta = float(math.exp(math.log(0.05) + math.log(100) * torch.rand(1, generator=gen)))
    bias = torch.randn(d, generator=gen, dtype=torch.float64)
    g = 0.3 * bias + torch.randn((T, d), generator=gen, dtype=torch.float64)
    m = methods.get("ggt")
    cfg = m.Config(window=T, beta1=0.0, beta2=1.0, eps=eps)
    st = m.init((d,), cfg)
    x = torch.zeros(d, dtype=torch.float64)
    s = g.sum(0)
    xstar = -s / s.norm()
    regret, D = 0.0, float(xstar.norm())
    for gt in g:
        regret += float(gt @ (x - xstar))
        u, st = m.update(gt, st, cfg)
        x = x - eta * u
        D = max(D, float((x - xstar).norm()))
    tr = float(torch.linalg.eigvalsh(g.T @ g).clamp_min(0).sqrt().sum())
    return regret, (D**2 / (2 * eta)) * (tr + d * eps) + eta * tr


CHECKS = (
    Check(
        "D1 top-k contraction: |C(x)-x|^2 <= (1-k/d)|x|^2",
        "docs/theory/compressed.md §D1",
        top_k_contraction,
        50,
        10,
    ),
    Check(
        "D1 rank-r SVD contraction: |M-M_r|^2 <= (1-r/min(a,b))|M|^2",
        "docs/theory/compressed.md §D1",
        truncated_svd_contraction,
        50,
        10,
    ),
    Check(
        "D2 error feedback: |e_t| <= qG/(1-q)",
        "Stich et al. 2018; docs/theory/compressed.md §D2",
        error_feedback_bound,
        20,
        5,
    ),
    Check(
        "D3 GGT r>=T, beta2=1: R_T <= (D^2/2eta)(tr G^1/2 + d eps) + eta tr G^1/2",
        "Agarwal et al. 2019; docs/theory/compressed.md §D3 -> A3",
        ggt_full_window_regret,
        20,
        5,
    ),
)
