r"""Regret theorems checked through the simulator (``memopt verify``): measured = the linearised regret
against the best comparator of K, sup_{x*∈K} Σ_t ⟨g_t, x_t − x*⟩ (exact through K's linear minimisation oracle;
the quantity every theorem below bounds, and ≥ the regret by convexity), bound = the theorem at the step size
it assumes, projection in the H_t-norm, D = diam K. The pair returned is the largest ratio over the
checkpoints t ≥ t₀ = T/10 (the ratio at t = 1 reflects one step, not the √T rate), together with the pair at T.

Instances: seed ≡ 0 (mod 4) is the theorem's tightness construction, the adaptive ±G adversary of
online_convex/adversary.py (T = 1000 for seed ≡ 0 mod 20, else 300; 200 in fast mode); it reaches ≈ 0.66 of
OGD's bound and ≈ 0.52 (at T) to 0.62 (worst t ≥ T/10) of the AdaGrad-type bounds, so a bound off by a factor 2
fails.

Each check draws a random instance from its seed: a stream (synthetic with a chosen spectrum, adversarial
signs, Sketchy's Observation 2, or a real scikit-learn data set), a loss (linear, logistic, hinge, least
squares), a domain (ℓ2 ball, or a box for diagonal AdaGrad) and a horizon, runs every seed of the stream in
one batched loop, and returns the (measured, bound) pair with the worst ratio over seeds and checkpoints.

The theorems (docs/theory/baselines.md §A1–A3, docs/theory/sketching.md §B3; [reconstructed] there, re-derived here):

* Lemma L1 (adaptive mirror descent). H_t ⪰ H_{t−1} ⪰ 0 (H_0 = 0), g_t ∈ range H_t,
  x_{t+1} = Π_K^{H_t}(x_t − ηH_t^+g_t). The generalised Pythagoras inequality of Π^{H_t} gives
  ‖x_{t+1} − x*‖²_{H_t} ≤ ‖x_t − x*‖²_{H_t} − 2η⟨g_t, x_t − x*⟩ + η²g_tᵀH_t^+g_t, hence
  R^lin_T(x*) ≤ (1/2η)Σ_t‖x_t − x*‖²_{H_t − H_{t−1}} + (η/2)Σ_t g_tᵀH_t^+g_t ≤ (D²/2η)·tr H_T + (η/2)Σ_t g_tᵀH_t^+g_t,
  using zᵀAz ≤ ‖z‖²·tr A for A ⪰ 0 (‖z‖_∞² for diagonal A).
* Lemma L2 (trace lemma). X_t ⪰ X_{t−1} + g_tg_tᵀ, X_0 ⪰ 0: Σ_t g_tᵀ(X_t^{1/2})^+g_t ≤ 2 tr X_T^{1/2}.
* Full-matrix AdaGrad (X_t = G_t, H_t = G_t^{1/2}): R^lin_T ≤ (D²/2η + η)·tr G_T^{1/2}; at η = D/√2,
  √2·D·tr G_T^{1/2}.
* Diagonal AdaGrad (coordinatewise L2): R^lin_T ≤ (D_∞²/2η + η)·Σ_i‖g_{1:T,i}‖_2; at η = D_∞/√2, √2·D_∞·Σ_i‖g_{1:T,i}‖.
* S-AdaGrad (Sketchy Cor. 4): FD's sandwich gives G̃_t = Ḡ_t + ρ_{1:t}I ⪰ G̃_{t−1} + g_tg_tᵀ, so L1 + L2
  with X_t = G̃_t give √2·D·tr G̃_T^{1/2}; G̃_T ⪰ G_T and tr G̃_T − tr G_T = (d − ℓ)ρ_{1:T} give
  tr G̃_T^{1/2} ≤ tr G_T^{1/2} + √(d(d−ℓ)ρ_{1:T}) (concavity of √ and Cauchy–Schwarz), and ρ_{1:T} ≤ Ω_ℓ
  (Lemma 1): R^lin_T ≤ √2·D·(tr G_T^{1/2} + √(d(d−ℓ)Ω_ℓ)).
* OGD: ⟨g_t, x_t − x*⟩ ≤ (‖x_t − x*‖² − ‖x_{t+1} − x*‖²)/(2η_t) + η_tG²/2; with η_t = D/(G√t), the sum is
  ≤ D²/(2η_T) + (G²/2)Ση_t ≤ (3/2)·G·D·√T.

Regret ≤ R^lin(x*) for the minimiser x* by convexity, so each bound also bounds the regret.
"""

