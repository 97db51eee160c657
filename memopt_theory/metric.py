r"""The preconditioner H_t of a method as an operator: what ``Method.metric(state)`` returns.

The AdaGrad-family theorems (docs/theory/bounds.md §0, Lemma L1) project in ‖z‖²_H = zᵀHz, so a domain needs H,
not the direction. Each class below stores H in the form its method already holds (no d×d matrix is built
unless asked with ``dense()``), all batched over leading seed axes ``B``; a parameter of shape ``S`` is
flattened row-major to N = ΠS coordinates (vec(AXB) = (A ⊗ Bᵀ)vec X, §0).

=====================  ===========================================  ============================
class                  H                                            used by
=====================  ===========================================  ============================
``Identity``           I                                            ogd
``Diagonal(h)``        diag(h), h ≥ 0 of shape B + S                adagrad_diag, sm3, ext. tensoring
``Dense(H)``           H of shape B + (N, N)                        the comparator's Newton metric
``LowRankPlusScaled``  U diag(s) Uᵀ + c(I − UUᵀ), U: B + (N, k)     s_adagrad, ada_fd; adagrad_full
                                                                    (k = N, c = 0: its eigenbasis)
``Kronecker(Fs)``      F_1 ⊗ … ⊗ F_p, F_i: B + (n_i, n_i)           shampoo, s_shampoo
=====================  ===========================================  ============================

A method without a metric (GGT, M-FAC, Adam-type, …) returns ``None``: unconstrained runs only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Metric", "Identity", "Diagonal", "Dense", "LowRankPlusScaled", "RowSpanLowRank", "Kronecker"]


class Metric:
    """H as an operator on tensors of shape B + S (B the batch axes, S the parameter shape)."""

    shape: tuple[int, ...]  # the parameter shape S

    @property
    def batch(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    def apply(self, x: Tensor) -> Tensor:
        """H x for x of shape B + S (or broadcastable to it)."""
        raise NotImplementedError

    def dense(self) -> Tensor:
        """H as a B + (N, N) matrix in the row-major vec of S; for small N (tests, projections)."""
        raise NotImplementedError

    def quad(self, x: Tensor) -> Tensor:
        """‖x‖²_H = xᵀHx, shape B."""
        k = len(self.shape)
        return (x * self.apply(x)).flatten(start_dim=x.ndim - k).sum(-1)


@dataclass(frozen=True)
class Identity(Metric):
    shape: tuple[int, ...]
    batch_shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.float64
    device: torch.device | str | None = None

    @property
    def batch(self) -> tuple[int, ...]:
        return self.batch_shape

    def apply(self, x: Tensor) -> Tensor:
        return x

    def dense(self) -> Tensor:
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return eye.expand(*self.batch_shape, self.n, self.n).clone()


@dataclass(frozen=True)
class Diagonal(Metric):
    h: Tensor  # B + S, the diagonal of H (≥ 0)
    shape: tuple[int, ...]

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.h.shape[: self.h.ndim - len(self.shape)])

    def apply(self, x: Tensor) -> Tensor:
        return self.h * x

    def dense(self) -> Tensor:
        return torch.diag_embed(self.h.reshape(*self.batch, self.n))


@dataclass(frozen=True)
class Dense(Metric):
    H: Tensor  # B + (N, N), symmetric PSD
    shape: tuple[int, ...]

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.H.shape[:-2])

    def apply(self, x: Tensor) -> Tensor:
        v = x.reshape(*x.shape[: x.ndim - len(self.shape)], self.n, 1)
        return (self.H @ v).reshape(x.shape)

    def dense(self) -> Tensor:
        return self.H


@dataclass(frozen=True)
class LowRankPlusScaled(Metric):
    """H = U diag(s) Uᵀ + c(I − UUᵀ), U with orthonormal columns (zero columns allowed: they drop out)."""

    U: Tensor  # B + (N, k)
    s: Tensor  # B + (k,)
    c: Tensor  # B
    shape: tuple[int, ...]

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.U.shape[:-2])

    def apply(self, x: Tensor) -> Tensor:
        v = x.reshape(*x.shape[: x.ndim - len(self.shape)], self.n)
        coef = (self.U.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)  # Uᵀx
        on = (self.U @ ((self.s - self.c.unsqueeze(-1)) * coef).unsqueeze(-1)).squeeze(-1)
        return (on + self.c.unsqueeze(-1) * v).reshape(x.shape)

    def dense(self) -> Tensor:
        U, s, c = self.U, self.s, self.c
        eye = torch.eye(self.n, dtype=U.dtype, device=U.device)
        return (U * (s - c.unsqueeze(-1)).unsqueeze(-2)) @ U.transpose(-1, -2) + c[..., None, None] * eye


@dataclass(frozen=True)
class RowSpanLowRank(Metric):
    """H = V diag(s) Vᵀ + c(I − VVᵀ) with V = RᵀM never formed (FD buffer metrics; O(Nr) per product).

    ``rows``: r tensors B + (N,), the rows of R; ``M``: B + (r, k) such that V = RᵀM has orthonormal or zero
    columns. Zero columns drop out, as in :class:`LowRankPlusScaled`.
    """

    rows: tuple
    M: Tensor  # B + (r, k)
    s: Tensor  # B + (k,)
    c: Tensor  # B
    shape: tuple[int, ...]

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.M.shape[:-2])

    def coords(self, v: Tensor) -> Tensor:
        """Vᵀv for v: B + (N,) → B + (k,)."""
        if not self.rows:
            return v.new_zeros(v.shape[:-1] + (self.M.shape[-1],))
        Rv = torch.stack([torch.linalg.vecdot(r.to(v.dtype), v) for r in self.rows], dim=-1)
        return (self.M.transpose(-1, -2).to(v.dtype) @ Rv.unsqueeze(-1)).squeeze(-1)

    def span(self, w: Tensor, like: Tensor) -> Tensor:
        """Vw for w: B + (k,) → B + (N,) (``like``: a tensor of that shape and dtype)."""
        cw = (self.M.to(w.dtype) @ w.unsqueeze(-1)).squeeze(-1)
        out = torch.zeros_like(like)
        for i, r in enumerate(self.rows):
            out = out + r.to(w.dtype) * cw[..., i : i + 1]
        return out

    def apply(self, x: Tensor) -> Tensor:
        v = x.reshape(*x.shape[: x.ndim - len(self.shape)], self.n)
        on = self.span((self.s - self.c.unsqueeze(-1)) * self.coords(v), v)
        return (on + self.c.unsqueeze(-1) * v).reshape(x.shape)

    def dense(self) -> Tensor:
        B = self.batch
        eye = torch.eye(self.n, dtype=self.M.dtype, device=self.M.device)
        cols = [
            self.apply(eye[j].expand(*B, self.n).reshape(*B, *self.shape)).reshape(*B, self.n)
            for j in range(self.n)
        ]
        return torch.stack(cols, dim=-1)


@dataclass(frozen=True)
class Kronecker(Metric):
    """H = F_1 ⊗ … ⊗ F_p acting on x of shape B + (n_1, …, n_p): mode-i product with each F_i."""

    factors: tuple[Tensor, ...]  # each B + (n_i, n_i), symmetric
    shape: tuple[int, ...]

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.factors[0].shape[:-2])

    def apply(self, x: Tensor) -> Tensor:
        p = len(self.shape)
        nb = x.ndim - p
        y = x
        for i, F in enumerate(self.factors):
            # mode-i product: move mode i last, y ← y·F_iᵀ (F_i symmetric), move it back. F's batch axes
            # are aligned with y's by inserting singleton axes for the other p − 1 modes.
            y = y.movedim(nb + i, -1)
            Fb = F.transpose(-1, -2).reshape(*F.shape[:-2], *([1] * (p - 1)), *F.shape[-2:])
            y = (y.unsqueeze(-2) @ Fb).squeeze(-2)
            y = y.movedim(-1, nb + i)
        return y

    def dense(self) -> Tensor:
        out = self.factors[0]
        for F in self.factors[1:]:
            b = out.shape[:-2]
            out = (out[..., :, None, :, None] * F[..., None, :, None, :]).reshape(
                *b, out.shape[-2] * F.shape[-2], out.shape[-1] * F.shape[-1]
            )
        return out
