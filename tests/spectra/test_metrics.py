"""spectra.metrics on spectra whose answers are known in closed form, and against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import ortho_group

from spectra import metrics

EPS = np.finfo(np.float64).eps


def _psd(rng: np.random.Generator, d: int, r: int) -> np.ndarray:
    G = rng.standard_normal((d, r))
    return G @ G.T


spectra_st = (
    st.integers(1, 12)
    .flatmap(
        # 0 or in [1e-6, 1e3]: the brute-force loops below square λ, which must not underflow
        lambda d: arrays(np.float64, (d,), elements=st.one_of(st.just(0.0), st.floats(1e-6, 1e3)))
    )
    .filter(lambda a: a.sum() > 0)
)


# --- known answers ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 12), data=st.data())
def test_rank_r_spectrum_has_top_r_mass_one(d, data):
    """λ with exactly r positive entries: top-r mass 1, tail Σ_{i>r} λ_i = 0, k for 100 % mass = r."""
    r = data.draw(st.integers(1, d))
    head = data.draw(arrays(np.float64, (r,), elements=st.floats(1e-3, 1e3)))
    lam = np.concatenate([head, np.zeros(d - r)])
    np.random.default_rng(0).shuffle(lam)  # order must not matter: the functions sort
    assert metrics.top_k_mass(lam, r) == 1.0
    assert metrics.tail_mass(lam, r) == 0.0
    assert metrics.k_for_mass(lam, 1.0) == r
    assert 1.0 <= metrics.effective_rank(lam) <= r * (1 + 1e-12)  # entropy of r atoms ≤ log r
    assert 1.0 <= metrics.participation_ratio(lam) <= r * (1 + 1e-12)  # Cauchy–Schwarz


def test_rank_r_matrix_through_eigh():
    """F = G Gᵀ with G (d, r): eigh's d − r round-off eigenvalues carry at most ~d·ε·λ_max each."""
    rng = np.random.default_rng(1)
    d, r = 30, 4
    lam = np.linalg.eigvalsh(_psd(rng, d, r))  # ascending, possibly tiny negatives
    # (d − r) eigenvalues of size ≤ 10·d·ε·λ_max each, over a trace ≥ λ_max
    assert metrics.top_k_mass(lam, r) >= 1 - (d - r) * 10 * d * EPS


@pytest.mark.parametrize("d", [1, 7, 64])
def test_flat_spectrum(d):
    """λ = c·1_d: top-k mass k/d, effective rank = stable rank = participation ratio = tr/λ_max = d."""
    lam = np.full(d, 3.5)
    for k in range(d + 1):
        # one division of two float sums of ≤ 64 equal terms: a few ulps
        assert metrics.top_k_mass(lam, k) == pytest.approx(k / d, rel=1e-14, abs=1e-15)
        assert metrics.tail_mass(lam, k) == pytest.approx(3.5 * (d - k), rel=1e-14, abs=0)
    for f in (0.5, 0.9, 0.99, 1.0):
        assert metrics.k_for_mass(lam, f) == math.ceil(f * d - 1e-9)  # cumulative mass k/d ≥ f
    for fn in (
        metrics.effective_rank,
        metrics.stable_rank,
        metrics.participation_ratio,
        metrics.intrinsic_dimension,
    ):
        assert fn(lam) == pytest.approx(d, rel=1e-13), fn.__name__  # log/exp of d equal terms: ~d·ε


