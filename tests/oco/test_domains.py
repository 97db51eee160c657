"""online_convex.domains / domains_hnorm: every projection against a generic solver (scipy SLSQP at tight
tolerance) and its optimality condition, the singular-H limit, the LMO, batch axes and bad input.

The optimality condition of x = Π_K^H(y) is the variational inequality ⟨H(y − x), z − x⟩ ≤ 0 for all z ∈ K.
For bounded K its maximum over z is exact through the LMO: max_z ⟨H(y − x), z − x⟩ = ⟨c, x − lmo(c)⟩ with
c = H(x − y) (the Frank–Wolfe gap of the projection problem), so the tests check it for *every* z ∈ K, and
also on sampled z (which exercises the LMO's own correctness).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize

from memopt_theory.metric import Dense, Diagonal, Identity, Kronecker, LowRankPlusScaled
from online_convex.domains import DOMAIN_NAMES, make_domain

F64 = torch.float64
DOMAINS = [
    ("l2_ball", {"radius": 1.3}),
    ("box", {"lo": -0.4, "hi": 0.7}),
    ("simplex", {"radius": 1.5}),
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def metric(kind: str, shape: tuple[int, ...], seed: int, singular: bool = False):
    """A random PSD metric of the given class; ``singular`` puts zeros in its spectrum."""
    g, n = gen(seed), int(np.prod(shape))
    if kind == "Identity":
        return Identity(shape)
    if kind == "Diagonal":
        h = 0.1 + 3 * torch.rand(shape, generator=g, dtype=F64)
        if singular:
            h.view(-1)[: n // 2] = 0
        return Diagonal(h, shape)
    if kind == "Dense":
        r = n // 2 if singular else n
        M = torch.randn(n, r, generator=g, dtype=F64)
        return Dense(M @ M.T + (0 if singular else 0.1) * torch.eye(n, dtype=F64), shape)
    if kind == "LowRankPlusScaled":
        U = torch.linalg.qr(torch.randn(n, 2, generator=g, dtype=F64)).Q
        s = 0.5 + 2 * torch.rand(2, generator=g, dtype=F64)
        c = torch.tensor(0.0 if singular else 0.3, dtype=F64)
        return LowRankPlusScaled(U, s, c, shape)
    if kind == "Kronecker":
        Fs = []
        for i, m in enumerate(shape):
            M = torch.randn(m, m, generator=g, dtype=F64)
            F = M @ M.T + 0.2 * torch.eye(m, dtype=F64)
            if singular and i == 0:
                F = M[:, :1] @ M[:, :1].T  # rank one
            Fs.append(F)
        return Kronecker(tuple(Fs), shape)
    raise AssertionError(kind)


def slsqp_projection(domain, y: np.ndarray, H: np.ndarray) -> np.ndarray:
    """argmin ½(x − y)ᵀH(x − y) over K by scipy's SLSQP (a generic solver, independent of ours)."""
    n = y.size
    bounds, cons = None, []
    if domain.name == "l2_ball":
        cons = [{"type": "ineq", "fun": lambda x: domain.radius**2 - x @ x, "jac": lambda x: -2 * x}]
    elif domain.name == "box":
        bounds = [(domain.lo, domain.hi)] * n
    elif domain.name == "simplex":
        bounds = [(0, None)] * n
        cons = [{"type": "eq", "fun": lambda x: x.sum() - domain.radius, "jac": lambda x: np.ones(n)}]
    x0 = domain.project(torch.from_numpy(y).reshape(domain.shape)).reshape(-1).numpy()
    res = minimize(
        lambda x: 0.5 * (x - y) @ H @ (x - y),
        x0,
        jac=lambda x: H @ (x - y),
        bounds=bounds,
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    return res.x


def vi_max(domain, x: torch.Tensor, y: torch.Tensor, Hd: torch.Tensor) -> float:
    """max_{z∈K} ⟨H(y − x), z − x⟩ via the LMO (exact); must be ≤ 0 up to rounding."""
    c = (Hd @ (x - y).reshape(-1)).reshape(domain.shape)
    return float((c * (x - domain.lmo(c))).sum())


KINDS = ["Identity", "Diagonal", "Dense", "LowRankPlusScaled", "Kronecker"]


@pytest.mark.parametrize("dom", DOMAINS, ids=lambda d: d[0])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_h_projection_matches_slsqp_and_optimality(dom, kind, seed):
    """Positive-definite H: ours is feasible, no worse than SLSQP, equal to it, and satisfies the VI."""
    shape = (2, 3) if kind == "Kronecker" else (5,)
    domain = make_domain(dom[0], shape, **dom[1])
    H = metric(kind, shape, seed)
    Hd = torch.eye(6 if kind == "Kronecker" else 5, dtype=F64) if kind == "Identity" else H.dense()
    y = 2 * torch.randn(shape, generator=gen(100 + seed), dtype=F64)
    x = domain.project(y, H)
    ref = torch.from_numpy(slsqp_projection(domain, y.reshape(-1).numpy(), Hd.numpy())).reshape(shape)
    f = lambda z: float(0.5 * (z - y).reshape(-1) @ Hd @ (z - y).reshape(-1))  # noqa: E731
    scale = float(torch.linalg.matrix_norm(Hd, 2)) * float((y**2).sum() + 1)
    assert bool(domain.contains(x, atol=1e-12))  # ours lies in K: root finders stop at rounding level
    # SLSQP's iterate may violate constraints by ~1e-12 and stops at ftol: ours must not be worse than it
    assert f(x) <= f(ref) + 1e-10 * scale
    # PD H: unique minimiser; SLSQP reaches ~1e-8 in x at ftol 1e-16 (its quasi-Newton model)
    torch.testing.assert_close(x, ref, rtol=1e-6, atol=1e-6)
    # VI over all of K; rounding ~ N·ε·‖H‖·‖y‖² ≈ 1e-14·scale
    assert vi_max(domain, x, y, Hd) <= 1e-11 * scale
    for z in (domain.project(3 * torch.randn(shape, generator=gen(s), dtype=F64)) for s in range(20)):
        assert float(((Hd @ (y - x).reshape(-1)) * (z - x).reshape(-1)).sum()) <= 1e-11 * scale


@pytest.mark.parametrize("dom", DOMAINS, ids=lambda d: d[0])
@pytest.mark.parametrize("kind", ["Diagonal", "Dense", "LowRankPlusScaled", "Kronecker"])
def test_singular_h_is_the_tikhonov_limit(dom, kind):
    """Singular H: Π_K^H(y) = lim_{ε→0} Π_K^{H+εI}(y). The PD projections (checked against SLSQP above) at
    ε = 1e-3, 1e-5, 1e-7 approach ours at rate O(ε); ours also minimises ‖x − y‖_H (≤ SLSQP's value) and
    satisfies the VI."""
    shape = (2, 3) if kind == "Kronecker" else (6,)
    domain = make_domain(dom[0], shape, **dom[1])
    H = metric(kind, shape, seed=7, singular=True)
    Hd = H.dense()
    n = Hd.shape[-1]
    assert float(torch.linalg.eigvalsh(Hd)[0]) < 1e-12  # really singular
    y = 2 * torch.randn(shape, generator=gen(8), dtype=F64)
    x = domain.project(y, H)
    errs = []
    for eps in (1e-3, 1e-5, 1e-7):
        x_eps = domain.project(y, Dense(Hd + eps * torch.eye(n, dtype=F64), shape))
        errs.append(float(torch.linalg.vector_norm(x_eps - x)))
    # the Tikhonov path is analytic near ε = 0 here, so the error is C·ε; ε = 1e-7 leaves C ≤ 1e3 room, and
    # our own null fill (1e-9·λ⁺_min) is far below
    assert errs[2] <= 1e-4, errs
    f = lambda z: float(0.5 * (z - y).reshape(-1) @ Hd @ (z - y).reshape(-1))  # noqa: E731
    ref = torch.from_numpy(slsqp_projection(domain, y.reshape(-1).numpy(), Hd.numpy())).reshape(shape)
    scale = float(torch.linalg.matrix_norm(Hd, 2)) * float((y**2).sum() + 1)
    assert bool(domain.contains(x, atol=1e-12))
    assert f(x) <= f(ref) + 1e-10 * scale  # SLSQP finds *a* minimiser; ours must reach the same value
    # the null fill 1e-9·λ⁺_min (domains_hnorm) perturbs the optimality condition in H by O(1e-9)·scale
    assert vi_max(domain, x, y, Hd) <= 1e-8 * scale


def test_ball_singular_low_rank_follows_spec_b3():
    """docs/theory/sketching.md §B3 step 5, c = 0 and ‖UUᵀy‖ ≤ R: x = UUᵀy + a(I − UUᵀ)y with the largest a ∈ [0, 1]
    keeping ‖x‖ ≤ R, i.e. a = √((R² − ‖UUᵀy‖²)/‖(I − UUᵀ)y‖²) (Pythagoras: the two parts are orthogonal)."""
    d, R = 6, 2.0
    U = torch.linalg.qr(torch.randn(d, 2, generator=gen(3), dtype=F64)).Q
    H = LowRankPlusScaled(U, torch.tensor([1.0, 4.0], dtype=F64), torch.tensor(0.0, dtype=F64), (d,))
    y = U @ torch.tensor([0.6, -0.8], dtype=F64) + 3 * (torch.eye(d, dtype=F64) - U @ U.T) @ torch.ones(
        d, dtype=F64
    )
    Py = U @ U.T @ y
    a = ((R**2 - Py @ Py) / ((y - Py) @ (y - Py))).sqrt()
    x = make_domain("l2_ball", (d,), radius=R).project(y, H)
    # two projections and one square root in float64: ~1e-15
    torch.testing.assert_close(x, Py + a * (y - Py), rtol=1e-12, atol=1e-12)
    assert abs(float(x.norm()) - R) < 1e-12


def test_box_diagonal_is_clipping_for_any_h():
    """Derived in domains_hnorm's docstring: the problem separates, so the answer does not depend on h ≥ 0."""
    y = torch.tensor([-2.0, 0.1, 5.0, 0.3], dtype=F64)
    box = make_domain("box", (4,), lo=-1.0, hi=0.2)
    for h in ([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1e-30, 7.0]):
        x = box.project(y, Diagonal(torch.tensor(h, dtype=F64), (4,)))
        assert torch.equal(x, torch.tensor([-1.0, 0.1, 0.2, 0.2], dtype=F64))


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["l2_ball", "box", "simplex", "nuclear_ball"]),
    y=arrays(np.float64, (3, 4), elements=st.floats(-10, 10)),
)
def test_euclidean_projection_properties(name, y):
    """Euclidean: in K, idempotent, VI over all of K (FW gap through the LMO), strong convexity
    ‖x − x*‖² ≤ 2·gap ⇒ this is the projection."""
    params = {"l2_ball": {"radius": 2.0}, "box": {"lo": -1.0, "hi": 0.5}, "simplex": {"radius": 2.0}}
    domain = make_domain(name, (3, 4), **params.get(name, {"radius": 3.0}))
    yt = torch.from_numpy(y)
    x = domain.project(yt)
    scale = 1 + float((yt**2).sum())
    assert bool(domain.contains(x, atol=1e-10 * scale))  # SVD / sort round-off
    torch.testing.assert_close(domain.project(x), x, rtol=1e-10, atol=1e-10 * scale)
    assert vi_max(domain, x, yt, torch.eye(12, dtype=F64)) <= 1e-10 * scale


