"""The tensored bounds (memopt_theory/bounds/tensored.py) and their checks (memopt_theory/checks/tensored.py).

Three kinds of test: (1) each step of the derivations in bounds/tensored.py as an inequality on random
instances (Kronecker lemma, superadditivity of the geometric mean, the trace-root shift, domination of the
accumulators); (2) the closed forms against brute-force numpy/scipy (np.kron, dense traces); (3) every
``memopt verify`` check holds (measured ≤ bound) on fast instances, running the registered methods.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from memopt_theory import methods
from memopt_theory.bounds import (
    extreme_tensoring_regret_bound,
    kronecker_trace_root,
    s_shampoo_regret_bound,
    shampoo_coefficient,
    shampoo_regret_bound,
    sm3_regret_bound,
)
from memopt_theory.checks.tensored import CHECKS
from memopt_theory.verify import run_check


def _mpow(A, p):
    w, V = scipy.linalg.eigh(A)
    return (V * np.clip(w, 0, None) ** p) @ V.T


# ---------------------------------------------------------------- derivation steps


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 4),
    n=st.integers(1, 4),
    T=st.integers(1, 6),
    rank=st.integers(1, 2),
    eps=st.sampled_from([1e-3, 0.1, 1.0]),
    seed=st.integers(0, 2**31),
)
def test_kronecker_lemma_matrix(m, n, T, rank, eps, seed):
    """εI + (1/r)Σ g gᵀ ⪯ L^{1/2} ⊗ R^{1/2} for rank G_t ≤ r (L = εI + ΣGGᵀ, R = εI + ΣGᵀG; vec row-major so
    the Kronecker product is np.kron(L, R) in this order). Tolerance: eigvalsh of a ≤16×16 matrix with entries
    ≲ ‖K‖ has absolute error ≲ 16·ε_mach·‖K‖ ≈ 4e-15‖K‖; 1e-12‖K‖ leaves margin."""
    rng = np.random.default_rng(seed)
    Gs = [rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) for _ in range(T)]
    r = max(np.linalg.matrix_rank(G) for G in Gs) or 1
    L = eps * np.eye(m) + sum(G @ G.T for G in Gs)
    R = eps * np.eye(n) + sum(G.T @ G for G in Gs)
    X = eps * np.eye(m * n) + sum(np.outer(G.reshape(-1), G.reshape(-1)) for G in Gs) / r
    K = np.kron(_mpow(L, 0.5), _mpow(R, 0.5))
    assert np.linalg.eigvalsh(K - X).min() >= -1e-12 * np.abs(K).max()


@settings(max_examples=60, deadline=None)
@given(
    a=arrays(np.float64, 3, elements=st.floats(0, 1e3)),
    b=arrays(np.float64, 3, elements=st.floats(0, 1e3)),
    p=st.integers(1, 3),
)
def test_geometric_mean_is_superadditive(a, b, p):
    """Π_i (a_i + b_i)^{1/p} ≥ Π a_i^{1/p} + Π b_i^{1/p} (Hölder): the step from mean_i(εI + X/r_i) to εI + X/r in the
    order-p Kronecker lemma and from h^{(i)} ≥ h^{(i)}_{t−1} + g² to ν_t ≥ ν_{t−1} + g² in Extreme Tensoring.
    Tolerance: three float64 powers, relative 1e-12."""
    a, b = a[:p], b[:p]
    lhs = np.prod((a + b) ** (1 / p))
    rhs = np.prod(a ** (1 / p)) + np.prod(b ** (1 / p))
    assert lhs >= rhs - 1e-12 * max(lhs, 1.0)


@settings(max_examples=40, deadline=None)
@given(
    lam=arrays(np.float64, st.integers(1, 6), elements=st.floats(0, 1e4)),
    c=st.floats(0, 1e4),
    p=st.integers(1, 3),
)
def test_trace_root_shift(lam, c, p):
    """tr(A + cI)^{1/(2p)} ≤ tr A^{1/(2p)} + n·c^{1/(2p)} (subadditivity of x ↦ x^α, α ≤ 1): S-Shampoo chain link 2."""
    a = 1 / (2 * p)
    lhs = ((lam + c) ** a).sum()
    assert lhs <= (lam**a).sum() + lam.size * c**a + 1e-12 * max(lhs, 1.0)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31), N=st.integers(2, 40), p=st.integers(1, 3), eps=st.sampled_from([0.0, 1e-2])
)
def test_extreme_tensoring_dominates_adagrad_every_step(seed, N, p, eps):
    """ν_t[j] = Π_i h^{(i)}_t[j_i]^{1/p} ≥ ν_{t−1}[j] + g_{t,j}² (the bound's hypothesis), read from the metric
    (H_t = diag √ν_t); hence μ_T = Σ√ν_T / Σ_j‖g_{1:T,j}‖ ≥ 1. Tolerance: powers and products, relative 1e-12."""
    if 2**p > N:
        p = 1
    m = methods.get("extreme_tensoring")
    cfg = m.Config(order=p, eps=eps)
    G = torch.randn((6, N), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    stt = m.init((N,), cfg)
    prev = torch.zeros(N, dtype=torch.float64)
    for g in G:
        _, stt = m.update(g, stt, cfg)
        nu = m.metric(stt, cfg).h ** 2
        assert bool((nu >= prev + g * g - 1e-12 * nu.max()).all())
        prev = nu
    assert float(nu.sqrt().sum()) >= float((G**2).sum(0).sqrt().sum()) * (1 - 1e-12)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    m=st.integers(1, 5),
    n=st.integers(1, 5),
    T=st.integers(1, 30),
    eps=st.floats(0, 1),
)
def test_shampoo_trace_root_grows_like_t_to_the_quarter(seed, m, n, T, eps):
    """‖G_t‖_2 ≤ 1 ⇒ λ_max(L_T) ≤ ε + T ⇒ tr L_T^{1/4} ≤ m(ε + T)^{1/4} (and R alike): the O(√T) corollary of §C1."""
    rng = np.random.default_rng(seed)
    Gs = [rng.standard_normal((m, n)) for _ in range(T)]
    Gs = [G / max(np.linalg.norm(G, 2), 1.0) for G in Gs]
    L = eps * np.eye(m) + sum(G @ G.T for G in Gs)
    tr = float(kronecker_trace_root((torch.from_numpy(L), torch.from_numpy(L)))) ** 0.5  # tr L^{1/4}
    assert tr <= m * (eps + T) ** 0.25 * (1 + 1e-12)


# ---------------------------------------------------------------- closed forms vs brute force


def test_shampoo_bound_brute_force_and_eta_minimiser():
    """(D²/2η + ηr)·tr(L^{1/4} ⊗ R^{1/4}) with the dense np.kron trace; η = None gives √(2r)·D, the minimum over
    η, attained at η = D/√(2r) (a grid of η never goes below it)."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((3, 5)), rng.standard_normal((4, 2))
    L, R = A @ A.T + 0.1 * np.eye(3), B @ B.T + 0.1 * np.eye(4)
    tr = np.trace(np.kron(_mpow(L, 0.25), _mpow(R, 0.25)))
    D, eta, r = 2.0, 0.7, 3.0
    got = shampoo_regret_bound((torch.from_numpy(L), torch.from_numpy(R)), D, r=r, eta=eta)
    np.testing.assert_allclose(float(got), (D**2 / (2 * eta) + eta * r) * tr, rtol=1e-12)
    best = float(shampoo_coefficient(D, None, r))
    np.testing.assert_allclose(best, math.sqrt(2 * r) * D, rtol=1e-15)
    np.testing.assert_allclose(float(shampoo_coefficient(D, D / math.sqrt(2 * r), r)), best, rtol=1e-14)
    grid = np.geomspace(1e-3, 1e3, 301)
    assert min(float(shampoo_coefficient(D, e, r)) for e in grid) >= best * (1 - 1e-12)


def test_order_3_trace_root_is_kron_trace():
    """Π_i tr (H^i)^{1/6} = tr(⊗_i (H^i)^{1/6}) (trace of a Kronecker product), dense np.kron oracle."""
    rng = np.random.default_rng(1)
    Hs = []
    for n in (2, 3, 2):
        A = rng.standard_normal((n, n))
        Hs.append(A @ A.T + 0.05 * np.eye(n))
    K = np.kron(np.kron(_mpow(Hs[0], 1 / 6), _mpow(Hs[1], 1 / 6)), _mpow(Hs[2], 1 / 6))
    got = kronecker_trace_root(tuple(torch.from_numpy(H) for H in Hs))
    np.testing.assert_allclose(float(got), np.trace(K), rtol=1e-12)


def test_s_shampoo_bound_with_exact_sketch_is_shampoos():
    """ℓ > n_i for every mode ⇒ Ω_{i,ℓ} = 0 (no mass can escape) ⇒ Theorem 5 = the Shampoo bound on εI + M_i;
    and with ℓ = 1 (nothing kept) Ω_1 = tr M_i (k = 0 term) gives the additive n_i·(tr M_i)^{1/(2p)}."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    M = (torch.from_numpy(A @ A.T), torch.from_numpy(B @ B.T))
    eps = 0.01
    exact = s_shampoo_regret_bound(M, 1.5, 4, eps=eps, r=2.0, eta=0.3)
    sh = shampoo_regret_bound(
        tuple(m + eps * torch.eye(m.shape[0], dtype=m.dtype) for m in M), 1.5, r=2.0, eta=0.3
    )
    np.testing.assert_allclose(float(exact), float(sh), rtol=1e-12)
    one = s_shampoo_regret_bound(M, 1.5, 1, eps=eps, r=2.0, eta=0.3)
    terms = [
        (np.clip(np.linalg.eigvalsh(m.numpy()), 0, None) + eps) ** 0.25 @ np.ones(m.shape[0])
        + m.shape[0] * np.trace(m.numpy()) ** 0.25
        for m in M
    ]
    np.testing.assert_allclose(float(one), (1.5**2 / 0.6 + 0.6) * terms[0] * terms[1], rtol=1e-12)


def test_extreme_tensoring_bound_brute_force():
    """Π_i Σ_k h^{(i)}[k]^{1/(2p)} = Σ over the (padded) tensor of Π_i h^{(i)}[j_i]^{1/(2p)} (numpy einsum), ≥ the
    unpadded Σ_{j≤N} √ν_T[j] given by sm3_regret_bound on the metric's diagonal."""
    m = methods.get("extreme_tensoring")
    cfg = m.Config(mode_sizes=(3, 2, 2), eps=0.1)
    G = torch.randn((5, 11), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    stt = m.init((11,), cfg)
    for g in G:
        _, stt = m.update(g, stt, cfg)
    h = [x.numpy() ** (1 / 6) for x in stt.h]
    full = np.einsum("i,j,k->ijk", *h)
    got = extreme_tensoring_regret_bound(stt.h, 2.0, eta=0.5)
    np.testing.assert_allclose(float(got), (4 / 1.0 + 0.5) * full.sum(), rtol=1e-12)
    tight = sm3_regret_bound(m.metric(stt, cfg).h ** 2, 2.0, eta=0.5)
    np.testing.assert_allclose(float(tight), (4 / 1.0 + 0.5) * full.reshape(-1)[:11].sum(), rtol=1e-12)
    assert float(tight) <= float(got)


def test_sm3_bound_batched():
    """Batch axes: one bound per seed, Σ over the parameter axes only."""
    nu = torch.rand((3, 2, 4), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = sm3_regret_bound(nu, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), eta=None, nbatch=1)
    ref = math.sqrt(2) * np.array([1.0, 2.0, 3.0]) * nu.sqrt().sum((1, 2)).numpy()
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-13)


# ---------------------------------------------------------------- the verify checks hold


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_verify_check_holds(check):
    """measured ≤ bound on 6 fast instances of each theorem (the registered methods, exact algorithms)."""
    res = run_check(check, fast=True, instances=6)
    assert res.worst_ratio <= 1.0, (res.worst_measured, res.worst_bound)


# ---------------------------------------------------------------- bad input


def test_bounds_refuse_bad_input():
    L = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="D must be >= 0 and r >= 1"):
        shampoo_regret_bound((L, L), -1.0)
    with pytest.raises(ValueError, match="D must be >= 0 and r >= 1"):
        shampoo_regret_bound((L, L), 1.0, r=0.5)
    with pytest.raises(ValueError, match="eta must be > 0"):
        shampoo_regret_bound((L, L), 1.0, eta=0.0)
    with pytest.raises(ValueError, match=r"factors\[1\] must have shape"):
        shampoo_regret_bound((L, torch.ones(2, 3, dtype=torch.float64)), 1.0)
    with pytest.raises(ValueError, match="ell must be >= 1"):
        s_shampoo_regret_bound((L,), 1.0, 0)
    with pytest.raises(ValueError, match="eps must be in"):
        s_shampoo_regret_bound((L,), 1.0, 2, eps=-1.0)
    with pytest.raises(ValueError, match="nu must be >= 0"):
        sm3_regret_bound(-torch.ones(3, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="h must be a non-empty tuple"):
        extreme_tensoring_regret_bound((), 1.0)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (4, 3), (2, 3, 4), (4, 3, 3, 3)])
def test_mode_rank_bound_is_the_generic_rank_of_every_unfolding(shape):
    """r̄ = (Π_i min(n_i, N/n_i))^{1/p}: a Gaussian gradient attains rank min(n_i, N/n_i) in every unfolding
    (almost surely), so r̄ equals the measured (Π_i rank mat_i G)^{1/p} — the a-priori r is not loose in general."""
    from memopt_theory.bounds.tensored import mode_rank_bound
    from memopt_theory.checks.tensored import mode_rank

    G = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert mode_rank_bound(shape) == pytest.approx(mode_rank(G, len(shape)), rel=1e-15)
    with pytest.raises(ValueError, match="shape must be a non-empty tuple"):
        mode_rank_bound(())
