"""Tensored learners on matrix-shaped OCO through the simulator (online_convex/checks/tensored.py).

The theorem checks compare the UPPER end of the certified regret interval with each method's bound
(memopt_theory/bounds/tensored.py) at every checkpoint and seed; the recorder test makes sure that the bound is
evaluated on the states of the very run whose regret is measured.
"""

from __future__ import annotations

import dataclasses
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
    """Projection in each method's own metric keeps every iterate in K = {‖X‖_F ≤ 0.5} (checked on each x_{t+1}
    the learner returns; tolerance 1e-9 relative: the projection's root finding, brentq), and the certified
    regret's lower end stays below the linear regret against the worst comparator (convexity:
    f_t(x_t) − f_t(x*) ≤ ⟨g_t, x_t − x*⟩). One checkpoint: the hinge comparator's Newton solve dominates the cost."""
    data, _ = make_stream("kron_power_law", shape=(4, 3), T=25, seeds=2, entropy=3, problem="hinge")
    dom = make_domain("l2_ball", (4, 3), radius=0.5)
    seen = []

    @dataclasses.dataclass(frozen=True)
    class Watched(Learner):
        def step(self, g, x, state):
            x_next, state = super().step(g, x, state)
            seen.append(x_next.flatten(start_dim=1).norm(dim=1))
            return x_next, state

    tr = simulate.run(
        Watched(name, config, eta=0.7, domain=dom), get_problem("hinge"), data, checkpoints=[25]
    )
    norms = torch.stack(seen)
    assert norms.shape == (25, 2) and float(norms.max()) <= 0.5 * (1 + 1e-9)
    assert (
        float(norms.max()) > 0.4
    )  # η = 0.7 pushes the iterates to the boundary: the projection was exercised
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


