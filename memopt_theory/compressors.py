r"""Compressors and error feedback (docs/theory/compressed.md §D1–D2).

A compressor C maps x to C(x); it is δ-contractive if ‖C(x) − x‖² ≤ (1 − δ)‖x‖² (in expectation if random).
Every compressor here is a frozen dataclass with a pure, functional interface over a leading batch (seed)
axis::

    cstate = comp.init(shape, batch=(), dtype=torch.float64, device=None)  # warm start, RNG counter or None
    c, payload, cstate = comp.compress(x, cstate)                          # c = C(x) dense, payload = what is stored

Vectors are compressed along their last axis (shape batch + (d,)), matrices (low rank) on their last two.

Contraction constants ([reconstructed] in the spec, re-derived here):

* **top-k** (ties → lowest index): the k kept squares are the k largest, so their mean is ≥ the mean of all d
  squares; hence ‖x_kept‖² ≥ (k/d)‖x‖² and ‖C(x) − x‖² = ‖x‖² − ‖x_kept‖² ≤ (1 − k/d)‖x‖², δ = k/d.
* **random-k** unscaled: each coordinate is kept with probability k/d (uniform k-subset), so
  E‖C(x) − x‖² = Σ_i (1 − k/d)x_i² = (1 − k/d)‖x‖². Scaled by d/k: E C(x) = x (unbiased) and
  E‖C(x)‖² = (d/k)²(k/d)‖x‖² = (d/k)‖x‖²; with k < d that exceeds ‖x‖², so it is not a contraction and must
  not be used under error feedback.
* **one power iteration** (PowerSGD): P has orthonormal columns, C(M) = PPᵀM is an orthogonal projection of
  the columns of M, so ‖M − C(M)‖_F² = ‖M‖_F² − ‖PᵀM‖_F² exactly (Pythagoras) and ≤ ‖M‖_F²: non-expansive but
  with no uniform δ > 0 (P can be orthogonal to M). The rank-r truncated SVD keeps the r largest of the
  min(a, b) squared singular values, δ = r/min(a, b) by the same averaging argument as top-k.

Error feedback (§D2): a_t = e_t + g_t; c_t = C(a_t); e_{t+1} = a_t − c_t. Summing, Σ_{s≤t} c_s = Σ_{s≤t} g_s − e_{t+1}
(telescoping, e_1 = 0); ‖e_{t+1}‖² = ‖a_t − C(a_t)‖² ≤ (1 − δ)‖a_t‖²; with q = √(1 − δ) and ‖g_t‖ ≤ G,
‖e_{t+1}‖ ≤ q(‖e_t‖ + G), so by induction ‖e_t‖ ≤ qG(1 + q + q² + …) ≤ qG/(1 − q).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from memopt_theory.validation import check_batch, check_int, check_real

__all__ = [
    "Identity",
    "TopK",
    "RandomK",
    "LowRank",
    "ErrorFeedback",
    "EFState",
    "top_k",
    "densify",
    "k_of_density",
    "quantize4",
    "dequantize4",
]


def k_of_density(density: float, d: int, *, where: str) -> int:
    """k = ⌊density·d⌋, at least 1 (EFCP: 99 % sparsity = density 0.01); density must lie in (0, 1]."""
    check_real(density, "density", where=where, low=0.0, high=1.0, low_open=True)
    return max(1, int(density * d))


def top_k(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k entries of largest magnitude along the last axis, ties broken towards the lowest index.

    Parameters
    ----------
    x : Tensor, shape batch + (d,)
    k : int, 1 ≤ k ≤ d

    Returns
    -------
    values : Tensor, batch + (k,)   x at the kept indices
    indices : Tensor, batch + (k,), int64, ascending
    """
    # a stable descending sort keeps equal magnitudes in index order, so ties go to the lowest index
    # (torch.topk leaves the order of ties unspecified)
    order = torch.sort(x.abs(), dim=-1, descending=True, stable=True).indices[..., :k]
    idx = torch.sort(order, dim=-1).values
    return torch.gather(x, -1, idx), idx


def densify(values: Tensor, indices: Tensor, d: int) -> Tensor:
    """The dense batch + (d,) vector holding ``values`` at ``indices`` and 0 elsewhere."""
    out = torch.zeros((*values.shape[:-1], d), dtype=values.dtype, device=values.device)
    return out.scatter(-1, indices.long(), values)


