"""simulate.run: the loop against an independent numpy OGD, certified intervals against known minimisers,
batch = per-seed loop, checkpoints, storage round trip, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memopt_theory import methods, storage
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import RoundData
from online_convex.streams import make_stream


def test_geometric_checkpoints():
    c = simulate.geometric_checkpoints(2000, 30)
    assert c[0] == 1 and c[-1] == 2000 and np.all(np.diff(c) > 0)
    ratios = c[1:] / c[:-1]
    assert ratios[-5:].max() < 1.5  # geometric: ratio (2000)^(1/29) ≈ 1.30 between late neighbours
    assert list(simulate.geometric_checkpoints(1, 5)) == [1]


def test_ogd_loss_and_regret_match_numpy():
    """Projected OGD on linear losses in the ball, written in numpy; min_K F_t = −R‖Σ_{s≤t} a_s‖ exactly."""
    T, R = 60, 0.5
    data, _ = make_stream("power_law", shape=(4,), T=T, seeds=2, entropy=3)
    L = Learner("ogd", eta=0.3, domain=make_domain("l2_ball", (4,), radius=R))
    tr = simulate.run(L, "linear", data, checkpoints=[1, 7, 30, 60])
    A = data.a.numpy()
    for s in range(2):
        x, cum, out_loss, out_min = np.zeros(4), 0.0, [], []
        for t in range(T):
            cum += A[t, s] @ x
            y = x - 0.3 * A[t, s] / math.sqrt(t + 1)
            x = y * min(1.0, R / np.linalg.norm(y))
            if t + 1 in (1, 7, 30, 60):
                out_loss.append(cum)
                out_min.append(-R * np.linalg.norm(A[: t + 1, s].sum(0)))
        np.testing.assert_allclose(tr.cum_loss[:, s], out_loss, rtol=1e-12, atol=1e-12)
        true_regret = np.array(out_loss) - np.array(out_min)
        # the interval must contain the true regret; rounding of Σ a_s: ~T·ε·max‖a‖, far below 1e-10
        assert np.all(tr.regret_lower[:, s] <= true_regret + 1e-10)
        assert np.all(true_regret <= tr.regret_upper[:, s] + 1e-10)
        # linear losses: the worst-comparator linearised regret is the regret itself
        np.testing.assert_allclose(tr.linear_regret_upper[:, s], true_regret, rtol=1e-10, atol=1e-10)


def test_interval_contains_true_regret_least_squares_known_minimiser():
    """y_t = ⟨a_t, w*⟩ with ‖w*‖ < R: min_K F_t = 0 at w*, so the true regret is L_t itself."""
    T, d = 40, 3
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(T, 2, d, generator=gen, dtype=torch.float64)
    w = torch.tensor([[0.3, -0.2, 0.1], [0.0, 0.4, -0.3]], dtype=torch.float64)
    data = RoundData(a=a, y=(a * w).sum(-1))
    L = Learner("adagrad_full", domain=make_domain("l2_ball", (d,), radius=1.0))
    tr = simulate.run(L, "least_squares", data, checkpoints=[5, 20, 40])
    true_regret = tr.cum_loss  # min F_t = 0
    # tolerance: the comparator's own rounding (Newton to ~1e-12 relative on F_t of order 1..100)
    assert np.all(tr.regret_lower <= true_regret + 1e-9)
    assert np.all(true_regret <= tr.regret_upper + 1e-9)
    assert np.all(tr.comparator_gap >= 0) and tr.comparator_gap.max() < 1e-6


@pytest.mark.parametrize("method", ["adagrad_full", "s_adagrad", "adagrad_diag", "ogd"])
def test_batched_seeds_equal_one_seed_at_a_time(method):
    data, prob = make_stream("low_rank_noise", shape=(6,), T=40, seeds=3, rank=2, problem="logistic")
    L = Learner(method, domain=make_domain("l2_ball", (6,), radius=1.0))
    ck = [1, 10, 40]
    both = simulate.run(L, prob, data, checkpoints=ck)
    for s in range(3):
        one = simulate.run(L, prob, RoundData(a=data.a[:, s : s + 1], y=data.y[:, s : s + 1]), checkpoints=ck)
        # batched vs single LAPACK calls may round differently; a closed loop of 40 steps keeps it ~1e-13
        np.testing.assert_allclose(both.cum_loss[:, s], one.cum_loss[:, 0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(both.regret_upper[:, s], one.regret_upper[:, 0], rtol=1e-9, atol=1e-9)


def test_same_seed_same_numbers():
    data, prob = make_stream("rotating", shape=(6,), T=50, seeds=2)
    L = Learner("s_adagrad", domain=make_domain("l2_ball", (6,), radius=2.0))
    a = simulate.run(L, prob, data)
    b = simulate.run(L, prob, data)
    for k, v in a.to_arrays().items():
        np.testing.assert_array_equal(v, b.to_arrays()[k])


def test_regret_at_most_worst_linearised_regret():
    """Convexity: f_t(x_t) − f_t(x*) ≤ ⟨g_t, x_t − x*⟩, so regret ≤ sup_{x*∈K} R^lin; the lower end obeys it."""
    data, prob = make_stream("breast_cancer", shape=None, T=80, seeds=2)
    L = Learner("adagrad_diag", domain=make_domain("box", data.shape, lo=-1.0, hi=1.0))
    tr = simulate.run(L, prob, data)
    assert np.all(tr.regret_lower <= tr.linear_regret_upper + 1e-9)  # rounding of sums of ~80 terms


def test_trace_round_trip_through_storage(tmp_path):
    data, prob = make_stream("power_law", shape=(5,), T=30, seeds=2)
    tr = simulate.run(Learner("adagrad_full", domain=make_domain("l2_ball", (5,), radius=1.0)), prob, data)
    storage.write_result(tmp_path / "r", tr.to_arrays(), tr.meta())
    arrays, meta = storage.read_result(tmp_path / "r")
    back = simulate.RegretTrace.from_arrays(arrays, meta)
    for k, v in tr.to_arrays().items():
        np.testing.assert_array_equal(v, back.to_arrays()[k])
    assert back.meta() == tr.meta()
    assert tr.memory_scalars == 25 and tr.bound_name is not None


def test_unbounded_domain_has_no_bound_and_infinite_linearised_regret():
    data, prob = make_stream("diabetes", shape=None, T=30, seeds=1)
    L = Learner("adagrad_full", eta=0.1, domain=make_domain("unconstrained", data.shape))
    tr = simulate.run(L, prob, data, checkpoints=[10, 30])
    assert tr.bound is None and np.all(np.isinf(tr.linear_regret_upper))
    assert np.all(tr.regret_lower <= tr.regret_upper)


def test_device_argument_and_float64_default():
    data, prob = make_stream("power_law", shape=(3,), T=10, seeds=1)
    tr = simulate.run(
        Learner("ogd", domain=make_domain("l2_ball", (3,), radius=1.0)), prob, data, device="cpu"
    )
    assert tr.cum_loss.dtype == np.float64


@pytest.mark.parametrize(
    ("checkpoints", "match"),
    [
        ([0, 5], r"checkpoints must lie in \[1, T\]"),
        ([5, 11], r"checkpoints must lie in \[1, T\]"),
        ([1.5], "ints"),
    ],
)
def test_bad_checkpoints(checkpoints, match):
    data, prob = make_stream("power_law", shape=(3,), T=10, seeds=1)
    with pytest.raises(ValueError, match=match):
        simulate.run(
            Learner("ogd", domain=make_domain("l2_ball", (3,), radius=1.0)),
            prob,
            data,
            checkpoints=checkpoints,
        )


def test_dimension_mismatch_between_stream_and_learner():
    data, prob = make_stream("power_law", shape=(3,), T=10, seeds=1)
    with pytest.raises(ValueError, match="dimension mismatch"):
        simulate.run(Learner("ogd", domain=make_domain("l2_ball", (4,), radius=1.0)), prob, data)


def test_T_must_be_positive():
    with pytest.raises(ValueError, match="T must be >= 1"):
        simulate.geometric_checkpoints(0)


def test_s_adagrad_with_ell_above_d_is_full_adagrad_end_to_end():
    """§B3 oracle: ℓ > d keeps the whole spectrum (ρ ≡ 0), so S-AdaGrad = full-matrix AdaGrad δ = 0 — here
    through the whole loop: its LowRankPlusScaled metric and the Dense one give the same H_t-norm projections,
    and Cor. 4 (d − ℓ < 0 ⇒ no extra term) equals the AdaGrad bound."""
    data, prob = make_stream("power_law", shape=(5,), T=60, seeds=2, problem="logistic")
    ball = make_domain("l2_ball", (5,), radius=3.0)
    ck = [5, 20, 60]
    full = simulate.run(Learner("adagrad_full", domain=ball), prob, data, checkpoints=ck)
    sk = simulate.run(
        Learner("s_adagrad", methods.get("s_adagrad").Config(ell=6), domain=ball), prob, data, checkpoints=ck
    )
    # two eigen-solvers (eigh of G vs SVD of the sketch) on a closed loop of 60 steps: seen 4e-14
    np.testing.assert_allclose(sk.cum_loss, full.cum_loss, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sk.bound, full.bound, rtol=1e-10)
