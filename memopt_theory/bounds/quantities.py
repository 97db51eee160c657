r"""The quantities inside the regret bounds (docs/theory/bounds.md §E.1): tr G^{1/2}, tails, Ω_ℓ, the AdaGrad coefficient.

All functions take batched tensors (leading axes B) and return tensors of shape B, computed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memopt_theory.linalg import sym_eigh
from memopt_theory.validation import check_int

__all__ = ["psd_eigvals_desc", "trace_sqrt", "tail_sums", "omega_ell", "adaptive_coefficient"]


def _as_tensor(x, name: str, where: str) -> Tensor:
    if isinstance(x, Tensor):
        if not torch.is_floating_point(x):
            raise TypeError(f"{where}: {name} must be a float or a floating tensor; got dtype {x.dtype}")
        out = x.to(torch.float64)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        out = torch.tensor(float(x), dtype=torch.float64)
    else:
        raise TypeError(f"{where}: {name} must be a real number or a tensor; got {x!r} ({type(x).__name__})")
    if not torch.isfinite(out).all():
        raise ValueError(f"{where}: {name} must be finite; got {x!r}")
    return out


def psd_eigvals_desc(G: Tensor) -> Tensor:
    """Eigenvalues λ_1 ≥ … ≥ λ_d of a PSD B + (d, d) matrix in float64, round-off negatives clamped to 0 (§0)."""
    return sym_eigh(G)[0].clamp_min(0).flip(-1)


def trace_sqrt(G: Tensor) -> Tensor:
    r"""tr G^{1/2} = Σ_i √λ_i(G) for PSD G of shape B + (d, d); returns shape B (float64)."""
    return psd_eigvals_desc(G).sqrt().sum(-1)


def tail_sums(eigvals_desc: Tensor) -> Tensor:
    r"""λ_{k+1:d} = Σ_{i>k} λ_i for k = 0..d (last entry 0), shape B + (d + 1,): ‖A − A_k‖²_F for rows of A."""
    lam = eigvals_desc.to(torch.float64).clamp_min(0)
    # summing from the small end keeps the tails accurate when λ_1 dwarfs them
    rev = lam.flip(-1).cumsum(-1).flip(-1)
    return torch.cat([rev, rev.new_zeros(rev.shape[:-1] + (1,))], dim=-1)


def omega_ell(eigvals_desc: Tensor, ell: int) -> Tensor:
    r"""Ω_ℓ = min_{0≤k<ℓ} (ℓ−k)^{−1} Σ_{i>k} λ_i (Feinberg et al. 2023, Lemma 1; docs/theory/sketching.md §B2(c), docs/theory/bounds.md §E.1).

    Parameters
    ----------
    eigvals_desc : Tensor, B + (d,)   λ_1 ≥ … ≥ λ_d ≥ 0 of G_T (round-off negatives are clamped to 0)
    ell : int ≥ 1                     ℓ; for ℓ > d the term k = d gives Ω_ℓ = 0 (the sketch is exact)

    Returns
    -------
    Tensor of shape B, float64; Ω_ℓ ≤ λ_{ℓ:d} (the term k = ℓ−1) whenever ℓ ≤ d.
    """
    check_int(ell, "ell", where="omega_ell", low=1)
    if not isinstance(eigvals_desc, Tensor) or eigvals_desc.ndim < 1:
        raise ValueError(f"omega_ell: eigvals_desc must be a tensor of shape B + (d,); got {eigvals_desc!r}")
    tails = tail_sums(eigvals_desc)  # k = 0..d
    d = eigvals_desc.shape[-1]
    kmax = min(ell - 1, d)
    k = torch.arange(kmax + 1, dtype=torch.float64, device=tails.device)
    return (tails[..., : kmax + 1] / (ell - k)).amin(-1)


def adaptive_coefficient(D, eta) -> Tensor:
    r"""D²/(2η) + η: the factor of tr H_T in the AdaGrad-family bound at a fixed step η (docs/theory/bounds.md §0).

    L1 + L2 give R^lin_T ≤ (D²/2η)·tr H_T + (η/2)·2 tr H_T; its minimum over η, √2·D at η = D/√2, is the
    familiar √2·D·tr H_T.
    """
    D = _as_tensor(D, "D", "adaptive_coefficient")
    eta = _as_tensor(eta, "eta", "adaptive_coefficient")
    if (D < 0).any():
        raise ValueError(f"adaptive_coefficient: D must be >= 0; got {D}")
    if (eta <= 0).any():
        raise ValueError(f"adaptive_coefficient: eta must be > 0; got {eta}")
    return D.square() / (2 * eta) + eta
