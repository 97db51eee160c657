r"""Adaptive ±G adversaries for the regret theorems' tightness: linear losses chosen against the learner.

The Ω(D·G·√T) lower bound of online linear optimisation is played by gradients ±G along one direction v. Against
a *known deterministic* learner the adversary can do better than random signs: it plays g_t = +a·v when
⟨v, x_t⟩ ≥ c and g_t = −b·v otherwise, so every round gains ⟨g_t, x_t⟩ ≥ 0 relative to the threshold and the
iterate keeps oscillating around c with the amplitude of the learner's own step. Since the learner is
deterministic, this adaptive adversary is an oblivious stream: :func:`oscillating_stream` plays the learner in
closed loop once and returns the gradients it met, which the simulator then replays (its certified comparator
and bound overlays apply unchanged, and the replay reproduces the closed-loop iterates exactly).

Why the ratio is large (1-D, K = [−R, R], D = 2R, c = 0, a = b = G). The iterate flips sign every round with
|x_{t+1}| = s_t − |x_t|, s_t the step length, so |x_t| averages s_t/2 and R^lin_T ≥ Σ_t G·|x_t| ≈ (G/2)·Σ_t s_t.
OGD, s_t = D/√t: R^lin_T ≈ G·D·√T, 2/3 of its (3/2)·G·D·√T. AdaGrad, s_t = η/√t with η = D/√2:
R^lin_T ≈ G·D·√T/√2, 1/2 of its √2·D·G·√T. An off-centre threshold with unequal magnitudes (c = −R/5,
a = G/10, b = G: small gains while the iterate sits above c, one large step back) adds R·|Σ_t g_t| ≥ 0 of the
comparator's gain and lifts the AdaGrad-type ratio above 1/2 (measured ≈ 0.52 at T = 1000, ≈ 0.59 at its worst
t ≥ T/10); the defaults below are the best of a grid over (c, a/b) on this 1-D game.
"""

from __future__ import annotations

import torch

from online_convex.problems import RoundData, get_problem

__all__ = ["oscillating_stream", "POLICIES"]

# (threshold c in units of the domain's radius along v, gain a while ⟨v, x⟩ ≥ c, gain b below it)
POLICIES = {"ogd": (-0.25, 1.0, 1.0), "adaptive": (-0.2, 0.1, 1.0)}


def oscillating_stream(
    learner, T: int, seeds: int, v: torch.Tensor, *, policy: str = "adaptive"
) -> RoundData:
    """The gradients g_1..g_T (linear losses, a_t = g_t) that the threshold adversary plays against ``learner``.

    Parameters
    ----------
    learner : online_convex.learners.Learner   with a bounded domain of shape S = v.shape
    T, seeds : int ≥ 1                          rounds; identical seeds (the batch axis of the simulator)
    v : Tensor of shape S, ‖v‖_F = 1            the direction of every gradient
    policy : "adaptive" or "ogd"                the (c, a, b) of :data:`POLICIES`
    """
    if policy not in POLICIES:
        raise ValueError(f"oscillating_stream: policy must be one of {sorted(POLICIES)}; got {policy!r}")
    if T < 1 or seeds < 1:
        raise ValueError(f"oscillating_stream: T and seeds must be >= 1; got T={T}, seeds={seeds}")
    v = v.to(torch.float64)
    if abs(float(v.norm()) - 1.0) > 1e-12:
        raise ValueError(f"oscillating_stream: v must have unit Frobenius norm; got {float(v.norm())}")
    c, a, b = POLICIES[policy]
    radius = float(learner.domain.diameter) / 2
    S = tuple(v.shape)
    problem = get_problem("linear")
    # η depends on the data only through max_t ‖g_t‖ (OGD's G), which is max(a, b) here: resolve it on a
    # stream of that norm, and check below that the replayed stream has the same maximum.
    probe = RoundData(
        a=(max(a, b) * v).expand(T, seeds, *S).clone(), y=torch.zeros(T, seeds, dtype=torch.float64)
    )
    lrn = learner.resolve(problem, probe)
    B = (seeds,)
    state = lrn.init(S, B)
    x = lrn.initial_point(B)
    out = []
    for _ in range(T):
        side = (x * v).flatten(1).sum(-1) >= c * radius
        mag = torch.where(side, torch.full(B, a, dtype=torch.float64), torch.full(B, -b, dtype=torch.float64))
        g = mag.reshape(B + (1,) * len(S)) * v
        out.append(g)
        x, state = lrn.step(g, x, state)
    A = torch.stack(out)
    if abs(float(A.flatten(2).norm(dim=-1).max()) - max(a, b)) > 1e-12 * max(a, b):
        raise RuntimeError("oscillating_stream: the stream never reached its largest gradient norm")
    return RoundData(a=A, y=torch.zeros(T, seeds, dtype=torch.float64))
