r"""Regret of the tensored learners on matrix-shaped OCO, through the simulator (``memopt verify``).

measured = the linearised regret against the best comparator of K, sup_{x*∈K} Σ_{s≤t} ⟨g_s, x_s − x*⟩ (exact
through K's linear minimisation oracle; the quantity the theorems bound), at every checkpoint t ≥ T/10 and seed,
with the pair at T reported too; bound = the method's theorem (memopt_theory/bounds/tensored.py, derived there) on the
run's own quantities at that checkpoint, with D = diam K (D_∞ for the diagonal methods) and the fixed η the
run used. Projection: Π_K^{H_t} in the method's own metric (Kronecker for Shampoo / S-Shampoo, diagonal for
Extreme Tensoring and SM3-I), as Lemma L1 requires. The worst ratio over seeds and checkpoints is returned.

Each instance draws a matrix stream (power_law, low_rank_noise, adversarial_signs, kron_power_law; a_t of
shape m×n), a loss (linear, logistic, hinge, least squares), an ℓ2 (Frobenius) ball or a box, a radius and a
horizon. η is fixed before the run from the theorem's minimiser with a priori quantities: Shampoo-type
η = D/√(2r̄) with r̄ = min(m, n) ≥ rank G_t (the bound is then evaluated with the measured r ≤ r̄, valid for any
fixed η); diagonal ones η = D_∞/√2. The factors the bounds need (H^i_t, the sketches, h^{(i)}_t, μ_t) are the
learner's own states, recorded by :class:`RecordingLearner` as the simulator steps it.

Seed ≡ 0 (mod 4) is the theorems' tightness construction instead: the adaptive ±G adversary of
online_convex/adversary.py on a 3×4 matrix, gradients along one rank-one direction (Shampoo, S-Shampoo with ℓ = 2,
ε = 0, η = D/√2 since the stream is rank one by construction) or one coordinate (Extreme Tensoring, SM3-I, ε = 0,
η = D_∞/√2), T = 1000 for seed ≡ 0 (mod 20), else 300 (200 fast). On it every factor reduces to the one-dimensional AdaGrad game, which the
adversary drives to ≈ 0.52 (at T) to 0.62 (worst t ≥ T/10) of the bound.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from memopt_theory import methods
from memopt_theory.bounds.tensored import (
    extreme_tensoring_regret_bound,
    s_shampoo_regret_bound,
    shampoo_regret_bound,
    sm3_regret_bound,
)
from memopt_theory.checks._game import adversary_horizon
from memopt_theory.methods import sm3 as sm3_mod
from memopt_theory.tensoring import mode_gram, unfold
from memopt_theory.verify import Check, Measurement
from online_convex import simulate
from online_convex.adversary import oscillating_stream
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import get_problem
from online_convex.streams import make_stream

__all__ = ["CHECKS", "RecordingLearner", "tensored_instance", "MATRIX_STREAMS"]

MATRIX_STREAMS = ("power_law", "low_rank_noise", "adversarial_signs", "kron_power_law")
PROBLEMS = ("linear", "logistic", "hinge", "least_squares")


@dataclasses.dataclass(frozen=True)
class RecordingLearner(Learner):
    """A Learner that also keeps (g_t, state_t) of every step (states are immutable, so this is references)."""

    log: list = dataclasses.field(default_factory=list, compare=False, repr=False)

    def step(self, g, x, state):
        x_next, state = super().step(g, x, state)
        self.log.append((g, state))
        return x_next, state


def _batched_rank(G: torch.Tensor, order: int) -> torch.Tensor:
    """(Π_i max_t rank mat_i(g_t))^{1/p} per seed; G of shape (T, B, *S)."""
    out = None
    for i in range(order):
        rk = torch.linalg.matrix_rank(unfold(G, i, order)).amax(0).clamp_min(1).to(torch.float64)
        out = rk if out is None else out * rk
    assert out is not None  # order = G.ndim - 2 >= 1: the iterate has at least one mode
    return out.pow(1.0 / order)


def _bounds(
    method: str, cfg: Any, log: list, ck: np.ndarray, D: float, D_inf: float, eta: torch.Tensor
) -> np.ndarray:
    """The theorem's bound at each checkpoint for each seed, shape (n_ckpt, n_seeds)."""
    G = torch.stack([g for g, _ in log])  # (T, B, *S)
    p = G.ndim - 2
    out = []
    for t in ck:
        _, st = log[int(t) - 1]
        if method == "shampoo":
            b = shampoo_regret_bound(st.H, D, r=_batched_rank(G[:t], p), eta=eta)
        elif method == "s_shampoo":
            grams = tuple(mode_gram(G[:t], i, p).sum(0) for i in range(p))
            b = s_shampoo_regret_bound(grams, D, cfg.ell, eps=cfg.eps, r=_batched_rank(G[:t], p), eta=eta)
        elif method == "extreme_tensoring":
            b = extreme_tensoring_regret_bound(st.h, D_inf, eta=eta)
        else:  # sm3
            b = sm3_regret_bound(sm3_mod.nu(st, cfg) + cfg.eps, D_inf, eta=eta, nbatch=1)
        out.append(b.reshape(-1).numpy())
    return np.stack(out)


