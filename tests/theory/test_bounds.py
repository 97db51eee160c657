"""The bound functions against brute-force float64 evaluation, the E.1 sandwiches, A3's variational identity,
and the theorem checks of ``memopt verify`` that live in memopt_theory.checks (docs/theory/baselines.md §A, docs/theory/sketching.md §B3, docs/theory/bounds.md §E).

Tolerances: brute-force references use scipy's sqrtm / numpy's eigvalsh / the SVD of the rows on ≤ 8×8 matrices
with entries ≤ 1e2, so eigenvalues carry round-off ≲ d·ε·λ_1 ≈ 1e-15·λ_1; sums and products of them are compared
at 1e-9 relative. tr G^{1/2} is not Lipschitz at a zero eigenvalue: an eigenvalue computed as c·d·ε·λ_1 instead
of 0 contributes √(c·d·ε·λ_1) ≈ 3e-8·√λ_1 to the trace. So quantities with square roots of eigenvalues of a
singular G get the extra slack ``_sqrt_slack(G)`` = d·√(8·d·ε·λ_1), the size of that unavoidable error.
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

from memopt_theory import bounds
from memopt_theory.checks import adagrad_regret, sketches
from memopt_theory.verify import run_check

_vals = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)
REL = 1e-9


@st.composite
def grams(draw, max_T=12, max_d=7):
    """G = AᵀA for rows A (T×d) drawn by hypothesis, rank ≤ min(T, d)."""
    T, d = draw(st.integers(1, max_T)), draw(st.integers(1, max_d))
    A = draw(arrays(np.float64, (T, d), elements=_vals))
    return A, A.T @ A


def _tr_sqrt_ref(G: np.ndarray) -> float:
    """tr G^{1/2} via scipy's Schur-based sqrtm (independent of eigh); real part: round-off imaginary noise."""
    return float(np.trace(scipy.linalg.sqrtm(G)).real)


def _close(a, b, scale, extra=0.0):
    assert abs(float(a) - float(b)) <= REL * max(1.0, float(scale)) + extra, (float(a), float(b))


def _sqrt_slack(G: np.ndarray) -> float:
    d = G.shape[0]
    lam1 = float(np.abs(np.linalg.eigvalsh(G)).max()) if d else 0.0
    return d * math.sqrt(8 * d * np.finfo(float).eps * lam1)


@settings(max_examples=60, deadline=None)
@given(grams())
def test_trace_sqrt_matches_sqrtm_and_e1_sandwich(AG):
    """tr G^{1/2} equals sqrtm's trace; √tr G ≤ tr G^{1/2} ≤ √(rank G · tr G); tr G^{1/2} ≤ Σ_i √G_ii (E.1)."""
    A, G = AG
    got = float(bounds.trace_sqrt(torch.from_numpy(G)))
    scale = math.sqrt(max(np.trace(G), 1.0))
    # sqrtm of a singular matrix is accurate only to ~√(ε‖G‖) per zero eigenvalue: compare via singular values
    ref = float(np.linalg.svd(A, compute_uv=False).sum())  # σ_i(A) = √λ_i(AᵀA)
    _close(got, ref, scale, _sqrt_slack(G))
    if np.linalg.matrix_rank(A) == A.shape[1]:
        assert abs(got - _tr_sqrt_ref(G)) <= 1e-6 * scale  # sqrtm's own accuracy on full-rank G
    trG = float(np.trace(G))
    rank = np.linalg.matrix_rank(A)
    tol = REL * scale + _sqrt_slack(G)
    assert math.sqrt(trG) <= got + tol
    assert got <= math.sqrt(rank * trG) + tol
    assert got <= float(np.sqrt(np.diag(G)).sum()) + tol


@settings(max_examples=60, deadline=None)
@given(grams(), st.integers(1, 9))
def test_omega_ell_is_the_min_over_k(AG, ell):
    """Ω_ℓ = min_{0≤k<ℓ} Σ_{i>k} λ_i/(ℓ−k), computed here term by term from numpy's eigvalsh; Ω_ℓ ≤ λ_{ℓ:d}."""
    _, G = AG
    lam = np.clip(np.linalg.eigvalsh(G)[::-1], 0, None)
    d = len(lam)
    ref = min(lam[k:].sum() / (ell - k) for k in range(min(ell, d + 1)))
    got = float(bounds.omega_ell(torch.from_numpy(lam.copy()), ell))
    _close(got, ref, lam.sum())
    if ell <= d:
        assert got <= lam[ell - 1 :].sum() + REL * max(1.0, lam.sum())
    else:
        assert got == 0.0  # k = d is allowed: nothing escapes when ℓ > d


