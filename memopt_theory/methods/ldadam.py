r"""LDAdam — ``ldadam`` (docs/theory/compressed.md §D7; Robert, Safaryan, Modoranu, Alistarh, ICLR 2025; IST-DASLab/LDAdam).

Update
------
Adam statistics in a rank-r subspace that moves every step, for a matrix W ∈ R^{n×c} ('std' mode: n ≤ c ⇒ left
projection P ∈ R^{n×r}, states r×c; n > c ⇒ the same on Wᵀ). With k = completed steps, b1(k) = 1 − β1^k,
b2(k) = 1 − β2^k:

1. a_k = g_k + e_k.
2. k = 0: P_0 = top-r left singular vectors of a_0, m = v = 0, steps 5–7 skipped. k > 0:
   b_k = ρP_{k−1}m_{k−1}/b1(k) + (1 − ρ)a_k; P_k = Q of QR(b_k(b_kᵀP_{k−1})) (one warm-started block power step).
3. g̃ = P_kᵀa_k.  4. e ← a_k − P_kg̃.  5. C = P_kᵀP_{k−1}; m̃ = Cm_{k−1}.
6. e ← e + (β1/(1 − β1))(P_{k−1}m_{k−1} − P_km̃)  (generalised error feedback).
7. ṽ = b2(k)·|(C ⊙ C)(v_{k−1}/b2(k) − m_{k−1}²/b1(k)²) + m̃²/b1(k)²|.
8. m = β1m̃ + (1−β1)g̃; v = β2ṽ + (1−β2)g̃²; u = (m/(1−β1^{k+1}))/(√(v/(1−β2^{k+1})) + ε).
9. step = η·wd·W + η·P_ku (the caller applies W ← W − step).

Reductions (derived; checked in tests/theory/test_compressed_methods.py):
* P ≡ I (``projection="identity"``, r = n): C = I, so m̃ = m, ṽ = b2·|v/b2 − m²/b1² + m²/b1²| = v and e = a − a = 0:
  AdamW exactly (to the round-off of v/b2·b2).
* r = n with any orthogonal P_k: PPᵀ = I ⇒ e ≡ 0 (both the projection residual and step 6's
  (I − P_kP_kᵀ)P_{k−1}m_{k−1} vanish), and P_km_k = β1P_kP_kᵀP_{k−1}m_{k−1} + (1−β1)P_kP_kᵀg = β1(P_{k−1}m_{k−1}) +
  (1−β1)g: AdamW's first moment. v is not rotation-equivariant, so v and the iterates differ.
* Always: e_{k+1} = (I − P_kP_kᵀ)(a_k + (β1/(1−β1))P_{k−1}m_{k−1}) (add steps 4 and 6: P_km̃ = P_kP_kᵀP_{k−1}m_{k−1}).

Tensors that are not matrices take the AdamW path (state m, v, t). The step counter is per tensor, so a
parameter first receiving a gradient late starts at k = 0 (the official code's global counter crashes there).
The rank used is r = min(``rank``, n, c), so the default rank 16 runs on any layer (a 5×16 layer keeps rank 5).
State (matrix, EF on): P (s·r), m, v (r·L each), t, e (N): 2rL + rs + 1 + N (E.2's 2rL + rs + 1 plus the EF
buffer, which the official code keeps in the gradient buffer and which must persist). No H-norm metric.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): 2r·max(n, c) + r·min(n, c) + 1 (+ N error feedback) for a matrix; 2N + 1 (AdamW) otherwise.

Guarantee
---------
``ldadam``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D7; arXiv 2410.16103.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("ldadam")
>>> cfg = m.Config(rank=2)
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 35)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.validation import check_choice, check_int, check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """LDAdam: lr, betas (β1, β2 ∈ [0, 1)), ε ≥ 0, weight_decay ≥ 0, rank ≥ 1 (used as r = min(rank, n, c)),
    ρ ∈ [0, 1], ``projection`` ∈ {'power', 'svd', 'identity' (P ≡ I, needs rank ≥ min(n, c))},
    ``error_feedback``."""

    lr: float = 1e-3
    beta1: float = 0.908
    beta2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    rank: int = 16
    rho: float = 0.908
    projection: str = "power"
    error_feedback: bool = True

    def __post_init__(self) -> None:
        w = "ldadam.Config"
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.eps, "eps", where=w, low=0.0)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)
        check_int(self.rank, "rank", where=w, low=1)
        check_real(self.rho, "rho", where=w, low=0.0, high=1.0)
        check_choice(self.projection, "projection", ("power", "svd", "identity"), where=w)
        if not isinstance(self.error_feedback, bool):
            raise TypeError(f"{w}: error_feedback must be a bool; got {self.error_feedback!r}")


class State(NamedTuple):
    P: Tensor | None  # batch + (s, r) basis (None on the AdamW path)
    m: Tensor  # batch + (r, L) (AdamW path: batch + S)
    v: Tensor  # batch + (r, L)
    t: Tensor  # batch: completed steps k
    e: Tensor | None  # batch + (s, L) error feedback (in the oriented frame)
    shape: Static


def _is_matrix(shape) -> bool:
    return len(shape) == 2


def effective_rank(shape, config: Config) -> int:
    """r = min(``rank``, n, c): a matrix smaller than the configured rank keeps all its directions instead of
    being refused (as the official GaLore projector does; a model's small layers must not stop the optimizer)."""
    return min(config.rank, *shape)


def _check_rank(shape, config: Config, where: str) -> None:
    s = min(shape)
    if config.projection == "identity" and config.rank < s:
        raise ValueError(f"{where}: projection='identity' needs rank >= min(n, c) = {s}; got {config.rank}")


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="ldadam.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ldadam.init")

    def z(*s):
        return torch.zeros(batch + s, dtype=dtype, device=device)

    if not _is_matrix(shape):
        return State(None, z(*shape), z(*shape), z(), None, Static(shape))
    _check_rank(shape, config, "ldadam.init")
    s, L, r = min(shape), max(shape), effective_rank(shape, config)
    e = z(s, L) if config.error_feedback else None
    return State(z(s, r), z(r, L), z(r, L), z(), e, Static(shape))


