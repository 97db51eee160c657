r"""adagrad_full's ``solver="incremental"`` against its ``eigh`` reference and against independent float64 math.

The incremental solver computes u_t = (S_t + δI)^{−1/2}g_t from an eigendecomposition of an earlier S_b, the
gradients since then (Z, in that eigenbasis) and a rational approximation r(x) = Σ_j w_j/(x + s_j) of x^{−1/2}
on a certified spectral interval [lo, hi]. The direction's relative error is at most max_[lo,hi] |r(x)√x − 1|
(≤ ``quad_tol`` = 1e-11 by construction) plus float64 round-off of the Woodbury solves and of the reference's own
``eigh``, which both grow like ε·κ(S_t + δI); the streams below keep κ ≤ ~1e8, so 1e-9 relative is the bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from memopt_theory import methods
from memopt_theory.methods.adagrad_full import quadrature, quadrature_error
from online_convex.domains import make_domain
from online_convex.learners import Learner

M = methods.get("adagrad_full")


@pytest.mark.parametrize("kappa", [1e2, 1e6, 1e10])
def test_quadrature_approximates_inverse_sqrt(kappa):
    """Σ_j w_j/(x + s_j) against x^{−1/2} in float64 at 500 random points of [lo, hi] (lo = 3 so that the
    √lo scaling is exercised): the relative error is below the grid estimate ``quadrature_error`` reports (the
    grid is 8× denser than the error's oscillation; a factor 2 covers a peak between grid points) and decays
    with the number of nodes (the exp(−π²N/log(16κ)) rate: N = 8 is far worse than N = 48)."""
    lo, hi = 3.0, 3.0 * kappa
    x = np.exp(np.random.default_rng(0).uniform(np.log(lo), np.log(hi), 500))
    errs = {}
    for n in (8, 48):
        w, s = quadrature(lo, hi, n)
        assert np.all(w > 0) and np.all(s > 0)
        r = (w[None, :] / (x[:, None] + s[None, :])).sum(axis=1)
        errs[n] = np.abs(r * np.sqrt(x) - 1).max()
        assert errs[n] <= 2 * quadrature_error(lo, hi, n) + 1e-15
    assert errs[48] <= 1e-11  # measured 4e-16 (κ = 1e2) … 1.3e-13 (κ = 1e10)
    assert errs[8] > 100 * errs[48]


def _stream(d, T, seed, batch=()):
    """Gaussian gradients with a per-step scale 1…7 and one jump ×30 at T/2 (which must close a window)."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5 + torch.eye(d, dtype=torch.float64)
    G = torch.randn((T, *batch, d), generator=gen, dtype=torch.float64) @ A.T
    scale = torch.tensor(
        [(1 + t % 7) * (30.0 if t >= T // 2 else 1.0) for t in range(T)], dtype=torch.float64
    )
    return G * scale.reshape(T, *([1] * (len(batch) + 1)))


def _both(G, delta, refresh=8, nodes=40):
    """Directions of both solvers on the same stream, and how many steps took the incremental path."""
    ce, ci = M.Config(delta=delta), M.Config(delta=delta, solver="incremental", refresh=refresh, nodes=nodes)
    se, si = (
        M.init(G.shape[-1:], ce, batch=tuple(G.shape[1:-1])),
        M.init(G.shape[-1:], ci, batch=G.shape[1:-1]),
    )
    ue, ui, fast = [], [], 0
    for g in G:
        u, se = M.update(g, se, ce)
        ue.append(u)
        u, si = M.update(g, si, ci)
        ui.append(u)
        fast += int(si.book[0]) > 0
    return torch.stack(ue), torch.stack(ui), fast, si


def _rel(a, b):
    return ((a - b).norm(dim=-1) / b.norm(dim=-1)).max().item()


@pytest.mark.parametrize("batch", [(), (3,)])
def test_incremental_equals_eigh_reference(batch):
    """δ = 1e-3, d = 16, T = 240 (windows of 8, one scale jump): every direction within 1e-9 relative of the
    eigh route (module docstring), and most steps (≥ 70 %) really take the incremental path."""
    G = _stream(16, 240, seed=1, batch=batch)
    ue, ui, fast, _ = _both(G, 1e-3)
    assert _rel(ui, ue) <= 1e-9  # measured ~1e-12
    assert fast >= 0.7 * len(G)


def test_incremental_against_sqrtm():
    """An independent route: u_t = (S_t + δI)^{−1/2}g_t by scipy's Schur-based sqrtm and a solve, d = 6,
    δ = 0.05 (H_t's condition ≤ ~1e2, so float64 routes agree to ~1e-13; tolerance 1e-10 relative)."""
    d, delta = 6, 0.05
    G = np.random.default_rng(2).standard_normal((40, d))
    cfg = M.Config(delta=delta, solver="incremental", refresh=5)
    st, S, fast = M.init((d,), cfg), np.zeros((d, d)), 0
    for g in G:
        u, st = M.update(torch.from_numpy(g), st, cfg)
        fast += int(st.book[0]) > 0
        S += np.outer(g, g)
        want = np.linalg.solve(np.real(scipy.linalg.sqrtm(S + delta * np.eye(d))), g)
        np.testing.assert_allclose(u.numpy(), want, rtol=0, atol=1e-10 * np.abs(want).max())
    assert fast >= 30


def test_delta_zero_singular_statistic_takes_the_reference_route():
    """δ = 0: while S_t is singular (t < d) the pseudo-inverse cutoff may act, so every step is the eigh route
    and the directions are bit-identical to it; once S_t is full rank (well conditioned: T ≫ d) the incremental
    path takes over and stays within 1e-9 relative."""
    d = 8
    G = _stream(d, 200, seed=3)[:100]  # no scale jump in this part
    ue, ui, fast, _ = _both(G, 0.0)
    assert torch.equal(ui[: d - 1], ue[: d - 1])
    assert _rel(ui, ue) <= 1e-9
    assert fast >= 60


def test_metric_and_projection_agree_with_eigh():
    """The H-norm projection path: a learner on the unit ℓ2 ball (projected in ‖·‖_{H_t} whenever x − ηu
    leaves it) follows the same iterates with either solver to 1e-9; and metric(state).dense() equals the
    reference H_t = (S_t + δI)^{1/2} (float64 sqrtm) both right after an eigh (k = 0) and mid-window."""
    d, delta = 10, 1e-2
    G = _stream(d, 60, seed=4)[:, None, :] * 0.3
    ball = make_domain("l2_ball", (d,), radius=1.0)
    xs = {}
    for solver in ("eigh", "incremental"):
        L = Learner("adagrad_full", M.Config(delta=delta, solver=solver, refresh=6), eta=2.0, domain=ball)
        x, st, S, traj = L.initial_point((1,)), L.init((d,), (1,)), np.zeros((d, d)), []
        for t, g in enumerate(G):
            x, st = L.step(g, x, st)
            traj.append(x)
            S += np.outer(g[0].numpy(), g[0].numpy())
            if solver == "incremental" and t in (30, 33):
                want = np.real(scipy.linalg.sqrtm(S + delta * np.eye(d)))
                got = M.metric(st, L.config).dense()[0].numpy()
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())
        xs[solver] = torch.stack(traj)
    assert (xs["eigh"].norm(dim=-1) > 1 - 1e-9).sum() >= 10  # the projection really acted
    assert _rel(xs["incremental"], xs["eigh"]) <= 1e-9


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(solver="lanczos"), "solver must be one of 'eigh', 'incremental'; got 'lanczos'"),
        (dict(solver="incremental", delta_mode="outside"), "needs delta_mode='inside'"),
        (dict(refresh=0), "refresh must be >= 1; got 0"),
        (dict(quad_tol=1.0), "quad_tol must be in (0, 1); got 1.0"),
    ],
)
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        M.Config(**kw)