def test_omega_hand_example():
    """λ = (4, 1, 1), ℓ = 2: k = 0 gives 6/2 = 3, k = 1 gives 2/1 = 2 → Ω_2 = 2; ℓ = 1: 6."""
    lam = torch.tensor([4.0, 1.0, 1.0], dtype=torch.float64)
    assert float(bounds.omega_ell(lam, 2)) == 2.0 and float(bounds.omega_ell(lam, 1)) == 6.0


@settings(max_examples=40, deadline=None)
@given(grams(), st.floats(0.01, 10), st.floats(0.01, 10), st.floats(0, 1))
def test_adagrad_bounds_against_formulas(AG, D, eta, delta):
    """Each AdaGrad bound equals its formula evaluated with sqrtm/svd (float64 brute force)."""
    A, G = AG
    d = G.shape[0]
    coef = D**2 / (2 * eta) + eta
    Gt = torch.from_numpy(G)
    scale = coef * (math.sqrt(max(np.trace(G), 1.0)) + d)
    inside = float(bounds.adagrad_full_regret_bound(Gt, D, eta, delta=delta))
    slack = coef * _sqrt_slack(G)
    _close(inside, coef * np.sqrt(np.linalg.eigvalsh(G + delta * np.eye(d)).clip(0)).sum(), scale, slack)
    outside = float(bounds.adagrad_full_regret_bound(Gt, D, eta, delta=delta, delta_mode="outside"))
    tr = float(np.linalg.svd(A, compute_uv=False).sum())
    _close(outside, D**2 / (2 * eta) * (tr + d * delta) + eta * tr, scale, slack)
    diag = float(bounds.adagrad_diag_regret_bound(torch.from_numpy((A**2).sum(0)), D, eta))
    _close(diag, coef * np.linalg.norm(A, axis=0).sum(), scale)
    # Σ_i ‖g_{1:T,i}‖ ≥ tr G^{1/2} (A2 oracle): the diagonal bound is never below the full one at δ = 0
    assert diag >= float(bounds.adagrad_full_regret_bound(Gt, D, eta)) - REL * scale - slack


def test_ogd_bound_and_minimum_of_coefficient():
    assert float(bounds.ogd_regret_bound(2.0, 3.0, 16)) == 1.5 * 3 * 2 * 4
    assert float(bounds.ogd_regret_bound(2.0, 3.0, 16, schedule="constant")) == 3 * 2 * 4
    # D²/2η + η is minimised at η = D/√2 with value √2·D (the familiar √2·D·tr G^{1/2})
    D = 1.7
    etas = np.linspace(0.1, 5, 2001)
    vals = [float(bounds.adaptive_coefficient(D, e)) for e in etas]
    assert abs(float(bounds.adaptive_coefficient(D, D / math.sqrt(2))) - math.sqrt(2) * D) < 1e-12
    assert min(vals) >= math.sqrt(2) * D - 1e-12


@settings(max_examples=60, deadline=None)
@given(grams(), st.integers(1, 9), st.floats(0, 1), st.floats(0, 1))
def test_s_adagrad_forms(AG, ell, delta, frac):
    """Formulas of Thm 3, Cor 4 and the chain (B3) by hand, and chain ≤ Cor 4 ≤ Thm 3 whenever ρ ≤ Ω_ℓ."""
    _, G = AG
    d = G.shape[0]
    lam = np.clip(np.linalg.eigvalsh(G)[::-1], 0, None)
    omega = min(lam[k:].sum() / (ell - k) for k in range(min(ell, d + 1)))
    base = np.sqrt(lam + delta).sum()
    rho = frac * omega
    D, eta = 1.3, 0.7
    coef = D**2 / (2 * eta) + eta
    Gt = torch.from_numpy(G)
    f = {
        form: float(bounds.s_adagrad_regret_bound(Gt, D, eta, ell, form=form, rho=rho, delta=delta))
        for form in ("chain", "cor4", "thm3")
    }
    scale = coef * (base + d * math.sqrt(max(omega, 1.0)))
    gap = max(d - ell, 0)
    # √Ω_ℓ too is a square root of (sums of) eigenvalues that may be round-off zeros
    slack = coef * (_sqrt_slack(G) + d * math.sqrt(8 * d * np.finfo(float).eps * max(lam.max(initial=0), 0)))
    _close(f["thm3"], coef * (base + d * math.sqrt(omega)), scale, slack)
    _close(f["cor4"], coef * (base + math.sqrt(d * gap * omega)), scale, slack)
    _close(f["chain"], coef * (base + math.sqrt(d * gap * rho)), scale, slack)
    assert f["chain"] <= f["cor4"] + REL * scale + slack  # ρ is numpy's Ω here, the bound's is torch's
    assert f["cor4"] <= f["thm3"] + REL * scale


