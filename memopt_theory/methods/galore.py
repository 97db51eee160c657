r"""GaLore — ``galore`` (reference point; docs/theory/compressed.md §D8; Zhao et al., ICML 2024; jiaweizzhao/GaLore).

Update
------
Adam in a rank-r projection of the gradient that is recomputed every T_gap steps (and at step 0) by an SVD of
the current gradient; the moments are *not* re-projected when P changes (unlike LDAdam, §D7). For W ∈ R^{a×b}:

* a ≥ b: P = top-r right singular vectors (r×b), R = GPᵀ (a×r), back(N) = NP;
* a < b: P = top-r left singular vectors (a×r), R = PᵀG (r×b), back(N) = PN.

m = β1m + (1−β1)R; v = β2v + (1−β2)R²; N = m/(√v + ε) (HF-style: bias correction on the step size);
W ← W − η(√(1−β2^t)/(1−β1^t))·α·back(N); then W ← W − η·wd·W on the *updated* W. The whole step (full_step) is
therefore s = η·c·α·back(N) + η·wd·(W − η·c·α·back(N)), c = √(1−β2^t)/(1−β1^t). Non-matrix tensors take the same
HF-AdamW without projection and with α = 1 (GaLore's optimizer treats them as plain parameters).

Reduction (tested): if P_0 = I up to signs (G_0 diagonal with decreasing entries) and T_gap exceeds the run,
rank ≥ min(a, b) ⇒ R = G up to column (row) signs that back() undoes, so GaLore = Adam 'hat' with lr ηα (wd = 0).
The rank used is r = min(``rank``, a, b) (the official projector keeps at most min(a, b) singular vectors), so
the default rank 128 runs on any layer. State: P (r·min(a, b)), m, v (r·max(a, b) each), t: 2r·max + r·min + 1
(E.2, with that r); vectors 2N + 1. No H-norm metric.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): 2r·max(a, b) + r·min(a, b) + 1 for a matrix; 2N + 1 (Adam) otherwise.

Guarantee
---------
``galore``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D8; arXiv 2403.03507.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("galore")
>>> cfg = m.Config(rank=2)
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 23)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.validation import check_int, check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """GaLore: lr η > 0, rank ≥ 1 (used as min(rank, a, b)), update_proj_gap T_gap ≥ 1, scale α > 0, β1, β2 ∈ [0, 1), ε ≥ 0, wd ≥ 0."""

    lr: float = 1e-3
    rank: int = 128
    update_proj_gap: int = 200
    scale: float = 0.25
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        w = "galore.Config"
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_int(self.rank, "rank", where=w, low=1)
        check_int(self.update_proj_gap, "update_proj_gap", where=w, low=1)
        check_real(self.scale, "scale", where=w, low=0.0, low_open=True)
        check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.eps, "eps", where=w, low=0.0)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)


class State(NamedTuple):
    P: Tensor | None  # batch + (r, b) if a ≥ b else batch + (a, r); None off matrices
    m: Tensor  # batch + (a, r) or (r, b); vectors: batch + S
    v: Tensor
    t: Tensor  # batch: completed steps
    shape: Static


def effective_rank(shape, config: Config) -> int:
    """r = min(``rank``, a, b) for an a×b matrix: like the official GaLore projector, a layer smaller than the
    configured rank keeps all its directions instead of being refused (a model's small layers must not stop the
    optimizer)."""
    return min(config.rank, *shape)


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="galore.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="galore.init")

    def z(*s):
        return torch.zeros(batch + s, dtype=dtype, device=device)

    if len(shape) != 2:
        return State(None, z(*shape), z(*shape), z(), Static(shape))
    (a, b), r = shape, effective_rank(shape, config)
    if a >= b:
        return State(z(r, b), z(a, r), z(a, r), z(), Static(shape))
    return State(z(a, r), z(r, b), z(r, b), z(), Static(shape))


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole GaLore step (decay applied to the updated W); the caller applies W ← W − step."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    G = prepare_grad(grad, batch + shape, state.m.dtype, where="galore.update")
    check_param(param, batch + shape, where="galore.update", needed=config.weight_decay > 0)
    b1, b2 = config.beta1, config.beta2
    P = state.P
    if P is not None:
        tall = shape[0] >= shape[1]
        if float(state.t.reshape(-1)[0]) % config.update_proj_gap == 0:  # every seed advances together
            U, _, Vh = torch.linalg.svd(G, full_matrices=False)
            r = effective_rank(shape, config)
            P = Vh[..., :r, :] if tall else U[..., :r]
        R = G @ P.transpose(-1, -2) if tall else P.transpose(-1, -2) @ G
        alpha = config.scale
    else:
        R, alpha = G, 1.0
    t = state.t + 1
    m = b1 * state.m + (1 - b1) * R
    v = b2 * state.v + (1 - b2) * R * R
    N = m / (v.sqrt() + config.eps)
    if P is not None:
        N = N @ P if tall else P @ N
    tb = t.reshape(tuple(batch) + (1,) * len(shape))
    step = config.lr * ((1 - b2**tb).sqrt() / (1 - b1**tb)) * alpha * N
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=weight_decay > 0) refused None
        step = step + config.lr * config.weight_decay * (param.to(step.dtype) - step)
    return step.to(grad.dtype), State(P, m, v, t, state.shape)


def memory(shape, config: Config) -> int:
    if len(shape) != 2:
        return 2 * numel(shape) + 1
    r = effective_rank(shape, config)
    return 2 * r * max(shape) + r * min(shape) + 1


def metric(state: State, config: Config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "galore",
        Config,
        init,
        update,
        memory,
        metric,
        full_step=True,
        reference="docs/theory/compressed.md §D8; arXiv 2403.03507",
        roles={"lr": "lr", "rank": "rank"},
        default_lr=1e-2,
    ),
)