def tensored_instance(method: str, seed: int, fast: bool, config=None):
    """Run ``method`` on one random matrix-shaped instance; returns (trace, bound array (n_ckpt, seeds))."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    stream = str(rng.choice(MATRIX_STREAMS))
    problem = str(rng.choice(PROBLEMS))
    m, n = int(rng.integers(2, 6 if fast else 9)), int(rng.integers(2, 6 if fast else 9))
    T = int(rng.integers(20, 61 if fast else 301))
    radius = float(rng.choice([0.1, 1.0, 10.0]))
    diagonal = method in ("extreme_tensoring", "sm3")
    domain = make_domain("box", (m, n), lo=-radius, hi=radius) if diagonal and rng.random() < 0.5 else None
    domain = domain or make_domain("l2_ball", (m, n), radius=radius)
    data, _ = make_stream(stream, shape=(m, n), T=T, seeds=2, entropy=seed, problem=problem)
    if config is None:
        config = _default_config(method, rng, (m, n))
    if diagonal:
        eta0 = float(domain.diameter_inf) / math.sqrt(2)
    else:
        eta0 = float(domain.diameter) / math.sqrt(2 * min(m, n))
    eta = torch.full((2,), eta0, dtype=torch.float64)
    learner = RecordingLearner(method, config, eta=eta, domain=domain)
    ck = simulate.geometric_checkpoints(T, 8)
    trace = simulate.run(learner, get_problem(problem), data, checkpoints=ck)
    bound = _bounds(method, config, learner.log, ck, float(domain.diameter), float(domain.diameter_inf), eta)
    return trace, bound


def _default_config(method: str, rng: np.random.Generator, shape: tuple[int, int]):
    eps = float(rng.choice([0.0, 1e-4, 1e-1]))
    if method == "shampoo":
        return methods.get("shampoo").Config(eps=eps)
    if method == "s_shampoo":
        return methods.get("s_shampoo").Config(
            ell=int(rng.integers(1, max(shape))), eps=eps
        )  # ℓ < max(m, n): a mode is sketched
    if method == "extreme_tensoring":
        N = shape[0] * shape[1]
        return methods.get("extreme_tensoring").Config(
            order=int(rng.integers(1, min(3, N.bit_length() - 1) + 1)), eps=eps
        )
    return methods.get("sm3").Config(variant="I", cover=str(rng.choice(["slices", "singletons", "all"])))


def adversary_instance(method: str, fast: bool, seed: int = 0):
    """``method`` against the adaptive ±G adversary on a 3×4 matrix; returns (trace, bound (n_ckpt, 1))."""
    shape, T = (3, 4), adversary_horizon(seed, fast)
    diagonal = method in ("extreme_tensoring", "sm3")
    if diagonal:
        v = torch.zeros(shape, dtype=torch.float64)
        v[0, 0] = 1.0
    else:
        gen = torch.Generator().manual_seed(5)
        u, w = (torch.randn(n, generator=gen, dtype=torch.float64) for n in shape)
        v = torch.outer(u, w) / (u.norm() * w.norm())
    domain = make_domain("l2_ball", shape, radius=1.0)
    config = {
        "shampoo": lambda: methods.get("shampoo").Config(eps=0.0),
        "s_shampoo": lambda: methods.get("s_shampoo").Config(ell=2, eps=0.0),
        "extreme_tensoring": lambda: methods.get("extreme_tensoring").Config(order=2, eps=0.0),
        "sm3": lambda: methods.get("sm3").Config(variant="I", cover="slices"),
    }[method]()
    D = float(domain.diameter_inf if diagonal else domain.diameter)
    eta = torch.full((1,), D / math.sqrt(2), dtype=torch.float64)
    data = oscillating_stream(Learner(method, config, eta=eta, domain=domain), T, 1, v)
    learner = RecordingLearner(method, config, eta=eta, domain=domain)
    ck = simulate.geometric_checkpoints(T, 24)
    trace = simulate.run(learner, get_problem("linear"), data, checkpoints=ck)
    bound = _bounds(method, config, learner.log, ck, float(domain.diameter), float(domain.diameter_inf), eta)
    return trace, bound


def _worst(trace, bound: np.ndarray) -> Measurement:
    from online_convex.checks.regret import worst_pair

    return worst_pair(trace, bound=bound)


def _instance(method: str, seed: int, fast: bool):
    return adversary_instance(method, fast, seed) if seed % 4 == 0 else tensored_instance(method, seed, fast)


def shampoo_oco(seed: int, fast: bool) -> tuple[float, float]:
    r"""Shampoo on matrix OCO, projection in ‖·‖_{L_t^{1/4}⊗R_t^{1/4}}: regret_t ≤ (D²/2η + ηr)·tr L_t^{1/4}·tr R_t^{1/4}
    (Gupta et al. 2018; docs/theory/tensored.md §C1), r = max_t rank G_t."""
    return _worst(*_instance("shampoo", seed, fast))


def s_shampoo_oco(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-Shampoo on matrix OCO, projection in ‖·‖_{L̃_t^{1/4}⊗R̃_t^{1/4}}, any ℓ: regret_t ≤ (D²/2η + ηr)·(tr L_t^{1/4} +
    mΩ_L^{1/4})(tr R_t^{1/4} + nΩ_R^{1/4}) (Feinberg et al. 2023, Theorem 5; docs/theory/sketching.md §B5)."""
    return _worst(*_instance("s_shampoo", seed, fast))


