"""online_convex.comparator: on cases whose minimiser is constructed analytically, [lower, value] contains the
true min_K F_t and the regret interval contains the true regret; the certificate is tight (gap ≤ rtol·scale)
on smooth cases; unbounded problems and bad input raise clear errors.

Tolerances: ``ROUND`` is the float64 rounding of a sum of t ≤ 200 losses of size O(10): ~200·10·ε ≈ 5e-13;
1e-10·(1 + |min|) leaves room without hiding a real error (a wrong comparator is off by ≥ 1e-6 here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from online_convex.comparator import best_fixed_point, dual_lower_bound
from online_convex.domains import make_domain
from online_convex.problems import RoundData, get_problem

F64 = torch.float64


def ROUND(m: float) -> float:
    return 1e-10 * (1 + abs(m))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def contains(res, true_min: torch.Tensor, rtol: float | None = None) -> None:
    for b in range(true_min.numel()):
        m = float(true_min.reshape(-1)[b])
        lo, val = float(res.lower.reshape(-1)[b]), float(res.value.reshape(-1)[b])
        assert lo <= m + ROUND(m) and val >= m - ROUND(m), (lo, m, val)
        if rtol is not None:
            assert val - lo <= rtol * (1 + abs(val)) + ROUND(m), (lo, m, val)


# --- linear: closed forms ----------------------------------------------------------------------------------------
def test_linear_closed_forms_gap_zero():
    """min_K ⟨c, x⟩, c = Σ a_s: −R‖c‖ (ball), Σ_i min(lo·c_i, hi·c_i) (box), R·min_i c_i (simplex), −R·σ_1(C)
    (nuclear ball); the LMO solves them exactly, so the gap is at rounding level."""
    a = torch.randn(30, 2, 3, 4, generator=gen(0), dtype=F64)
    data = RoundData(a, torch.zeros(30, 2, dtype=F64))
    c = a.sum(0).reshape(2, 12)
    C = a.sum(0)
    cases = {
        ("l2_ball", (("radius", 2.0),)): -2.0 * c.norm(dim=-1),
        ("box", (("lo", -1.0), ("hi", 0.5))): torch.minimum(-c, 0.5 * c).sum(-1),
        ("simplex", (("radius", 3.0),)): 3.0 * c.min(-1).values,
        ("nuclear_ball", (("radius", 1.5),)): -1.5 * torch.linalg.matrix_norm(C, ord=2),
    }
    for (name, params), true_min in cases.items():
        res = best_fixed_point("linear", data, make_domain(name, (3, 4), **dict(params)), 30)
        contains(res, true_min, rtol=1e-12)


# --- least squares: minimisers built from the normal equations ---------------------------------------------
def ls_case(t: int, n: int, radius: float, boundary: bool, seed: int):
    """A (t×n, full column rank), x* with ‖x*‖ = radius·(1 if boundary else ½), y = Ax* + μA(AᵀA)⁻¹x* + r with
    r ⟂ range A and μ = 1 on the boundary (0 inside). Then Aᵀ(Ax* − y) = −μx*: the KKT condition of the ball
    with multiplier μ ≥ 0, so x* = argmin_{‖x‖≤R} ½‖Ax − y‖², min = ½‖μA(AᵀA)⁻¹x* + r‖² (also the unconstrained
    min when μ = 0)."""
    g = gen(seed)
    A = torch.randn(t, n, generator=g, dtype=F64)
    x = torch.randn(n, generator=g, dtype=F64)
    x = x / x.norm() * radius * (1.0 if boundary else 0.5)
    r = torch.randn(t, generator=g, dtype=F64)
    Q = torch.linalg.qr(A).Q
    r = r - Q @ (Q.T @ r)  # ⟂ range A
    mu = 1.0 if boundary else 0.0
    y = A @ x + mu * A @ torch.linalg.solve(A.T @ A, x) + r
    return A, y, x, 0.5 * float(((A @ x - y) ** 2).sum())


@pytest.mark.parametrize("boundary", [False, True])
@pytest.mark.parametrize("shape", [(5,), (2, 3)], ids=str)
def test_least_squares_ball_known_minimiser(boundary, shape):
    n = math.prod(shape)
    cases = [ls_case(40, n, 1.5, boundary, seed) for seed in range(3)]  # three seeds, one batch
    data = RoundData(
        torch.stack([c[0] for c in cases], 1).reshape(40, 3, *shape), torch.stack([c[1] for c in cases], 1)
    )
    ball = make_domain("l2_ball", shape, radius=1.5)
    res = best_fixed_point("least_squares", data, ball, 40, rtol=1e-10)
    true_min = torch.tensor([c[3] for c in cases], dtype=F64)
    contains(res, true_min, rtol=1e-10)
    # a learner's play (projected gradient steps from 0): its true regret L_T − min F lies in the interval
    pb, w, L = get_problem("least_squares"), torch.zeros(3, *shape, dtype=F64), torch.zeros(3, dtype=F64)
    for s in range(40):
        L = L + pb.loss(w, data.a[s], data.y[s])
        w = ball.project(w - 0.05 * pb.grad(w, data.a[s], data.y[s]))
    regret = L - true_min
    assert bool((L - res.value <= regret + ROUND(1e3)).all() and (regret <= L - res.lower + ROUND(1e3)).all())
    # the minimiser is unique (A has full column rank): Newton lands on it to ~√(gap/λ_min) ≈ 1e-6
    torch.testing.assert_close(res.x.reshape(3, n), torch.stack([c[2] for c in cases]), rtol=1e-5, atol=1e-5)
    if not boundary:  # inside the ball it is also the unconstrained minimiser
        res_u = best_fixed_point("least_squares", data, make_domain("unconstrained", shape), 40)
        contains(res_u, torch.tensor([c[3] for c in cases], dtype=F64), rtol=1e-12)


def test_least_squares_box_and_simplex_known_minimiser():
    """Box: y = Ax* − A(AᵀA)⁻¹κ gives ∇F(x*) = Aᵀ(Ax* − y) = κ; the box KKT conditions ask κ_i ≤ 0 where x*_i
    is at the upper bound, κ_i ≥ 0 at the lower bound and κ_i = 0 inside, so x* is the minimiser.
    Simplex: x* > 0 and y = Ax* + A(AᵀA)⁻¹(ν·1) give ∇F(x*) = −ν1, orthogonal to the simplex's directions
    (Σ_i d_i = 0): KKT holds with multiplier ν and no active bound."""
    g = gen(4)
    A = torch.randn(50, 4, generator=g, dtype=F64)
    Minv = torch.linalg.inv(A.T @ A)
    x_box = torch.tensor([0.5, -1.0, 0.1, -0.3], dtype=F64)  # upper, lower, inside, inside of [−1, 0.5]
    kappa = torch.tensor([-2.0, 3.0, 0.0, 0.0], dtype=F64)  # ∇F = κ: −2 at the upper bound, +3 at the lower
    y = A @ x_box - A @ (Minv @ kappa)
    data = RoundData(A[:, None], y[:, None])
    true_min = 0.5 * ((A @ x_box - y) ** 2).sum()
    res = best_fixed_point("least_squares", data, make_domain("box", (4,), lo=-1.0, hi=0.5), 50)
    contains(res, true_min.reshape(1), rtol=1e-9)
    x_sim = torch.tensor([0.2, 0.3, 0.4, 0.1], dtype=F64)
    y = A @ x_sim + A @ (Minv @ torch.full((4,), 0.7, dtype=F64))
    data = RoundData(A[:, None], y[:, None])
    true_min = 0.5 * ((A @ x_sim - y) ** 2).sum()
    res = best_fixed_point("least_squares", data, make_domain("simplex", (4,), radius=1.0), 50)
    contains(res, true_min.reshape(1), rtol=1e-9)
    torch.testing.assert_close(res.x[0], x_sim, rtol=1e-5, atol=1e-5)


def test_least_squares_nuclear_ball_exact_fit():
    """y_s = ⟨a_s, X*⟩ with ‖X*‖_* < R: min = 0 at X*; FISTA reaches the certified rtol."""
    g = gen(5)
    X = torch.randn(2, 3, generator=g, dtype=F64)
    X = X / torch.linalg.svdvals(X).sum()  # ‖X*‖_* = 1 < R = 2
    a = torch.randn(60, 1, 2, 3, generator=g, dtype=F64)
    data = RoundData(a, (a * X).sum((-1, -2)))
    res = best_fixed_point(
        "least_squares", data, make_domain("nuclear_ball", (2, 3), radius=2.0), 60, rtol=1e-9
    )
    contains(res, torch.zeros(1), rtol=1e-9)


# --- logistic and hinge: symmetric pairs give the minimum in closed form ----------------------------------------
def pair_data(t: int, shape, seed: int, batch: int = 2, zero_sum: bool = False) -> RoundData:
    """Each a_s appears with y = +1 and y = −1, so f(x) summed over a pair is φ(p) + φ(−p), even and convex in p:
    logistic 2·log 2 + …, minimal (= 2 log 2) at p = 0; hinge max(0, 1 − p) + max(0, 1 + p) = 2 for |p| ≤ 1.
    Hence min_K F = t·log 2 (logistic) or t (hinge) whenever some x ∈ K has ⟨a_s, x⟩ = 0 for all s (x = 0 in
    the ball and the box; with zero_sum rows, x = R/N·1 in the simplex)."""
    a = torch.randn(t // 2, batch, *shape, generator=gen(seed), dtype=F64)
    if zero_sum:
        a = a - a.flatten(start_dim=2).mean(-1).reshape(t // 2, batch, *([1] * len(shape)))
    ones = torch.ones(t // 2, batch, dtype=F64)
    return RoundData(torch.cat([a, a]), torch.cat([ones, -ones]))


DOMAINS = [("l2_ball", {"radius": 1.0}), ("box", {"lo": -0.5, "hi": 0.5}), ("simplex", {"radius": 1.0})]


@pytest.mark.parametrize("dom", DOMAINS + [("nuclear_ball", {"radius": 1.0})], ids=lambda d: d[0])
def test_logistic_pairs_known_minimum(dom):
    shape = (2, 3)
    data = pair_data(40, shape, seed=6, zero_sum=dom[0] == "simplex")
    res = best_fixed_point("logistic", data, make_domain(dom[0], shape, **dom[1]), 40, rtol=1e-10)
    contains(res, torch.full((2,), 20 * 2 * math.log(2), dtype=F64), rtol=1e-10)


@pytest.mark.parametrize(
    "dom", DOMAINS + [("unconstrained", {}), ("nuclear_ball", {"radius": 1.0})], ids=lambda d: d[0]
)
def test_hinge_pairs_known_minimum(dom):
    """LP solvers (box, simplex, R^S) certify to HiGHS' accuracy (duals ~1e-9); the ball and nuclear ball
    (dual L-BFGS-B, then smoothed-hinge FISTA) reach 1e-6 relative on this instance."""
    data = pair_data(30, (2, 2), seed=7, zero_sum=dom[0] == "simplex")
    res = best_fixed_point("hinge", data, make_domain(dom[0], (2, 2), **dom[1]), 30)
    contains(
        res, torch.full((2,), 30.0, dtype=F64), rtol=1e-6 if dom[0] in ("l2_ball", "nuclear_ball") else 1e-7
    )


def test_hinge_ball_contains_slsqp_minimum():
    """Generic data on the ball: the interval contains the minimum of the reformulation
    min Σξ_s s.t. ξ_s ≥ 1 − y_s⟨a_s, x⟩, ξ ≥ 0, ‖x‖² ≤ 1, solved by SLSQP (smooth constraints, tight ftol)."""
    t, n = 30, 3
    g = gen(13)
    a = torch.randn(t, 1, n, generator=g, dtype=F64)
    y = torch.where(torch.randn(t, 1, generator=g, dtype=F64) >= 0, 1.0, -1.0).to(F64)
    res = best_fixed_point("hinge", RoundData(a, y), make_domain("l2_ball", (n,), radius=1.0), t)
    M = (y[:, 0, None] * a[:, 0]).numpy()
    cons = [
        {"type": "ineq", "fun": lambda z: z[n:] - 1 + M @ z[:n]},
        {"type": "ineq", "fun": lambda z: 1 - z[:n] @ z[:n]},
    ]
    z0 = np.concatenate([np.zeros(n), np.ones(t)])
    ref = minimize(
        lambda z: z[n:].sum(),
        z0,
        method="SLSQP",
        bounds=[(None, None)] * n + [(0, None)] * t,
        constraints=cons,
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    x_ref = ref.x[:n] / max(1.0, float(np.linalg.norm(ref.x[:n])))  # into the ball, against ~1e-12 violations
    m_ref = float(np.maximum(0, 1 - M @ x_ref).sum())  # the hinge value at a point of K: ≥ the true min
    assert float(res.lower[0]) <= m_ref + 1e-12  # the certificate never exceeds a feasible value
    # nonsmooth: no rtol promise; measured gap 2.6e-10 relative here
    assert float(res.gap[0]) <= 1e-4 * (1 + m_ref)
    assert float(res.value[0]) - m_ref <= float(res.gap[0]) + 1e-12  # consistent: m_ref ≥ min ≥ lower


def test_hinge_separable_with_margin_min_zero():
    """y_s = sign⟨a_s, w⟩ with |⟨a_s, w⟩| ≥ 1 and w in K: min = 0 at w."""
    a = torch.randn(40, 1, 3, generator=gen(8), dtype=F64)
    w = torch.tensor([0.3, -0.2, 0.4], dtype=F64)
    p = (a * w).sum(-1)
    keep = p.abs().reshape(-1) >= 0.1
    a = a[keep] * 10  # margins ≥ 1
    data = RoundData(a, torch.sign((a * w).sum(-1)))
    for name, params in [("box", {"lo": -0.5, "hi": 0.5}), ("unconstrained", {})]:
        res = best_fixed_point("hinge", data, make_domain(name, (3,), **params), data.T)
        contains(res, torch.zeros(1), rtol=1e-7)


# --- against an independent solver, and the regret interval ------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(
    pname=st.sampled_from(["least_squares", "logistic"]),
    dom=st.sampled_from(DOMAINS),
    t=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)
def test_contains_slsqp_minimum_and_true_regret(pname, dom, t, seed):
    """Random small instances: [lower, value] contains the SLSQP minimum up to SLSQP's own accuracy, and the
    regret interval [L − value, L − lower] contains L − min F for a learner playing random points of K."""
    n = 3
    g = gen(seed)
    a = torch.randn(t, 1, n, generator=g, dtype=F64)
    y = torch.randn(t, 1, generator=g, dtype=F64)
    if pname == "logistic":
        y = torch.where(y >= 0, 1.0, -1.0).to(F64)
    data = RoundData(a, y)
    pb, domain = get_problem(pname), make_domain(dom[0], (n,), **dom[1])
    res = best_fixed_point(pb, data, domain, t, rtol=1e-10)
    A, Y = a[:, 0].numpy(), y[:, 0].numpy()
    f = (
        (lambda x: 0.5 * ((A @ x - Y) ** 2).sum())
        if pname == "least_squares"
        else (lambda x: np.logaddexp(0, -Y * (A @ x)).sum())
    )
    cons, bounds = [], None
    if dom[0] == "l2_ball":
        cons = [{"type": "ineq", "fun": lambda x: 1.0 - x @ x}]
    elif dom[0] == "box":
        bounds = [(-0.5, 0.5)] * n
    else:
        bounds, cons = [(0, None)] * n, [{"type": "eq", "fun": lambda x: x.sum() - 1.0}]
    ref = minimize(
        f,
        np.full(n, 1 / n),
        method="SLSQP",
        bounds=bounds,
        constraints=cons,
        options={"ftol": 1e-14, "maxiter": 500},
    )
    m_ref = float(ref.fun)
    # SLSQP's point may be infeasible by ~1e-10 and sub-optimal by ~1e-9: the interval must overlap [m_ref ± 1e-7]
    assert float(res.lower[0]) <= m_ref + 1e-7 * (1 + abs(m_ref))
    assert float(res.value[0]) <= m_ref + 1e-7 * (1 + abs(m_ref))  # ours is at least as good as SLSQP
    assert bool(domain.contains(res.x, atol=1e-9))
    # a learner playing random points of K: L_t − F(x̂) ≤ L_t − min F ≤ L_t − lower, since value ≥ min ≥ lower
    xs = domain.project(torch.randn(t, n, generator=g, dtype=F64) * 2)
    L = sum(float(pb.loss(xs[s], a[s, 0], y[s, 0])) for s in range(t))
    true_regret = L - min(m_ref, float(res.value[0]))  # the best value seen bounds min F from above
    # 1e-12: float rounding of L and m_ref; plus the certified value's stated float slack for the logistic loss,
    # 2⁻⁴⁶·(|f_s| + 1) per term (online_convex.certificate_exact), which puts value that far above F(x̂)
    tol = 1e-12 + (2.0**-46 * (abs(float(res.value[0])) + 2 * t) if pname == "logistic" else 0.0)
    assert L - float(res.value[0]) <= true_regret + tol and true_regret <= L - float(res.lower[0]) + 1e-12


def test_dual_bound_is_weak_duality_for_any_alpha():
    """D(α) ≤ F(x) for random dual-feasible α and random x ∈ K (Fenchel–Young), every problem."""
    data = pair_data(20, (3,), seed=9, batch=1)
    ball = make_domain("l2_ball", (3,), radius=1.0)
    for name in ("least_squares", "logistic", "hinge"):
        pb = get_problem(name)
        for s in range(5):
            u = torch.rand(20, 1, generator=gen(s), dtype=F64)
            alpha = (
                -data.y * u if name != "least_squares" else torch.randn(20, 1, generator=gen(s), dtype=F64)
            )
            x = ball.project(torch.randn(1, 3, generator=gen(s + 50), dtype=F64))
            assert (
                float(dual_lower_bound(pb, data, 20, ball, alpha))
                <= float(pb.total_loss(x, data, 20)) + 1e-12
            )


def test_batch_equals_per_seed():
    data = pair_data(20, (3,), seed=10, batch=3)
    ball = make_domain("l2_ball", (3,), radius=0.3)
    full = best_fixed_point("logistic", data, ball, 17)
    for b in range(3):
        one = best_fixed_point("logistic", RoundData(data.a[:, b], data.y[:, b]), ball, 17)
        # each seed's Newton path is the same arithmetic; stopping differs by at most one extra step
        assert abs(float(one.value) - float(full.value[b])) <= 1e-9 * (1 + abs(float(one.value)))


def test_t_end_zero_and_radius_option():
    data = RoundData(torch.randn(5, 2, 3, generator=gen(11), dtype=F64), torch.zeros(5, 2, dtype=F64))
    res = best_fixed_point("linear", data, make_domain("l2_ball", (3,), radius=1.0), 0)
    assert torch.equal(res.value, torch.zeros(2, dtype=F64)) and torch.equal(
        res.gap, torch.zeros(2, dtype=F64)
    )
    unc = make_domain("unconstrained", (3,))
    with pytest.raises(ValueError, match="infimum −inf over R\\^S; pick a bounded domain .* or pass radius="):
        best_fixed_point("linear", data, unc, 5)
    res = best_fixed_point("linear", data, unc, 5, radius=2.0)
    assert "radius 2.0" in res.note
    contains(res, -2.0 * data.a.sum(0).norm(dim=-1), rtol=1e-12)
    # separable logistic data: the infimum 0 is not attained on R^S
    a = torch.randn(10, 1, 3, generator=gen(12), dtype=F64)
    sep = RoundData(a, torch.sign(a[..., 0]))
    with pytest.raises(ValueError, match=r"seed\(s\) \[0\] are separable.*radius="):
        best_fixed_point("logistic", sep, unc, 10)
    res = best_fixed_point("logistic", sep, unc, 10, radius=1.0)
    assert bool((res.gap <= 1e-9 * (1 + res.value.abs())).all())


def test_bad_input():
    data = RoundData(torch.randn(5, 3, dtype=F64), torch.zeros(5, dtype=F64))
    ball = make_domain("l2_ball", (3,), radius=1.0)
    with pytest.raises(
        ValueError, match=r"the domain has shape \(4,\); the data's rounds have parameter shape \(3,\)"
    ):
        best_fixed_point("linear", data, make_domain("l2_ball", (4,), radius=1.0), 5)
    with pytest.raises(ValueError, match="t_end must be <= 5; got 6"):
        best_fixed_point("linear", data, ball, 6)
    with pytest.raises(ValueError, match="unknown problem 'ridge'"):
        best_fixed_point("ridge", data, ball, 5)
    with pytest.raises(ValueError, match=r"rtol must be in \(0.0, 1.0\)"):
        best_fixed_point("linear", data, ball, 5, rtol=0.0)
    with pytest.raises(ValueError, match="radius= only applies to the unconstrained domain"):
        best_fixed_point("linear", data, ball, 5, radius=1.0)
    with pytest.raises(ValueError, match=r"radius must be in \(0.0, inf\]"):
        best_fixed_point("linear", data, make_domain("unconstrained", (3,)), 5, radius=-1.0)
    with pytest.raises(ValueError, match="labels y must be -1 or \\+1"):
        best_fixed_point("hinge", data, ball, 5)
    with pytest.raises(TypeError, match="domain must be a Domain"):
        best_fixed_point("linear", data, "l2_ball", 5)


def test_logistic_unconstrained_real_data_certified():
    """breast_cancer (standardised, scikit-learn's bundled copy) is not separable, so the logistic minimum over
    R^30 is attained, at ‖x*‖ ≈ 425 where many u_s = σ(−y_s p_s) underflow towards 0. The certificate must stay
    finite (α moved onto {Σα_s a_s = 0}, u clipped to [0, 1] at rounding level) and contain scipy's L-BFGS
    minimum."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    data = RoundData(torch.tensor(X)[:, None], torch.tensor(2.0 * y - 1)[:, None])
    res = best_fixed_point("logistic", data, make_domain("unconstrained", (30,)), len(y))
    assert float(res.gap[0]) <= 1e-9 * (1 + float(res.value[0]))
    Yp = 2.0 * y - 1
    ref = minimize(
        lambda w: np.logaddexp(0, -Yp * (X @ w)).sum(),
        np.zeros(30),
        jac=lambda w: -(X.T @ (Yp / (1 + np.exp(np.clip(Yp * (X @ w), -700, 700))))),
        method="L-BFGS-B",
        options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12},
    )
    assert float(res.lower[0]) <= ref.fun + 1e-12  # L-BFGS's value is F at a point of R^30: ≥ the minimum
    assert float(res.value[0]) <= ref.fun + 1e-9 * ref.fun  # and ours is at least as good


@pytest.mark.parametrize("t", [1, 5, 12])
def test_least_squares_unconstrained_underdetermined_is_certified(t):
    """t ≤ N rounds of least squares in R^N with rows in general position: min F_t = 0 exactly (the rows are
    interpolated). The certificate must be the finite interval [0, F(x̂)] with F(x̂) at rounding level — once it
    was lower = −inf, so the regret's upper end was +inf. α = 0 is dual feasible on R^N, D(0) = 0."""
    N = 12
    g = gen(7)
    data = RoundData(torch.randn(t, 3, N, generator=g, dtype=F64), torch.randn(t, 3, generator=g, dtype=F64))
    res = best_fixed_point("least_squares", data, make_domain("unconstrained", (N,)), t)
    contains(res, torch.zeros(3, dtype=F64), rtol=1e-20)  # width ≤ rounding: F(x̂) ~ 1e-28, lower = 0
    assert bool((res.lower == 0).all())
