r"""Full-matrix AdaGrad — ``adagrad_full`` (ALGORITHMS.md §A3; Duchi, Hazan, Singer 2011).

S_t = S_{t−1} + g_tg_tᵀ (S_0 = 0) over the flattened parameter (N = ΠS coordinates); H_t = S_t^{1/2}
(δ = 0, pseudo-inverse), (S_t + δI)^{1/2} ("inside": the target of S-AdaGrad and Shampoo) or δI + S_t^{1/2}
("outside": the target of GGT). Direction H_t^+ g_t through one float64 ``eigh`` of S_t, with the §0
pseudo-inverse cutoff τ = N·ε_mach·λ_1. State: S, N² scalars.
"""

from __future__ import annotations

import math
import os
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
    check_dense_state_bytes(n, batch, dtype, where="adagrad_full.init")
    return State(S=torch.zeros(batch + (n, n), dtype=dtype, device=device), shape=Static(shape))


class StateTooLarge(ValueError, MemoryError):
    """A dense statistic refused before allocation (a ValueError for the CLI, a MemoryError by meaning)."""


def max_state_bytes() -> int:
    """The largest dense statistic ``init`` allocates: $MEMOPT_MAX_STATE_BYTES, else half the physical memory."""
    env = os.environ.get("MEMOPT_MAX_STATE_BYTES")
    if env is not None:
        try:
            v = int(float(env))
        except ValueError:
            raise ValueError(f"MEMOPT_MAX_STATE_BYTES must be a number of bytes; got {env!r}") from None
        if v < 1:
            raise ValueError(f"MEMOPT_MAX_STATE_BYTES must be >= 1; got {env!r}")
        return v
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def check_dense_state_bytes(n: int, batch: tuple[int, ...], dtype: torch.dtype, *, where: str) -> None:
    """Refuse an N×N statistic above :func:`max_state_bytes` with its size, instead of an allocator crash."""
    per = n * n * torch.finfo(dtype).bits // 8
    total = per * math.prod(batch)
    limit = max_state_bytes()
    if total > limit:
        raise StateTooLarge(
            f"{where}: full-matrix AdaGrad at N={n} needs {torch.finfo(dtype).bits // 8}·N² = {per:,} bytes "
            f"({per / 2**30:.3g} GiB) per seed, {total:,} bytes for batch {batch}; the limit is {limit:,} bytes "
            "(half the physical memory, or $MEMOPT_MAX_STATE_BYTES); use a sketched method (s_adagrad, O(Nℓ))"
        )


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


METHODS = (Method("adagrad_full", Config, init, update, memory, metric, reference="ALGORITHMS.md §A3"),)
