"""A finite gradient whose update overflows (float32 1e20: its square, 1e40, exceeds float32's 3.4e38) in the OCO
learner and simulator (issue 14): one clear error naming the method, the round and the seed, and the caller's
state untouched — never a non-finite state carried into later rounds (main: adagrad_diag stored s = inf and never
moved again; s_adagrad, fd_son, mfac, … raised raw LinAlgErrors a round later or inside the update)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from memopt_theory import methods
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import RoundData
from tests.theory.test_optim import MLP

NAMES = methods.names()
S, B = (6, 5), (3,)


def _learner(name: str, domain) -> Learner:
    """The digits-MLP settings of test_optim (rank 2 so GaLore/LDAdam fit 6×5); η = that lr."""
    lr, kw = MLP[name]
    kw = dict(kw)
    if name in ("galore", "ldadam"):
        kw["rank"] = 2
    m = methods.get(name)
    if "lr" in {f.name for f in dataclasses.fields(m.Config)}:
        kw["lr"] = lr
    return Learner(name, m.Config(**kw), **({} if m.full_step else {"eta": lr}), domain=domain)


def _leaves(state) -> list:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, tuple):
        return [t for x in state for t in _leaves(x)]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_an_overflowing_round_is_refused_naming_method_round_and_seed(name):
    """Three float32 seeds, two ordinary rounds, then round 3 where seed 1's gradient is 1e20 everywhere. Either
    ``step`` raises one ValueError naming '{name} learner, round 3' and 'seed(s) [1] of 3' — then the state it
    was given is unchanged (no tensor written in place) and continuing from it with an ordinary gradient equals
    a twin that never saw the bad one — or the update absorbed 1e20 without overflow (Adam: (1 − β2)·g·g =
    1e37), and then state, direction and iterate are finite."""
    L = _learner(name, make_domain("unconstrained", S))
    gen = torch.Generator().manual_seed(12)
    G = torch.randn((4, *B, *S), generator=gen)
    x = L.initial_point(B, torch.float32)
    state = L.init(S, B, dtype=torch.float32)
    for t in (1, 2):
        x, state = L.step(G[t - 1], x, state, t=t)
    kept = [v.clone() for v in _leaves(state)]
    bad = G[2].clone()
    bad[1] = 1e20
    try:
        x3, state3 = L.step(bad, x, state, t=3)
    except ValueError as e:
        msg = str(e)
        assert msg.startswith(f"{name} learner, round 3: ") and "seed(s) [1] of 3" in msg, msg
        assert "largest |g_t| there = 1e+20; its square overflows float32" in msg and "\n" not in msg
        now = _leaves(state)
        assert len(now) == len(kept) and all(torch.equal(a, b) for a, b in zip(now, kept))
        x_a, s_a = L.step(G[3], x, state, t=3)
        x_b, s_b = L.initial_point(B, torch.float32), L.init(S, B, dtype=torch.float32)  # the twin
        for t, g in ((1, G[0]), (2, G[1]), (3, G[3])):
            x_b, s_b = L.step(g, x_b, s_b, t=t)
        assert torch.equal(x_a, x_b)
        assert all(torch.equal(u, v) for u, v in zip(_leaves(s_a), _leaves(s_b), strict=True))
    else:
        assert torch.isfinite(x3).all()
        assert all(torch.isfinite(v).all() for v in _leaves(state3) if v.is_floating_point())


def test_the_simulator_stops_at_the_overflowing_round_naming_the_seed():
    """simulate.run on an ℓ2 ball with adagrad_diag (η = 0.1): the linear loss's gradient is a_t, and a_3 of
    seed 2 is 1e20, so s = Σ g² overflows float32 at round 3. Main: the run finished with that seed frozen
    (direction g/√s = 0 from then on) and a trace that looked valid."""
    gen = torch.Generator().manual_seed(13)
    a = torch.randn(8, 4, 5, generator=gen)
    a[2, 2] = 1e20
    data = RoundData(a=a, y=torch.zeros(8, 4))
    L = Learner("adagrad_diag", eta=0.1, domain=make_domain("l2_ball", (5,), radius=1.0))
    with pytest.raises(
        ValueError,
        match=r"^adagrad_diag learner, round 3: the update gave a non-finite state\.s for seed\(s\) \[2\] of 4 "
        r"\(largest \|g_t\| there = 1e\+20; its square overflows float32\)",
    ):
        simulate.run(L, "linear", data)
    a[2, 2] = 1.0  # the same stream without the overflow runs to the end with a finite trace
    tr = simulate.run(L, "linear", RoundData(a=a, y=torch.zeros(8, 4)))
    assert np.isfinite(tr.cum_loss).all() and np.isfinite(tr.regret_upper).all()


def test_a_nan_gradient_names_the_round_and_seed_and_other_errors_keep_their_message():
    """A NaN in seed 0's gradient: the update's own refusal ('grad must be finite') with the method, round and
    seed; a wrong-shaped gradient keeps the update's message, with the method and round in front."""
    L = _learner("adagrad_diag", make_domain("unconstrained", S))
    x, st = L.initial_point(B, torch.float32), L.init(S, B, dtype=torch.float32)
    g = torch.ones((*B, *S))
    g[0, 1, 2] = float("nan")
    with pytest.raises(
        ValueError,
        match=r"^adagrad_diag learner, round 5: the update failed \(adagrad_diag\.update: "
        r"grad must be finite; it has 1 NaN/inf entries.*\) for seed\(s\) \[0\] of 3",
    ):
        L.step(g, x, st, t=5)
    with pytest.raises(
        ValueError,
        match=r"^adagrad_diag learner, round 5: the update failed \(adagrad_diag\.update: grad has shape "
        r"\(3, 5, 6\); the state expects \(3, 6, 5\)\) \(largest \|g_t\| = 1, 3 seeds\); state not kept$",
    ):
        L.step(torch.ones(3, 5, 6), x, st, t=5)