def _adamw(g: Tensor, state: State, config: Config) -> tuple[Tensor, State]:
    t = state.t + 1
    b1, b2 = config.beta1, config.beta2
    m = b1 * state.m + (1 - b1) * g
    v = b2 * state.v + (1 - b2) * g * g
    tb = t.reshape(tuple(t.shape) + (1,) * (g.ndim - t.ndim))
    u = (m / (1 - b1**tb)) / ((v / (1 - b2**tb)).sqrt() + config.eps)
    return u, State(None, m, v, t, None, state.shape)


def _basis(b: Tensor, P_prev: Tensor, config: Config) -> Tensor:
    if config.projection == "identity":
        return torch.eye(b.shape[-2], dtype=b.dtype, device=b.device).expand(P_prev.shape).clone()
    if config.projection == "svd":
        return torch.linalg.svd(b, full_matrices=False).U[..., : P_prev.shape[-1]]
    return torch.linalg.qr(b @ (b.transpose(-1, -2) @ P_prev)).Q


def _lowrank(a0: Tensor, state: State, config: Config) -> tuple[Tensor, State]:
    b1, b2, rho = config.beta1, config.beta2, config.rho
    assert state.P is not None  # init keeps a basis P for matrix shapes (the only ones routed here)
    a = a0 if state.e is None else a0 + state.e
    k = state.t.reshape(-1)[0] if state.t.numel() else state.t  # every seed advances together
    kb = state.t.reshape(*state.t.shape, 1, 1)
    if float(k) == 0:
        if config.projection == "identity":
            P = torch.eye(a.shape[-2], dtype=a.dtype, device=a.device).expand(state.P.shape).clone()
        else:
            P = torch.linalg.svd(a, full_matrices=False).U[..., : state.P.shape[-1]]
        g_t = P.transpose(-1, -2) @ a
        e = a - P @ g_t
        m_t = torch.zeros_like(state.m)
        v_t = torch.zeros_like(state.v)
    else:
        c1, c2 = 1 - b1**kb, 1 - b2**kb
        Pm_prev = state.P @ state.m
        b = rho * Pm_prev / c1 + (1 - rho) * a
        P = _basis(b, state.P, config)
        g_t = P.transpose(-1, -2) @ a
        e = a - P @ g_t
        C = P.transpose(-1, -2) @ state.P
        m_t = C @ state.m
        e = e + (b1 / (1 - b1)) * (Pm_prev - P @ m_t)
        v_t = c2 * ((C * C) @ (state.v / c2 - state.m**2 / c1**2) + m_t**2 / c1**2).abs()
    m = b1 * m_t + (1 - b1) * g_t
    v = b2 * v_t + (1 - b2) * g_t * g_t
    kn = kb + 1
    u = (m / (1 - b1**kn)) / ((v / (1 - b2**kn)).sqrt() + config.eps)
    new = State(P, m, v, state.t + 1, None if state.e is None else e, state.shape)
    return P @ u, new


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole LDAdam step η·wd·W + η·P_ku (AdamW on non-matrix tensors); the caller applies W ← W − step."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.m.dtype, where="ldadam.update")
    check_param(param, batch + shape, where="ldadam.update", needed=config.weight_decay > 0)
    if not _is_matrix(shape):
        u, new = _adamw(g, state, config)
    else:
        right = shape[0] > shape[1]  # 'std': project the shorter side
        a = g.transpose(-1, -2) if right else g
        u, new = _lowrank(a, state, config)
        if right:
            u = u.transpose(-1, -2)
    step = config.lr * u
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=weight_decay > 0) refused None
        step = step + config.lr * config.weight_decay * param.to(step.dtype)
    return step.to(grad.dtype), new


def memory(shape, config: Config) -> int:
    N = numel(shape)
    if not _is_matrix(shape):
        return 2 * N + 1
    s, L, r = min(shape), max(shape), effective_rank(shape, config)
    return 2 * r * L + r * s + 1 + (N if config.error_feedback else 0)


def metric(state: State, config: Config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "ldadam",
        Config,
        init,
        update,
        memory,
        metric,
        full_step=True,
        reference="docs/theory/compressed.md §D7; arXiv 2410.16103",
        roles={"lr": "lr", "rank": "rank"},
        default_lr=1e-3,
    ),
)
