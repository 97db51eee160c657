"""Frequent Directions on hypothesis-generated streams, against brute-force float64 Gram matrices (docs/theory/sketching.md §B1, §B2).

Tolerances. Every comparison below is between the sketch and an exact Gram matrix; the sketch's only errors are
(i) round-off: each FD step is one SVD whose backward error in the Gram is ≲ (k + r)·ε·‖Z‖² ≤ (ℓ + r)·ε·λ_1(G_T),
summed over T steps, plus one eigvalsh of a d×d difference (≲ d·ε·λ_1); and (ii) the B2 threshold, which drops
singular values ≤ τσ_1, i.e. eigenvalues ≤ τ²λ_1 per step. Hence the absolute slack
    tol = 8·(T·(ℓ + r) + d)·ε·λ_1(G_T) + T·ℓ·τ²·λ_1(G_T)
(8 for the constants of LAPACK's bounds). The spec's ℓτλ_1 is looser and not needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from memopt_theory.bounds.quantities import omega_ell, psd_eigvals_desc
from memopt_theory.sketches import (
    FDState,
    fd_classic_covariance,
    fd_classic_init,
    fd_classic_update,
    fd_covariance_error_bound,
    fd_init,
    fd_threshold,
    fd_update,
    rfd_covariance,
    sketch_covariance,
    sketchy_covariance,
)

EPS = float(np.finfo(np.float64).eps)
_vals = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)


@st.composite
def streams(draw, *, max_T=30, max_d=8, ell_over=2, low_rank=False):
    """(A, ℓ): rows a_t of a stream, T ≤ max_T, d ≤ max_d, 1 ≤ ℓ ≤ d + ell_over; optionally of low rank."""
    T, d = draw(st.integers(1, max_T)), draw(st.integers(1, max_d))
    ell = draw(st.integers(2 if low_rank else 1, d + ell_over))
    if low_rank:  # rank r ≤ ℓ − 1 needs ℓ ≥ 2
        r = draw(st.integers(1, min(ell - 1, d)))
        C = draw(arrays(np.float64, (T, r), elements=_vals))
        B = draw(
            arrays(np.float64, (r, d), elements=st.floats(-1, 1, allow_nan=False, allow_subnormal=False))
        )
        A = C @ B
    else:
        A = draw(arrays(np.float64, (T, d), elements=_vals))
    return torch.from_numpy(A), ell


def _tol(A: torch.Tensor, ell: int, r: int = 1) -> float:
    T, d = A.shape
    lam1 = float(torch.linalg.matrix_norm(A, ord=2) ** 2)
    tau = fd_threshold(d, ell, torch.float64)
    return 8 * (T * (ell + r) + d) * EPS * lam1 + T * ell * tau**2 * lam1 + 1e-300


def _run(A: torch.Tensor, ell: int, beta: float = 1.0):
    state, rhos = fd_init(A.shape[1], ell), []
    for a in A:
        state, rho_t = fd_update(state, a[:, None], ell, beta=beta)
        rhos.append(float(rho_t))
    return state, rhos


def _eigs(M: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvalsh(0.5 * (M + M.T))


# ---------------------------------------------------------------------------------------------------------
# Classic FD (B1)


@settings(max_examples=60, deadline=None)
@given(streams(max_T=40))
def test_classic_fd_covariance_bound_for_every_k(stream):
    """0 ⪯ AᵀA − BᵀB ⪯ ΔI and ‖AᵀA − BᵀB‖_2 ≤ Δ ≤ ‖A − A_k‖²_F/(ℓ−k) for every 0 ≤ k < ℓ (B1, brute force)."""
    A, ell = stream
    state = fd_classic_init(A.shape[1], ell)
    for a in A:
        state = fd_classic_update(state, a)
    E = A.T @ A - fd_classic_covariance(state)
    lam = _eigs(E)
    tol = _tol(A, 2 * ell)  # the buffer holds 2ℓ rows
    delta = float(state.shrink)
    assert lam[0] >= -tol  # BᵀB ⪯ AᵀA
    assert lam[-1] <= delta + tol  # AᵀA − BᵀB ⪯ ΔI
    sig2 = torch.linalg.svdvals(A) ** 2
    tails = [float(sig2[k:].sum()) for k in range(min(ell, len(sig2) + 1))]
    for k, tail in enumerate(tails):
        assert delta <= tail / (ell - k) + tol, k
    assert float(lam.abs().max()) <= float(fd_covariance_error_bound(A, ell)) + tol


@settings(max_examples=60, deadline=None)
@given(streams(max_T=40), st.data())
def test_classic_fd_projection_bound(stream, data):
    """B1 [reconstructed]: for 0 ≤ k < ℓ, ‖A − A·V_kV_kᵀ‖²_F ≤ ℓ/(ℓ−k)·‖A − A_k‖²_F, V_k = top-k right singular
    vectors of the sketch B. Derivation: ‖A − AV_kV_kᵀ‖²_F = ‖A‖²_F − ‖AV_k‖²_F, and ‖AV_k‖²_F ≥ ‖BV_k‖²_F ≥
    Σ_{i≤k} ‖Bu_i‖² ≥ Σ_{i≤k} (‖Au_i‖² − Δ) = ‖A_k‖²_F − kΔ (P1, Ky Fan, P2; u_i = A's top right singular
    vectors), so the error is ≤ ‖A − A_k‖²_F + kΔ ≤ (1 + k/(ℓ−k))‖A − A_k‖²_F by P3's Δ ≤ ‖A − A_k‖²_F/(ℓ−k)."""
    A, ell = stream
    k = data.draw(st.integers(0, ell - 1))
    state = fd_classic_init(A.shape[1], ell)
    for a in A:
        state = fd_classic_update(state, a)
    Vk = torch.linalg.svd(state.B, full_matrices=False)[2][:k].T  # d × k (fewer if B has fewer rows)
    err = float(((A - A @ Vk @ Vk.T) ** 2).sum())
    tail = float((torch.linalg.svdvals(A) ** 2)[k:].sum())
    # the Gram round-off of the module docstring enters once per projected direction and once for ‖A‖²_F
    assert err <= ell / (ell - k) * tail + _tol(A, 2 * ell) * (k + 1)


