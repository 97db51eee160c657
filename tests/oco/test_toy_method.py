r"""Adding a method with a theorem = adding one module: a toy method registered from inside this test, with its
guarantee, is seen by the battery, the simulator's theory step and overlays, ``memopt regret`` and
``memopt verify`` — none of which names it.

The toy is AdaGrad-norm (one scalar accumulator): S_t = Σ_{s≤t} ‖g_s‖², u_t = g_t/√S_t, metric H_t = √S_t·I.
Theorem (Lemma L1 of the AdaGrad analyses with a scalar metric, then the trace lemma Σ_t ‖g_t‖²/√S_t ≤ 2√S_T):
for x_{t+1} = Π_K^{H_t}(x_t − η·u_t) on K of diameter D,
R^lin_T ≤ (D²/(2η))·√S_T + η·√S_T, which at η = D/√2 is √2·D·√S_T.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import Tensor

from memopt_theory import methods, testing, verify
from memopt_theory.cli import main
from memopt_theory.guarantee import BoundInputs, Guarantee, eta_d_over_sqrt2
from memopt_theory.memory import Static
from memopt_theory.methods._common import check_batch, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Diagonal
from memopt_theory.validation import check_real

# --------------------------------------------------------------------------------------------- the module


@dataclass(frozen=True, kw_only=True)
class Config:
    """AdaGrad-norm: ``delta`` δ ≥ 0 added to S_0."""

    delta: float = 0.0

    def __post_init__(self) -> None:
        check_real(self.delta, "delta", where="toy_adagrad_norm.Config", low=0.0)


class State(NamedTuple):
    s: Tensor  # batch: δ + Σ‖g‖²
    shape: Static


def init(shape, config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape, batch = check_shape(shape, where="toy.init"), check_batch(batch)
    dtype = resolve_dtype(dtype, where="toy.init")
    return State(s=torch.full(batch, float(config.delta), dtype=dtype, device=device), shape=Static(shape))


def update(grad, state, config, *, param=None):
    full = tuple(state.s.shape) + tuple(state.shape)
    g = prepare_grad(grad, full, state.s.dtype, where="toy.update")
    k = len(state.shape)
    s = state.s + (g * g).flatten(start_dim=g.ndim - k).sum(-1)
    root = s.sqrt().reshape(*s.shape, *([1] * k))
    u = torch.where(root > 0, g / torch.where(root > 0, root, torch.ones_like(root)), torch.zeros_like(g))
    return u.to(grad.dtype), State(s=s, shape=state.shape)


def memory(shape, config) -> int:
    return 1


def metric(state, config) -> Diagonal:
    h = state.s.sqrt().reshape(*state.s.shape, *([1] * len(state.shape)))
    return Diagonal(h=h.expand(*state.s.shape, *state.shape), shape=tuple(state.shape))


def _bound(q: BoundInputs, factor: float = 1.0) -> Tensor:
    k = len(q.shape)
    S = q.sum_sq.flatten(start_dim=q.sum_sq.ndim - k).sum(-1) + q.config.delta
    return factor * (q.D**2 / (2 * q.eta) + q.eta) * S.sqrt()


GUARANTEE = Guarantee(
    title="AdaGrad-norm (D²/2η+η)√S",
    theorem="R^lin_T ≤ (D²/(2η) + η)·√(Σ_t ‖g_t‖²) (√2·D·√S_T at η = D/√2)",
    reference="Streeter & McMahan 2010; Ward, Wu, Bottou 2019",
    bound=_bound,
    theory_eta=eta_d_over_sqrt2,
)
TOY = methods.Method(
    "toy_adagrad_norm", Config, init, update, memory, metric, reference="test", guarantee=GUARANTEE
)
# the same method with a bound 10× too small: verify must turn red on it (at t = 1 the measured/bound of the
# true bound is exactly 1/(2√2) — R^lin_1 = r‖g_1‖ from x_1 = 0, bound √2·2r·‖g_1‖ — so ×0.1 gives ≥ 3.5)
BROKEN = methods.Method(
    "toy_broken_bound",
    Config,
    init,
    update,
    memory,
    metric,
    guarantee=Guarantee(
        title="AdaGrad-norm bound x0.1",
        theorem="(wrong)",
        bound=lambda q: _bound(q, 0.1),
        theory_eta=eta_d_over_sqrt2,
    ),
)

# --------------------------------------------------------------------------------------------- the tests


@pytest.fixture
def toy():
    for m in (TOY, BROKEN):
        methods.register(m)
    try:
        yield TOY
    finally:
        for m in (TOY, BROKEN):
            methods.unregister(m.name)


def test_registered_and_passes_the_shipped_battery(toy):
    assert "toy_adagrad_norm" in methods.names() and methods.get("toy_adagrad_norm") is toy
    assert toy in methods.with_guarantee()
    testing.check_method(toy, testing.Case(config=Config()))


def test_unregister_removes_it(toy):
    methods.unregister("toy_broken_bound")
    assert "toy_broken_bound" not in methods.names()
    methods.register(BROKEN)  # the fixture removes it again


def _brute_force(a: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Independent float64 AdaGrad-norm on linear losses (g_t = a_t whatever x_t) in the ℓ2 ball of radius r,
    η = D/√2 = √2·r: x_1 = 0; the H_t = √S_t·I projection is the Euclidean one. Returns (R^lin_t, bound_t)."""
    T = a.shape[0]
    x = np.zeros(a.shape[1])
    eta, S, lin = math.sqrt(2) * r, 0.0, 0.0
    out_lin, out_bound = [], []
    for t in range(T):
        g = a[t]
        lin += g @ x
        S += g @ g
        y = x - eta * g / math.sqrt(S)
        x = y if np.linalg.norm(y) <= r else r * y / np.linalg.norm(y)
        out_lin.append(lin + r * np.linalg.norm(a[: t + 1].sum(0)))  # sup over the ball of −⟨Σg, x*⟩
        out_bound.append(math.sqrt(2) * 2 * r * math.sqrt(S))
    return np.array(out_lin), np.array(out_bound)