@dataclass(frozen=True, kw_only=True)
class Identity:
    """C(x) = x: under error feedback a no-op (e ≡ 0, c_t = g_t)."""

    def init(self, shape, *, batch=(), dtype=torch.float64, device=None) -> None:
        return None

    def compress(self, x: Tensor, state: None = None) -> tuple[Tensor, Tensor, None]:
        return x, x, None


@dataclass(frozen=True, kw_only=True)
class TopK:
    """Top-k along the last axis (δ = k/d); payload (values, indices): k values + k indices per vector."""

    k: int

    def __post_init__(self) -> None:
        check_int(self.k, "k", where="TopK", low=1)

    def init(self, shape, *, batch=(), dtype=torch.float64, device=None) -> None:
        if self.k > shape[-1]:
            raise ValueError(f"TopK: k must be <= the vector length {shape[-1]}; got k={self.k}")
        return None

    def compress(self, x: Tensor, state: None = None) -> tuple[Tensor, tuple[Tensor, Tensor], None]:
        vals, idx = top_k(x, self.k)
        return densify(vals, idx, x.shape[-1]), (vals, idx), None


@dataclass(frozen=True, kw_only=True)
class RandomK:
    """A uniform random k-subset of the last axis; ``scaled`` multiplies by d/k (unbiased, not contractive).

    The state is a float64 draw counter (batch); draw n of a run uses a generator seeded with
    (seed, n), so the same seed gives the same subsets and ``compress`` stays pure.
    """

    k: int
    scaled: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.k, "k", where="RandomK", low=1)
        check_int(self.seed, "seed", where="RandomK", low=0)
        if not isinstance(self.scaled, bool):
            raise TypeError(f"RandomK: scaled must be a bool; got {self.scaled!r}")

    def init(self, shape, *, batch=(), dtype=torch.float64, device=None) -> Tensor:
        if self.k > shape[-1]:
            raise ValueError(f"RandomK: k must be <= the vector length {shape[-1]}; got k={self.k}")
        return torch.zeros(check_batch(batch), dtype=torch.float64, device=device)

    def compress(self, x: Tensor, state: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor]:
        d = x.shape[-1]
        batch = x.shape[:-1]
        flat_count = state.reshape(-1)
        rows = []
        for i, n in enumerate(flat_count.tolist()):
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * i + int(n))
            rows.append(torch.sort(torch.randperm(d, generator=gen)[: self.k]).values)
        idx = torch.stack(rows).reshape(*batch, self.k).to(x.device) if rows else None
        vals = torch.gather(x, -1, idx)
        if self.scaled:
            vals = vals * (d / self.k)
        return densify(vals, idx, d), (vals, idx), state + 1


class LowRankState(NamedTuple):
    Q: Tensor  # batch + (b, r): the warm start of the power iteration


@dataclass(frozen=True, kw_only=True)
class LowRank:
    """Rank-r compression of a×b matrices by one warm-started power iteration (PowerSGD; §D1).

    P = orth(MQ) (reduced QR), Q ← MᵀP, C(M) = PQᵀ = PPᵀM; payload (P, Q): r(a + b) scalars. Q starts
    Gaussian (seeded). ‖M − C(M)‖_F² = ‖M‖_F² − ‖PᵀM‖_F² exactly; repeated on a fixed M it converges to the
    rank-r truncated SVD when σ_r > σ_{r+1}.
    """

    rank: int
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.rank, "rank", where="LowRank", low=1)
        check_int(self.seed, "seed", where="LowRank", low=0)

    def init(self, shape, *, batch=(), dtype=torch.float64, device=None) -> LowRankState:
        if len(shape) != 2:
            raise ValueError(f"LowRank: shape must be a matrix (a, b); got {tuple(shape)}")
        a, b = shape
        if self.rank > min(a, b):
            raise ValueError(
                f"LowRank: rank must be <= min(a, b) = {min(a, b)} for shape {(a, b)}; got {self.rank}"
            )
        gen = torch.Generator().manual_seed(self.seed)
        Q = torch.randn((b, self.rank), generator=gen, dtype=torch.float64)
        Q = Q.to(dtype=dtype, device=device).expand(*check_batch(batch), b, self.rank).clone()
        return LowRankState(Q=Q)

    def compress(self, M: Tensor, state: LowRankState) -> tuple[Tensor, tuple[Tensor, Tensor], LowRankState]:
        P = torch.linalg.qr(M @ state.Q).Q  # orthonormal columns even when MQ is rank deficient (Householder)
        Q = M.transpose(-1, -2) @ P
        return P @ Q.transpose(-1, -2), (P, Q), LowRankState(Q=Q)


