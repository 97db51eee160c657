"""Learners: theory step sizes, one step against independent float64 formulas, H-norm projection KKT, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from memopt_theory import methods
from online_convex.domains import make_domain
from online_convex.learners import Learner, gradient_bound
from online_convex.problems import get_problem
from online_convex.streams import make_stream


def _data(d=5, T=30, seeds=3, problem="linear"):
    return make_stream("power_law", shape=(d,), T=T, seeds=seeds, problem=problem)


def test_theory_step_sizes():
    data, p = _data()
    ball = make_domain("l2_ball", (5,), radius=2.0)
    box = make_domain("box", (5,), lo=-1.0, hi=3.0)
    lin = get_problem("linear")
    full = Learner("adagrad_full", domain=ball).resolve(lin, data)
    np.testing.assert_allclose(full.eta.numpy(), 4.0 / math.sqrt(2))  # η = D/√2, D = 2R
    diag = Learner("adagrad_diag", domain=box).resolve(lin, data)
    np.testing.assert_allclose(diag.eta.numpy(), 4.0 / math.sqrt(2))  # η = D_∞/√2, D_∞ = hi − lo
    ogd = Learner("ogd", domain=ball).resolve(lin, data)
    G = data.a.norm(dim=-1).amax(dim=0)  # linear losses: g_t = a_t exactly
    np.testing.assert_allclose(ogd.eta.numpy(), (4.0 / G).numpy())
    const = Learner("ogd", methods.get("ogd").Config(schedule="constant"), domain=ball).resolve(lin, data)
    np.testing.assert_allclose(const.eta.numpy(), (4.0 / (G * math.sqrt(30))).numpy())


def test_gradient_bound_dominates_every_gradient_on_the_domain():
    """G ≥ ‖∇f_t(x)‖ for x on the sphere and at the centre (least squares: where |p − y| peaks on K)."""
    data, _ = _data(problem="least_squares")
    ball = make_domain("l2_ball", (5,), radius=1.5)
    prob = get_problem("least_squares")
    G = gradient_bound(prob, data, ball)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randn(3, 5, generator=gen, dtype=torch.float64)
        x = 1.5 * x / x.norm(dim=-1, keepdim=True)
        for t in range(data.T):
            assert bool((prob.grad(x, data.a[t], data.y[t]).norm(dim=-1) <= G + 1e-12).all())


def test_ogd_step_matches_the_formula():
    """x_{t+1} = Π_ball(x_t − η g_t/√t), the ball projection y·min(1, R/‖y‖) by hand."""
    data, _ = _data(seeds=1)
    ball = make_domain("l2_ball", (5,), radius=0.3)
    L = Learner("ogd", eta=0.7, domain=ball).resolve(get_problem("linear"), data)
    st = L.init((5,), (1,))
    x = L.initial_point((1,))
    xs = np.zeros(5)
    for t in range(10):
        g = data.a[t]
        x, st = L.step(g, x, st)
        y = xs - 0.7 * g[0].numpy() / math.sqrt(t + 1)
        xs = y * min(1.0, 0.3 / np.linalg.norm(y))
        np.testing.assert_allclose(x[0].numpy(), xs, rtol=1e-13, atol=1e-15)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # sqrtm of a singular G_t (t < d), expected
def test_adagrad_full_unconstrained_step_matches_scipy():
    """Unconstrained: x_{t+1} = x_t − η (G_t^{1/2})^+ g_t, with scipy's sqrtm and pinv as the oracle."""
    data, _ = _data(d=4, seeds=1)
    L = Learner("adagrad_full", eta=0.5, domain=make_domain("unconstrained", (4,))).resolve(
        get_problem("linear"), data
    )
    st, x = L.init((4,), (1,)), L.initial_point((1,))
    G, xs = np.zeros((4, 4)), np.zeros(4)
    for t in range(8):
        g = data.a[t, 0].numpy()
        G += np.outer(g, g)
        x, st = L.step(data.a[t], x, st)
        # pinv cutoff: rank-deficient for t < 4; rcond well above round-off, far below the true eigenvalues
        xs = xs - 0.5 * np.linalg.pinv(np.real(scipy.linalg.sqrtm(G)), rcond=1e-8, hermitian=True) @ g
        np.testing.assert_allclose(
            x[0].numpy(), xs, rtol=1e-6, atol=1e-8
        )  # sqrtm of a singular G: ~√ε accuracy


