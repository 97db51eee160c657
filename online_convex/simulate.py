r"""One OCO experiment, all seeds in one batched loop: a :class:`RegretTrace` with certified regret intervals.

Protocol (rounds t = 1..T, every seed at once): play x_t (x_1 = Π_K(0)); suffer f_t(x_t) = φ(⟨a_t, x_t⟩, y_t);
receive g_t = ∇f_t(x_t); step x_{t+1} = learner.step(g_t, x_t). At each checkpoint t (a geometric grid by
default) the trace records

- L_t = Σ_{s≤t} f_s(x_s), the learner's cumulative loss;
- the certified regret interval [L_t − value_t, L_t − lower_t], where the comparator
  (online_convex.comparator.best_fixed_point) returns value_t = F_t(x̂) ≥ min_K F_t ≥ lower_t for
  F_t = Σ_{s≤t} f_s; its width is the comparator's gap;
- the linearised regret against the worst comparator, sup_{x*∈K} Σ_{s≤t} ⟨g_s, x_s − x*⟩
  = Σ_s ⟨g_s, x_s⟩ − min_K ⟨Σ_s g_s, ·⟩ (exact through the domain's linear minimisation oracle): every
  AdaGrad-family theorem bounds this quantity, which is ≥ the regret (convexity);
- the learner's theorem bound at t (online_convex.overlays), or None.

The comparator depends on the data only, so :func:`comparator_bounds` can be computed once per stream and
passed to :func:`run` for every method (the CLI does).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from memopt_theory.validation import check_int
from online_convex import overlays
from online_convex.learners import StepRefused
from online_convex.problems import RoundData, get_problem

__all__ = ["RegretTrace", "run", "geometric_checkpoints", "comparator_bounds"]

BULK_NUMBERS = 4_000_000  # gradients held for the bulk Σ g gᵀ update (run): at most about this many numbers


def geometric_checkpoints(T: int, n: int = 40) -> np.ndarray:
    """About ``n`` round counts in [1, T], evenly spaced on a log axis, T always included (int64)."""
    check_int(T, "T", where="geometric_checkpoints", low=1)
    check_int(n, "n", where="geometric_checkpoints", low=1)
    return np.unique(np.concatenate([np.geomspace(1, T, n).round().astype(np.int64), [T]]))


def _checkpoints(checkpoints, T: int) -> np.ndarray:
    if checkpoints is None:
        return geometric_checkpoints(T)
    c = np.asarray(checkpoints)
    if c.ndim != 1 or c.size == 0 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"run: checkpoints must be a non-empty 1-D sequence of ints; got {checkpoints!r}")
    c = np.unique(c.astype(np.int64))
    if c[0] < 1 or c[-1] > T:
        raise ValueError(f"run: checkpoints must lie in [1, T] = [1, {T}]; got {c[0]}..{c[-1]}")
    return c


def _min_linear(domain, c: Tensor, flat) -> Tensor:
    """min_{x∈K} ⟨c, x⟩ per seed through the LMO; exactly 0 where c = 0 (every point of K is optimal, and the
    LMO's c/‖c‖ would be 0/0)."""
    zero = flat(c).abs().amax(-1) == 0
    safe = torch.where(zero.reshape(*zero.shape, *([1] * (c.ndim - zero.ndim))), torch.ones_like(c), c)
    best = (flat(c) * flat(domain.lmo(safe))).sum(-1)
    return torch.where(zero, torch.zeros_like(best), best)


def comparator_bounds(problem, data: RoundData, domain, checkpoints) -> tuple[np.ndarray, np.ndarray]:
    """(value, lower), each (n_ckpt, n_seeds): value_t = F_t(x̂_t) ≥ min_K F_t ≥ lower_t at every checkpoint.

    Linear losses whose Σ_{s≤t} a_s is exactly 0 have F_t ≡ 0 on K: value = lower = 0 there (the ball's LMO
    divides by ‖Σa‖). lower = −inf (no certificate, e.g. an underdetermined unconstrained least squares) is
    kept: the regret interval's upper end is then +inf. A non-finite value or a NaN raises.
    """
    from online_convex.comparator import best_fixed_point

    problem = get_problem(problem) if isinstance(problem, str) else problem
    ck = _checkpoints(checkpoints, data.T)
    k = len(data.shape)
    value, lower = [], []
    for t in ck:
        r = best_fixed_point(problem, data, domain, int(t))
        v, lo = r.value.reshape(-1).cpu().numpy(), r.lower.reshape(-1).cpu().numpy()
        if problem.name == "linear":
            zero = (
                data.a[: int(t)].sum(0).flatten(start_dim=data.a.ndim - 1 - k).abs().amax(-1) == 0
            ).reshape(-1)
            zero = zero.cpu().numpy()
            v, lo = np.where(zero, 0.0, v), np.where(zero, 0.0, lo)
        # lower = −inf is a valid (vacuous) certificate: regret_upper = +inf there, reported as such
        if not (np.isfinite(v).all() and not np.isnan(lo).any() and (lo < np.inf).all()):
            raise ValueError(
                f"comparator_bounds: non-finite comparator at t = {int(t)} ({problem.name}, {domain.name})"
            )
        value.append(v)
        lower.append(lo)
    return np.stack(value), np.stack(lower)


@dataclass
class RegretTrace:
    """One learner on one stream, every seed: numpy arrays of shape (n_ckpt, n_seeds) unless noted."""

    method: str
    config: dict
    eta: np.ndarray  # (n_seeds,) the step size η each seed used
    eta_mode: str  # "theory" or "given"
    checkpoints: np.ndarray  # (n_ckpt,) round counts t
    cum_loss: np.ndarray  # L_t
    regret_lower: np.ndarray  # L_t − value_t
    regret_upper: np.ndarray  # L_t − lower_t (what theorem checks compare with the bound)
    comparator_gap: np.ndarray  # value_t − lower_t ≥ 0
    linear_regret_upper: np.ndarray  # sup_{x*∈K} Σ⟨g_s, x_s − x*⟩ (inf on an unbounded K)
    bound: np.ndarray | None  # the theorem's bound at t, or None
    bound_name: str | None
    memory_scalars: int  # persistent floating scalars of the method state, one run (E.2)
    memory_bits: int
    D: float  # diam K (ℓ2), inf if unbounded
    D_inf: float
    problem: str
    domain: str
    shape: tuple[int, ...]
    T: int
    seconds: float = 0.0
    extra: dict = dataclasses.field(default_factory=dict)

    _ARRAYS = (
        "eta",
        "checkpoints",
        "cum_loss",
        "regret_lower",
        "regret_upper",
        "comparator_gap",
        "linear_regret_upper",
    )

    @property
    def n_seeds(self) -> int:
        return int(self.cum_loss.shape[1])

    def ratio(self) -> np.ndarray | None:
        """regret_upper / bound, (n_ckpt, n_seeds); the theorem holds where this is ≤ 1."""
        return None if self.bound is None else self.regret_upper / self.bound

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(getattr(self, k)) for k in self._ARRAYS}
        if self.bound is not None:
            out["bound"] = np.asarray(self.bound)
        return out

    def meta(self) -> dict:
        return {
            "method": self.method,
            "config": self.config,
            "eta_mode": self.eta_mode,
            "bound_name": self.bound_name,
            "memory_scalars": self.memory_scalars,
            "memory_bits": self.memory_bits,
            "D": self.D,
            "D_inf": self.D_inf,
            "problem": self.problem,
            "domain": self.domain,
            "shape": list(self.shape),
            "T": self.T,
            "seconds": self.seconds,
            "extra": self.extra,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> RegretTrace:
        kw = {k: np.asarray(arrays[k]) for k in cls._ARRAYS}
        kw["bound"] = np.asarray(arrays["bound"]) if "bound" in arrays else None
        m = dict(meta)
        for k in ("D", "D_inf"):  # storage writes non-finite floats as their repr
            m[k] = float(m[k])
        m["shape"] = tuple(m["shape"])
        return cls(**kw, **m)


def _config_dict(config) -> dict:
    d = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
    return json.loads(json.dumps(d, default=str))


def run(
    learner,
    problem,
    data: RoundData,
    *,
    checkpoints=None,
    device=None,
    progress: bool = False,
    comparator: tuple[np.ndarray, np.ndarray] | None = None,
) -> RegretTrace:
    """Run ``learner`` on ``data`` for every seed at once and certify its regret at the checkpoints.

    Parameters
    ----------
    learner : online_convex.learners.Learner    its domain's shape must equal the stream's S
    problem : Problem or str                    the loss family (online_convex.problems)
    data : RoundData                            a (T, *B, *S), y (T, *B); all seeds B advance together
    checkpoints : ints in [1, T], optional      default :func:`geometric_checkpoints` (T)
    device : torch device, optional             where to run (data are moved there)
    progress : bool                             a tqdm bar over the rounds
    comparator : (value, lower), optional       precomputed :func:`comparator_bounds` for these checkpoints

    Returns
    -------
    RegretTrace (numpy, one column per seed, seeds B flattened row-major)
    """
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not isinstance(data, RoundData):
        raise TypeError(f"run: data must be a RoundData; got {type(data).__name__}")
    problem.check_data(data)
    if device is not None:
        data = RoundData(a=data.a.to(device), y=data.y.to(device))
    T, B, S = data.T, data.batch, data.shape
    ck = _checkpoints(checkpoints, T)
    n = math.prod(S)
    dt, dev = data.a.dtype, data.a.device
    eta_mode = "theory" if isinstance(learner.eta, str) else "given"
    state = learner.init(S, B, dtype=dt, device=dev)  # raises on a stream/learner shape mismatch
    learner = learner.resolve(problem, data)
    domain = learner.domain
    bname = overlays.bound_name(learner, n, eta_mode)
    grad_bound = None
    if bname is not None and overlays.needs_grad_bound(learner):
        from online_convex.learners import gradient_bound

        grad_bound = gradient_bound(problem, data, domain)
    dense = bname is not None and overlays.needs_dense_G(learner)
    bounded = math.isfinite(float(domain.diameter))

    k = len(S)
    flat = lambda z: z.flatten(start_dim=z.ndim - k)  # B + S -> B + (N,)
    x = learner.initial_point(B, dt, dev)
    cum = torch.zeros(B, dtype=dt, device=dev)
    lin = torch.zeros(B, dtype=dt, device=dev)  # Σ⟨g_s, x_s⟩
    gsum = torch.zeros(B + S, dtype=dt, device=dev)
    need_sq = bname is not None  # every guarantee receives Σg² (a diagonal bound reads it); one add a round
    sum_sq = torch.zeros(B + S, dtype=dt, device=dev)
    G = torch.zeros(B + (n, n), dtype=dt, device=dev) if dense else None
    # Σ g gᵀ in bulk: the gradients since the last flush are kept (references, no copies) and added as one
    # GEMM at each checkpoint (or when ~4M numbers are held) instead of a rank-one update per round
    pending: list[Tensor] = []
    cap = max(1, BULK_NUMBERS // max(1, math.prod(B) * n))

    def flush(G: Tensor) -> Tensor:
        X = torch.stack(pending, dim=-2).reshape(-1, len(pending), n)  # (ΠB, k, N)
        pending.clear()
        G.view(-1, n, n).baddbmm_(X.transpose(-1, -2), X)  # in place: G is this loop's own accumulator
        return G

    rec = {"cum": [], "lin": [], "bound": []}
    want = set(int(t) for t in ck)
    steps = range(T)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=learner.method, unit="round", leave=False, mininterval=0.5)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in steps:
            a_s, y_s = data.a[s], data.y[s]
            cum = cum + problem.loss(x, a_s, y_s)
            g = problem.grad(x, a_s, y_s)
            gf = flat(g)
            lin = lin + (gf * flat(x)).sum(-1)
            if bounded:
                gsum = gsum + g
            if need_sq:
                sum_sq = sum_sq + g * g
            t = s + 1
            if dense:
                pending.append(gf)
                if t in want or len(pending) >= cap:
                    G = flush(G)
            try:  # a step that would store a NaN/inf is refused, naming the seeds; the round is added here
                x, state = learner.step(g, x, state)
            except StepRefused as e:
                raise e.at_round(t) from e
            if t in want:
                rec["cum"].append(cum.reshape(-1).cpu().numpy())
                if bounded:
                    best = _min_linear(domain, gsum, flat)
                    rec["lin"].append((lin - best).reshape(-1).cpu().numpy())
                else:
                    rec["lin"].append(np.full(cum.numel(), np.inf))
                if bname is not None:
                    b = overlays.bound_at(
                        learner, t, T, G=G, sum_sq=sum_sq, grad_bound=grad_bound, state=state
                    )
                    rec["bound"].append(b.reshape(-1).cpu().numpy())
    seconds = time.perf_counter() - t0
    value, lower = comparator if comparator is not None else comparator_bounds(problem, data, domain, ck)
    cum_loss = np.stack(rec["cum"])
    if value.shape != cum_loss.shape:
        raise ValueError(f"run: comparator arrays have shape {value.shape}; expected {cum_loss.shape}")
    m = learner.spec
    return RegretTrace(
        method=learner.method,
        config=_config_dict(learner.config),
        eta=(
            learner.eta.reshape(-1).cpu().numpy()
            if isinstance(learner.eta, Tensor)
            else np.full(cum.numel(), np.nan)
        ),
        eta_mode=eta_mode,
        checkpoints=ck,
        cum_loss=cum_loss,
        regret_lower=cum_loss - value,
        regret_upper=cum_loss - lower,
        comparator_gap=value - lower,
        linear_regret_upper=np.stack(rec["lin"]),
        bound=np.stack(rec["bound"]) if bname is not None else None,
        bound_name=bname,
        memory_scalars=int(m.memory(S, learner.config)),
        memory_bits=int(m.bits(S, learner.config)),
        D=float(domain.diameter),
        D_inf=float(domain.diameter_inf),
        problem=problem.name,
        domain=domain.name,
        shape=tuple(S),
        T=T,
        seconds=seconds,
    )


def trace_summary(trace: RegretTrace) -> dict[str, Any]:
    """Final-checkpoint figures, means over seeds: what the CLI's table prints."""
    r = {
        "method": trace.method,
        "memory": trace.memory_scalars,
        "regret_lower": float(trace.regret_lower[-1].mean()),
        "regret_upper": float(trace.regret_upper[-1].mean()),
        "width": float(trace.comparator_gap[-1].max()),
    }
    if trace.bound is not None:
        r["bound"] = float(trace.bound[-1].mean())
        r["ratio"] = float((trace.regret_upper / trace.bound).max())
    return r