class EFState(NamedTuple):
    e: Tensor  # batch + shape: the error e_t (what the compressor dropped so far)
    comp: Any  # the compressor's state (None, a draw counter or a LowRankState)


@dataclass(frozen=True)
class ErrorFeedback:
    """Error feedback around a compressor (§D2): a = e + g, c = C(a), e ← a − c.

    >>> import torch
    >>> ef = ErrorFeedback(TopK(k=2))
    >>> st = ef.init((5,))
    >>> g = torch.tensor([3.0, -1.0, 0.5, 4.0, -2.0], dtype=torch.float64)
    >>> c, payload, st = ef.step(g, st)   # Σ_s c_s = Σ_s g_s − st.e
    >>> c.tolist(), st.e.tolist()         # the two largest entries sent, the rest kept as error
    ([3.0, 0.0, 0.0, 4.0, 0.0], [0.0, -1.0, 0.5, 0.0, -2.0])
    """

    compressor: Any

    def init(self, shape, *, batch=(), dtype=torch.float64, device=None) -> EFState:
        e = torch.zeros((*check_batch(batch), *shape), dtype=dtype, device=device)
        return EFState(e=e, comp=self.compressor.init(tuple(shape), batch=batch, dtype=dtype, device=device))

    def step(self, g: Tensor, state: EFState) -> tuple[Tensor, Any, EFState]:
        """(c_t, payload, state with e_{t+1}) from g_t; identity compressor ⇒ c_t = g_t and e stays 0."""
        a = state.e + g
        c, payload, comp = self.compressor.compress(a, state.comp)
        return c, payload, EFState(e=a - c, comp=comp)


def quantize4(x: Tensor, block: int) -> tuple[Tensor, Tensor, Tensor]:
    """4-bit block quantiser (§D1, MicroAdam): per block of ``block`` entries of the last axis,
    u = (max − min)/15, q = ⌊(x − min)/u + ½⌋ ∈ {0..15}; constant blocks (u = 0) get q = 0.

    Returns
    -------
    codes : Tensor, batch + (⌈N/2⌉,) uint8     two 4-bit codes a byte (even entry in the high nibble)
    lo, hi : Tensor, batch + (⌈N/block⌉,)      block minima and maxima
    """
    N = x.shape[-1]
    nb = -(-N // block)
    pad = nb * block - N
    xb = torch.nn.functional.pad(x, (0, pad)).reshape(*x.shape[:-1], nb, block)
    if pad:  # padding must not widen the last block's range: fill it with that block's first entry
        xb[..., -1, block - pad :] = xb[..., -1, :1]
    lo, hi = xb.amin(-1), xb.amax(-1)
    u = (hi - lo) / 15
    safe = torch.where(u > 0, u, torch.ones_like(u))
    q = torch.where(u.unsqueeze(-1) > 0, torch.floor((xb - lo.unsqueeze(-1)) / safe.unsqueeze(-1) + 0.5), 0.0)
    q = q.clamp(0, 15).to(torch.uint8).reshape(*x.shape[:-1], -1)[..., :N]
    q = torch.nn.functional.pad(q, (0, N % 2))
    codes = (q[..., 0::2] << 4) | q[..., 1::2]
    return codes, lo, hi


def dequantize4(codes: Tensor, lo: Tensor, hi: Tensor, N: int, block: int) -> Tensor:
    """x̂ = q·u + min per block (inverse of :func:`quantize4` up to |x − x̂| ≤ u/2)."""
    q = torch.stack([codes >> 4, codes & 15], dim=-1).reshape(*codes.shape[:-1], -1)[..., :N]
    nb = lo.shape[-1]
    q = torch.nn.functional.pad(q, (0, nb * block - N)).reshape(*codes.shape[:-1], nb, block).to(lo.dtype)
    u = (hi - lo) / 15
    return (q * u.unsqueeze(-1) + lo.unsqueeze(-1)).reshape(*codes.shape[:-1], -1)[..., :N]