def test_simulator_resolves_its_theory_step_and_draws_its_bound(toy):
    from online_convex import simulate
    from online_convex.domains import make_domain
    from online_convex.learners import Learner
    from online_convex.streams import make_stream

    r, T = 2.0, 60
    data, _ = make_stream("low_rank_noise", shape=(5,), T=T, seeds=2, entropy=3, rank=2)
    L = Learner("toy_adagrad_norm", eta="theory", domain=make_domain("l2_ball", (5,), radius=r))
    ck = np.arange(1, T + 1)
    tr = simulate.run(L, "linear", data, checkpoints=ck)
    assert tr.bound_name == GUARANTEE.title
    np.testing.assert_allclose(tr.eta, math.sqrt(2) * r, rtol=1e-15)  # D/√2 with D = 2r
    for seed in range(2):
        lin, bound = _brute_force(data.a[:, seed].numpy(), r)
        # bound: the same closed form summed in another order (~1e-15 relative); R^lin: the simulator projects
        # with the H_t-metric solver, which matches the Euclidean projection of a scalar metric to ~1e-10
        np.testing.assert_allclose(tr.bound[:, seed], bound, rtol=1e-12)
        np.testing.assert_allclose(tr.linear_regret_upper[:, seed], lin, rtol=1e-8, atol=1e-9 * bound[-1])
    assert (tr.linear_regret_upper <= tr.bound).all()  # the theorem
    # t = 1: R^lin_1 = r‖g_1‖ and the bound is 2√2·r‖g_1‖: ratio exactly 1/(2√2)
    np.testing.assert_allclose(tr.linear_regret_upper[0] / tr.bound[0], 1 / (2 * math.sqrt(2)), rtol=1e-12)


def test_memopt_regret_overlays_its_bound(toy, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(
        ["regret", "--methods", "toy_adagrad_norm", "--d", "5", "--T", "40", "--seeds", "2", "--no-plot"]
        + ["--out", str(out)]
    )
    assert rc == 0, capsys.readouterr()
    (row,) = json.loads((out / "summary.json").read_text())["rows"]
    assert row["method"] == "toy_adagrad_norm"
    assert 0 < row["ratio"] <= 1 and math.isfinite(row["bound"])
    meta = json.loads((out / "toy_adagrad_norm.json").read_text())
    assert meta["bound_name"] == GUARANTEE.title


def test_memopt_verify_runs_its_guarantee_and_turns_red_on_a_wrong_bound(toy, capsys):
    names = verify.names()
    good = f"guarantee toy_adagrad_norm: {GUARANTEE.title}"
    assert good in names and "guarantee toy_broken_bound: AdaGrad-norm bound x0.1" in names
    res = verify.run_check(verify.get(good), instances=3, fast=True)
    assert 0 < res.worst_ratio <= 1
    assert main(["verify", "--fast", "--instances", "2", "--filter", "guarantee toy_adagrad_norm"]) == 0
    bad = verify.run_check(
        verify.get("guarantee toy_broken_bound: AdaGrad-norm bound x0.1"), instances=2, fast=True
    )
    assert bad.worst_ratio >= 10 / (2 * math.sqrt(2)) * (1 - 1e-12)
    assert main(["verify", "--fast", "--instances", "2", "--filter", "toy_broken_bound"]) == 1
    assert "NO" in capsys.readouterr().out
