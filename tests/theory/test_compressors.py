"""Compressors and error feedback (docs/theory/compressed.md §D1–D2): contraction constants as properties, EF identities.

The constants are derived in the docstring of memopt_theory.compressors.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from memopt_theory.compressors import (
    ErrorFeedback,
    Identity,
    LowRank,
    RandomK,
    TopK,
    densify,
    k_of_density,
    top_k,
)
from memopt_theory.factorization import nnmf, pack_signs, square_shape, unpack_signs

finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_top_k_contraction(data):
    """‖top_k(x) − x‖² ≤ (1 − k/d)‖x‖² for every x, 1 ≤ k ≤ d (δ = k/d)."""
    d = data.draw(st.integers(1, 12))
    k = data.draw(st.integers(1, d))
    x = torch.from_numpy(data.draw(arrays(np.float64, (d,), elements=finite)))
    c, (vals, idx), _ = TopK(k=k).compress(x)
    lhs, rhs = float(((c - x) ** 2).sum()), (1 - k / d) * float((x**2).sum())
    # both sides are sums of the same d squares: round-off ≤ d·ε·‖x‖²
    assert lhs <= rhs + 1e-13 * d * float((x**2).sum())
    assert torch.equal(densify(vals, idx, d), c)


def test_top_k_keeps_largest_and_ties_go_to_lowest_index():
    x = torch.tensor([1.0, -3.0, 3.0, 2.0, -3.0], dtype=torch.float64)
    vals, idx = top_k(x, 2)
    assert idx.tolist() == [1, 2] and vals.tolist() == [-3.0, 3.0]
    # brute force over all k-subsets: the kept set maximises the kept mass, and among maximisers is the
    # lexicographically smallest
    for k in range(1, 6):
        best = max(
            itertools.combinations(range(5), k), key=lambda s: (sum(x[i] ** 2 for i in s), [-i for i in s])
        )
        assert top_k(x, k)[1].tolist() == list(best)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_random_k_moments_by_enumeration(data):
    """Over all C(d, k) equally likely subsets: unscaled E‖C(x) − x‖² = (1 − k/d)‖x‖²; scaled E C(x) = x and
    E‖C(x)‖² = (d/k)‖x‖². Enumeration is the exact expectation; the sampler is checked to draw k distinct
    indices (uniformity of randperm is torch's)."""
    d = data.draw(st.integers(1, 7))
    k = data.draw(st.integers(1, d))
    x = torch.from_numpy(data.draw(arrays(np.float64, (d,), elements=finite)))
    subsets = list(itertools.combinations(range(d), k))
    err = sum(float((x**2).sum() - (x[list(s)] ** 2).sum()) for s in subsets) / len(subsets)
    scaled_mean = sum(densify(x[list(s)] * d / k, torch.tensor(s), d) for s in subsets) / len(subsets)
    scaled_sq = sum(float(((x[list(s)] * d / k) ** 2).sum()) for s in subsets) / len(subsets)
    n2 = float((x**2).sum())
    tol = 1e-12 * (n2 + 1) * d / k  # sums of C(d, k) ≤ 35 terms of magnitude ≤ (d/k)‖x‖²
    assert math.isclose(err, (1 - k / d) * n2, abs_tol=tol)
    torch.testing.assert_close(scaled_mean, x, rtol=0, atol=tol)
    assert math.isclose(scaled_sq, d / k * n2, abs_tol=tol)
    comp = RandomK(k=k)
    c, (vals, idx), st_ = comp.compress(x, comp.init((d,)))
    assert len(set(idx.tolist())) == k and torch.equal(vals, x[idx]) and float(st_) == 1.0


def test_random_k_same_seed_same_subsets_and_empirical_mean():
    """Sampled unscaled random-k: mean of ‖C(x) − x‖² over 4000 draws within 5 standard errors of (1 − k/d)‖x‖²."""
    d, k, n = 10, 3, 4000
    x = torch.arange(1.0, d + 1, dtype=torch.float64)
    comp = RandomK(k=k, seed=3)
    st_ = comp.init((d,), batch=(n,))
    c, _, _ = comp.compress(x.expand(n, d), st_)
    c2, _, _ = comp.compress(x.expand(n, d), st_)
    assert torch.equal(c, c2)
    errs = ((c - x) ** 2).sum(-1)
    se = float(errs.std()) / math.sqrt(n)
    assert abs(float(errs.mean()) - (1 - k / d) * float((x**2).sum())) < 5 * se


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_power_iteration_pythagoras_and_non_expansive(data):
    """‖M − C(M)‖_F² = ‖M‖_F² − ‖PᵀM‖_F² (P orthonormal) and ≤ ‖M‖_F²."""
    a, b = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    r = data.draw(st.integers(1, min(a, b)))
    M = torch.from_numpy(data.draw(arrays(np.float64, (a, b), elements=finite)))
    comp = LowRank(rank=r, seed=data.draw(st.integers(0, 5)))
    c, (P, Q), _ = comp.compress(M, comp.init((a, b)))
    n2 = float((M**2).sum())
    lhs = float(((M - c) ** 2).sum())
    # QR and two products in float64: relative round-off ~ (a + b)·ε ≪ 1e-10
    assert math.isclose(lhs, n2 - float(((P.T @ M) ** 2).sum()), abs_tol=1e-10 * (n2 + 1))
    assert lhs <= n2 + 1e-10 * (n2 + 1)
    torch.testing.assert_close(P.T @ P, torch.eye(r, dtype=torch.float64), rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_truncated_svd_constant_and_power_iteration_limit(data):
    """Rank-r truncated SVD: ‖M − M_r‖² ≤ (1 − r/min(a, b))‖M‖²; iterating the warm-started power step on a
    fixed M with a spectral gap converges to M_r."""
    a, b = data.draw(st.integers(2, 6)), data.draw(st.integers(2, 6))
    r = data.draw(st.integers(1, min(a, b) - 1))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 100)))
    U, _ = torch.linalg.qr(torch.randn(a, a, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(b, b, generator=gen, dtype=torch.float64))
    s = torch.tensor([2.0 ** (-i) for i in range(min(a, b))], dtype=torch.float64)  # gap σ_{r+1}/σ_r = 1/2
    M = U[:, : len(s)] @ torch.diag(s) @ V[:, : len(s)].T
    Mr = U[:, :r] @ torch.diag(s[:r]) @ V[:, :r].T
    assert float(((M - Mr) ** 2).sum()) <= (1 - r / min(a, b)) * float((M**2).sum()) + 1e-14
    comp = LowRank(rank=r)
    cst = comp.init((a, b))
    for _ in range(80):  # error shrinks like 2^{-iterations}: 80 ≫ the 53 bits of float64
        c, _, cst = comp.compress(M, cst)
    torch.testing.assert_close(c, Mr, rtol=0, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_error_feedback_identities_top_k(data):
    """Integer-valued gradients make every sum exact in float64, so Σc = Σg − e holds bitwise; also
    ‖e_{t+1}‖² ≤ (1 − k/d)‖a_t‖² and ‖e_t‖ ≤ qG/(1 − q), q = √(1 − k/d)."""
    d = data.draw(st.integers(1, 10))
    k = data.draw(st.integers(1, d))
    T = data.draw(st.integers(1, 15))
    g = torch.from_numpy(data.draw(arrays(np.int64, (T, d), elements=st.integers(-50, 50)))).double()
    ef = ErrorFeedback(TopK(k=k))
    state = ef.init((d,))
    csum = torch.zeros(d, dtype=torch.float64)
    G = float(g.norm(dim=1).max())
    q = math.sqrt(1 - k / d)
    for t in range(T):
        a = state.e + g[t]
        c, _, state = ef.step(g[t], state)
        csum = csum + c
        assert torch.equal(csum, g[: t + 1].sum(0) - state.e)
        # equality holds when every |a_i| is equal; the float constant 1 − k/d may round down by 1 ulp
        assert float((state.e**2).sum()) <= (1 - k / d) * float((a**2).sum()) * (1 + 1e-12)
        if q < 1:
            assert float(state.e.norm()) <= q * G / (1 - q) + 1e-9 * (G + 1)  # one norm's round-off


def test_error_feedback_low_rank_identity_batched():
    """Σc = Σg − e for the power-iteration compressor (round-off only: no exact arithmetic here)."""
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(12, 3, 5, 4, generator=gen, dtype=torch.float64)
    ef = ErrorFeedback(LowRank(rank=2))
    state = ef.init((5, 4), batch=(3,))
    csum = torch.zeros(3, 5, 4, dtype=torch.float64)
    for gt in g:
        c, _, state = ef.step(gt, state)
        csum = csum + c
    torch.testing.assert_close(csum, g.sum(0) - state.e, rtol=0, atol=1e-12)  # 12 steps of ~1e-15 errors


def test_identity_compressor_is_a_no_op():
    g = torch.randn(6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for comp in (Identity(), TopK(k=5)):
        ef = ErrorFeedback(comp)
        state = ef.init((5,))
        for gt in g:
            c, _, state = ef.step(gt, state)
            assert torch.equal(c, gt) and torch.equal(state.e, torch.zeros(5, dtype=torch.float64))


def test_zero_rank_k_and_density_are_refused():
    with pytest.raises(ValueError, match="k must be >= 1"):
        TopK(k=0)
    with pytest.raises(ValueError, match="k must be <= the vector length 3"):
        TopK(k=4).init((3,))
    with pytest.raises(ValueError, match="rank must be <= min"):
        LowRank(rank=3).init((2, 5))
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"density must be in \(0.0, 1.0\]"):
            k_of_density(bad, 10, where="test")
    assert k_of_density(0.01, 1000, where="test") == 10


@pytest.mark.parametrize(
    "N, expected", [(1, (1, 1)), (7, (7, 1)), (14, (7, 2)), (256 * 128 * 9, (576, 512)), (36, (6, 6))]
)
def test_square_shape_examples_from_spec(N, expected):
    assert square_shape(N) == expected


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 5000))
def test_square_shape_is_the_most_square_divisor_pair(N):
    n, m = square_shape(N)
    best = max(i for i in range(1, N + 1) if N % i == 0 and i * i <= N)  # brute force over divisors
    assert (n, m) == (N // best, best)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_nnmf_formula_and_exact_on_rank_one(data):
    """rcᵀ = (A1)(1ᵀA)/(1ᵀA1); exact when A = uvᵀ with u, v ≥ 0."""
    n, m = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    A = torch.from_numpy(data.draw(arrays(np.float64, (n, m), elements=st.floats(0, 1e3))))
    r, c = nnmf(A)
    tot = float(A.sum())
    want = torch.outer(A.sum(1), A.sum(0)) / tot if tot > 0 else torch.zeros(n, m, dtype=torch.float64)
    torch.testing.assert_close(torch.outer(r, c), want, rtol=1e-12, atol=1e-12 * (tot + 1))
    u = torch.from_numpy(data.draw(arrays(np.float64, (n,), elements=st.floats(0, 10))))
    v = torch.from_numpy(data.draw(arrays(np.float64, (m,), elements=st.floats(0, 10))))
    r, c = nnmf(torch.outer(u, v))
    torch.testing.assert_close(torch.outer(r, c), torch.outer(u, v), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_sign_packing_matches_numpy_packbits_and_round_trips(data):
    N = data.draw(st.integers(1, 40))
    bits = np.array(data.draw(st.lists(st.booleans(), min_size=2 * N, max_size=2 * N))).reshape(2, N)
    packed = pack_signs(torch.from_numpy(bits))
    assert packed.dtype == torch.uint8 and packed.shape == (2, (N + 7) // 8)
    np.testing.assert_array_equal(packed.numpy(), np.packbits(bits, axis=-1))  # numpy as the oracle
    assert torch.equal(unpack_signs(packed, N), torch.from_numpy(bits))
