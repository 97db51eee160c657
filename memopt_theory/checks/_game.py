r"""The unconstrained linear game shared by the regret checks of ``memopt_theory.checks``.

Game. f_t(x) = ⟨g_t, x⟩, x_1 = 0, K = R^S (no projection), x_{t+1} = x_t − η·u_t with u_t the registered method's
update; η fixed. The gradients are either a given stream or chosen against the learner by the threshold
adversary (below).

Comparator. On an unbounded K the best point in hindsight of a linear game does not exist (the regret is +∞ for
Σg ≠ 0), and the theorems hold for every fixed x* with D = max_{t≤T} ‖x_t − x*‖ (D_∞ in ‖·‖_∞) measured against
the same x*. So each check reports the comparator that maximises R^lin_T(x*)/bound(x*), found by search
(:func:`best_comparator`): x* = c − R·Σg/‖Σg‖ over centres c ∈ {0, the mean iterate, the coordinatewise midrange}
(the midrange minimises D_∞, the mean nearly minimises D) and radii R ∈ {0} ∪ a 97-point log grid spanning
10⁻³..10³ times the iterates' scale. R^lin_T(x*) = Σ_t⟨g_t, x_t⟩ − ⟨Σg, x*⟩ is linear in x*, so the search is
exact along each ray up to the grid.

Threshold adversary (the ±G construction behind the Ω(D·G·√T) lower bound, played adaptively). Gradient
g_t = +v if ⟨v, x_t⟩ ≥ −0.7·η, else −v, for a unit direction v. Every method here then reduces to the
one-dimensional AdaGrad game along v (a rank-one stream: Shampoo's factors, the sketches and the diagonal
accumulators all see only v), the iterate oscillates around −0.7η with steps η/√t, R^lin gains ≈ |x_t − c| every
round, and the searched comparator sits near the oscillation: ratio ≈ 0.85–0.88 of the bound for t ≥ T/10 at
T = 1000 (measured on the 1-D game; −0.7 is the best threshold of a grid over [−0.9, 0.9]).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from memopt_theory import methods
from memopt_theory.verify import Measurement

__all__ = ["play", "best_comparator", "measure", "late_checkpoints", "adversary_horizon", "THRESHOLD"]

THRESHOLD = -0.7  # the adversary's threshold, in units of η


def adversary_horizon(seed: int, fast: bool) -> int:
    """T of the adversary's instance: 200 (fast); else 1000 for seed ≡ 0 (mod 20), 300 for the other seeds
    ≡ 0 (mod 4) (the game is deterministic, so its copies differ only by T)."""
    return 200 if fast else (1000 if seed % 20 == 0 else 300)


def late_checkpoints(T: int, n: int = 10) -> list[int]:
    """About ``n`` round counts log-spaced in [max(1, T/10), T], T included: the t ≥ t₀ = T/10 of the checks."""
    t0 = max(1, T // 10)
    return sorted({int(round(t)) for t in np.geomspace(t0, T, n)} | {T})


def play(
    name: str,
    config,
    shape,
    T: int,
    eta: float,
    *,
    stream: Tensor | None = None,
    v: Tensor | None = None,
    keep: Iterable[int] = (),
):
    """Run ``name``; gradients from ``stream`` (T,) + S, or the threshold adversary along the unit ``v``.

    Returns (X (T,) + S iterates x_1..x_T, G (T,) + S gradients, {t: state after g_t} for t in ``keep``).
    """
    if stream is None and v is None:
        raise ValueError(
            "play: give stream= ((T,) + S gradients) or v= (the adversary's unit direction); got neither"
        )
    m = methods.get(name)
    shape = tuple(shape)
    st = m.init(shape, config)
    x = torch.zeros(shape, dtype=torch.float64)
    xs, gs, states = [], [], {}
    keep_at = set(keep)
    for t in range(T):
        if stream is not None:
            g = stream[t]
        else:
            assert v is not None  # checked above: v is given whenever stream is None
            g = v if float((v * x).sum()) >= THRESHOLD * eta else -v
        xs.append(x)
        gs.append(g)
        u, st = m.update(g, st, config)
        x = x - eta * u
        if t + 1 in keep_at:
            states[t + 1] = st
    return torch.stack(xs), torch.stack(gs), states


def best_comparator(X: Tensor, G: Tensor, bound: Callable[[Tensor, Tensor], Tensor]) -> tuple[float, float]:
    """(R^lin(x*), bound(D, D_∞)) at the searched x* of largest ratio (module docstring); ``bound`` maps
    D, D_∞ of shape (K,) to K bounds."""
    Xf, Gf = X.reshape(X.shape[0], -1), G.reshape(G.shape[0], -1)
    s = Gf.sum(0)
    lin = float((Gf * Xf).sum())
    centres = torch.stack([torch.zeros_like(s), Xf.mean(0), (Xf.amax(0) + Xf.amin(0)) / 2])
    scale = float(Xf.norm(dim=1).max()) + 1e-300
    radii = torch.cat(
        [torch.zeros(1, dtype=torch.float64), scale * torch.logspace(-3, 3, 97, dtype=torch.float64)]
    )
    direction = -s / s.norm() if float(s.norm()) > 0 else torch.zeros_like(s)
    xstar = (centres[:, None, :] + radii[None, :, None] * direction).reshape(-1, s.numel())  # (K, N)
    diff = Xf[None, :, :] - xstar[:, None, :]  # (K, T, N)
    D, Dinf = diff.norm(dim=-1).amax(-1), diff.abs().amax(dim=(-1, -2))
    measured = lin - xstar @ s
    b = bound(D, Dinf).reshape(-1)
    ratio = torch.where(b > 0, measured / b.clamp_min(1e-300), torch.where(measured > 0, torch.inf, 0.0))
    i = int(torch.argmax(ratio))
    return float(measured[i]), float(b[i])


def measure(
    X: Tensor, G: Tensor, ckpts: list[int], bound_at: Callable[[int, Tensor, Tensor], Tensor]
) -> Measurement:
    """The pair of largest ratio over the checkpoints (each with its own searched comparator, the game truncated to
    t rounds) and the pair at the last checkpoint T. ``bound_at(t, D, D_∞)`` is the theorem's bound after t rounds."""

    def bound_after(t: int) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda D, Di: bound_at(t, D, Di)

    pairs = [best_comparator(X[:t], G[:t], bound_after(t)) for t in ckpts]

    def r(p):
        return p[0] / p[1] if p[1] > 0 else (np.inf if p[0] > 0 else 0.0)

    worst = max(pairs, key=r)
    return Measurement(*worst, at_T=pairs[-1])
