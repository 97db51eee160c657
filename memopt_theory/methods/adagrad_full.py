r"""Full-matrix AdaGrad — ``adagrad_full`` (ALGORITHMS.md §A3; Duchi, Hazan, Singer 2011).

S_t = S_{t−1} + g_tg_tᵀ (S_0 = 0) over the flattened parameter (N = ΠS coordinates); H_t = S_t^{1/2}
(δ = 0, pseudo-inverse), (S_t + δI)^{1/2} ("inside": the target of S-AdaGrad and Shampoo) or δI + S_t^{1/2}
("outside": the target of GGT). Direction H_t^+ g_t through one float64 ``eigh`` of S_t, with the §0
pseudo-inverse cutoff τ = N·ε_mach·λ_1. State: S, N² scalars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.linalg import default_rtol, sym_eigh
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import LowRankPlusScaled
from memopt_theory.validation import check_choice, check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """Full-matrix AdaGrad: ``delta`` δ ≥ 0, placed "inside" ((S + δI)^{1/2}) or "outside" (δI + S^{1/2})."""

    delta: float = 0.0
    delta_mode: str = "inside"

    def __post_init__(self) -> None:
        check_real(self.delta, "delta", where="adagrad_full.Config", low=0.0)
        check_choice(self.delta_mode, "delta_mode", ("inside", "outside"), where="adagrad_full.Config")


class State(NamedTuple):
    S: Tensor  # batch + (N, N): Σ g gᵀ
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="adagrad_full.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="adagrad_full.init")
    n = numel(shape)
    return State(S=torch.zeros(batch + (n, n), dtype=dtype, device=device), shape=Static(shape))


def _h_eigs(lam: Tensor, config: Config) -> Tensor:
    """Eigenvalues of H_t from those of S_t.

    ``eigh`` returns the null space of a singular S_t as eigenvalues of size ≈ ε·λ_1 (either sign); their
    square roots ≈ √ε·√λ_1 would pass any cutoff applied to H, so the §0 cutoff is applied to S_t itself:
    eigenvalues ≤ τ·λ_1(S_t), τ = N·ε_mach, are set to exactly 0 before the root.
    """
    tau = default_rtol(lam.shape[-1], lam.dtype)
    top = lam.amax(dim=-1, keepdim=True).clamp_min(0)
    lam = torch.where(lam > tau * top, lam, torch.zeros_like(lam))
    if config.delta_mode == "inside":
        return (lam + config.delta).sqrt()
    return lam.sqrt() + config.delta


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = H_t^+ g_t with S_t = S_{t−1} + g_tg_tᵀ (the state after g_t is absorbed)."""
    batch = tuple(state.S.shape[:-2])
    full = batch + tuple(state.shape)
    g = prepare_grad(grad, full, state.S.dtype, where="adagrad_full.update")
    check_param(param, full, where="adagrad_full.update", needed=False)
    v = g.reshape(*batch, -1)
    S = state.S + v.unsqueeze(-1) * v.unsqueeze(-2)
    lam, Q = sym_eigh(S)
    h = _h_eigs(lam, config)
    hinv = torch.where(h > 0, 1.0 / torch.where(h > 0, h, torch.ones_like(h)), torch.zeros_like(h))  # H^+
    u = Q @ (hinv * (Q.transpose(-1, -2) @ v.to(Q.dtype).unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
    return u.squeeze(-1).reshape(grad.shape).to(grad.dtype), State(S=S, shape=state.shape)


def memory(shape, config: Config) -> int:
    return numel(shape) ** 2


def metric(state: State, config: Config) -> LowRankPlusScaled:
    """H_t in its eigenbasis: Q diag(h) Qᵀ with all N eigenvectors (U = Q, c = 0), so that an H-norm projection
    reuses this ``eigh`` instead of decomposing a dense H again; ``.dense()`` gives the N×N matrix."""
    lam, Q = sym_eigh(state.S)
    h = _h_eigs(lam, config).to(state.S.dtype)
    c = torch.zeros(h.shape[:-1], dtype=h.dtype, device=h.device)
    return LowRankPlusScaled(U=Q.to(state.S.dtype), s=h, c=c, shape=tuple(state.shape))


METHODS = (
    Method(
        "adagrad_full", Config, init, update, memory, metric, reference="ALGORITHMS.md §A3", default_lr=1e-1
    ),
)