@pytest.mark.parametrize("name", ["l2_ball", "simplex"])
def test_euclidean_matches_slsqp(name):
    domain = make_domain(name, (7,), radius=1.0)
    for s in range(3):
        y = 2 * torch.randn(7, generator=gen(s), dtype=F64)
        ref = slsqp_projection(domain, y.numpy(), np.eye(7))
        torch.testing.assert_close(
            domain.project(y), torch.from_numpy(ref), rtol=1e-6, atol=1e-6
        )  # SLSQP ~1e-8


def test_nuclear_ball_diagonal_case_is_l1_projection():
    """For a diagonal Y the projection stays diagonal and equals the ℓ1-ball projection of the diagonal,
    which for non-negative entries outside the ball is the simplex projection: θ = (Σσ − R)/k over the kept k."""
    Y = torch.diag(torch.tensor([3.0, 1.0, 0.2], dtype=F64))
    X = make_domain("nuclear_ball", (3, 3), radius=2.0).project(Y)
    # θ: keep {3, 1}: θ = (4 − 2)/2 = 1 → (2, 0, 0); check k = 2 is consistent: 1 − 1 = 0 ≤ 0 so k = 1 → θ = 1
    torch.testing.assert_close(X, torch.diag(torch.tensor([2.0, 0.0, 0.0], dtype=F64)), rtol=0, atol=1e-14)


