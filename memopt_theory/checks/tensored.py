r"""Theorem checks of the tensored family for ``memopt verify`` (Shampoo, S-Shampoo, Extreme Tensoring, SM3).

Each check runs the registered method itself (the exact algorithm of the theorem) and returns
(measured, bound); the bounds are the functions of memopt_theory/bounds/tensored.py, derived there.
Regret checks here play the unconstrained linear game of memopt_theory/checks/_game.py: f_t(X) = ⟨G_t, X⟩,
X_1 = 0, K = R^{m×n} (no projection), X_{t+1} = X_t − η·u_t, against the comparator X* of largest ratio
measured/bound found by search, D (D_∞) = max_{t≤T} ‖X_t − X*‖ of the same run; the pair returned is the worst
over checkpoints t ≥ t₀ = T/10, with the pair at T. Seed ≡ 0 (mod 4) is the tightness construction, the
threshold ±G adversary along one rank-one direction (Shampoo, S-Shampoo with ℓ ≥ 2 and ε = 0, so Ω_ℓ = 0 and
every factor sees one direction) or one coordinate (Extreme Tensoring, SM3), T = 1000 for seed ≡ 0 (mod 20), else 300 (200 fast), η = 1; it
reaches ≈ 0.85 of the bounds. Other seeds are seeded low-rank streams with η drawn log-uniformly around the
theory value, so the general (D²/2η + ηr) form is what is tested.
The simulator-based checks (certified comparator, constrained domains) are online_convex/checks/tensored.py.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memopt_theory import methods
from memopt_theory.bounds.tensored import (
    extreme_tensoring_regret_bound,
    kronecker_trace_root,
    s_shampoo_regret_bound,
    shampoo_regret_bound,
    sm3_regret_bound,
)
from memopt_theory.checks._game import adversary_horizon, late_checkpoints, measure, play
from memopt_theory.linalg import psd_power
from memopt_theory.methods import s_shampoo as s_shampoo_mod
from memopt_theory.methods import sm3 as sm3_mod
from memopt_theory.tensoring import mode_gram, unfold
from memopt_theory.verify import Check, Measurement

__all__ = ["CHECKS", "low_rank_stream", "mode_rank"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(10_007 * seed + 17)


def low_rank_stream(shape: tuple[int, ...], T: int, rank: int, gen: torch.Generator) -> Tensor:
    """T gradients of the given shape, each a sum of ``rank`` outer products (rank mat_i(G_t) ≤ rank for every
    mode): a fixed low-rank pattern times a random sign s_t = ±1 (P(+1) = 0.6) plus a perturbation of the same
    rank. The signs make the learner oscillate and the 0.2 bias gives a fixed comparator linear gain, the regime
    where adaptive bounds are nearly tight (R^lin ∝ √T). Shape (T,) + shape."""
    out = torch.zeros((T, *shape), dtype=torch.float64)
    signs = torch.where(torch.rand(T, generator=gen, dtype=torch.float64) < 0.6, 1.0, -1.0).to(torch.float64)
    means = [torch.randn((rank, n), generator=gen, dtype=torch.float64) for n in shape]
    for k in range(rank):
        term = None
        for i, n in enumerate(shape):
            f = means[i][k] + 0.3 * torch.randn((T, n), generator=gen, dtype=torch.float64)
            f = f.reshape(T, *([1] * i), n, *([1] * (len(shape) - 1 - i)))
            term = f if term is None else term * f
        assert term is not None  # shape has at least one mode
        out = out + term
    return signs.reshape(T, *([1] * len(shape))) * out


def mode_rank(G: Tensor, order: int) -> float:
    """r = (Π_i r_i)^{1/p} with r_i = max_t rank mat_i(G_t) (G of shape (T,) + S, p = order)."""
    ranks = [int(torch.linalg.matrix_rank(unfold(G, i, order)).max()) for i in range(order)]
    return math.prod(max(r, 1) for r in ranks) ** (1.0 / order)


def _game(name: str, config, seed: int, fast: bool, shape, G: Tensor, eta: float, *, diagonal: bool = False):
    """(X, G, η, states at the checkpoints, checkpoints): the stream ``G`` at step ``eta``, or (seed ≡ 0 mod 4) the
    threshold adversary along a rank-one direction (one coordinate if ``diagonal``) at η = 1."""
    if seed % 4 == 0:
        T = adversary_horizon(seed, fast)
        ck = late_checkpoints(T)
        gen = _gen(seed + 1)
        if diagonal:
            v = torch.zeros(shape, dtype=torch.float64)
            v.view(-1)[0] = 1.0
        else:
            v = torch.randn(shape[0], generator=gen, dtype=torch.float64)
            for n in shape[1:]:
                v = torch.tensordot(v, torch.randn(n, generator=gen, dtype=torch.float64), dims=0)
            v = v / v.norm()
        X, Gs, states = play(name, config, shape, T, 1.0, v=v, keep=ck)
        return X, Gs, 1.0, states, ck
    ck = late_checkpoints(G.shape[0])
    X, Gs, states = play(name, config, shape, G.shape[0], eta, stream=G, keep=ck)
    return X, Gs, eta, states, ck


def _eta(gen: torch.Generator, scale: float) -> float:
    """η log-uniform in [scale/3, 3·scale]: the general-η form must hold for every fixed η."""
    return scale * 3 ** (2 * float(torch.rand((), generator=gen, dtype=torch.float64)) - 1)


def _sizes(gen: torch.Generator, fast: bool, order: int) -> tuple[tuple[int, ...], int]:
    hi = 5 if fast else 8
    shape = tuple(int(torch.randint(2, hi, (), generator=gen)) for _ in range(order))
    T = 30 if fast else 200
    return shape, T


# ---------------------------------------------------------------- Kronecker lemma


def check_kronecker_lemma(seed: int, fast: bool) -> tuple[float, float]:
    r"""Kronecker lemma, order p (Gupta et al. 2018; docs/theory/tensored.md §C1; derived in bounds/tensored.py).

    With r_i ≥ rank mat_i(G_t), r = (Π r_i)^{1/p}, H^i = εI + Σ_t mat_i(G_t)mat_i(G_t)ᵀ:
        εI + (1/r)Σ_t g_tg_tᵀ ⪯ ⊗_i (H^i)^{1/p}      (p = 2: ⪯ L^{1/2} ⊗ R^{1/2}).

    Returns
    -------
    measured : λ_max(K^{−1/2}(εI + X/r)K^{−1/2}), K = ⊗_i (H^i)^{1/p}, X = Σ g gᵀ (float64 eigh)
    bound : 1.0 (the lemma says exactly measured ≤ 1)
    """
    gen = _gen(seed)
    order = 2 + seed % 2  # matrices and order-3 tensors
    shape, _ = _sizes(gen, fast, order)
    T = 8 if fast else 40
    G = low_rank_stream(shape, T, 1 + seed % 3, gen)
    r = mode_rank(G, order)
    eps = 10 ** float(-3 * torch.rand((), generator=gen, dtype=torch.float64))
    g = G.reshape(T, -1)
    X = eps * torch.eye(g.shape[1], dtype=torch.float64) + g.T @ g / r
    K = None
    for i in range(order):
        Hi = eps * torch.eye(shape[i], dtype=torch.float64) + mode_gram(G, i, order).sum(0)
        F = psd_power(Hi, 1.0 / order)
        K = F if K is None else torch.kron(K, F)
    assert K is not None  # order >= 1
    Kih = psd_power(K, -0.5)
    return float(torch.linalg.eigvalsh(Kih @ X @ Kih).max()), 1.0


# ---------------------------------------------------------------- regret: Shampoo, S-Shampoo


def check_shampoo_regret(seed: int, fast: bool) -> Measurement:
    r"""Shampoo regret, order p ∈ {2, 3} (Gupta et al. 2018; derived in bounds/tensored.py).

    Theorem. rank mat_i(G_t) ≤ r_i, r = (Π r_i)^{1/p}, fixed η, K = R^{n_1×…×n_p}:
        R^lin_T ≤ (D²/2η + ηr)·Π_i tr (H^i_T)^{1/(2p)}   (matrices: (D²/2η + ηr)·tr L_T^{1/4}·tr R_T^{1/4}).

    Returns R^lin_t of ``shampoo`` in the linear game against the searched comparator and the bound with the run's
    D, η, H^i_t, r (worst t ≥ T/10, and at T).
    """
    gen = _gen(seed)
    order = 2 if seed % 3 else 3
    shape, T = _sizes(gen, fast, order)
    G = low_rank_stream(shape, T, 1 + seed % 2, gen)
    eps = 0.0 if seed % 4 == 0 else 10 ** float(-4 * torch.rand((), generator=gen, dtype=torch.float64))
    cfg = methods.get("shampoo").Config(eps=eps)
    radius = 0.5 + 4 * float(torch.rand((), generator=gen, dtype=torch.float64))
    eta = _eta(gen, radius / math.sqrt(2 * mode_rank(G, order)))
    X, Gs, eta, sts, ck = _game("shampoo", cfg, seed, fast, shape, G, eta)
    return measure(
        X, Gs, ck, lambda t, D, Di: shampoo_regret_bound(sts[t].H, D, r=mode_rank(Gs[:t], order), eta=eta)
    )


def _s_shampoo_run(seed: int, fast: bool):
    gen = _gen(seed)
    shape, T = _sizes(gen, fast, 2)
    shape = (shape[0] + 2, shape[1] + 2)  # sizes 4..: an ℓ below both dimensions actually sketches
    G = low_rank_stream(shape, T, 1 + seed % 2, gen)
    # noise of full rank on top makes the sketch drop mass (ρ > 0); the rank bound r is then min(m, n)
    G = G + 0.3 * torch.randn(G.shape, generator=gen, dtype=torch.float64)
    ell = int(torch.randint(1, min(shape) + 1, (), generator=gen))
    eps = 10 ** float(-4 * torch.rand((), generator=gen, dtype=torch.float64))
    if seed % 4 == 0:
        ell, eps = 2, 0.0  # the adversary's stream is rank one: Ω_ℓ = 0 for ℓ ≥ 2
    cfg = methods.get("s_shampoo").Config(ell=ell, eps=eps)
    radius = 0.5 + 4 * float(torch.rand((), generator=gen, dtype=torch.float64))
    eta = _eta(gen, radius / math.sqrt(2 * mode_rank(G, 2)))
    X, Gs, eta, sts, ck = _game("s_shampoo", cfg, seed, fast, shape, G, eta)
    return X, Gs, eta, ell, eps, cfg, sts, ck


def check_s_shampoo_theorem5(seed: int, fast: bool) -> Measurement:
    r"""S-Shampoo Theorem 5 (Feinberg et al. 2023; derived in bounds/tensored.py), β2 = 1.

    Theorem. rank G_t ≤ r, fixed η: R^lin_T ≤ (D²/2η + ηr)·(tr L_T^{1/4} + mΩ_{L,ℓ}^{1/4})·(tr R_T^{1/4} + nΩ_{R,ℓ}^{1/4}),
    L_T = εI + ΣGGᵀ, R_T = εI + ΣGᵀG, Ω = Lemma 1's bound for ΣGGᵀ, ΣGᵀG.

    Returns R^lin_t of ``s_shampoo`` (ℓ < min(m, n) possible) against the searched comparator and the Theorem 5
    bound (worst t ≥ T/10, and at T).
    """
    X, G, eta, ell, eps, _, _, ck = _s_shampoo_run(seed, fast)

    def bound(t, D, Di):
        grams = tuple(mode_gram(G[:t], i, 2).sum(0) for i in range(2))
        return s_shampoo_regret_bound(grams, D, ell, eps=eps, r=mode_rank(G[:t], 2), eta=eta)

    return measure(X, G, ck, bound)


def check_s_shampoo_chain(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-Shampoo chain, link 2: tr L̃_T^{1/4}·tr R̃_T^{1/4} ≤ (tr L_T^{1/4} + mΩ_L^{1/4})(tr R_T^{1/4} + nΩ_R^{1/4}),
    L̃_T = L̄_T + (ε + ρ^L_{1:T})I from the method's own sketches (Weyl, subadditivity of x^{1/4}, Lemma 1).

    Returns (the product of sketched trace roots at T, the Theorem 5 product), both at unit coefficient.
    """
    _, G, _, ell, eps, cfg, sts, ck = _s_shampoo_run(seed, fast)
    T = ck[-1]
    sketched = kronecker_trace_root(s_shampoo_mod.factors(sts[T], cfg, 1.0))
    grams = tuple(mode_gram(G, i, 2).sum(0) for i in range(2))
    return float(sketched), float(
        s_shampoo_regret_bound(grams, 1.0, ell, eps=eps, r=1.0, eta=None) / math.sqrt(2)
    )