def test_regret_cli_matrix_problem_runs_tensored_learners_at_their_theory_step(tmp_path, capsys):
    """``memopt regret --problem matrix-…`` with the default η = "theory": Shampoo / S-Shampoo step at
    D/√(2r̄) with r̄ = min(m, n) = 3 (any 3×4 gradient has rank ≤ 3), Extreme Tensoring at D_∞/√2; each gets its
    theorem's bound drawn, and every bound holds (the exit code is 1 otherwise)."""
    import json

    from memopt_theory import storage
    from memopt_theory.cli import main

    out = tmp_path / "res"
    argv = ["regret", "--problem", "matrix-linear", "--shape", "3x4"]
    argv += ["--methods", "shampoo,s_shampoo,extreme_tensoring", "--ranks", "2"]
    argv += ["--T", "30", "--seeds", "2", "--checkpoints", "5"]
    assert main([*argv, "--no-plot", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads((out / "summary.json").read_text())["rows"]}
    assert set(rows) == {"shampoo", "s_shampoo (ℓ=2)", "extreme_tensoring"}
    assert all(math.isfinite(r["bound"]) and 0 < r["ratio"] <= 1 for r in rows.values())
    D = 2.0  # unit Frobenius ball
    for stem, eta in (("shampoo", D / math.sqrt(6)), ("s_shampoo_ell2", D / math.sqrt(6))):
        arrays, _ = storage.read_result(out / stem)
        np.testing.assert_allclose(arrays["eta"], eta, rtol=1e-15)
    arrays, _ = storage.read_result(out / "extreme_tensoring")
    np.testing.assert_allclose(arrays["eta"], D / math.sqrt(2), rtol=1e-15)  # D_∞ = 2 on the unit ball


@pytest.mark.parametrize(
    "name,config",
    [
        ("shampoo", methods.get("shampoo").Config(eps=1e-3)),
        ("s_shampoo", methods.get("s_shampoo").Config(ell=2, eps=1e-3)),
        ("extreme_tensoring", methods.get("extreme_tensoring").Config(order=2, eps=1e-3)),
        ("sm3", methods.get("sm3").Config(variant="I")),
    ],
)
def test_drawn_tensored_bound_is_the_theorem_on_the_run_state(name, config):
    """The overlay bound simulate.run draws for a tensored learner at η = "theory" equals the theorem evaluated
    independently (numpy eigh, float64) on the logged state at each checkpoint: Shampoo (D²/2η + ηr̄)·tr L^{1/4}
    ·tr R^{1/4} (r̄ = 3), S-Shampoo the same on its sketched factors, Extreme Tensoring and SM3-I
    (D_∞²/2η + η)·Σ_j √ν_j with ν_j = Π_i h^{(i)}[j_i]^{1/p} (its product form) or SM3-I's ν; and the run holds it.
    Tolerance 1e-10 relative: two eigendecompositions of 4×4 PSD matrices."""
    shape = (3, 4)
    data, _ = make_stream("low_rank_noise", shape=shape, T=20, seeds=2, entropy=5, problem="linear", rank=2)
    dom = make_domain("l2_ball", shape, radius=1.0)
    rec = RecordingLearner(name, config, domain=dom)  # eta="theory"
    ck = np.array([4, 20])
    tr = simulate.run(rec, get_problem("linear"), data, checkpoints=ck)
    eta = float(tr.eta[0])
    D, D_inf = float(dom.diameter), float(dom.diameter_inf)
    want = []
    for t in ck:
        st = rec.log[int(t) - 1][1]
        row = []
        for b in range(2):
            if name in ("shampoo", "s_shampoo"):
                if name == "shampoo":
                    Fs = [F[b].numpy() for F in st.H]
                else:
                    from memopt_theory.methods import s_shampoo

                    Fs = [F[b].numpy() for F in s_shampoo.factors(st, config, 1.0)]
                tr4 = [np.clip(np.linalg.eigvalsh(F), 0, None) ** 0.25 for F in Fs]
                row.append((D**2 / (2 * eta) + eta * 3) * tr4[0].sum() * tr4[1].sum())
            elif name == "extreme_tensoring":
                h = [x[b].numpy() for x in st.h]
                row.append((D_inf**2 / (2 * eta) + eta) * np.prod([(x**0.25).sum() for x in h]))
            else:
                nu = np.minimum(st.mu[0][b].numpy()[:, None], st.mu[1][b].numpy()[None, :])
                row.append((D_inf**2 / (2 * eta) + eta) * np.sqrt(nu).sum())
        want.append(row)
    assert tr.bound_name is not None
    np.testing.assert_allclose(tr.bound, np.array(want), rtol=1e-10)
    expected_eta = D / math.sqrt(6) if name in ("shampoo", "s_shampoo") else D_inf / math.sqrt(2)
    np.testing.assert_allclose(tr.eta, expected_eta, rtol=1e-15)
    assert np.all(tr.regret_upper <= tr.bound)


def test_regret_cli_came_takes_eta_as_its_lr(tmp_path, capsys):
    """CAME's Config has no default lr: --eta NUMBER becomes its lr (stored in the run's config); with the default
    η = "theory" the CLI exits 2 naming the method (CAME has no regret theorem, so no theory step)."""
    from memopt_theory import storage
    from memopt_theory.cli import main

    argv = ["regret", "--problem", "matrix-least_squares", "--shape", "2x3", "--methods", "came,adafactor"]
    # no --d: the default stream rank min(8, ·) is taken of N = 6, not of --d = 64
    argv += ["--T", "10", "--seeds", "2", "--domain", "unconstrained", "--no-plot"]
    assert main([*argv, "--eta", "0.02", "--out", str(tmp_path / "a")]) == 0
    _, meta = storage.read_result(tmp_path / "a" / "came")
    assert meta["config"]["lr"] == 0.02
    assert main([*argv, "--out", str(tmp_path / "b")]) == 2
    assert "came has no default lr and no theory step" in capsys.readouterr().err