@settings(max_examples=60, deadline=None)
@given(lam=spectra_st)
def test_against_brute_force(lam):
    """Each metric against its definition written out with Python loops over sorted λ."""
    s = sorted((float(x) for x in lam), reverse=True)
    total = sum(s)
    p = [x / total for x in s]
    erank = math.exp(-sum(q * math.log(q) for q in p if q > 0))  # Roy & Vetterli 2007, eq. (1)–(2)
    pr = total**2 / sum(x * x for x in s)
    sr = sum(x * x for x in s) / s[0] ** 2
    # float64 sums of ≤ 12 terms and one log/exp: relative error ≲ 1e-13
    assert metrics.effective_rank(lam) == pytest.approx(erank, rel=1e-12)
    assert metrics.participation_ratio(lam) == pytest.approx(pr, rel=1e-12)
    assert metrics.stable_rank(lam) == pytest.approx(sr, rel=1e-12)
    assert metrics.intrinsic_dimension(lam) == pytest.approx(total / s[0], rel=1e-12)
    curve = metrics.cumulative_mass(lam)
    for k in range(len(s) + 1):
        assert metrics.top_k_mass(lam, k) == pytest.approx(sum(s[:k]) / total, rel=1e-12, abs=1e-15)
        assert k == 0 or curve[k - 1] == pytest.approx(sum(s[:k]) / total, rel=1e-12, abs=1e-15)
        assert metrics.tail_mass(lam, k) == pytest.approx(sum(s[k:]), rel=1e-12, abs=1e-12 * total)
    for f in (0.5, 0.9, 0.99):
        k = metrics.k_for_mass(lam, f)
        # smallest k whose head reaches f; the 1e-12 slack covers the two summation orders
        assert sum(s[:k]) >= f * total * (1 - 1e-12)
        assert k == 1 or sum(s[: k - 1]) < f * total * (1 + 1e-12)
    # the ranks are ordered: 1 ≤ stable ≤ participation ≤ erank ≤ rank (Hölder / Rényi entropies of order ∞ ≥ 2 ≥ 1)
    rank = sum(x > 0 for x in s)
    chain = [1.0, sr, pr, metrics.effective_rank(lam), rank]
    assert all(a <= b * (1 + 1e-12) for a, b in zip(chain, chain[1:]))


def test_truncated_spectrum_with_total_matches_full():
    """Top k' eigenvalues plus tr F give the same head-and-total metrics as the full spectrum."""
    lam = np.arange(1, 51) ** -2.0  # power law: the top 10 hold ~95 % of the trace
    head, total = lam[:10], float(lam.sum())
    for k in range(11):
        assert metrics.top_k_mass(head, k, total=total) == pytest.approx(
            metrics.top_k_mass(lam, k), rel=1e-14
        )
        assert metrics.tail_mass(head, k, total=total) == pytest.approx(metrics.tail_mass(lam, k), rel=1e-12)
    assert metrics.intrinsic_dimension(head, total=total) == pytest.approx(metrics.intrinsic_dimension(lam))
    k50 = metrics.k_for_mass(lam, 0.5)
    assert k50 <= 10 and metrics.k_for_mass(head, 0.5, total=total) == k50
    assert metrics.k_for_mass(head, 0.99, total=total) is None  # the head holds < 99 %: unknown, not guessed
    full, part = metrics.summary(lam), metrics.summary(head, dim=50, total=total)
    assert set(part) < set(full) and "effective_rank" not in part
    for key, v in part.items():
        assert v == pytest.approx(full[key], rel=1e-12), key


def test_summary_flat_and_zero():
    d = 40
    s = metrics.summary(np.ones(d))
    assert s["top_mass@0.25"] == pytest.approx(0.25) and s["k_for_mass@0.9"] == 36.0
    assert s["k_frac_for_mass@0.9"] == pytest.approx(0.9) and s["effective_rank"] == pytest.approx(d)
    assert metrics.summary(np.zeros(d)) == {"trace": 0.0, "lambda_max": 0.0}  # an untouched factor


# --- subspaces ---------------------------------------------------------------------------------------------


def test_identical_and_orthogonal_subspaces():
    Q = ortho_group.rvs(12, random_state=3)
    U, V = Q[:, :4], Q[:, 4:9]
    R = ortho_group.rvs(4, random_state=4)
    assert metrics.subspace_overlap(U, U) == pytest.approx(1.0, abs=1e-14)
    assert metrics.subspace_overlap(U, U @ R) == pytest.approx(
        1.0, abs=1e-14
    )  # a basis change is the same subspace
    assert metrics.subspace_overlap(U, Q[:, :8]) == pytest.approx(
        1.0, abs=1e-14
    )  # contained in the larger one
    assert metrics.subspace_overlap(U, V) == pytest.approx(0.0, abs=1e-14)
    assert metrics.subspace_overlap(torch.from_numpy(U), torch.from_numpy(V)) == pytest.approx(0.0, abs=1e-14)