def check_s_shampoo_regret_chain(seed: int, fast: bool) -> Measurement:
    r"""S-Shampoo chain, link 1 (Feinberg et al. 2023, Thm 5 proof): R^lin_T ≤ (D²/2η + ηr)·tr L̃_T^{1/4}·tr R̃_T^{1/4}.

    Returns R^lin_t of ``s_shampoo`` against the searched comparator and the bound with the run's sketched
    factors L̃_t, R̃_t (worst t ≥ T/10, and at T).
    """
    X, G, eta, _, _, cfg, sts, ck = _s_shampoo_run(seed, fast)
    return measure(
        X,
        G,
        ck,
        lambda t, D, Di: shampoo_regret_bound(
            s_shampoo_mod.factors(sts[t], cfg, 1.0), D, r=mode_rank(G[:t], 2), eta=eta
        ),
    )


# ---------------------------------------------------------------- regret: Extreme Tensoring, SM3


def check_extreme_tensoring_regret(seed: int, fast: bool) -> Measurement:
    r"""Extreme Tensoring regret (Chen et al. 2020; derived in bounds/tensored.py).

    Theorem. Fixed η, K = R^N: R^lin_T ≤ (D_∞²/2η + η)·Π_i Σ_k h^{(i)}_T[k]^{1/(2p)}.
    Instances: vectors of N ∈ [8, 200) elements (often not a product of equal modes: zero padding), p ∈ {1, 2, 3}.

    Returns R^lin_t of ``extreme_tensoring`` against the searched comparator and the bound with the run's D_∞, η
    and accumulators (worst t ≥ T/10, and at T).
    """
    gen = _gen(seed)
    N = int(torch.randint(8, 60 if fast else 200, (), generator=gen))
    T = 30 if fast else 200
    p = 1 + seed % 3 if seed % 4 else 2
    G = low_rank_stream((N,), T, 1, gen)
    eps = 0.0 if seed % 4 == 0 else 10 ** float(-4 * torch.rand((), generator=gen, dtype=torch.float64))
    cfg = methods.get("extreme_tensoring").Config(order=p, eps=eps)
    radius = 0.5 + 4 * float(torch.rand((), generator=gen, dtype=torch.float64))
    eta = _eta(gen, radius / math.sqrt(2 * N))
    X, Gs, eta, sts, ck = _game("extreme_tensoring", cfg, seed, fast, (N,), G, eta, diagonal=True)
    return measure(X, Gs, ck, lambda t, D, Di: extreme_tensoring_regret_bound(sts[t].h, Di, eta=eta))


