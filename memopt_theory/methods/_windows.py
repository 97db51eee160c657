r"""Compressed gradient windows for EFCP (docs/theory/compressed.md §D5): error feedback, then a ring of compressed rows.

Two rings share one interface, used by ``ef_mfac`` and ``ef_ggt`` (methods/efcp.py):

* ``insert(ring, g, t) -> (c, ring, onehot, Cc)``: a = e + g, c = C(a), e ← a − c; c is written into slot
  t mod m; Cc_j = ⟨c_j, c⟩ for every row j of the ring (the new row and column of the Gram).
* ``combine(ring, coef) -> Σ_j coef_j c_j`` (dense, the parameter's flattened shape).

**Sparse** (top-k): rows are k values + k int indices (int32 while N < 2³¹); ⟨c_j, c⟩ gathers the dense c at
row j's indices; Σ_j coef_jc_j is one scatter-add. Memory mk values + mk indices + N (e).

**Low rank** (PowerSGD): the parameter is viewed as (rows × rest) = (a, b); c = PQᵀ from one power step
warm-started at the previous row's Q (a Gaussian of the seed at t = 0, so no separate warm-start buffer is
stored); ⟨P_1Q_1ᵀ, P_2Q_2ᵀ⟩_F = Σ (P_1ᵀP_2) ⊙ (Q_1ᵀQ_2). 1-D tensors are (1, N) with rank 1, where PPᵀ = 1 and
compression is exact (§D1: "1-D tensors pass uncompressed"). Memory m·r(a + b) + N (e).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.compressors import EFState, ErrorFeedback, LowRank, LowRankState, TopK, k_of_density
from memopt_theory.methods.ggt import ring_slot
from memopt_theory.validation import numel


def index_dtype(n: int) -> torch.dtype:
    """The narrowest of int32/int64 holding indices < n."""
    return torch.int32 if n < 2**31 else torch.int64


def index_bits(n: int) -> int:
    return 32 if n < 2**31 else 64


class SparseRing(NamedTuple):
    values: Tensor  # batch + (m, k)
    indices: Tensor  # batch + (m, k), int32/int64
    e: Tensor  # batch + (N,): error feedback buffer


class LowRankRing(NamedTuple):
    P: Tensor  # batch + (m, a, r)
    Q: Tensor  # batch + (m, b, r)
    e: Tensor  # batch + (a, b)


def lowrank_view(shape: tuple[int, ...], rank: int, *, where: str) -> tuple[int, int, int]:
    """(a, b, r): rows × rest of the parameter and the rank used (1-D: (1, N), r = 1)."""
    if len(shape) <= 1:
        return 1, numel(shape), 1
    a, b = shape[0], numel(shape) // shape[0]
    if rank > min(a, b):
        raise ValueError(
            f"{where}: rank must be <= min(rows, rest) = {min(a, b)} for shape {tuple(shape)} viewed as {(a, b)}; "
            f"got {rank}"
        )
    return a, b, rank


def sparse_init(shape, window, density, batch, dtype, device, where) -> SparseRing:
    n = numel(shape)
    k = k_of_density(density, n, where=where)
    return SparseRing(
        values=torch.zeros(batch + (window, k), dtype=dtype, device=device),
        indices=torch.zeros(batch + (window, k), dtype=index_dtype(n), device=device),
        e=torch.zeros(batch + (n,), dtype=dtype, device=device),
    )


def lowrank_init(shape, window, rank, batch, dtype, device, where) -> LowRankRing:
    a, b, r = lowrank_view(shape, rank, where=where)
    return LowRankRing(
        P=torch.zeros(batch + (window, a, r), dtype=dtype, device=device),
        Q=torch.zeros(batch + (window, b, r), dtype=dtype, device=device),
        e=torch.zeros(batch + (a, b), dtype=dtype, device=device),
    )


def sparse_memory(shape, window, density, where) -> tuple[int, int]:
    """(scalars, bits) of a sparse ring."""
    n = numel(shape)
    k = k_of_density(density, n, where=where)
    return window * k + n, window * k * index_bits(n)


def lowrank_memory(shape, window, rank, where) -> int:
    a, b, r = lowrank_view(tuple(shape), rank, where=where)
    return window * r * (a + b) + a * b


def insert(ring, g: Tensor, t: Tensor, *, seed: int = 0):
    """EF-compress g (batch + (N,)) into slot t mod m: (c batch + (N,), new ring, one-hot slot, Cc batch + (m,))."""
    if isinstance(ring, SparseRing):
        return _sparse_insert(ring, g, t)
    return _lowrank_insert(ring, g, t, seed)


def combine(ring, coef: Tensor) -> Tensor:
    """Σ_j coef_j c_j over the ring rows, flattened to batch + (N,)."""
    batch = coef.shape[:-1]
    if isinstance(ring, SparseRing):
        n = ring.e.shape[-1]
        src = (coef.unsqueeze(-1) * ring.values).reshape(*batch, -1)
        out = torch.zeros(batch + (n,), dtype=coef.dtype, device=coef.device)
        return out.scatter_add(-1, ring.indices.long().reshape(*batch, -1), src)
    # Σ_j coef_j P_jQ_jᵀ = Σ_j (coef_j P_j) Q_jᵀ, summed over j inside one batched product
    M = torch.einsum("...j,...jar,...jbr->...ab", coef, ring.P, ring.Q)
    return M.reshape(*batch, -1)


def _sparse_insert(ring: SparseRing, g: Tensor, t: Tensor):
    m, k = ring.values.shape[-2:]
    c, (vals, idx), ef = ErrorFeedback(TopK(k=k)).step(g, EFState(e=ring.e, comp=None))
    oh = ring_slot(t, m)
    values = ring.values * (1 - oh.unsqueeze(-1)) + oh.unsqueeze(-1) * vals.unsqueeze(-2)
    indices = torch.where(oh.unsqueeze(-1) > 0, idx.to(ring.indices.dtype).unsqueeze(-2), ring.indices)
    dense = c.unsqueeze(-2).expand(*c.shape[:-1], m, c.shape[-1])
    Cc = (torch.gather(dense, -1, indices.long()) * values).sum(-1)
    return c, SparseRing(values=values, indices=indices, e=ef.e), oh, Cc


def _lowrank_insert(ring: LowRankRing, g: Tensor, t: Tensor, seed: int):
    m, a, r = ring.P.shape[-3:]
    b = ring.Q.shape[-2]
    batch = g.shape[:-1]
    prev = ring_slot(t - 1, m)  # slot of the previous row: its Q is the warm start
    gen = torch.Generator().manual_seed(seed)
    Q0 = torch.randn((b, r), generator=gen, dtype=torch.float64).to(dtype=g.dtype, device=g.device)
    Qw = torch.einsum("...j,...jbr->...br", prev, ring.Q)
    first = (t == 0).reshape(*batch, 1, 1)
    Qw = torch.where(first, Q0, Qw)
    ef = ErrorFeedback(LowRank(rank=r))
    C, (P, Q), est = ef.step(g.reshape(*batch, a, b), EFState(e=ring.e, comp=LowRankState(Q=Qw)))
    oh = ring_slot(t, m)
    ohP = oh.reshape(*oh.shape, 1, 1)
    Pr = ring.P * (1 - ohP) + ohP * P.unsqueeze(-3)
    Qr = ring.Q * (1 - ohP) + ohP * Q.unsqueeze(-3)
    # ⟨P_jQ_jᵀ, PQᵀ⟩_F = tr(Q_jP_jᵀPQᵀ) = Σ (P_jᵀP) ⊙ (Q_jᵀQ)
    Cc = ((Pr.transpose(-1, -2) @ P.unsqueeze(-3)) * (Qr.transpose(-1, -2) @ Q.unsqueeze(-3))).sum((-1, -2))
    return C.reshape(*batch, -1), LowRankRing(P=Pr, Q=Qr, e=est.e), oh, Cc
