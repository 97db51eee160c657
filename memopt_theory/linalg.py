r"""Symmetric matrix functions through ``eigh``, batched over leading axes.

Conventions (docs/theory/bounds.md §0): a PSD matrix power is taken through its eigendecomposition in float64;
round-off negative eigenvalues are clamped to 0; a negative power is a pseudo-inverse in which eigenvalues
≤ τ·λ_1 count as 0, τ = n·ε_mach for an n×n matrix unless the caller passes its own ``rtol``.

Every function accepts ``(..., n, n)`` and works on each trailing matrix independently, so a leading
seed axis needs no loop. Results come back in the input dtype and device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "sym_eigh",
    "psd_power",
    "psd_inv_root",
    "pinv_power_values",
    "is_psd",
    "min_eigenvalue",
    "default_rtol",
]


def _check_square(A: Tensor, where: str) -> None:
    if not isinstance(A, Tensor):
        raise TypeError(f"{where}: A must be a torch.Tensor; got {type(A).__name__}")
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{where}: A must have shape (..., n, n); got {tuple(A.shape)}")
    if not torch.is_floating_point(A):
        raise TypeError(f"{where}: A must be a floating tensor; got dtype {A.dtype}")
    if not torch.isfinite(A).all():
        raise ValueError(f"{where}: A must be finite; it has NaN/inf entries")


def default_rtol(n: int, dtype: torch.dtype = torch.float64) -> float:
    """τ = n·ε_mach: eigenvalues at or below τ·λ_max are numerically zero (docs/theory/bounds.md §0)."""
    return max(n, 1) * torch.finfo(dtype).eps


def sym_eigh(A: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric part of A, computed in float64.

    Returns float64 tensors on A's device; the symmetrisation (A + Aᵀ)/2 removes round-off asymmetry so
    that ``eigh`` (which reads one triangle only) sees the matrix the caller meant.
    """
    _check_square(A, "sym_eigh")
    A64 = A.to(torch.float64)
    A64 = 0.5 * (A64 + A64.transpose(-1, -2))
    try:
        return torch.linalg.eigh(A64)
    except torch.linalg.LinAlgError:
        # LAPACK's divide-and-conquer syevd can fail to converge on large matrices with thousands of repeated
        # (zero) eigenvalues, e.g. a full-matrix AdaGrad statistic of sparse gradients at d = 4096: retry each
        # matrix with the relatively robust representations driver (syevr), then the QR algorithm (syev)
        return _eigh_fallback(A64)


def _eigh_fallback(A64: Tensor) -> tuple[Tensor, Tensor]:
    import scipy.linalg

    mats = A64.detach().cpu().reshape(-1, *A64.shape[-2:]).numpy()
    lams, vecs = [], []
    for M in mats:
        try:
            w, V = scipy.linalg.eigh(M, driver="evr")
        except (np.linalg.LinAlgError, ValueError):
            w, V = scipy.linalg.eigh(M, driver="ev")
        lams.append(w)
        vecs.append(V)
    lam = torch.from_numpy(np.stack(lams)).reshape(A64.shape[:-1]).to(A64.device)
    return lam, torch.from_numpy(np.stack(vecs)).reshape(A64.shape).to(A64.device)


def pinv_power_values(lam: Tensor, p: float, *, eps: float = 0.0, rtol: float | None = None) -> Tensor:
    r"""(λ + ε)^p elementwise for PSD eigenvalues λ (last axis), with the pseudo-inverse convention.

    λ is clamped at 0; for p < 0 values ≤ τ·max(λ + ε) give 0 instead of a huge number.
    """
    if eps < 0:
        raise ValueError(f"pinv_power_values: eps must be >= 0; got {eps!r}")
    n = lam.shape[-1] if lam.ndim else 1
    tau = default_rtol(n, torch.float64) if rtol is None else rtol
    x = lam.clamp_min(0) + eps
    if p >= 0:
        return x.pow(p)
    top = x.amax(dim=-1, keepdim=True) if lam.ndim else x
    keep = x > tau * top
    safe = torch.where(keep, x, torch.ones_like(x))
    return torch.where(keep, safe.pow(p), torch.zeros_like(x))


def psd_power(A: Tensor, p: float, *, eps: float = 0.0, rtol: float | None = None) -> Tensor:
    r"""(A + εI)^p for symmetric PSD A, batched; p < 0 is a pseudo-inverse power.

    Parameters
    ----------
    A : Tensor, shape (..., n, n)   symmetric PSD (round-off negative eigenvalues are clamped to 0)
    p : float                        the exponent (1/2, −1/2, −1/4, …)
    eps : float ≥ 0                  ε regularisation added to every eigenvalue
    rtol : float, optional           τ of the pseudo-inverse cutoff; default n·ε_mach(float64)

    Returns
    -------
    Tensor of A's shape, dtype and device.
    """
    _check_square(A, "psd_power")
    if eps < 0:
        raise ValueError(f"psd_power: eps must be >= 0; got {eps!r}")
    lam, Q = sym_eigh(A)
    f = pinv_power_values(lam, p, eps=eps, rtol=rtol)
    out = (Q * f.unsqueeze(-2)) @ Q.transpose(-1, -2)
    return out.to(dtype=A.dtype)


def psd_inv_root(A: Tensor, root: int, *, eps: float = 0.0, rtol: float | None = None) -> Tensor:
    """(A + εI)^{−1/root} (pseudo-inverse where singular); root = 2 for AdaGrad, 4 for Shampoo factors."""
    if type(root) is not int or root < 1:
        raise ValueError(f"psd_inv_root: root must be an int >= 1; got {root!r}")
    return psd_power(A, -1.0 / root, eps=eps, rtol=rtol)


def min_eigenvalue(A: Tensor) -> Tensor:
    """Smallest eigenvalue of the symmetric part of A (float64), shape A.shape[:-2]."""
    return sym_eigh(A)[0][..., 0]


def is_psd(A: Tensor, *, atol: float = 0.0, rtol: float | None = None) -> bool:
    """True if λ_min(A) ≥ −(atol + rtol·|λ|_max) for every matrix of the batch; rtol default n·ε_mach."""
    lam = sym_eigh(A)[0]
    n = A.shape[-1]
    tol = atol + (default_rtol(n) if rtol is None else rtol) * lam.abs().amax(dim=-1)
    return bool((lam[..., 0] >= -tol).all())