def check_sm3_regret(seed: int, fast: bool) -> Measurement:
    r"""SM3 regret (Anil et al. 2019; derived in bounds/tensored.py), SM3-I and SM3-II.

    Theorem. ν_t(i) ≥ ν_{t−1}(i) + g_t(i)², fixed η, K = R^{shape}: R^lin_T ≤ (D_∞²/2η + η)·Σ_i √ν_T(i). For SM3-II
    the computable min_{r∋i} μ'_T(r) ≥ ν'_T(i) is used (a larger, still valid bound).

    Returns R^lin_t of ``sm3`` (co-dimension-1 slice cover, matrix or 3-tensor) against the searched comparator
    and the bound (worst t ≥ T/10, and at T).
    """
    gen = _gen(seed)
    order = 2 + seed % 2
    shape, T = _sizes(gen, fast, order)
    G = low_rank_stream(shape, T, 1 + seed % 2, gen)
    cfg = methods.get("sm3").Config(variant="I" if seed % 4 < 2 else "II")
    radius = 0.5 + 4 * float(torch.rand((), generator=gen, dtype=torch.float64))
    eta = _eta(gen, radius)
    X, Gs, eta, sts, ck = _game("sm3", cfg, seed, fast, shape, G, eta, diagonal=True)
    return measure(X, Gs, ck, lambda t, D, Di: sm3_regret_bound(sm3_mod.nu(sts[t], cfg), Di, eta=eta))


