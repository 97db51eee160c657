r"""Theorem checks of the compressed family for ``memopt verify`` (docs/theory/compressed.md §D1–D3).

Each check runs the implementation itself (memopt_theory.compressors, methods.ggt) and returns
(measured, bound); the constants are [reconstructed] in the spec and derived in the docstring of
memopt_theory.compressors (D1, D2) and below (D3).
"""

from __future__ import annotations

import math

import torch

from memopt_theory import methods
from memopt_theory.checks._game import late_checkpoints, measure, play
from memopt_theory.compressors import ErrorFeedback, LowRank, TopK
from memopt_theory.verify import Check, Measurement

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

    Runs memopt's rank-r compressor (memopt_theory.compressors.LowRank: warm-started power iteration, which
    converges to M_r on a fixed M) 40 times on the same heavy-tailed M and returns (‖M − C(M)‖_F² of its last
    output, (1 − r/min(a, b))‖M‖_F²). A compressor that does not converge to the top-r subspace, or keeps too
    little of M, exceeds the bound when the spectrum is flat enough.
    """
    gen = _gen(seed)
    a, b = (int(torch.randint(2, 12 if fast else 60, (1,), generator=gen)) for _ in range(2))
    r = int(torch.randint(1, min(a, b), (1,), generator=gen))
    M = _heavy((a, b), gen)
    comp = LowRank(rank=r, seed=seed)
    st = comp.init((a, b))
    for _ in range(40):
        C, _, st = comp.compress(M, st)
    return float(((M - C) ** 2).sum()), (1 - r / min(a, b)) * float((M**2).sum()) * (1 + 1e-12)


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


def ggt_full_window_regret(seed: int, fast: bool) -> Measurement:
    """GGT with r ≥ T, β2 = 1, β1 = 0 is full-matrix AdaGrad δ-outside with δ = ε (§D3), so A3 applies:
    R^lin_T(x*) ≤ (D²/2η)(tr G_T^{1/2} + dε) + η·tr G_T^{1/2} for any fixed η > 0 and x*.

    Derivation: H_t = εI + G_t^{1/2} is non-decreasing (Löwner–Heinz) and u_t = H_t^{−1}g_t; L1 on K = R^d gives
    R^lin ≤ (D²/2η)tr H_T + (η/2)Σ_t g_tᵀH_t^{−1}g_t, and H_t ⪰ G_t^{1/2} with L2 gives Σ_t g_tᵀH_t^{−1}g_t ≤
    2 tr G_T^{1/2}; tr H_T = tr G_T^{1/2} + dε. Unconstrained linear game of memopt_theory/checks/_game.py against
    the comparator of largest ratio found by search, D = max_{t≤T} ‖x_t − x*‖; worst over t ≥ T/10, and at T.
    Seed ≡ 0 (mod 4): the threshold ±G adversary along one direction (ε = 10⁻⁶, η = 1, T = 200; ≈ 0.86
    of the bound); other seeds: biased Gaussian gradients, η log-uniform in [0.05, 5].
    """
    gen = _gen(seed)
    d = int(torch.randint(2, 6 if fast else 12, (1,), generator=gen))
    T = 30 if fast else 150
    eps = float(10 ** (-3 * torch.rand(1, generator=gen)))
    eta = float(math.exp(math.log(0.05) + math.log(100) * torch.rand(1, generator=gen)))
    bias = torch.randn(d, generator=gen, dtype=torch.float64)
    g: torch.Tensor | None = 0.3 * bias + torch.randn((T, d), generator=gen, dtype=torch.float64)
    v = None
    if seed % 4 == 0:
        T, eps, eta, g = 200, 1e-6, 1.0, None  # GGT's window is T: its step costs O(T³)
        v = bias / bias.norm()
    m = methods.get("ggt")
    cfg = m.Config(window=T, beta1=0.0, beta2=1.0, eps=eps)
    ck = late_checkpoints(T)
    X, G, _ = play("ggt", cfg, (d,), T, eta, stream=g, v=v)

    def bound(t, D, Di):
        tr = float(torch.linalg.eigvalsh(G[:t].T @ G[:t]).clamp_min(0).sqrt().sum())
        return (D**2 / (2 * eta)) * (tr + d * eps) + eta * tr

    return measure(X, G, ck, bound)


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
        theorem="GGT r >= T, beta2 = 1, fixed eta: R^lin_T <= (D^2/2eta)(tr G_T^1/2 + d eps) + eta tr G_T^1/2",
        regret=True,
        t0="T/10",
    ),
)