@pytest.mark.parametrize("dom", DOMAINS + [("nuclear_ball", {"radius": 1.0})], ids=lambda d: d[0])
def test_batch_axis_equals_per_seed_calls_and_keeps_dtype(dom):
    shape = (2, 3)
    domain = make_domain(dom[0], shape, **dom[1])
    y = 2 * torch.randn(4, *shape, generator=gen(5), dtype=F64)
    H = (
        None
        if dom[0] == "nuclear_ball"
        else Diagonal(torch.rand(4, *shape, generator=gen(6), dtype=F64), shape)
    )
    xb = domain.project(y, H)
    for b in range(4):
        Hb = None if H is None else Diagonal(H.h[b], shape)
        torch.testing.assert_close(xb[b], domain.project(y[b], Hb), rtol=1e-13, atol=1e-13)  # same arithmetic
    assert domain.project(y.float(), None).dtype == torch.float32
    # batched metrics of every structured class: seed b of the batch = the call with seed b's metric
    for kind in ("Dense", "LowRankPlusScaled", "Kronecker"):
        Ms = [metric(kind, shape, 20 + b) for b in range(4)]
        if kind == "Dense":
            Hb = Dense(torch.stack([M.H for M in Ms]), shape)
        elif kind == "LowRankPlusScaled":
            Hb = LowRankPlusScaled(
                *(torch.stack([getattr(M, f) for M in Ms]) for f in ("U", "s", "c")), shape
            )
        else:
            Hb = Kronecker(tuple(torch.stack([M.factors[i] for M in Ms]) for i in range(2)), shape)
        ball = make_domain("l2_ball", shape, radius=0.5)
        xb = ball.project(y, Hb)
        for b in range(4):
            torch.testing.assert_close(xb[b], ball.project(y[b], Ms[b]), rtol=1e-12, atol=1e-12)
    # a shared (unbatched) metric broadcasts over seeds
    Hs = metric("Dense", shape, 1)
    torch.testing.assert_close(
        make_domain("l2_ball", shape, radius=1.0).project(y, Hs)[2],
        make_domain("l2_ball", shape, radius=1.0).project(y[2], Hs),
        rtol=1e-13,
        atol=1e-13,
    )


