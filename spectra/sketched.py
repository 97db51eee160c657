r"""Kronecker factors kept as Frequent Directions sketches: O(d·ℓ) memory per factor instead of d².

A factor accumulates F_T = Σ_t β^{T−t} M_t with M_t = C_t C_tᵀ ⪰ 0 (Shampoo L_t = G Gᵀ: C_t = G; R_t: C_t = Gᵀ;
K-FAC A_t = (1/M) Σ_r a_r a_rᵀ: C_t = [a_1 … a_M]/√M). Instead of the d × d sum, ``FactorRecorder(sketch=ℓ)``
keeps Sketchy's FD sketch of the stream (``memopt_theory.sketches.fd_update`` with discount β; Feinberg et al.
2023, Alg. 1 — the same FD the S-AdaGrad optimizer uses): U (d × k, k = min(ℓ−1, d)), s (k,), the escaped mass
ρ, and the exact trace tr F_T = Σ_t β^{T−t} ‖C_t‖²_F (one scalar).

Guarantee carried by every sketched snapshot. FD's per-step sandwich F̄_{t−1}·β + M_t − ρ_tI ⪯ F̄_t ⪯
β·F̄_{t−1} + M_t sums (with the same discount) to

    F̄_T ⪯ F_T ⪯ F̄_T + ρ_{1:T} I,        ρ_{1:T} = Σ_t β^{T−t} ρ_t,

so by Weyl's inequality every eigenvalue obeys s_i ≤ λ_i(F_T) ≤ s_i + ρ_{1:T} (s_i := 0 for i > k), and for
the top-k mass Σ_{i≤k} s_i ≤ Σ_{i≤k} λ_i(F_T) ≤ min(tr F_T, Σ_{i≤k} s_i + k·ρ_{1:T}). With β = 1 Lemma 1 bounds
ρ_{1:T} ≤ min_{j<ℓ} Σ_{i>j} λ_i(F_T)/(ℓ − j): the sketch is accurate exactly when the factor is concentrated on
fewer than ℓ directions — the claim the recorder is there to test, so the snapshot stores ρ beside the
spectrum and a reader sees how wide the interval is (``fd_rho`` in the table). Mass fractions are computed
from s and the exact trace, so they are lower bounds of the true ones: a sketched snapshot never overstates
concentration.

Row factors C_t with more than d columns (K-FAC with M > d input rows) are first compressed exactly by a QR
decomposition: for Cᵀ = QR, C Cᵀ = RᵀR, so C can be replaced by Rᵀ (d × d) — the transient cost of one
step's Gram matrix, none of it kept.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from memopt_theory.sketches import FDState, fd_init, fd_update
from spectra.store import Decomposition

__all__ = ["FactorSketch", "compress_columns", "sketch_init", "sketch_update", "sketch_decomposition"]


class FactorSketch(NamedTuple):
    """One factor kept as an FD sketch: F̄ = U diag(s) Uᵀ ⪯ F ⪯ F̄ + ρI, and tr F exactly."""

    fd: FDState  # U (d, k), s (k,), rho (): Sketchy's FD state
    trace: Tensor  # () exact tr F = Σ_t β^{T−t} ‖C_t‖²_F
    ell: int  # ℓ, the sketch size (k = min(ℓ − 1, d) directions kept)


def compress_columns(C: Tensor) -> Tensor:
    """A d × min(r, d) matrix C' with C' C'ᵀ = C Cᵀ (exactly, up to round-off), for C of shape (d, r).

    For r ≤ d, C itself; otherwise Rᵀ from the QR decomposition Cᵀ = QR (then C Cᵀ = RᵀQᵀQR = RᵀR).
    """
    d, r = C.shape
    if r <= d:
        return C
    return torch.linalg.qr(C.T, mode="r").R.T


def sketch_init(d: int, ell: int, *, dtype: torch.dtype, device) -> FactorSketch:
    """The empty sketch of a d × d factor with sketch size ℓ (k = min(ℓ − 1, d) directions)."""
    return FactorSketch(
        fd_init(d, ell, dtype=dtype, device=device), torch.zeros((), dtype=dtype, device=device), ell
    )


def sketch_update(sk: FactorSketch, C: Tensor, beta: float) -> FactorSketch:
    """F ← β·F + C Cᵀ on the sketch (one FD step with discount β) and on the exact trace."""
    C = compress_columns(C.to(dtype=sk.fd.U.dtype, device=sk.fd.U.device))
    fd, _ = fd_update(sk.fd, C, sk.ell, beta=beta)
    return FactorSketch(fd, beta * sk.trace + C.square().sum(), sk.ell)


def sketch_decomposition(sk: FactorSketch, k: int | None = None) -> tuple[Decomposition, float]:
    """The snapshot of a sketched factor: top min(k, k_sketch) eigenpairs of F̄ with the exact trace, and ρ.

    Returns ``(Decomposition(eigvals=s, eigvecs=U, exact=False, trace=tr F, dim=d), rho)``; every true
    eigenvalue lies in [s_i, s_i + rho] (module docstring). Directions FD dropped as round-off (zero columns)
    and zero eigenvalues are left out, so eigvecs has orthonormal columns.
    """
    U = sk.fd.U.detach().to("cpu", torch.float64)
    s = sk.fd.s.detach().to("cpu", torch.float64)
    keep = (U.square().sum(0) > 0.5) & (s > 0)  # a kept direction is a unit column; dropped ones are 0
    U, s = U[:, keep], s[keep]
    order = torch.argsort(s, descending=True)
    U, s = U[:, order], s[order]
    if k is not None:
        U, s = U[:, :k], s[:k]
    # the same sign convention as exact snapshots: each column's largest-magnitude entry positive
    idx = U.abs().argmax(dim=0) if U.shape[1] else torch.zeros(0, dtype=torch.long)
    sign = torch.sign(U.gather(0, idx[None, :])) if U.shape[1] else torch.ones(1, 0, dtype=U.dtype)
    U = U * torch.where(sign == 0, torch.ones_like(sign), sign)
    dec = Decomposition(
        eigvals=np.ascontiguousarray(s.numpy()),
        eigvecs=np.ascontiguousarray(U.numpy()),
        exact=False,
        trace=max(float(sk.trace), 0.0),
        dim=int(U.shape[0]),
    )
    return dec, float(sk.fd.rho)
