"""Tensored learners on matrix-shaped OCO through the simulator (online_convex/checks/tensored.py).

The theorem checks compare the UPPER end of the certified regret interval with each method's bound
(memopt_theory/bounds/tensored.py) at every checkpoint and seed; the recorder test makes sure that the bound is
evaluated on the states of the very run whose regret is measured.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memopt_theory import methods
from memopt_theory.verify import run_check
from online_convex import simulate
from online_convex.checks.tensored import CHECKS, RecordingLearner
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import get_problem
from online_convex.streams import make_stream


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_tensored_regret_within_bound(check):
    """Upper end of the certified interval ≤ the theorem's bound on 4 fast random matrix instances."""
    res = run_check(check, fast=True, instances=4)
    assert res.worst_ratio <= 1.0, (res.worst_measured, res.worst_bound)


def test_recorded_states_are_the_runs_states():
    """RecordingLearner logs (g_t, state_t) of the simulator's own loop: replaying the method on the logged g_t
    reproduces the logged Shampoo factors exactly (bitwise: the same float64 operations in the same order),
    and the run's cumulative loss equals a Σ f_t(x_t) recomputed from a plain Learner (bitwise)."""
    data, _ = make_stream("low_rank_noise", shape=(3, 4), T=15, seeds=2, entropy=1, problem="logistic")
    dom = make_domain("l2_ball", (3, 4), radius=1.0)
    cfg = methods.get("shampoo").Config(eps=1e-3)
    eta = torch.full((2,), 0.3, dtype=torch.float64)
    rec = RecordingLearner("shampoo", cfg, eta=eta, domain=dom)
    ck = np.array([5, 15])
    tr = simulate.run(rec, get_problem("logistic"), data, checkpoints=ck)
    m = methods.get("shampoo")
    st = m.init((3, 4), cfg, batch=(2,))
    for g, logged in rec.log:
        _, st = m.update(g, st, cfg)
        for a, b in zip(st.H, logged.H):
            assert torch.equal(a, b)
    plain = simulate.run(
        Learner("shampoo", cfg, eta=eta, domain=dom), get_problem("logistic"), data, checkpoints=ck
    )
    assert np.array_equal(tr.cum_loss, plain.cum_loss)


@pytest.mark.parametrize(
    "name,config",
    [
        ("shampoo", None),
        ("s_shampoo", methods.get("s_shampoo").Config(ell=2)),
        ("extreme_tensoring", None),
        ("sm3", methods.get("sm3").Config(variant="I")),
    ],
)
def test_every_tensored_learner_stays_in_the_ball(name, config):
    """Projection in each method's own metric keeps every iterate in K = {‖X‖_F ≤ 0.5}: the linear regret against
    the worst comparator is then finite and ≥ the certified regret's upper end minus the comparator gap
    (convexity: f_t(x_t) − f_t(x*) ≤ ⟨g_t, x_t − x*⟩). Tolerance 1e-9: the projection's root finding (brentq)."""
    data, _ = make_stream("kron_power_law", shape=(4, 3), T=25, seeds=2, entropy=3, problem="hinge")
    dom = make_domain("l2_ball", (4, 3), radius=0.5)
    tr = simulate.run(Learner(name, config, eta=0.7, domain=dom), get_problem("hinge"), data)
    assert np.all(np.isfinite(tr.linear_regret_upper))
    assert np.all(tr.regret_lower <= tr.linear_regret_upper + 1e-9 * (1 + np.abs(tr.linear_regret_upper)))


@pytest.mark.parametrize(
    "name,config",
    [
        ("adafactor", methods.get("adafactor").Config()),
        ("came", methods.get("came").Config(lr=1e-2)),
        ("sm3", methods.get("sm3").Config()),
    ],
)
def test_full_step_and_metricless_learners_run_unconstrained(name, config):
    """Adafactor, CAME (own step rules) and SM3-II (no stored metric) run on a matrix least-squares stream with
    K = R^{m×n}: the learner's cumulative loss equals Σ_t f_t(x_t) from a direct replay of the method."""
    data, _ = make_stream("power_law", shape=(3, 5), T=12, seeds=2, entropy=4, problem="least_squares")
    dom = make_domain("unconstrained", (3, 5))
    prob = get_problem("least_squares")
    tr = simulate.run(Learner(name, config, eta=0.1, domain=dom), prob, data, checkpoints=np.array([12]))
    m = methods.get(name)
    x = torch.zeros((2, 3, 5), dtype=torch.float64)
    st = m.init((3, 5), config, batch=(2,))
    cum = torch.zeros(2, dtype=torch.float64)
    for a, y in zip(data.a, data.y):
        cum = cum + prob.loss(x, a, y)
        u, st = m.update(prob.grad(x, a, y), st, config, param=x)
        x = x - (u if m.full_step else 0.1 * u)
    # same operations up to the order of float64 sums inside the simulator: 1e-12 relative
    np.testing.assert_allclose(tr.cum_loss[-1], cum.numpy(), rtol=1e-12)
    assert math.isfinite(float(tr.cum_loss[-1].sum()))
