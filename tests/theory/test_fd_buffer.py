"""Buffered FD with a tracked Gram matrix (memopt_theory.sketches.fd_buffer_*) and the methods' ``sketch="buffer"``.

Every check compares with a brute-force float64 computation on the same rows: G_t = A_tᵀA_t, eigh of dense
matrices. The guarantee under test (fd_buffer_update's docstring): (a) the per-step sandwich
Ḡ_{t−1} + a_taᵀ_t − δ_tI ⪯ Ḡ_t ⪯ Ḡ_{t−1} + a_taᵀ_t, (b) tr G_t − tr Ḡ_t ≥ ℓΔ_t, (c) Δ_t ≤ Ω_ℓ.

Tolerances. The buffer's only errors are round-off: each append adds a row exactly (Ḡ is RᵀR of the stored
rows, which the dense check recomputes), each shrink rotates the rows by K's eigenvectors — backward error
≲ 2ℓ·ε·λ_1 in the Gram — and drops eigenvalues ≤ τ_K·λ_1 (τ_K = 8ℓε, sketches._gram_threshold); one eigvalsh
of a d×d difference adds ≲ d·ε·λ_1. Hence the absolute slack 8·(T·2ℓ + d)·ε·λ_1(G_T) + T·τ_K·λ_1(G_T)
(8 for LAPACK's constants), the same form as tests/theory/test_sketches.py's for the exact update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from memopt_theory import methods
from memopt_theory.bounds import s_adagrad_regret_bound
from memopt_theory.bounds.quantities import omega_ell, psd_eigvals_desc
from memopt_theory.memory import counted_scalars
from memopt_theory.methods.adagrad_full import StateTooLarge
from memopt_theory.sketches import (
    fd_buffer_covariance,
    fd_buffer_init,
    fd_buffer_rows,
    fd_buffer_update,
    fd_covariance_error_bound,
)

EPS = float(np.finfo(np.float64).eps)
_vals = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)


@st.composite
def streams(draw, *, max_T=40, max_d=8):
    """(A, ℓ) with T ≤ max_T rows in R^d, d ≤ max_d, 1 ≤ ℓ ≤ d + 1: most draws shrink several times."""
    T, d = draw(st.integers(1, max_T)), draw(st.integers(1, max_d))
    ell = draw(st.integers(1, d + 1))
    if draw(st.booleans()):  # low rank: the buffer's eigenvalue threshold and zero rows get exercised
        r = draw(st.integers(1, d))
        C = draw(arrays(np.float64, (T, r), elements=_vals))
        B = draw(
            arrays(np.float64, (r, d), elements=st.floats(-1, 1, allow_nan=False, allow_subnormal=False))
        )
        return torch.from_numpy(C @ B), ell
    return torch.from_numpy(draw(arrays(np.float64, (T, d), elements=_vals))), ell


def _tol(A: torch.Tensor, ell: int) -> float:
    T, d = A.shape
    lam1 = float(torch.linalg.matrix_norm(A, ord=2) ** 2)
    return 8 * (T * 2 * ell + d) * EPS * lam1 + T * 8 * ell * EPS * lam1 + 1e-300


def _min_eig(M: torch.Tensor) -> float:
    return float(torch.linalg.eigvalsh(0.5 * (M + M.T))[0])


@settings(max_examples=80, deadline=None)
@given(streams())
def test_per_step_sandwich_trace_and_lemma1(stream):
    """(a) every step; (b) tr G_t − tr Ḡ_t ≥ ℓΔ_t every step; (c) Δ_T ≤ Ω_ℓ; K = RRᵀ kept exactly."""
    A, ell = stream
    T, d = A.shape
    tol = _tol(A, ell)
    eye = torch.eye(d, dtype=A.dtype)
    state = fd_buffer_init(d, ell)
    G = torch.zeros(d, d, dtype=A.dtype)
    for a in A:
        prev = fd_buffer_covariance(state)
        state, delta = fd_buffer_update(state, a)
        G = G + torch.outer(a, a)
        cur = fd_buffer_covariance(state)
        up = prev + torch.outer(a, a)
        assert _min_eig(up - cur) >= -tol  # Ḡ_t ⪯ Ḡ_{t−1} + aaᵀ
        assert _min_eig(cur - up + float(delta) * eye) >= -tol  # Ḡ_t ⪰ Ḡ_{t−1} + aaᵀ − δ_tI
        assert float(torch.trace(G) - torch.trace(cur)) >= ell * float(state.rho) - tol
        R = fd_buffer_rows(state)
        assert torch.allclose(state.K, R @ R.T, rtol=0, atol=tol)
    rho = float(state.rho)
    assert _min_eig(G - fd_buffer_covariance(state)) >= -tol
    assert _min_eig(fd_buffer_covariance(state) + rho * eye - G) >= -tol
    assert rho <= float(fd_covariance_error_bound(A, ell)) + tol


@settings(max_examples=40, deadline=None)
@given(streams())
def test_exact_until_first_shrink(stream):
    """At most 2ℓ rows: the buffer holds A itself (bit for bit) and Δ = 0."""
    A, ell = stream
    A = A[: 2 * ell]
    state = fd_buffer_init(A.shape[1], ell)
    for a in A:
        state, _ = fd_buffer_update(state, a)
    assert torch.equal(fd_buffer_rows(state)[: len(A)], A) and float(state.rho) == 0.0


@pytest.mark.parametrize("ell", [4, 32])
def test_tight_on_orthonormal_rows(ell):
    """A = I_T: the first shrink (2ℓ unit eigenvalues) and every later one (ℓ + 1 of them) each remove δ = 1,
    at rows 2ℓ + 1 + k(ℓ + 1), so Δ_T = 1 + ⌊(T − 2ℓ − 1)/(ℓ + 1)⌋ exactly, against Ω_ℓ = T/ℓ: the ratio → ℓ/(ℓ + 1) (0.97 at ℓ = 32),
    so the bound (c) cannot be improved by more than that factor."""
    T = 2 * ell + 20 * (ell + 1)
    A = torch.eye(T, dtype=torch.float64)
    state = fd_buffer_init(T, ell)
    for a in A:
        state, _ = fd_buffer_update(state, a)
    expect = 1 + (T - 2 * ell - 1) // (ell + 1)
    omega = float(fd_covariance_error_bound(A, ell))
    assert float(state.rho) == pytest.approx(expect, abs=1e-9)  # unit eigenvalues: δ = 1 up to rounding
    assert omega == pytest.approx(T / ell, rel=1e-12)
    assert float(state.rho) / omega >= ell / (ell + 1) * (
        1 - (2 * ell + 1) / T
    )  # > 0.72 (ℓ=4), > 0.88 (ℓ=32)


def test_adversarial_streams_ratio_below_one():
    """Power-law, low-rank-plus-noise and sign-alternating streams: Δ_T/Ω_ℓ ≤ 1 (c), and > 0.3 on each, so
    the guarantee is not vacuous on streams the figures use."""
    gen = torch.Generator().manual_seed(0)
    d, T, ell = 24, 200, 6
    spectra = {
        "power_law": torch.randn(T, d, generator=gen, dtype=torch.float64) * torch.arange(1, d + 1) ** -0.5,
        "low_rank_noise": torch.randn(T, 3, generator=gen, dtype=torch.float64)
        @ torch.randn(3, d, generator=gen, dtype=torch.float64)
        + 0.1 * torch.randn(T, d, generator=gen, dtype=torch.float64),
        "signs": torch.sign(torch.randn(T, d, generator=gen, dtype=torch.float64)),
    }
    for name, A in spectra.items():
        state = fd_buffer_init(d, ell)
        for a in A:
            state, _ = fd_buffer_update(state, a)
        ratio = float(state.rho) / float(fd_covariance_error_bound(A, ell))
        assert 0.3 < ratio <= 1 + 1e-12, (name, ratio)


def _stream(T=30, d=10, seed=0, batch=()):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((T, *batch, d), generator=gen, dtype=torch.float64) * torch.linspace(2, 0.1, d)


def _inv_root(M: torch.Tensor, p: float, cut: float = 0.0) -> torch.Tensor:
    """M^p by a dense eigh; eigenvalues ≤ cut·λ_max set to 0 (the buffer's Gram threshold 8ℓε: a square root
    of an eigenvalue of rounding size ε·λ_1 would otherwise differ by √ε·√λ_1 from the sketch's exact 0)."""
    lam, Q = torch.linalg.eigh(M)
    lam = torch.where(lam > cut * lam.max(), lam, torch.zeros_like(lam))
    return (Q * lam.pow(p)) @ Q.T


@pytest.mark.parametrize("delta", [0.0, 0.05])
def test_s_adagrad_buffer_direction_is_brute_force(delta):
    """u_t = (RᵀR + (δ + Δ_t)I)^{−1/2}g_t, from a dense eigh of the same rows, at every step (Δ_t > 0 after
    the first shrink; δ = 0 before it is the pseudo-inverse on span(g_1..g_t)); the metric is its inverse."""
    m = methods.get("s_adagrad")
    cfg = m.Config(ell=3, delta=delta, sketch="buffer")
    A = _stream()
    state = m.init((10,), cfg)
    for t, g in enumerate(A):
        u, state = m.update(g, state, cfg)
        Gb = fd_buffer_covariance(state.sketch)
        c = float(state.sketch.rho) + delta
        if c > 0:
            ref = _inv_root(Gb + c * torch.eye(10, dtype=g.dtype), -0.5) @ g
            H = m.metric(state, cfg).dense()
            assert torch.allclose(H, _inv_root(Gb + c * torch.eye(10, dtype=g.dtype), 0.5), atol=1e-10)
        else:  # pseudo-inverse: eigenvalues ≤ 8ℓε·λ_1 count as 0 (the buffer's Gram threshold)
            lam, Q = torch.linalg.eigh(Gb)
            keep = lam > 8 * 3 * EPS * lam.max()
            ref = (Q[:, keep] * lam[keep].rsqrt()) @ (Q[:, keep].T @ g)
        # 1e-9·‖u‖: the direction's condition number is √(λ_1/c) ≲ 10³ here, times rounding ~1e-13
        assert torch.allclose(u, ref, rtol=0, atol=1e-9 * float(ref.norm())), t


def test_s_adagrad_buffer_equals_full_adagrad_before_a_shrink():
    """T ≤ 2ℓ: no shrink, Ḡ_t = G_t exactly, so S-AdaGrad (buffer) = full-matrix AdaGrad with δ inside."""
    sa, fa = methods.get("s_adagrad"), methods.get("adagrad_full")
    cs, cf = sa.Config(ell=8, delta=0.01, sketch="buffer"), fa.Config(delta=0.01)
    A = _stream(T=16, d=6, batch=(2,))
    s1, s2 = sa.init((6,), cs, batch=(2,)), fa.init((6,), cf, batch=(2,))
    for g in A:
        u1, s1 = sa.update(g, s1, cs)
        u2, s2 = fa.update(g, s2, cf)
        assert torch.allclose(u1, u2, rtol=1e-9, atol=1e-12)


def test_ada_fd_buffer_direction_is_brute_force():
    """u_t = (δI + (RᵀR)^{1/2})^{−1}g_t (Ada-FD's H_t, no escaped mass added) at every step, batched seeds."""
    m = methods.get("ada_fd")
    cfg = m.Config(ell=3, delta=0.1, sketch="buffer")
    A = _stream(batch=(2,))
    state = m.init((10,), cfg, batch=(2,))
    eye = torch.eye(10, dtype=torch.float64)
    for g in A:
        u, state = m.update(g, state, cfg)
        for b in range(2):
            Gb = fd_buffer_covariance(state.sketch)[b]
            H = _inv_root(Gb, 0.5, cut=8 * 3 * EPS) + 0.1 * eye
            assert torch.allclose(u[b], torch.linalg.solve(H, g[b]), atol=1e-10)
            assert torch.allclose(m.metric(state, cfg).dense()[b], H, atol=1e-10)


@pytest.mark.parametrize("name", ["s_adagrad", "ada_fd"])
def test_buffer_memory_model_is_what_the_state_holds(name):
    """The closed form 2ℓN + 4ℓ² + 2 equals the floating scalars the state holds (for ℓ < N and ℓ > N)."""
    m = methods.get(name)
    for shape, ell in (((7, 3), 4), ((5,), 9)):
        cfg = m.Config(ell=ell, sketch="buffer")
        assert (
            counted_scalars(m.init(shape, cfg))
            == m.memory(shape, cfg)
            == 2 * ell * math.prod(shape) + 4 * ell**2 + 2
        )


def test_buffer_regret_bound_holds_on_a_run():
    """Corollary 4 restated for the buffer (ρ_{1:T} := Δ_T ≤ Ω_ℓ): the run's linearised regret ≤ the chain
    bound with the run's Δ_T ≤ the Cor. 4 bound, on a low-rank-plus-noise linear stream in the unit ball."""
    from online_convex.domains import make_domain
    from online_convex.learners import Learner
    from online_convex.simulate import run
    from online_convex.streams import make_stream

    data, problem = make_stream("low_rank_noise", shape=(12,), T=300, seeds=3, rank=3)
    cfg = methods.get("s_adagrad").Config(ell=3, sketch="buffer")
    L = Learner("s_adagrad", cfg, eta="theory", domain=make_domain("l2_ball", (12,), radius=1.0))
    tr = run(L, problem, data)
    a = data.a.movedim(0, -2)  # (B, T, d)
    G = a.transpose(-1, -2) @ a
    st = L.init((12,), (3,))
    for g in data.a:  # the directions do not depend on x for a linear loss: replay the sketch
        _, st = methods.get("s_adagrad").update(g, st, cfg)
    D, eta = 2.0, 2.0 / math.sqrt(2)
    chain = s_adagrad_regret_bound(G, D, eta, 3, form="chain", rho=st.sketch.rho)
    cor4 = s_adagrad_regret_bound(G, D, eta, 3, form="cor4")
    assert (torch.from_numpy(tr.linear_regret_upper[-1]) <= chain).all()
    assert (chain <= cor4 + 1e-9 * cor4).all()  # Δ_T ≤ Ω_ℓ, so the chain is the tighter link
    assert tr.bound is not None and float(np.max(tr.regret_upper / tr.bound)) <= 1


def test_buffer_bad_config_and_input():
    with pytest.raises(ValueError, match="sketch"):
        methods.get("s_adagrad").Config(sketch="fast")
    with pytest.raises(ValueError, match="finite"):
        fd_buffer_update(fd_buffer_init(3, 2), torch.tensor([1.0, float("nan"), 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        fd_buffer_update(fd_buffer_init(3, 2), torch.ones(4, dtype=torch.float64))


def test_adagrad_full_refused_with_its_memory(monkeypatch):
    """d = 2¹⁸ would need 8d² = 549,755,813,888 bytes: refused before allocating, the message says so; the
    limit is $MEMOPT_MAX_STATE_BYTES when set (here just below and just above a 10×10 statistic's 800 bytes)."""
    m = methods.get("adagrad_full")
    with pytest.raises(StateTooLarge, match="549,755,813,888 bytes"):
        m.init((2**18,), m.Config())
    monkeypatch.setenv("MEMOPT_MAX_STATE_BYTES", "799")
    with pytest.raises(MemoryError, match="800 bytes"):
        m.init((10,), m.Config())
    monkeypatch.setenv("MEMOPT_MAX_STATE_BYTES", "800")
    assert m.init((10,), m.Config()).S.shape == (10, 10)
    monkeypatch.setenv("MEMOPT_MAX_STATE_BYTES", "lots")
    with pytest.raises(ValueError, match="MEMOPT_MAX_STATE_BYTES"):
        m.init((10,), m.Config())


def test_omega_of_the_tight_instance_is_the_spectrum_formula():
    """fd_covariance_error_bound(A) = Ω_ℓ of AᵀA's eigenvalues (the quantity (c) is measured against)."""
    A = _stream(T=20, d=7)
    assert float(fd_covariance_error_bound(A, 3)) == pytest.approx(
        float(omega_ell(psd_eigvals_desc(A.T @ A), 3)), rel=1e-10
    )


def test_row_span_metric_projection_equals_the_explicit_basis():
    """Π_ball^H(y) with the buffer's implicit metric = with LowRankPlusScaled on the explicit orthonormal basis
    V = RᵀWΛ^{−1/2} (same H, built densely here): the secular-equation projection is the same computation, so
    they agree to rounding (1e-12 on unit-scale y); both lie on the sphere."""
    from memopt_theory.metric import LowRankPlusScaled
    from online_convex.domains import make_domain

    m = methods.get("s_adagrad")
    cfg = m.Config(ell=3, delta=0.01, sketch="buffer")
    state = m.init((10,), cfg, batch=(2,))
    for g in _stream(T=11, batch=(2,)):
        _, state = m.update(g, state, cfg)
    H = m.metric(state, cfg)
    lam, Q = torch.linalg.eigh(H.dense())
    explicit = LowRankPlusScaled(U=Q, s=lam, c=H.c, shape=(10,))
    assert torch.allclose(explicit.dense(), H.dense(), atol=1e-12)
    y = 3 * torch.randn(2, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ball = make_domain("l2_ball", (10,), radius=1.0)
    x1, x2 = ball.project(y, H), ball.project(y, explicit)
    assert torch.allclose(x1, x2, atol=1e-12)
    assert torch.allclose(x1.norm(dim=-1), torch.ones(2, dtype=torch.float64), atol=1e-12)
