r"""Pieces the sketched AdaGrad family shares (s_adagrad, ada_fd, fd_son, rfd_son; docs/theory/sketching.md §B3, §B4, §B6, §B7).

Not a method module (the registry skips names starting with ``_``). The operator every direction needs is

    apply(U, f_on, f_off, v) = U diag(f_on) Uᵀ v + f_off·(v − UUᵀv),

a function of the sketch Ḡ = U diag(s) Uᵀ (U with orthonormal or zero columns) plus a multiple of I, in O(Nk).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.sketches import FDState, fd_update

__all__ = ["apply_low_rank", "pos_pow", "TestbedState", "testbed_init", "testbed_sketch_step"]


def pos_pow(x: Tensor, p: float) -> Tensor:
    """x^p where x > 0, else 0: the pseudo-inverse convention of §0 and the testbed's "x ≤ 0 becomes 0" (B4)."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).pow(p), torch.zeros_like(x))


def apply_low_rank(U: Tensor, f_on: Tensor, f_off: Tensor, v: Tensor) -> Tensor:
    """U diag(f_on) Uᵀv + f_off·(v − UUᵀv) for U: B + (N, k), f_on: B + (k,), f_off: B, v: B + (N,)."""
    coef = (U.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)  # Uᵀv
    inside = (U @ coef.unsqueeze(-1)).squeeze(-1)
    on = (U @ (f_on * coef).unsqueeze(-1)).squeeze(-1)
    return on + f_off.unsqueeze(-1) * (v - inside)


class TestbedState(NamedTuple):
    """The official testbed's sketched state (B4; Ada-FD, FD-SON, RFD-SON): min(ℓ, N)(N + 1) + 2 scalars.

    The testbed stores P ∈ R^{ℓ×N} and e ∈ R^ℓ with e_ℓ = 0 after every step; memopt stores U = Pᵀ with the
    ℓ-th column 0 instead of the testbed's ℓ-th right singular vector (it multiplies e_ℓ = 0 in the sketch and
    gets the same factor α^{-1} as the complement in every direction, so the directions agree).
    """

    U: Tensor  # B + (N, min(ℓ, N)): the sketch's directions (columns beyond min(ℓ−1, N) are 0)
    e: Tensor  # B + (min(ℓ, N),): √ eigenvalues of Ḡ_t (the testbed's e)
    alpha: Tensor  # B: α (δ fixed for Ada-FD/FD-SON; δ + ρ_{1:t}/2 for RFD-SON)
    t: Tensor  # B: steps taken
    shape: Static  # parameter shape S


def testbed_init(shape, ell: int, delta: float, *, batch, dtype, device) -> TestbedState:
    n = int(torch.Size(shape).numel())
    kk = min(ell, n)
    return TestbedState(
        U=torch.zeros(batch + (n, kk), dtype=dtype, device=device),
        e=torch.zeros(batch + (kk,), dtype=dtype, device=device),
        alpha=torch.full(batch, float(delta), dtype=dtype, device=device),
        t=torch.zeros(batch, dtype=dtype, device=device),
        shape=Static(shape),
    )


def testbed_sketch_step(state: TestbedState, ghat: Tensor, ell: int, c_alpha: float) -> TestbedState:
    """Steps 2–4 of B4's sketched step on the flattened, scaled gradient ĝ (B + (N,)); t and α updated.

    The SVD of diag(e)P with its last row ĝ is B2's FD-update of Ḡ_{t−1} by ĝĝᵀ: ρ_t = r², s = σ² − r².
    """
    n, kk = state.U.shape[-2], state.U.shape[-1]
    k = min(ell - 1, n)
    sk = FDState(U=state.U[..., :k], s=state.e[..., :k].square(), rho=torch.zeros_like(state.alpha))
    sk, rho_t = fd_update(sk, ghat.unsqueeze(-1), ell)
    pad = kk - k
    U = torch.cat([sk.U, sk.U.new_zeros(sk.U.shape[:-1] + (pad,))], dim=-1) if pad else sk.U
    e = torch.cat([sk.s, sk.s.new_zeros(sk.s.shape[:-1] + (pad,))], dim=-1).sqrt() if pad else sk.s.sqrt()
    return TestbedState(U=U, e=e, alpha=state.alpha + c_alpha * rho_t, t=state.t + 1, shape=state.shape)
