r"""Square-matricization, rank-1 non-negative factorization and sign bits (docs/theory/compressed.md §D6, SMMF).

* ``square_shape(N)``: i* = max{i ≤ ⌊√N⌋ : i | N}, (n̂, m̂) = (N/i*, i*), n̂ ≥ m̂; N prime ⇒ (N, 1).
* ``nnmf(A)``: r = A1, c = Aᵀ1, then c ← c/Σc if n̂ ≥ m̂ else r ← r/Σr (skipped when the sum is 0), so that
  rcᵀ = (A1)(1ᵀA)/(1ᵀA1): the rank-one I-divergence minimiser for A ≥ 0, exact when A is rank one.
* ``pack_signs`` / ``unpack_signs``: booleans ↔ uint8 bytes, 8 signs a byte, most significant bit first
  (numpy.packbits' order; written in torch so the state stays on its device).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memopt_theory.validation import check_int

__all__ = ["square_shape", "nnmf", "pack_signs", "unpack_signs", "packed_bytes"]

_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def square_shape(N: int) -> tuple[int, int]:
    """The most square (n̂, m̂) with n̂·m̂ = N, n̂ ≥ m̂ (SMMF's square-matricization)."""
    check_int(N, "N", where="square_shape", low=1)
    i = math.isqrt(N)
    while N % i:
        i -= 1
    return N // i, i


def nnmf(A: Tensor) -> tuple[Tensor, Tensor]:
    """Rank-one non-negative factors (r, c) of A ≥ 0 with rcᵀ = (A1)(1ᵀA)/(1ᵀA1).

    Parameters
    ----------
    A : Tensor, batch + (n̂, m̂), non-negative

    Returns
    -------
    r : Tensor, batch + (n̂,)
    c : Tensor, batch + (m̂,)   the shorter factor is normalised to sum 1 (both zero when A = 0)
    """
    r, c = A.sum(-1), A.sum(-2)
    n, m = A.shape[-2], A.shape[-1]
    if n >= m:
        s = c.sum(-1, keepdim=True)
        c = torch.where(s > 0, c / torch.where(s > 0, s, 1), c)
    else:
        s = r.sum(-1, keepdim=True)
        r = torch.where(s > 0, r / torch.where(s > 0, s, 1), r)
    return r, c


def packed_bytes(N: int) -> int:
    """Bytes holding N sign bits: ⌈N/8⌉."""
    return (N + 7) // 8


def pack_signs(S: Tensor) -> Tensor:
    """Booleans batch + (N,) → uint8 batch + (⌈N/8⌉,), most significant bit first (zero padded)."""
    N = S.shape[-1]
    pad = packed_bytes(N) * 8 - N
    bits = torch.nn.functional.pad(S.to(torch.uint8), (0, pad))
    w = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=S.device)
    return (bits.reshape(*S.shape[:-1], -1, 8) * w).sum(-1, dtype=torch.uint8)


def unpack_signs(packed: Tensor, N: int) -> Tensor:
    """uint8 batch + (⌈N/8⌉,) → booleans batch + (N,) (inverse of :func:`pack_signs`)."""
    w = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(-1) & w) != 0
    return bits.reshape(*packed.shape[:-1], -1)[..., :N]