def test_lmo_and_diameters_against_brute_force():
    """The LMO beats 2000 random points of K; diameters are attained by the documented pairs."""
    c = torch.randn(3, 4, generator=gen(9), dtype=F64)
    for name, p in DOMAINS + [("nuclear_ball", {"radius": 1.0})]:
        domain = make_domain(name, (3, 4), **p)
        s = domain.lmo(c)
        assert bool(domain.contains(s, atol=1e-12))
        zs = domain.project(5 * torch.randn(2000, 3, 4, generator=gen(10), dtype=F64))
        assert float((c * s).sum()) <= float((c * zs).sum((-1, -2)).min()) + 1e-12
        # no sampled pair is farther apart than the diameter
        assert float(torch.cdist(zs.reshape(2000, -1), zs.reshape(2000, -1)).max()) <= domain.diameter + 1e-12
    assert make_domain("unconstrained", (3,)).diameter == float("inf")
    # c = 0: every point is optimal; the LMO returns a point of K, not NaN (radius large enough to overflow R/tiny)
    for name, p in [
        ("l2_ball", {"radius": 1e3}),
        ("box", {"lo": -1.0, "hi": 2.0}),
        ("simplex", {"radius": 5.0}),
    ]:
        domain = make_domain(name, (3,), **p)
        s0 = domain.lmo(torch.zeros(2, 3, dtype=F64))
        assert bool(domain.contains(s0, atol=1e-12).all())