def test_random_subspaces_overlap_k_over_d():
    """V Haar-random (d, k), U fixed: E overlap = k/d and, for independent Haar projections of rank k,
    Var ‖UᵀV‖_F² = 2k²(d−k)² / (d²(d−1)(d+2)) (second moment by Weingarten calculus; a 20 000-draw simulation
    at d=20, k=4 gave 0.0494 against 0.0490). The mean of n draws is within 5 standard errors."""
    d, k, n = 20, 4, 200
    rng = np.random.default_rng(5)
    U = np.eye(d)[:, :k]
    vals = [metrics.subspace_overlap(U, ortho_group.rvs(d, random_state=rng)[:, :k]) for _ in range(n)]
    sd = math.sqrt(2 * k**2 * (d - k) ** 2 / (d**2 * (d - 1) * (d + 2))) / k  # of one overlap = ‖UᵀV‖²/k
    assert abs(np.mean(vals) - k / d) <= 5 * sd / math.sqrt(n)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 10), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_stale_basis_capture(d, seed, data):
    """Unchanged factor: capture = its top-k mass. Any basis: capture ≤ top-k mass of F_new (Ky Fan)."""
    k = data.draw(st.integers(1, d))
    rng = np.random.default_rng(seed)
    F = _psd(rng, d, data.draw(st.integers(1, d)))
    lam, vecs = np.linalg.eigh(F)
    U = vecs[:, ::-1]
    # eigh residuals ~ d·ε·‖F‖ over a trace ≥ ‖F‖
    assert metrics.stale_basis_capture(U, F, k) == pytest.approx(
        metrics.top_k_mass(lam, k), abs=1e2 * d * EPS
    )
    W = ortho_group.rvs(d, random_state=rng) if d > 1 else np.eye(1)
    F_new = _psd(rng, d, d)
    assert (
        metrics.stale_basis_capture(W, F_new, k)
        <= metrics.top_k_mass(np.linalg.eigvalsh(F_new), k) + 1e2 * d * EPS
    )


# --- bad input ---------------------------------------------------------------------------------------------


def test_negative_eigenvalues():
    lam = np.array([1.0, 0.5, -1e-17])  # within round-off: taken as 0
    assert metrics.top_k_mass(lam, 2) == 1.0
    with pytest.raises(ValueError, match=r"lam must be eigenvalues of a PSD matrix.*got min -0\.01"):
        metrics.top_k_mass(np.array([1.0, -0.01]), 1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.top_k_mass(np.ones(5), 6), r"k must be in \[0, 5\].*got 6"),
        (lambda: metrics.tail_mass(np.ones(5), -1), r"k must be in \[0, 5\].*got -1"),
        (lambda: metrics.stale_basis_capture(np.eye(3), np.eye(3), 0), r"k must be in \[1, 3\].*got 0"),
        (lambda: metrics.k_for_mass(np.ones(3), 0.0), r"frac must be a real in \(0, 1\]; got 0.0"),
        (lambda: metrics.k_for_mass(np.ones(3), 1.5), r"frac must be a real in \(0, 1\]; got 1.5"),
        (lambda: metrics.top_k_mass(np.zeros(3), 1), r"sums to 0.0"),
        (lambda: metrics.top_k_mass(np.array([1.0, np.nan]), 1), r"lam must be finite"),
        (lambda: metrics.top_k_mass(np.ones((2, 2)), 1), r"1-D array.*\(2, 2\)"),
        (lambda: metrics.top_k_mass(np.ones(3), 1, total=1.0), r"total=1.0 is below the sum"),
        (lambda: metrics.summary(np.ones(3), dim=5), r"pass total=tr F"),
        (
            lambda: metrics.subspace_overlap(np.ones((4, 2)), np.eye(4)[:, :2]),
            r"U must have orthonormal columns",
        ),
        (
            lambda: metrics.subspace_overlap(np.eye(4)[:, :2], 2 * np.eye(4)[:, :2]),
            r"V must have orthonormal",
        ),
        (lambda: metrics.subspace_overlap(np.eye(4)[:, :2], np.eye(5)[:, :2]), r"same d"),
        (lambda: metrics.stale_basis_capture(np.eye(3), np.eye(4), 1), r"F_new must have shape \(3, 3\)"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_torch_tensors_of_any_float_dtype(dtype):
    """Factors recorded in low precision: λ = (4, 2, 1, 1) is exact in every dtype, so the answers are too."""
    lam = torch.tensor([4.0, 2.0, 1.0, 1.0], dtype=dtype, requires_grad=dtype != torch.bfloat16)
    assert metrics.top_k_mass(lam, 2) == 0.75  # exact binary fractions
    assert metrics.participation_ratio(lam) == pytest.approx(64 / 22, rel=1e-15)  # (Σλ)²/Σλ² = 8²/22


def test_wrong_types_are_refused():
    with pytest.raises(TypeError, match=r"k must be an int; got 1.5"):
        metrics.top_k_mass(np.ones(3), 1.5)
    with pytest.raises(TypeError, match=r"lam must hold real numbers"):
        metrics.top_k_mass(np.array(["a", "b"]), 1)