def extreme_tensoring_oco(seed: int, fast: bool) -> tuple[float, float]:
    r"""Extreme Tensoring on matrix OCO (the m×n iterate reshaped to order p ≤ 3), diagonal H_t-norm projection:
    regret_t ≤ (D_∞²/2η + η)·Π_i Σ_k h^{(i)}_t[k]^{1/(2p)} (Chen et al. 2020; docs/theory/tensored.md §C2)."""
    return _worst(*_instance("extreme_tensoring", seed, fast))


def sm3_oco(seed: int, fast: bool) -> tuple[float, float]:
    r"""SM3-I on matrix OCO (covers: slices, singletons, all), diagonal projection: regret_t ≤ (D_∞²/2η + η)·Σ_i √ν_t(i)
    (Anil et al. 2019; docs/theory/tensored.md §C4)."""
    return _worst(*_instance("sm3", seed, fast))


CHECKS = (
    Check(
        "OCO Shampoo regret <= (D^2/2eta + eta r) trL^1/4 trR^1/4",
        "Gupta et al. 2018",
        shampoo_oco,
        8,  # the random instances (T ≤ 300, Kronecker projections) dominate verify's default run
        3,
        theorem="Shampoo, fixed eta: R^lin_T <= (D^2/2eta + eta r) tr L_T^1/4 tr R_T^1/4",
        regret=True,
        t0="T/10",
    ),
    Check(
        "OCO S-Shampoo regret <= Thm 5",
        "Feinberg et al. 2023, Thm 5",
        s_shampoo_oco,
        8,  # the random instances (T ≤ 300, Kronecker projections) dominate verify's default run
        3,
        theorem="S-Shampoo, fixed eta: R^lin_T <= (D^2/2eta + eta r)(tr L^1/4 + m Om_L^1/4)(tr R^1/4 + n Om_R^1/4)",
        regret=True,
        t0="T/10",
    ),
    Check(
        "OCO Extreme Tensoring regret <= ET bound",
        "Chen et al. 2020",
        extreme_tensoring_oco,
        8,  # the random instances (T ≤ 300, Kronecker projections) dominate verify's default run
        3,
        theorem="Extreme Tensoring, fixed eta: R^lin_T <= (Dinf^2/2eta + eta) prod_i sum_k h_i[k]^(1/2p)",
        regret=True,
        t0="T/10",
    ),
    Check(
        "OCO SM3-I regret <= (D_inf^2/2eta + eta) sum sqrt(nu)",
        "Anil et al. 2019",
        sm3_oco,
        8,  # the random instances (T ≤ 300, Kronecker projections) dominate verify's default run
        3,
        theorem="SM3-I, fixed eta: R^lin_T <= (Dinf^2/2eta + eta) sum_i sqrt(nu_T(i))",
        regret=True,
        t0="T/10",
    ),
)