@settings(max_examples=40, deadline=None)
@given(grams(max_T=10, max_d=5), st.data())
def test_variational_identity_of_a3(AG, data):
    """(tr G^{1/2})² = min{Σ_t g_tᵀH^{−1}g_t = tr(H^{−1}G) : H ≻ 0, tr H ≤ 1}, attained at H* = G^{1/2}/tr G^{1/2}
    (A3). At H* the value is exact; any other H ≻ 0 with tr H = 1 (hypothesis-drawn) gives at least it."""
    A, G = AG
    d = G.shape[0]
    lam0 = np.linalg.eigvalsh(G)
    if lam0[0] < 1e-6 * max(lam0[-1], 1.0):
        # the infimum over H ≻ 0 is attained only for G ≻ 0; shift near-singular G (condition ≤ 1e6 keeps the
        # solves below accurate to ~1e-10, inside REL)
        G = G + np.eye(d)
    lam, Q = np.linalg.eigh(G)
    root = (Q * np.sqrt(lam)) @ Q.T
    tr_root = float(bounds.trace_sqrt(torch.from_numpy(G)))
    H_star = root / tr_root
    value_star = np.trace(np.linalg.solve(H_star, G))
    _close(value_star, tr_root**2, tr_root**2)
    M = data.draw(
        arrays(np.float64, (d, d), elements=st.floats(-1, 1, allow_nan=False, allow_subnormal=False))
    )
    H = M @ M.T + 1e-3 * np.eye(d)
    H /= np.trace(H)
    assert np.trace(np.linalg.solve(H, G)) >= tr_root**2 * (1 - REL)


def test_bad_input():
    G = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="eta must be > 0"):
        bounds.adagrad_full_regret_bound(G, 1.0, 0.0)
    with pytest.raises(ValueError, match="D must be >= 0"):
        bounds.adagrad_full_regret_bound(G, -1.0, 1.0)
    with pytest.raises(ValueError, match="delta must be in"):
        bounds.adagrad_full_regret_bound(G, 1.0, 1.0, delta=-0.1)
    with pytest.raises(ValueError, match="delta_mode must be one of"):
        bounds.adagrad_full_regret_bound(G, 1.0, 1.0, delta_mode="middle")
    with pytest.raises(ValueError, match=r"G must be a tensor of shape B \+ \(d, d\)"):
        bounds.adagrad_full_regret_bound(torch.ones(3, 2, dtype=torch.float64), 1.0, 1.0)
    with pytest.raises(ValueError, match="ell must be >= 1; got 0"):
        bounds.omega_ell(torch.ones(3, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="form must be one of"):
        bounds.s_adagrad_regret_bound(G, 1.0, 1.0, 2, form="thm4")
    with pytest.raises(ValueError, match="form='chain' needs rho"):
        bounds.s_adagrad_regret_bound(G, 1.0, 1.0, 2, form="chain")
    with pytest.raises(ValueError, match="rho .* must be >= 0"):
        bounds.s_adagrad_regret_bound(G, 1.0, 1.0, 2, form="chain", rho=-1.0)
    with pytest.raises(ValueError, match="T must be >= 0"):
        bounds.ogd_regret_bound(1.0, 1.0, -1)
    with pytest.raises(ValueError, match="sum_sq must be"):
        bounds.adagrad_diag_regret_bound(torch.tensor([-1.0], dtype=torch.float64), 1.0, 1.0)
    with pytest.raises(TypeError, match="D must be a real number or a tensor"):
        bounds.adaptive_coefficient("1", 1.0)


def test_batched_bounds():
    """A batch of G's (and batch-shaped D, η) gives the per-matrix values."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, 10, 4, generator=gen, dtype=torch.float64)
    G = A.transpose(-1, -2) @ A
    D = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = bounds.s_adagrad_regret_bound(G, D, 0.5, 2, form="thm3")
    assert out.shape == (3,)
    for i in range(3):
        torch.testing.assert_close(
            out[i], bounds.s_adagrad_regret_bound(G[i], float(D[i]), 0.5, 2, form="thm3")
        )


@pytest.mark.parametrize("check", sketches.CHECKS + adagrad_regret.CHECKS, ids=lambda c: c.name)
def test_verify_checks_hold(check):
    """Every check of this package holds (measured ≤ bound) on its fast instances."""
    result = run_check(check, fast=True)
    assert result.holds, (result.worst_measured, result.worst_bound)
