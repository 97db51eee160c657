"""The Guarantee data a method carries: validation, the generic reasons a bound does not apply, registration, and
one mathematical property of every registered guarantee — the step size it prescribes minimises its own bound."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from memopt_theory import methods
from memopt_theory.guarantee import BoundInputs, EtaInputs, Guarantee, Setting
from tests.theory.cases import CASES, grads

# D ≠ D_∞ on purpose, so a step or bound that reads the wrong diameter is told apart (e.g. a box [−½, ½]^d, d = 9:
# D = 3, D_∞ = 1)
BALL = Setting(shape=(6,), D=3.0, D_inf=1.0)


def _bound(q):
    return torch.zeros(())


def test_kind_and_needs_are_validated():
    with pytest.raises(ValueError, match="kind must be one of"):
        Guarantee(title="x", theorem="y", kind="tightish", bound=_bound)
    with pytest.raises(ValueError, match="kind 'none' goes with bound=None"):
        Guarantee(title="x", theorem="y", kind="none", bound=_bound)
    with pytest.raises(ValueError, match="kind 'none' goes with bound=None"):
        Guarantee(title="x", theorem="y", kind="upper bound", bound=None)
    with pytest.raises(ValueError, match="needs must be a subset"):
        Guarantee(title="x", theorem="y", bound=_bound, needs=frozenset({"hessian"}))


def test_generic_reasons_come_before_the_methods_own():
    g = Guarantee(title="x", theorem="y", bound=_bound, applies=lambda c, s: "own reason")
    assert g.reason(None, BALL) == "own reason"
    assert "unbounded" in g.reason(None, dataclasses.replace(BALL, D=math.inf))
    assert "projection 'euclidean'" in g.reason(None, dataclasses.replace(BALL, projection="euclidean"))
    none = Guarantee(title="x", theorem="y", kind="none")
    assert none.reason(None, BALL) == "the method has no regret bound"


def test_the_methods_own_applicability_tests():
    """The hyper-parameters a theorem excludes are refused with a reason, the defaults it covers are not."""
    sm3, ogd, s_sh = methods.get("sm3"), methods.get("ogd"), methods.get("s_shampoo")
    assert sm3.guarantee.reason(sm3.Config(variant="I"), BALL) is None
    assert "SM3-II" in sm3.guarantee.reason(sm3.Config(variant="II"), BALL)
    assert ogd.guarantee.reason(ogd.Config(), BALL) is None
    assert "eta='theory'" in ogd.guarantee.reason(ogd.Config(), dataclasses.replace(BALL, eta_mode="given"))
    assert "delta" in ogd.guarantee.reason(ogd.Config(delta=0.5), BALL)
    assert "beta2" in s_sh.guarantee.reason(s_sh.Config(ell=2, beta2=0.9), BALL)


def test_register_refuses_a_second_method_under_a_name():
    other = dataclasses.replace(methods.get("ogd"))  # equal fields, a different object
    with pytest.raises(ValueError, match="already registered"):
        methods.register(other)
    with pytest.raises(TypeError, match="must be a Method"):
        methods.register("ogd")
    with pytest.raises(ValueError, match="unknown method"):
        methods.unregister("no_such_method")


def _inputs(m, eta: torch.Tensor) -> BoundInputs:
    """The quantities of 6 steps of ``m`` (default battery config) on two seeds of Gaussian gradients."""
    g = m.guarantee
    case = CASES[m.name]
    cfg = m.Config(**{**{f.name: getattr(case.config, f.name) for f in dataclasses.fields(case.config)}})
    shape = tuple(g.instance_shape)
    for field, value in g.instance_config.items():
        cfg = dataclasses.replace(cfg, **{field: value})
    G = grads(shape, 6, seed=4, batch=(2,))
    st = m.init(shape, cfg, batch=(2,))
    for gi in G:
        _, st = m.update(gi, st, cfg)
    flat = G.reshape(6, 2, -1)
    return BoundInputs(
        config=cfg,
        shape=shape,
        t=6,
        T=6,
        eta=eta,
        D=BALL.D,
        D_inf=BALL.D_inf,
        sum_sq=(G * G).sum(0),
        G=torch.einsum("tbi,tbj->bij", flat, flat),
        state=st,
    )


WITH_STEP = [
    m.name
    for m in methods.with_guarantee()
    if m.guarantee.theory_eta is not None and "grad_bound" not in m.guarantee.needs
]


@pytest.mark.parametrize("name", WITH_STEP)
def test_prescribed_step_minimises_the_bound(name):
    """Each of these bounds has the form (D²/(2η) + η·c)·X (D_∞ for diagonal metrics) with X > 0 independent of
    η, minimised at η = D/√(2c); the guarantee's theory step must be that minimiser: moving η by ±1 % raises the
    bound (by ≈ 1e-4 relative, far above float64 round-off)."""
    m = methods.get(name)
    g = m.guarantee
    shape = tuple(g.instance_shape)
    eta0 = float(g.theory_eta(EtaInputs(config=None, shape=shape, D=BALL.D, D_inf=BALL.D_inf, T=6)))
    at = {f: g.bound(_inputs(m, torch.full((2,), eta0 * f, dtype=torch.float64))) for f in (0.99, 1.0, 1.01)}
    assert (at[1.0] > 0).all()
    assert (at[0.99] > at[1.0] * (1 + 1e-6)).all() and (at[1.01] > at[1.0] * (1 + 1e-6)).all(), at