@settings(max_examples=30, deadline=None)
@given(streams(max_T=12))
def test_classic_fd_exact_until_first_shrink(stream):
    """At most 2ℓ rows: the buffer is A itself, BᵀB = AᵀA bit for bit in the rows and Δ = 0."""
    A, ell = stream
    A = A[: 2 * ell]
    state = fd_classic_init(A.shape[1], ell)
    for a in A:
        state = fd_classic_update(state, a)
    assert torch.equal(state.B[: len(A)], A) and float(state.shrink) == 0.0


# ---------------------------------------------------------------------------------------------------------
# Sketchy's FD-update (B2)


@settings(max_examples=80, deadline=None)
@given(streams())
def test_sandwich_and_lemma1(stream):
    """Ḡ_T ⪯ G_T ⪯ Ḡ_T + ρ_{1:T}I (B2(a)), ‖G_T − Ḡ_T‖_2 ≤ ρ_{1:T} (d), ρ_{1:T} ≤ Ω_ℓ ≤ λ_{ℓ:d} (Lemma 1, B2(c))."""
    A, ell = stream
    state, _ = _run(A, ell)
    G = A.T @ A
    Gbar = sketch_covariance(state)
    rho = float(state.rho)
    tol = _tol(A, ell)
    assert float(_eigs(G - Gbar)[0]) >= -tol
    assert float(_eigs(Gbar + rho * torch.eye(G.shape[0], dtype=G.dtype) - G)[0]) >= -tol
    assert float(torch.linalg.matrix_norm(G - Gbar, ord=2)) <= rho + tol
    lam = psd_eigvals_desc(G)
    omega = float(omega_ell(lam, ell))
    assert rho <= omega + tol
    if ell <= G.shape[0]:
        assert omega <= float(lam[ell - 1 :].sum()) + tol


