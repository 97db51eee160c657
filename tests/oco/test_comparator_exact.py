"""The comparator's certificate holds as real numbers, not up to rounding: lower ≤ min_K F_t ≤ value against
50-digit references on ill-conditioned least squares (cond(A) = 1e6 … 1e12), value is F_t at the returned
point (not the dual bound), and a crossing raises.

No tolerance is used for lower ≤ exact ≤ value: both ends are rounded outward from exact evaluations, and the
references carry ≥ 20 correct digits more than float64 (50-digit arithmetic; the QR solve loses at most
log10 cond(A)² ≤ 24 of them), so an inequality that fails by any float64 amount is a real violation.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

from online_convex.comparator import best_fixed_point
from online_convex.domains import make_domain
from online_convex.problems import RoundData

F64 = torch.float64


def ill_conditioned(t: int, n: int, cond: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A = U diag(s) Vᵀ rounded to float64 with singular values 1 … 1/cond (log-spaced), y ~ N(0, I)."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(t, n, generator=g, dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64)).Q
    s = torch.logspace(0, -math.log10(cond), n, dtype=F64)
    return U @ torch.diag(s) @ V.T, torch.randn(t, generator=g, dtype=F64)


def ls_min_50_digits(A: torch.Tensor, y: torch.Tensor) -> mpmath.mpf:
    """min_x ½‖Ax − y‖² for the float64 entries of A and y taken exactly, in 50-digit arithmetic:
    ½‖(I − QQᵀ)y‖² with A = QR (Householder QR in mpmath)."""
    with mpmath.workdps(50):
        Am, ym = mpmath.matrix(A.tolist()), mpmath.matrix(y.tolist())
        Q = mpmath.qr(Am)[0][:, : A.shape[1]]
        r = ym - Q * (Q.T * ym)
        return sum(v**2 for v in r) / 2


def ls_value_50_digits(A: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> mpmath.mpf:
    with mpmath.workdps(50):
        Am, ym, xm = mpmath.matrix(A.tolist()), mpmath.matrix(y.tolist()), mpmath.matrix(x.tolist())
        return sum(v**2 for v in Am * xm - ym) / 2


@pytest.mark.parametrize("cond", [1e6, 1e8, 1e10, 1e12])
def test_unconstrained_least_squares_ill_conditioned(cond):
    """lower ≤ min F ≤ value exactly, and value = F(x̂) of the returned point (up to the upward rounding).
    A float64-only certificate fails here: at cond = 1e10 its lower end was 2e-8 above the exact minimum (a
    residual Σα_s a_s below its rounding tolerance hid a large α-component in range(A)), and its F(x̂) was
    below the minimum (p = ⟨a_s, x̂⟩ rounded with ‖x̂‖ ~ cond)."""
    A, y = ill_conditioned(40, 6, cond, seed=int(math.log10(cond)))
    data = RoundData(A[:, None], y[:, None])
    res = best_fixed_point("least_squares", data, make_domain("unconstrained", (6,)), 40)
    exact = ls_min_50_digits(A, y)
    lo, val = float(res.lower[0]), float(res.value[0])
    assert mpmath.mpf(lo) <= exact <= mpmath.mpf(val), (lo, exact, val)
    fx = ls_value_50_digits(A, y, res.x[0])
    assert fx <= mpmath.mpf(val) <= fx + 4 * mpmath.mpf(math.ulp(val)), (fx, val)  # rounded up, ≤ a few ulps
    # the certificate is not vacuous: the exact dual point of the projected residual is within rounding of F*
    assert exact - mpmath.mpf(lo) <= 1e-9 * (1 + abs(exact)), (lo, exact)


@pytest.mark.parametrize("cond", [1e6, 1e12])
def test_ball_least_squares_ill_conditioned(cond):
    """Same on the ball of radius 1 (the unconstrained minimiser has norm ~cond, so the ball is active):
    the 50-digit reference is a lower bound on min_K F from the dual side, the value at the returned point
    taken exactly; the certificate must sit between F at a feasible point and min_K F."""
    A, y = ill_conditioned(30, 5, cond, seed=3)
    data = RoundData(A[:, None], y[:, None])
    ball = make_domain("l2_ball", (5,), radius=1.0)
    res = best_fixed_point("least_squares", data, ball, 30)
    lo, val = float(res.lower[0]), float(res.value[0])
    fx = ls_value_50_digits(A, y, res.x[0])
    with mpmath.workdps(50):
        norm2 = sum(mpmath.mpf(v) ** 2 for v in res.x[0].tolist())
    if norm2 <= 1:  # x̂ feasible as it is: the value is F(x̂), rounded up by at most a few ulps
        assert fx <= mpmath.mpf(val) <= fx + 4 * mpmath.mpf(math.ulp(val)), (fx, val)
    assert lo <= val
    # min_K F ≥ lower: check against an independent dual bound at 50 digits, D(α) with α = A x̂ − y
    with mpmath.workdps(50):
        Am, ym, xm = mpmath.matrix(A.tolist()), mpmath.matrix(y.tolist()), mpmath.matrix(res.x[0].tolist())
        al = Am * xm - ym
        v = Am.T * al
        dual = -sum(a**2 / 2 + a * b for a, b in zip(al, ym)) - mpmath.sqrt(sum(c**2 for c in v))
        primal = fx if norm2 <= 1 else None
    # weak duality: dual ≤ min_K F ≤ F(x̂); the certificate's lower must not exceed any primal value …
    if primal is not None:
        assert mpmath.mpf(lo) <= primal
    # … and the two dual bounds agree to the solver's tolerance (neither is wildly off)
    assert abs(mpmath.mpf(lo) - dual) <= 1e-6 * (1 + abs(dual)), (lo, dual)


@pytest.mark.parametrize("problem", ["least_squares", "logistic", "hinge"])
def test_value_is_the_loss_of_the_returned_point(problem):
    """value = F_t(x̂) of the point returned (exact evaluation rounded up), even when the solver stops early
    (max_iter = 1, so the gap is wide): a comparator that reported its dual lower bound, or the loss of another
    point, as value would be off by the gap. Reference: F_t(x̂) in 50-digit arithmetic."""
    g = torch.Generator().manual_seed(11)
    t, n = 60, 4
    a = torch.randn(t, 1, n, generator=g, dtype=F64)
    y = torch.sign(torch.randn(t, 1, generator=g, dtype=F64)) if problem != "least_squares" else None
    if y is None:
        y = torch.randn(t, 1, generator=g, dtype=F64)
    data = RoundData(a, y)
    box = make_domain("box", (n,), lo=-0.5, hi=0.5)  # clipping is exact, so x̂ ∈ K as returned
    res = best_fixed_point(problem, data, box, t, max_iter=1, rtol=1e-3)
    x = res.x[0].tolist()
    with mpmath.workdps(50):
        F = mpmath.mpf(0)
        for s in range(t):
            p = mpmath.fsum(mpmath.mpf(a[s, 0, i].item()) * mpmath.mpf(x[i]) for i in range(n))
            ys = mpmath.mpf(y[s, 0].item())
            if problem == "least_squares":
                F += (p - ys) ** 2 / 2
            elif problem == "logistic":
                F += mpmath.log(1 + mpmath.exp(-ys * p))
            else:
                F += max(mpmath.mpf(0), 1 - ys * p)
        val = float(res.value[0])
        # exact sums are rounded up by < 1 ulp; the logistic loss carries the stated float slack
        # 2⁻⁴⁶·(|f_s| + 1) per term (online_convex.certificate_exact), ≤ 2⁻⁴⁶·(F + 2t) in all
        slack = 4 * mpmath.mpf(math.ulp(val)) + (
            mpmath.mpf(2) ** -46 * (F + 2 * t) if problem == "logistic" else 0
        )
        assert F <= mpmath.mpf(val) <= F + slack, (F, val)
    assert float(res.gap[0]) >= 0


def test_value_differs_from_lower_bound_when_gap_is_wide():
    """The previous test bites only if the gap exceeds the few-ulp window: with max_iter = 1 on logistic
    data the certified gap is ≥ 1e-6 (checked here), so value = lower would fail it."""
    g = torch.Generator().manual_seed(11)
    a = torch.randn(60, 1, 4, generator=g, dtype=F64)
    y = torch.sign(torch.randn(60, 1, generator=g, dtype=F64))
    res = best_fixed_point(
        "logistic", RoundData(a, y), make_domain("l2_ball", (4,), radius=5.0), 60, max_iter=1, rtol=1e-3
    )
    assert float(res.gap[0]) >= 1e-6


def test_crossing_raises(monkeypatch):
    """A lower end above the value is an error naming the seed and both numbers, never clipped."""
    g = torch.Generator().manual_seed(2)
    data = RoundData(
        torch.randn(20, 2, 3, generator=g, dtype=F64), torch.randn(20, 2, generator=g, dtype=F64)
    )
    import online_convex.certificate_exact as ce

    real = ce.exact_lower
    monkeypatch.setattr(ce, "exact_lower", lambda *args: real(*args) + 1.0)
    with pytest.raises(RuntimeError, match=r"certificate crossing for seed 0 .*lower .* > value"):
        best_fixed_point("least_squares", data, make_domain("l2_ball", (3,), radius=1.0), 20)


def test_exact_helpers_are_safe_and_tight():
    """The three non-rational steps of the exact certificate, each on the safe side and within its stated
    slack: ⌈√q⌉ (relative 2⁻¹⁰⁰), λ_max from above (certified by an exact LDLᵀ; within 1e-8 relative of the
    50-digit eigenvalue), Σ_j ‖X q_j‖ over an exactly orthogonal rational basis (QᵀQ = I exactly, and within
    1e-12 of the 50-digit nuclear norm), and outward rounding to float64 and float32."""
    from fractions import Fraction

    import online_convex.certificate_exact as ce

    for q in (Fraction(2), Fraction(1, 3), Fraction(10) ** -40, Fraction(7) ** 60):
        r = ce._sqrt_up(q)
        assert r * r >= q and (r * r - q) / q < Fraction(2) ** -98
    g = torch.Generator().manual_seed(4)
    X = torch.randn(3, 5, generator=g, dtype=F64).numpy()
    V = [[Fraction(float(v)) for v in row] for row in X]
    lam = ce._lambda_max_up(ce._gram(V))
    with mpmath.workdps(50):
        sv = mpmath.svd_r(mpmath.matrix(X.tolist()), compute_uv=False)
        smax2, nuc = max(sv) ** 2, sum(sv)
    assert mpmath.mpf(lam.numerator) / lam.denominator >= smax2
    assert mpmath.mpf(lam.numerator) / lam.denominator <= smax2 * (1 + 1e-8)
    Q = ce._householder_basis(X)
    n = len(Q)
    assert all(
        sum(a * b for a, b in zip(Q[i], Q[j])) == (1 if i == j else 0) for i in range(n) for j in range(n)
    )
    bound = sum(
        ce._sqrt_up(sum((sum(a * b for a, b in zip(row, q)) ** 2 for row in V), Fraction(0))) for q in Q
    )
    assert mpmath.mpf(bound.numerator) / bound.denominator >= nuc
    assert mpmath.mpf(bound.numerator) / bound.denominator <= nuc * (1 + 1e-12)
    third = Fraction(1, 3)
    up, down = ce._round(third, torch.float64, up=True), ce._round(third, torch.float64, up=False)
    assert Fraction(down) < third < Fraction(up) and up == math.nextafter(down, math.inf)
    up32, down32 = ce._round(third, torch.float32, up=True), ce._round(third, torch.float32, up=False)
    assert Fraction(down32) < third < Fraction(up32)
    assert float(torch.tensor(up32, dtype=torch.float32)) == up32  # representable in float32
