r"""Spectral metrics of a Kronecker factor F ⪰ 0 from its eigenvalues λ_1 ≥ … ≥ λ_d ≥ 0 and eigenvectors.

These are the numbers behind the Sketchy claim (Feinberg et al. 2023, §5): the gradient covariance factors
concentrate on a small leading eigenspace (top-k mass near 1 for k ≪ d) that moves during training
(subspace overlap between snapshots < 1; a stale basis captures less of the new factor).

All functions are pure, take numpy arrays or torch tensors, compute in float64 and return Python floats/ints.

Truncated spectra
-----------------
Above the exact-solve limit only the top k' eigenvalues are known, together with the exact trace
tr F = Σ_{i≤d} λ_i. Functions whose value depends only on the head and the total (``top_k_mass``,
``k_for_mass``, ``tail_mass``, ``intrinsic_dimension``) accept ``total=tr F`` for that case; the others
(``stable_rank``, ``effective_rank``, ``participation_ratio``) need the whole spectrum.

Round-off
---------
An eigenvalue computed by a backward-stable ``eigh`` of a PSD matrix is off by at most ~ d·ε·λ_max (Weyl's
inequality applied to a backward error of norm d·ε·‖F‖₂), so values down to −τ with τ = 10·d·ε·max|λ| are
taken as 0, and anything more negative is refused: it is not a PSD spectrum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "top_k_mass",
    "cumulative_mass",
    "k_for_mass",
    "tail_mass",
    "stable_rank",
    "effective_rank",
    "participation_ratio",
    "intrinsic_dimension",
    "subspace_overlap",
    "stale_basis_capture",
    "summary",
]


def _to_numpy(x, name: str, where: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch for readers
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):  # numpy has no bfloat16
            x = x.float()
        x = x.numpy()
    try:
        a = np.asarray(x)
    except Exception:  # noqa: BLE001 - anything numpy cannot read is the caller's type error
        raise TypeError(
            f"{where}: {name} must be an array or tensor of reals; got {type(x).__name__}"
        ) from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{where}: {name} must hold real numbers; got dtype {a.dtype}")
    return a


def _eps(a: np.ndarray) -> float:
    return (
        float(np.finfo(a.dtype).eps)
        if np.issubdtype(a.dtype, np.floating)
        else float(np.finfo(np.float64).eps)
    )


def _spectrum(lam, where: str, *, total: float | None = None) -> tuple[np.ndarray, float]:
    """Validated eigenvalues, sorted descending, round-off negatives set to 0; and the total Σλ."""
    a = _to_numpy(lam, "lam", where)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{where}: lam must be a non-empty 1-D array of eigenvalues; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(
            f"{where}: lam must be finite; it has {int((~np.isfinite(a)).sum())} NaN/inf entries"
        )
    tau = 10 * a.size * _eps(a) * float(np.abs(a).max())
    if a.min() < -tau:
        raise ValueError(
            f"{where}: lam must be eigenvalues of a PSD matrix (>= -{tau:.3g}, the round-off of eigh); "
            f"got min {float(a.min())!r}"
        )
    lam64 = np.sort(np.clip(a.astype(np.float64), 0.0, None))[::-1]
    # the total as the last cumulative sum, the same summation as every head Σ_{i≤k} λ_i below, so that a
    # rank-r spectrum has top-r mass exactly 1 (pairwise np.sum would differ in the last ulp)
    head = float(np.cumsum(lam64)[-1])
    if total is None:
        s = head
    else:
        if (
            isinstance(total, bool)
            or not isinstance(total, (int, float, np.floating))
            or not math.isfinite(total)
        ):
            raise ValueError(f"{where}: total must be a finite real (tr F); got {total!r}")
        s = float(total)
        # tr F computed separately from the top-k' eigenvalues: they may exceed it by round-off only
        if s < head * (1 - 1e3 * _eps(a)):
            raise ValueError(
                f"{where}: total={s!r} is below the sum of the given eigenvalues {head!r}; it must be tr F"
            )
        s = max(s, head)
    if s <= 0:
        raise ValueError(f"{where}: lam sums to {s!r}; a mass fraction needs a non-zero spectrum")
    return lam64, s


def _check_k(k, n: int, where: str, *, low: int = 0) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{where}: k must be an int; got {k!r} ({type(k).__name__})")
    if not low <= k <= n:
        raise ValueError(f"{where}: k must be in [{low}, {n}] (the number of eigenvalues given); got {k!r}")
    return int(k)


def top_k_mass(lam, k: int, *, total: float | None = None) -> float:
    r"""Fraction of the trace in the top k eigenvalues, Σ_{i≤k} λ_i / Σ_i λ_i ∈ [0, 1].

    Parameters
    ----------
    lam : array (d,) or (k',) if truncated; eigenvalues ≥ 0 (any order; sorted here)
    k : int, 0 ≤ k ≤ len(lam)
    total : float, optional; tr F when ``lam`` holds only the top k' eigenvalues
    """
    lam, s = _spectrum(lam, "top_k_mass", total=total)
    k = _check_k(k, lam.size, "top_k_mass")
    return 0.0 if k == 0 else min(1.0, float(np.cumsum(lam)[k - 1]) / s)


def cumulative_mass(lam, *, total: float | None = None) -> np.ndarray:
    r"""The whole curve k ↦ Σ_{i≤k} λ_i / Σ_i λ_i for k = 1..len(lam), float64 (len(lam),), in [0, 1]."""
    lam, s = _spectrum(lam, "cumulative_mass", total=total)
    return np.minimum(np.cumsum(lam) / s, 1.0)


def k_for_mass(lam, frac: float, *, total: float | None = None) -> int | None:
    r"""Smallest k with Σ_{i≤k} λ_i ≥ frac · Σ_i λ_i, for frac ∈ (0, 1].

    Returns None when ``lam`` is truncated (``total`` given) and its head does not reach the mass.
    """
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
        raise ValueError(f"k_for_mass: frac must be a real in (0, 1]; got {frac!r}")
    lam, s = _spectrum(lam, "k_for_mass", total=total)
    cum = np.cumsum(lam)
    target = frac * s
    k = int(np.searchsorted(cum, target, side="left")) + 1
    return k if k <= lam.size else None


def tail_mass(lam, k: int, *, total: float | None = None) -> float:
    r"""Σ_{i>k} λ_i, the mass outside the top k (absolute, not a fraction); the tail of Sketchy's Ω_ℓ."""
    lam, s = _spectrum(lam, "tail_mass", total=total)
    k = _check_k(k, lam.size, "tail_mass")
    if total is None:
        return float(lam[k:].sum())  # summed directly: no cancellation in total − head
    return max(0.0, s - float(lam[:k].sum()))


def stable_rank(lam) -> float:
    r"""Stable rank of F itself, ‖F‖_F² / ‖F‖_2² = Σ λ_i² / λ_1² ∈ [1, rank F].

    (For F = GᵀG the stable rank of G, ‖G‖_F²/‖G‖_2² = tr F / λ_1, is ``intrinsic_dimension``.)
    """
    lam, _ = _spectrum(lam, "stable_rank")
    return float(np.sum((lam / lam[0]) ** 2))


def effective_rank(lam) -> float:
    r"""Effective rank of Roy & Vetterli (2007): exp H(p), p_i = λ_i / Σ_j λ_j, H the Shannon entropy (nats).

    0·log 0 = 0, so erank ∈ [1, rank F]; a flat spectrum of d values gives d.
    """
    import scipy.stats  # here: a store reader that never asks for it should not pay for importing it

    lam, _ = _spectrum(lam, "effective_rank")
    return float(np.exp(scipy.stats.entropy(lam)))  # entropy normalises λ to p itself


def participation_ratio(lam) -> float:
    r"""(Σ λ_i)² / Σ λ_i² ∈ [1, rank F]; d for a flat spectrum."""
    lam, _ = _spectrum(lam, "participation_ratio")
    x = lam / lam[0]  # scale-free: λ² would underflow for λ ~ 1e-200
    return float(x.sum() ** 2 / np.sum(x**2))


def intrinsic_dimension(lam, *, total: float | None = None) -> float:
    r"""Intrinsic dimension tr F / ‖F‖₂ = Σ λ_i / λ_1 ∈ [1, d] (Tropp 2015, §7.1)."""
    lam, s = _spectrum(lam, "intrinsic_dimension", total=total)
    return float(s / lam[0])


def _basis(U, name: str, where: str) -> np.ndarray:
    a = _to_numpy(U, name, where)
    if a.ndim != 2 or a.shape[1] < 1 or a.shape[1] > a.shape[0]:
        raise ValueError(f"{where}: {name} must have shape (d, k) with 1 <= k <= d; got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {name} must be finite")
    # half the digits of the storage dtype: eigh/LOBPCG bases are orthonormal to ~d·ε, a wrong basis to O(1)
    tol = math.sqrt(_eps(a))
    a64 = a.astype(np.float64)
    err = float(np.abs(a64.T @ a64 - np.eye(a.shape[1])).max())
    if err > tol:
        raise ValueError(
            f"{where}: {name} must have orthonormal columns (|UᵀU − I| <= {tol:.2g}); got max deviation {err:.3g}"
        )
    return a64


def subspace_overlap(U, V) -> float:
    r"""Overlap of two subspaces, ‖UᵀV‖_F² / min(k, k') ∈ [0, 1].

    U (d, k), V (d, k') with orthonormal columns. ‖UᵀV‖_F² = Σ cos² θ_i over the principal angles, so the
    overlap is 1 when one subspace contains the other, 0 when they are orthogonal, and k'/d in expectation
    for V uniformly random and k ≤ k' (E ‖UᵀV‖_F² = k·k'/d).
    """
    U = _basis(U, "U", "subspace_overlap")
    V = _basis(V, "V", "subspace_overlap")
    if U.shape[0] != V.shape[0]:
        raise ValueError(f"subspace_overlap: U and V must have the same d; got {U.shape} and {V.shape}")
    return min(1.0, float(np.sum((U.T @ V) ** 2)) / min(U.shape[1], V.shape[1]))


def stale_basis_capture(U_old, F_new, k: int) -> float:
    r"""Fraction of tr F_new captured by an old top-k basis: tr(U_kᵀ F_new U_k) / tr F_new ∈ [0, 1].

    U_k = the first k columns of ``U_old`` (d, ≥k). A sketch that froze its basis at an earlier snapshot
    keeps this much of the current factor; for F_new = F_old it equals the top-k mass of F_old, and it can
    never exceed the top-k mass of F_new (Ky Fan's maximum principle).
    """
    U = _basis(U_old, "U_old", "stale_basis_capture")
    F = _to_numpy(F_new, "F_new", "stale_basis_capture").astype(np.float64)
    d = U.shape[0]
    if F.shape != (d, d):
        raise ValueError(
            f"stale_basis_capture: F_new must have shape ({d}, {d}) to match U_old; got {F.shape}"
        )
    if not np.isfinite(F).all():
        raise ValueError("stale_basis_capture: F_new must be finite")
    k = _check_k(k, U.shape[1], "stale_basis_capture", low=1)
    tr = float(np.trace(F))
    if tr <= 0:
        raise ValueError(f"stale_basis_capture: F_new must be PSD with a positive trace; got trace {tr!r}")
    Uk = U[:, :k]
    return min(1.0, max(0.0, float(np.sum(Uk * (F @ Uk))) / tr))


def summary(
    lam,
    *,
    dim: int | None = None,
    total: float | None = None,
    fracs: Sequence[float] = (0.01, 0.05, 0.1, 0.25),
    masses: Sequence[float] = (0.5, 0.9, 0.99),
) -> dict[str, float]:
    r"""Every metric that ``lam`` determines, by name: the rows of the long-format table.

    ``top_mass@f`` is the top-k mass with k = ⌈f·d⌉; ``k_for_mass@m`` is k for a fraction m of the trace and
    ``k_frac_for_mass@m`` that k over d. For a truncated spectrum (``total`` given) the metrics that need
    eigenvalues beyond the head are left out rather than guessed. A zero spectrum gives only trace 0.
    """
    a = _to_numpy(lam, "lam", "summary")
    d = a.size if dim is None else dim
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < a.size:
        raise ValueError(f"summary: dim must be an int >= len(lam) = {a.size}; got {dim!r}")
    if total is None and a.size != d:
        raise ValueError(
            f"summary: lam has {a.size} of dim={d} eigenvalues; pass total=tr F for a truncated spectrum"
        )
    if a.size and float(np.max(np.abs(a))) == 0.0 and not total:
        return {"trace": 0.0, "lambda_max": 0.0}
    lam64, s = _spectrum(a, "summary", total=total)
    out = {"trace": s, "lambda_max": float(lam64[0]), "intrinsic_dimension": s / float(lam64[0])}
    for f in fracs:
        k = math.ceil(f * d)
        if k <= lam64.size:
            out[f"top_mass@{f:g}"] = top_k_mass(lam64, k, total=s)
    for m in masses:
        km = k_for_mass(lam64, m, total=None if total is None else s)
        if km is not None:
            out[f"k_for_mass@{m:g}"] = float(km)
            out[f"k_frac_for_mass@{m:g}"] = km / d
    if total is None:
        out["stable_rank"] = stable_rank(lam64)
        out["effective_rank"] = effective_rank(lam64)
        out["participation_ratio"] = participation_ratio(lam64)
    return out