@settings(max_examples=60, deadline=None)
@given(streams(), st.integers(1, 3), st.data())
def test_per_step_sandwich_and_trace_identity_rank_r(stream, r, data):
    """Every step, with M_t = F_tF_tᵀ of rank r: Ḡ_{t−1} + M_t − ρ_tI ⪯ Ḡ_t ⪯ Ḡ_{t−1} + M_t (B2(a)) and
    tr(Ḡ_{t−1} + M_t) − tr Ḡ_t = ℓρ_t + Σ_{i>ℓ} λ_i^{(t)} ≥ ℓρ_t (B2(b)); for r = 1 the identity is ℓρ_t."""
    A, ell = stream
    d = A.shape[1]
    F = data.draw(arrays(np.float64, (len(A), d, r), elements=_vals))
    F = torch.from_numpy(F)
    state = fd_init(d, ell)
    tol = _tol(F.reshape(-1, d), ell, r)
    for Ft in F:
        before = sketch_covariance(state) + Ft @ Ft.T
        state, rho_t = fd_update(state, Ft, ell)
        after = sketch_covariance(state)
        rho_t = float(rho_t)
        assert float(_eigs(before - after)[0]) >= -tol
        assert float(_eigs(after - before + rho_t * torch.eye(d, dtype=F.dtype))[0]) >= -tol
        lam = psd_eigvals_desc(before)
        gap = float(torch.trace(before) - torch.trace(after))
        expected = ell * rho_t + float(lam[ell:].sum())
        assert abs(gap - expected) <= tol
        if r == 1:
            assert abs(gap - ell * rho_t) <= tol


@settings(max_examples=50, deadline=None)
@given(streams(low_rank=True))
def test_exact_when_rank_below_ell(stream):
    """A stream of rank ≤ ℓ − 1: ρ_t = 0 (up to the threshold) and Ḡ_t = G_t (B2 edge cases)."""
    A, ell = stream
    state, _ = _run(A, ell)
    G = A.T @ A
    tol = _tol(A, ell)
    assert float(state.rho) <= tol
    assert float(torch.linalg.matrix_norm(G - sketch_covariance(state), ord=2)) <= tol


@settings(max_examples=40, deadline=None)
@given(streams(ell_over=0))
def test_ell_equals_d_is_exact_with_rho(stream):
    """ℓ = d: all eigenvalues shift by ρ_t and ρ_t is added back, so Ḡ_t + ρ_{1:t}I = G_t (B2 oracles)."""
    A, _ = stream
    d = A.shape[1]
    state, _ = _run(A, d)
    G = A.T @ A
    assert float(torch.linalg.matrix_norm(sketchy_covariance(state) - G, ord=2)) <= _tol(A, d)


@settings(max_examples=40, deadline=None)
@given(streams(), st.integers(1, 3))
def test_ell_above_d_is_exact(stream, extra):
    """ℓ > d: no eigenvalue escapes (ρ_t = 0 exactly: there is no ℓ-th singular value) and Ḡ_t = G_t."""
    A, _ = stream
    d = A.shape[1]
    state, rhos = _run(A, d + extra)
    assert all(r == 0.0 for r in rhos)
    assert float(torch.linalg.matrix_norm(sketch_covariance(state) - A.T @ A, ord=2)) <= _tol(A, d + extra)


@settings(max_examples=50, deadline=None)
@given(streams(), st.floats(0.5, 0.999))
def test_ew_fd_observation6(stream, beta):
    """EW-FD (§4.3, Observation 6): with G^{(β)}_T = Σ_t β^{T−t}g_tg_tᵀ,
    0 ⪯ G^{(β)}_T − Ḡ_T ⪯ ρ^{(β)}_{1:T}I and ρ^{(β)}_{1:T} ≤ min_{k<ℓ} Σ_{i>k} λ_i(G^{(β)}_T)/(ℓ−k)."""
    A, ell = stream
    T, d = A.shape
    state, _ = _run(A, ell, beta=beta)
    w = torch.tensor([beta ** (T - 1 - t) for t in range(T)], dtype=A.dtype)
    Gb = (A * w[:, None]).T @ A
    Gbar = sketch_covariance(state)
    rho = float(state.rho)
    tol = _tol(A, ell)
    assert float(_eigs(Gb - Gbar)[0]) >= -tol
    assert float(_eigs(Gbar + rho * torch.eye(d, dtype=A.dtype) - Gb)[0]) >= -tol
    assert rho <= float(omega_ell(psd_eigvals_desc(Gb), ell)) + tol


@settings(max_examples=50, deadline=None)
@given(streams())
def test_rfd_half_error(stream):
    """RFD with α_0 = 0 (Luo et al. 2019): ‖G_T − Ḡ_T − (ρ_{1:T}/2)I‖_2 ≤ ρ_{1:T}/2 ≤ Ω_ℓ/2."""
    A, ell = stream
    state, _ = _run(A, ell)
    G = A.T @ A
    tol = _tol(A, ell)
    err = float(torch.linalg.matrix_norm(G - rfd_covariance(state), ord=2))
    rho = float(state.rho)
    assert err <= rho / 2 + tol
    assert rho / 2 <= float(omega_ell(psd_eigvals_desc(G), ell)) / 2 + tol