from __future__ import annotations

import numpy as np
import torch

from memopt_theory import methods
from memopt_theory.checks._game import adversary_horizon
from memopt_theory.verify import Check, Measurement
from online_convex import simulate
from online_convex.adversary import oscillating_stream
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import get_problem
from online_convex.streams import make_stream

__all__ = ["CHECKS", "regret_instance", "worst_pair", "INSTANCE_STREAMS"]

SYNTHETIC = ("power_law", "low_rank_noise", "rotating", "adversarial_signs", "observation2")
REAL_FAST = ("breast_cancer", "wine", "diabetes")
INSTANCE_STREAMS = SYNTHETIC + REAL_FAST


def regret_instance(
    method: str,
    *,
    stream: str,
    problem: str | None,
    d: int,
    T: int,
    seeds: int,
    entropy: int,
    domain: str = "l2_ball",
    radius: float = 1.0,
    config=None,
    checkpoints: int = 8,
    **stream_params,
) -> simulate.RegretTrace:
    """Run ``method`` with its theorem's step size (η = "theory") on one instance; every seed batched.

    Real streams fix d themselves (features + 1); ``domain`` "l2_ball" (radius) or "box" ([−radius, radius]).
    """
    params = dict(stream_params)
    if stream in SYNTHETIC and problem is not None:
        params["problem"] = problem
    shape = None if stream in REAL_FAST or stream == "digits" else (d,)
    data, prob = make_stream(stream, shape=shape, T=T, seeds=seeds, entropy=entropy, **params)
    S = data.shape
    dom = (
        make_domain("box", S, lo=-radius, hi=radius)
        if domain == "box"
        else make_domain("l2_ball", S, radius=radius)
    )
    learner = Learner(method, config, eta="theory", domain=dom)
    ck = simulate.geometric_checkpoints(T, checkpoints)
    return simulate.run(learner, get_problem(prob), data, checkpoints=ck)