CHECKS = (
    Check(
        "Shampoo Kronecker lemma: eps I + X/r <= (x) H_i^(1/p)",
        "Gupta et al. 2018, Lemma 8; docs/theory/tensored.md §C1",
        check_kronecker_lemma,
    ),
    Check(
        "Shampoo regret <= (D^2/2eta + eta r) prod tr H_i^(1/2p)",
        "Gupta et al. 2018, Thms 3, 7; docs/theory/tensored.md §C1",
        check_shampoo_regret,
        theorem="Shampoo, fixed eta: R^lin_T <= (D^2/2eta + eta r) prod_i tr H_i^(1/2p)",
        regret=True,
        t0="T/10",
    ),
    Check(
        "S-Shampoo regret <= Thm 5 (general eta)",
        "Feinberg et al. 2023, Thm 5; docs/theory/sketching.md §B5",
        check_s_shampoo_theorem5,
        theorem="S-Shampoo, fixed eta: R^lin_T <= (D^2/2eta + eta r) prod_i (tr H_i^(1/2p) + n_i Omega_i^(1/2p))",
        regret=True,
        t0="T/10",
    ),
    Check(
        "S-Shampoo regret <= coef tr L~^(1/4) tr R~^(1/4)",
        "Feinberg et al. 2023, Thm 5 proof; docs/theory/sketching.md §B5 chain",
        check_s_shampoo_regret_chain,
        theorem="S-Shampoo, fixed eta: R^lin_T <= (D^2/2eta + eta r) tr L~^1/4 tr R~^1/4",
        regret=True,
        t0="T/10",
    ),
    Check(
        "S-Shampoo tr L~^(1/4) tr R~^(1/4) <= Thm 5 traces",
        "Feinberg et al. 2023, Thm 5 proof; docs/theory/sketching.md §B5 chain",
        check_s_shampoo_chain,
    ),
    Check(
        "Extreme Tensoring regret <= (D_inf^2/2eta + eta) prod sum h^(1/2p)",
        "Chen et al. 2020; docs/theory/tensored.md §C2",
        check_extreme_tensoring_regret,
        theorem="Extreme Tensoring, fixed eta: R^lin_T <= (Dinf^2/2eta + eta) prod_i sum_k h_i[k]^(1/2p)",
        regret=True,
        t0="T/10",
    ),
    Check(
        "SM3 regret <= (D_inf^2/2eta + eta) sum sqrt(nu)",
        "Anil et al. 2019; docs/theory/tensored.md §C4",
        check_sm3_regret,
        theorem="SM3, fixed eta: R^lin_T <= (Dinf^2/2eta + eta) sum_i sqrt(nu_T(i))",
        regret=True,
        t0="T/10",
    ),
)