def test_measured_instance_of_the_spec():
    """docs/theory/sketching.md §B2 reports d = 30, ℓ = 6, T = 200: ρ_{1:T} ≤ Ω_ℓ with a trace identity to 1e-12. Here the
    same sizes on a seeded decaying spectrum: the identity holds to 1e-12·tr G_T and the bound strictly."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(200, 30, generator=gen, dtype=torch.float64) * torch.linspace(
        2, 0.1, 30, dtype=torch.float64
    )
    state, _ = _run(A, 6)
    G = A.T @ A
    trG = float(torch.trace(G))
    assert abs(trG - float(torch.trace(sketch_covariance(state))) - 6 * float(state.rho)) <= 1e-12 * trG
    assert float(state.rho) < float(omega_ell(psd_eigvals_desc(G), 6))


def test_zero_gradient_changes_nothing():
    gen = torch.Generator().manual_seed(1)
    state = fd_init(5, 3)
    for a in torch.randn(6, 5, generator=gen, dtype=torch.float64):
        state, _ = fd_update(state, a[:, None], 3)
    new, rho_t = fd_update(state, torch.zeros(5, 1, dtype=torch.float64), 3)
    assert float(rho_t) == 0.0 and float(new.rho) == float(state.rho)
    torch.testing.assert_close(sketch_covariance(new), sketch_covariance(state), rtol=1e-13, atol=1e-13)


def test_batch_equals_loop():
    """One batched call advances every seed as its own run would (batched LAPACK: same routine per matrix)."""
    gen = torch.Generator().manual_seed(2)
    A = torch.randn(3, 10, 6, generator=gen, dtype=torch.float64)
    bstate = fd_init(6, 3, batch=(3,))
    for t in range(10):
        bstate, _ = fd_update(bstate, A[:, t, :, None], 3)
    for i in range(3):
        s, _ = _run(A[i], 3)
        torch.testing.assert_close(sketch_covariance(FDState(*(x[i] for x in bstate))), sketch_covariance(s))
        torch.testing.assert_close(bstate.rho[i], s.rho)


def test_state_layout_and_dtype():
    st32 = fd_init(7, 3, batch=(2,), dtype=torch.float32)
    assert st32.U.shape == (2, 7, 2) and st32.s.shape == (2, 2) and st32.rho.shape == (2,)
    assert fd_init(4, 10).U.shape == (4, 4)  # k = min(ℓ − 1, d)
    new, _ = fd_update(st32, torch.ones(2, 7, 1, dtype=torch.float64), 3)
    assert new.U.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_input_raises(bad):
    F = torch.ones(4, 1, dtype=torch.float64)
    F[2, 0] = bad
    with pytest.raises(ValueError, match="F must be finite"):
        fd_update(fd_init(4, 2), F, 2)
    with pytest.raises(ValueError, match="a must be finite"):
        fd_classic_update(fd_classic_init(4, 2), F[:, 0])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="ell must be >= 1; got 0"):
        fd_init(4, 0)
    with pytest.raises(ValueError, match="d must be >= 1; got -2"):
        fd_init(-2, 3)
    with pytest.raises(TypeError, match="ell must be an int"):
        fd_init(4, 2.5)
    with pytest.raises(ValueError, match="ell=5 does not match the state"):
        fd_update(fd_init(4, 3), torch.ones(4, 1, dtype=torch.float64), 5)
    with pytest.raises(ValueError, match=r"F must have shape \(4,\) \+ \(r,\)"):
        fd_update(fd_init(4, 3), torch.ones(5, 1, dtype=torch.float64), 3)
    with pytest.raises(TypeError, match="F must have a floating dtype"):
        fd_update(fd_init(4, 3), torch.ones(4, 1, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match=r"beta must be in \(0.0, 1.0\]; got 0"):
        fd_update(fd_init(4, 3), torch.ones(4, 1, dtype=torch.float64), 3, beta=0.0)
    with pytest.raises(ValueError, match=r"beta must be in \(0.0, 1.0\]; got 1.5"):
        fd_update(fd_init(4, 3), torch.ones(4, 1, dtype=torch.float64), 3, beta=1.5)
    with pytest.raises(ValueError, match=r"a must have shape \(4,\)"):
        fd_classic_update(fd_classic_init(4, 2), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha0 must be in"):
        rfd_covariance(fd_init(4, 3), alpha0=-1.0)