def worst_pair(
    trace: simulate.RegretTrace, which: str = "linear_regret_upper", bound: np.ndarray | None = None
) -> Measurement:
    """(measured, bound) at the largest measured/bound over seeds and checkpoints t ≥ T/10, with the pair of
    largest ratio at t = T (``Measurement.at_T``). ``bound`` (n_ckpt, seeds) defaults to the trace's overlay."""
    measured = getattr(trace, which)
    bound = trace.bound if bound is None else bound
    if bound is None:
        raise ValueError(f"worst_pair: {trace.method} has no bound in this setting")
    late = trace.checkpoints >= max(1, trace.T // 10)
    m, b = measured[late], bound[late]
    ratio = np.where(b > 0, m / np.where(b > 0, b, 1.0), np.where(m > 0, np.inf, 0.0))
    i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    j = int(np.argmax(ratio[-1]))
    return Measurement(m[i], b[i], at_T=(m[-1, j], b[-1, j]))


def adversary_instance(
    method: str, fast: bool, config=None, *, domain: str = "l2_ball", seed: int = 0
) -> simulate.RegretTrace:
    """``method`` at its theory step against the adaptive ±G adversary (online_convex/adversary.py): d = 3,
    gradients along e_1, K the unit ℓ2 ball (or the box [−1, 1]^3), T from memopt_theory.checks._game.adversary_horizon, every seed identical."""
    T, d = adversary_horizon(seed, fast), 3
    dom = (
        make_domain("box", (d,), lo=-1.0, hi=1.0)
        if domain == "box"
        else make_domain("l2_ball", (d,), radius=1.0)
    )
    learner = Learner(method, config, eta="theory", domain=dom)
    v = torch.zeros(d, dtype=torch.float64)
    v[0] = 1.0
    data = oscillating_stream(learner, T, 1, v, policy="ogd" if method == "ogd" else "adaptive")
    ck = simulate.geometric_checkpoints(T, 40)
    return simulate.run(learner, get_problem("linear"), data, checkpoints=ck)


def _draw(seed: int, fast: bool, method: str) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    stream = str(rng.choice(INSTANCE_STREAMS if fast else INSTANCE_STREAMS + ("digits",)))
    problem = (
        str(rng.choice(["linear", "logistic", "hinge", "least_squares"])) if stream in SYNTHETIC else None
    )
    d = int(rng.integers(2, 9 if fast else 17))
    T = int(rng.integers(20, 81 if fast else 401))
    domain = "box" if method == "adagrad_diag" and rng.random() < 0.5 else "l2_ball"
    radius = float(rng.choice([0.1, 1.0, 10.0]))
    return dict(stream=stream, problem=problem, d=d, T=T, seeds=2, entropy=seed, domain=domain, radius=radius)


def _check(method: str, config_fn=None):
    def run(seed: int, fast: bool) -> Measurement:
        if seed % 4 == 0:
            config = methods.get("s_adagrad").Config(ell=2) if method == "s_adagrad" else None
            dom = "box" if method == "adagrad_diag" and seed % 8 == 4 else "l2_ball"
            return worst_pair(adversary_instance(method, fast, config, domain=dom, seed=seed))
        kw = _draw(seed, fast, method)
        config = config_fn(kw) if config_fn is not None else None
        return worst_pair(regret_instance(method, config=config, **kw))

    return run


def _s_adagrad_config(kw: dict):
    d = {"breast_cancer": 31, "wine": 14, "diabetes": 11, "digits": 65}.get(kw["stream"], kw["d"])
    ell = 1 + (kw["entropy"] * 7919) % d  # ℓ ∈ [1, d], varied with the seed
    return methods.get("s_adagrad").Config(ell=ell)


def ogd_check(seed: int, fast: bool) -> tuple[float, float]:
    """OGD, η_t = D/(G√t), G ≥ max_t ‖g_t‖ a priori: regret_T ≤ (3/2)·G·D·√T (Zinkevich 2003; §A1)."""
    return _check("ogd")(seed, fast)


def adagrad_diag_check(seed: int, fast: bool) -> tuple[float, float]:
    """Diagonal AdaGrad, δ = 0, η = D_∞/√2, projection in ‖·‖_{diag √s_t}:
    regret_T ≤ √2·D_∞·Σ_i ‖g_{1:T,i}‖_2 (Duchi, Hazan, Singer 2011; §A2)."""
    return _check("adagrad_diag")(seed, fast)


def adagrad_full_check(seed: int, fast: bool) -> tuple[float, float]:
    """Full-matrix AdaGrad, δ = 0, η = D/√2, projection in ‖·‖_{G_t^{1/2}}: regret_T ≤ √2·D·tr G_T^{1/2} (§A3)."""
    return _check("adagrad_full")(seed, fast)


def s_adagrad_check(seed: int, fast: bool) -> tuple[float, float]:
    """S-AdaGrad, δ = 0, η = D/√2, projection in ‖·‖_{G̃_t^{1/2}}, any ℓ:
    regret_T ≤ √2·D·(tr G_T^{1/2} + √(d(d−ℓ)Ω_ℓ)) (Feinberg et al. 2023, Corollary 4; §B3)."""
    return _check("s_adagrad", _s_adagrad_config)(seed, fast)


CHECKS = (
    Check(
        "OGD regret <= (3/2)GD sqrt(T)",
        "Zinkevich 2003",
        ogd_check,
        20,
        4,
        theorem="OGD, eta_t = D/(G sqrt t): R^lin_T <= (3/2) G D sqrt(T)",
        regret=True,
        t0="T/10",
    ),
    Check(
        "AdaGrad-diag regret <= sqrt2 Dinf sum_i |g_i|",
        "Duchi et al. 2011",
        adagrad_diag_check,
        20,
        4,
        theorem="diagonal AdaGrad, eta = Dinf/sqrt2: R^lin_T <= sqrt2 Dinf sum_i |g_1:T,i|",
        regret=True,
        t0="T/10",
    ),
    Check(
        "AdaGrad-full regret <= sqrt2 D tr G^1/2",
        "Duchi et al. 2011",
        adagrad_full_check,
        20,
        4,
        theorem="full-matrix AdaGrad, eta = D/sqrt2: R^lin_T <= sqrt2 D tr G_T^1/2",
        regret=True,
        t0="T/10",
    ),
    Check(
        "S-AdaGrad regret <= Cor. 4",
        "Feinberg et al. 2023, Cor. 4",
        s_adagrad_check,
        20,
        4,
        theorem="S-AdaGrad, eta = D/sqrt2: R^lin_T <= sqrt2 D (tr G_T^1/2 + sqrt(d(d-l) Omega_l))",
        regret=True,
        t0="T/10",
    ),
)