def test_bad_input():
    with pytest.raises(ValueError, match="unknown domain 'sphere'; known domains: unconstrained, l2_ball"):
        make_domain("sphere", (3,))
    for r in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"radius must be in \(0.0, inf\]; got"):
            make_domain("l2_ball", (3,), radius=r)
    with pytest.raises(ValueError, match="need lo < hi; got lo=1.0, hi=1.0"):
        make_domain("box", (3,), lo=1.0, hi=1.0)
    with pytest.raises(ValueError, match="missing parameter"):
        make_domain("l2_ball", (3,))
    with pytest.raises(ValueError, match="unknown parameter"):
        make_domain("simplex", (3,), radius=1.0, lo=0.0)
    with pytest.raises(ValueError, match="needs a matrix shape"):
        make_domain("nuclear_ball", (3,), radius=1.0)
    ball = make_domain("l2_ball", (3,), radius=1.0)
    with pytest.raises(ValueError, match=r"y has shape \(2, 4\); the domain's shape is \(3,\)"):
        ball.project(torch.zeros(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="must be finite"):
        ball.project(torch.full((3,), float("nan"), dtype=F64))
    with pytest.raises(ValueError, match="H has batch axes"):
        ball.project(torch.zeros(2, 3, dtype=F64), Diagonal(torch.ones(5, 3, dtype=F64), (3,)))
    nuc = make_domain("nuclear_ball", (2, 2), radius=1.0)
    with pytest.raises(
        ValueError, match="nuclear_ball.project: cannot project in the H-norm of a Diagonal metric"
    ):
        nuc.project(torch.zeros(2, 2, dtype=F64), Diagonal(torch.ones(2, 2, dtype=F64), (2, 2)))
    with pytest.raises(ValueError, match="unbounded"):
        make_domain("unconstrained", (3,)).lmo(torch.ones(3, dtype=F64))
    assert set(DOMAIN_NAMES) == {"unconstrained", "l2_ball", "box", "simplex", "nuclear_ball"}


@settings(max_examples=25, deadline=None)
@given(
    dom=st.sampled_from(DOMAINS),
    rank=st.integers(0, 4),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_h_projection_properties_random_psd(dom, rank, seed, scale):
    """Random Dense H = scale·MMᵀ of rank 0..4 on R^4 (singular unless rank 4): x ∈ K, the VI over all of K,
    and ‖x − y‖_H no larger than at any sampled point of K (here the Euclidean projection and 20 others)."""
    n = 4
    g = gen(seed)
    M = torch.randn(n, rank, generator=g, dtype=F64)
    Hd = scale * M @ M.T
    domain = make_domain(dom[0], (n,), **dom[1])
    y = 3 * torch.randn(n, generator=g, dtype=F64)
    x = domain.project(y, Dense(Hd, (n,)))
    f = lambda z: float((z - y) @ Hd @ (z - y))  # noqa: E731
    tol = (
        1e-8 * (1 + scale * float((M**2).sum())) * (1 + float(y @ y))
    )  # null fill 1e-9 and rounding, see above
    assert bool(domain.contains(x, atol=1e-10))
    assert vi_max(domain, x, y, Hd) <= tol
    zs = [domain.project(y)] + [domain.project(3 * torch.randn(n, generator=g, dtype=F64)) for _ in range(20)]
    assert all(f(x) <= f(z) + tol for z in zs)