@pytest.mark.parametrize("method", ["adagrad_full", "adagrad_diag", "s_adagrad"])
def test_ball_step_is_the_h_norm_projection(method):
    """x_{t+1} = argmin_{‖x‖≤R} ‖x − y‖_{H_t}: KKT H(y − x) = μx with μ ≥ 0, ‖x‖ = R when μ > 0.

    Checked on the dense H_t from the method's metric, independently of how the domain solves it; with
    a step this large (η = 5 on a ball of radius 0.2) the projection is active.
    """
    data, _ = _data(d=5, seeds=2)
    R = 0.2
    L = Learner(method, eta=5.0, domain=make_domain("l2_ball", (5,), radius=R)).resolve(
        get_problem("linear"), data
    )
    m = methods.get(method)
    st, x = L.init((5,), (2,)), L.initial_point((2,))
    active = 0
    for t in range(12):
        g = data.a[t]
        u, st_new = m.update(g, st, L.config, param=x)
        y = x - L.eta[:, None] * u
        x, st = L.step(g, x, st)
        H = m.metric(st, L.config).dense()
        for s in range(2):
            xs, ys, Hs = x[s], y[s], H[s]
            if ys.norm() <= R:
                torch.testing.assert_close(xs, ys)
                continue
            active += 1
            assert abs(float(xs.norm()) - R) < 1e-9 * R
            r = Hs @ (ys - xs)  # = μ x at the optimum
            mu = float(r @ xs) / R**2
            assert mu >= -1e-10
            # tolerance: the domain's 1-D root solve is to ~1e-12 relative; 1e-7·‖Hy‖ leaves room for
            # near-singular early H_t (pseudo-inverse cutoff at N·ε·λ_max)
            assert float((r - mu * xs).norm()) <= 1e-7 * float((Hs @ ys).norm()) + 1e-12
    assert active > 0


def test_full_step_method_moves_by_its_own_step_unconstrained():
    adam = methods.get("adam")
    data, _ = _data(seeds=1)
    cfg = adam.Config(lr=0.1)
    L = Learner("adam", cfg, domain=make_domain("unconstrained", (5,)))
    st, x = L.init((5,), (1,)), L.initial_point((1,))
    u, _ = adam.update(data.a[0], st, cfg, param=x)
    x1, _ = L.step(data.a[0], x, st)
    torch.testing.assert_close(x1, x - u, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: Learner("adam", domain=make_domain("l2_ball", (5,), radius=1.0)),
            ValueError,
            "unconstrained only",
        ),
        (
            lambda: Learner("ogd", eta=0.0, domain=make_domain("l2_ball", (5,), radius=1.0)),
            ValueError,
            "eta must be",
        ),
        (
            lambda: Learner("ogd", eta=-1.0, domain=make_domain("l2_ball", (5,), radius=1.0)),
            ValueError,
            "eta must be",
        ),
        (
            lambda: Learner("ogd", eta="fast", domain=make_domain("l2_ball", (5,), radius=1.0)),
            ValueError,
            "'theory'",
        ),
        (
            lambda: Learner("ogd", domain=make_domain("unconstrained", (5,))),
            ValueError,
            "needs a bounded domain",
        ),
        (
            lambda: Learner("ggt", domain=make_domain("unconstrained", (5,))),
            ValueError,
            "eta='theory' is defined for",
        ),
        (
            lambda: Learner("ogd", methods.get("adam").Config(), domain=make_domain("unconstrained", (5,))),
            TypeError,
            "ogd.Config",
        ),
        (
            lambda: Learner("nope", domain=make_domain("unconstrained", (5,))),
            ValueError,
            "unknown method 'nope'",
        ),
        (lambda: Learner("ogd", domain=None), TypeError, "domain must be"),
        (
            lambda: Learner("ogd", domain=make_domain("l2_ball", (5,), radius=1.0), projection="l1"),
            ValueError,
            "projection",
        ),
        (lambda: make_domain("l2_ball", (5,), radius=0.0), ValueError, "radius"),
        (lambda: make_domain("l2_ball", (5,), radius=-2.0), ValueError, "radius"),
    ],
)
def test_bad_learner(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_dimension_mismatch_stream_vs_learner():
    L = Learner("ogd", domain=make_domain("l2_ball", (4,), radius=1.0))
    with pytest.raises(ValueError, match=r"dimension mismatch: the stream's parameter shape is \(5,\)"):
        L.init((5,), (2,))


def test_method_without_metric_cannot_project_in_h_norm():
    L = Learner("ggt", eta=0.1, domain=make_domain("l2_ball", (5,), radius=1.0))
    with pytest.raises(ValueError, match="has no metric H_t"):
        L.init((5,), (1,))


def test_unsupported_projection_is_refused():
    """The nuclear ball cannot project in a non-identity H-norm (domains_hnorm): the step raises, naming both."""
    data, _ = make_stream("kron_power_law", shape=(3, 3), T=5, seeds=1)
    L = Learner("adagrad_full", eta=50.0, domain=make_domain("nuclear_ball", (3, 3), radius=0.01))
    L = L.resolve(get_problem("linear"), data)
    st, x = L.init((3, 3), (1,)), L.initial_point((1,))
    with pytest.raises(ValueError, match="nuclear"):
        L.step(data.a[0], x, st)
