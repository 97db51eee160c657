r"""One generic check per registered guarantee: every method that declares a regret bound is run here.

For each method of the registry whose :class:`memopt_theory.guarantee.Guarantee` has a bound (the list is read
when :func:`checks` is called, so a method registered later — in a test, a plugin — is checked too), draw a
random instance from the seed: linear losses f_t(x) = ⟨a_t, x⟩ from a low-rank-plus-noise or a power-law
stream of the guarantee's ``instance_shape``, the ℓ2 ball of radius 0.1, 1 or 10, T rounds; run the method's
Config (its defaults, with the guarantee's ``instance_config``) at the step size its guarantee prescribes (η = "theory"), projections in its metric H_t.

Theorem checked: the guarantee's own statement, R^lin_t ≤ bound_t at every checkpoint t and every seed, where
R^lin_t = sup_{x*∈K} Σ_{s≤t} ⟨g_s, x_s − x*⟩ is the linearised regret, evaluated exactly through the ball's
linear minimisation oracle (for linear losses it is the regret itself). measured/bound is the worst over
seeds and checkpoints. A guarantee that does not apply to the default Config in this setting (its ``applies``
gives a reason) fails loudly: every registered bound must cover its own defaults on a bounded ball.
"""

from __future__ import annotations

import numpy as np

from memopt_theory import methods
from memopt_theory.verify import Check

__all__ = ["checks", "guarantee_check", "guarantee_instance"]


def guarantee_instance(name: str, seed: int, fast: bool):
    """The simulated run of method ``name`` on the instance drawn from ``seed`` (a RegretTrace)."""
    from online_convex import simulate
    from online_convex.domains import make_domain
    from online_convex.learners import Learner
    from online_convex.problems import get_problem
    from online_convex.streams import make_stream

    m = methods.get(name)
    g = m.guarantee
    if g is None:
        raise ValueError(f"guarantee check: method {name!r} declares no guarantee")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    stream = str(rng.choice(["low_rank_noise", "power_law"]))
    T = int(rng.integers(20, 61 if fast else 301))
    radius = float(rng.choice([0.1, 1.0, 10.0]))
    shape = tuple(g.instance_shape)
    data, _ = make_stream(stream, shape=shape, T=T, seeds=2, entropy=seed, problem="linear")
    learner = Learner(
        name, m.Config(**g.instance_config), eta="theory", domain=make_domain("l2_ball", shape, radius=radius)
    )
    trace = simulate.run(
        learner, get_problem("linear"), data, checkpoints=simulate.geometric_checkpoints(T, 8)
    )
    if trace.bound is None:
        from online_convex.overlays import why_no_bound

        raise ValueError(
            f"guarantee check {name}: no bound drawn on its own default instance: "
            f"{why_no_bound(learner.resolve(get_problem('linear'), data), int(np.prod(shape)), 'theory')}"
        )
    return trace


def guarantee_check(name: str):
    """The check function ``(seed, fast) -> (measured, bound)`` for method ``name``'s guarantee."""

    def run(seed: int, fast: bool) -> tuple[float, float]:
        tr = guarantee_instance(name, seed, fast)
        ratio = tr.linear_regret_upper / tr.bound
        i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        return float(tr.linear_regret_upper[i]), float(tr.bound[i])

    g = methods.get(name).guarantee
    run.__doc__ = f"{name}: {g.theorem if g else ''} (the method's own guarantee, simulated)"
    return run


def checks() -> tuple[Check, ...]:
    """A :class:`Check` per registered method with a bound, named "guarantee <method>: <title>"."""
    out = []
    for m in methods.with_guarantee():
        g = m.guarantee
        assert g is not None  # with_guarantee() keeps methods that have one
        out.append(
            Check(f"guarantee {m.name}: {g.title}", g.reference or m.reference, guarantee_check(m.name), 8, 2)
        )
    return tuple(out)
