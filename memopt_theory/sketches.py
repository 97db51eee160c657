r"""Frequent Directions sketches of a PSD stream (docs/theory/sketching.md §B1, §B2).

Two layouts, both batched over leading seed axes ``B``:

* **Sketchy's FD-update** (Feinberg et al. 2023, Alg. 1; B2) — :class:`FDState`, :func:`fd_init`,
  :func:`fd_update`. The sketch Ḡ_t = U diag(s) Uᵀ keeps k = min(ℓ−1, d) directions and the escaped mass
  ρ_{1:t}. With β < 1 the same call is the exponentially weighted FD of §4.3 (Observation 6); Robust FD
  (Luo et al. 2019) reads the same state with α_t = α_0 + ρ_{1:t}/2 (:func:`rfd_covariance`).
* **Classic FD, fast 2ℓ-row buffer** (Liberty 2013; Ghashami et al. 2016; B1) — :class:`FDClassicState`,
  :func:`fd_classic_init`, :func:`fd_classic_update`; the query is the whole buffer B, with
  0 ⪯ AᵀA − BᵀB ⪯ ΔI and Δ ≤ min_{k<ℓ} ‖A − A_k‖²_F/(ℓ−k) (:func:`fd_covariance_error_bound`).

Eigenpairs of Ḡ_{t−1} + F Fᵀ come from the thin SVD of Z = [U diag(√s), F] (λ_i = σ_i²), never from the
squared matrix, so eigenvalues down to ε_mach·λ_1 (not √ε_mach·λ_1) are resolved. Singular values
σ_i ≤ τσ_1, τ = max(d, ℓ)·ε_mach, are round-off (a rank-deficient Z has σ ≈ ε_mach·σ_1, whose squares ≈1e−32
would explode an inverse root, B3 pitfalls): they are set to 0 and their directions dropped.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.validation import check_batch, check_int, check_real

__all__ = [
    "FDState",
    "fd_init",
    "fd_update",
    "fd_threshold",
    "sketch_covariance",
    "sketchy_covariance",
    "rfd_covariance",
    "FDClassicState",
    "fd_classic_init",
    "fd_classic_update",
    "fd_classic_covariance",
    "fd_covariance_error_bound",
]


class FDState(NamedTuple):
    """Sketchy's FD sketch of a PSD stream (B2), batched over B."""

    U: Tensor  # B + (d, k), k = min(ℓ − 1, d): orthonormal columns (dropped directions are 0 columns)
    s: Tensor  # B + (k,), descending, ≥ 0: eigenvalues of Ḡ_t on U's columns
    rho: Tensor  # B: escaped mass ρ_{1:t} (β-discounted: ρ ← β·ρ + ρ_t when β < 1)


def _resolve_dtype(dtype, where: str) -> torch.dtype:
    dtype = torch.float64 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{where}: dtype must be a floating torch.dtype; got {dtype!r}")
    return dtype


def fd_init(d: int, ell: int, *, batch=(), dtype=torch.float64, device=None) -> FDState:
    """The empty sketch Ḡ_0 = 0, ρ_{1:0} = 0 for dimension d and paper sketch size ℓ (k = min(ℓ−1, d) kept).

    Parameters
    ----------
    d : int ≥ 1      dimension of the stream
    ell : int ≥ 1    ℓ, the paper's sketch size; ℓ > d is allowed (then the sketch is exact, B2 oracles)
    batch : tuple    leading seed axes B
    """
    check_int(d, "d", where="fd_init", low=1)
    check_int(ell, "ell", where="fd_init", low=1)
    batch = check_batch(batch)
    dtype = _resolve_dtype(dtype, "fd_init")
    k = min(ell - 1, d)
    return FDState(
        U=torch.zeros(batch + (d, k), dtype=dtype, device=device),
        s=torch.zeros(batch + (k,), dtype=dtype, device=device),
        rho=torch.zeros(batch, dtype=dtype, device=device),
    )


def fd_threshold(d: int, ell: int, dtype: torch.dtype) -> float:
    """τ = max(d, ℓ)·ε_mach: singular values ≤ τσ_1 of Z are round-off and count as 0 (B2 edge cases)."""
    return max(d, ell) * torch.finfo(dtype).eps


def _check_factor(
    F: Tensor, batch: tuple[int, ...], d: int, where: str, *, name: str = "F", rows: bool = False
) -> None:
    """F of shape batch + (d, r) (``rows``: a row a of shape batch + (d,)), floating, finite."""
    if not isinstance(F, Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor; got {type(F).__name__}")
    if not torch.is_floating_point(F):
        raise TypeError(f"{where}: {name} must have a floating dtype; got {F.dtype}")
    if rows:
        if tuple(F.shape) != batch + (d,):
            raise ValueError(
                f"{where}: {name} must have shape {batch + (d,)} (batch + (d,)); got {tuple(F.shape)}"
            )
    elif F.ndim != len(batch) + 2 or tuple(F.shape[:-1]) != batch + (d,):
        raise ValueError(
            f"{where}: {name} must have shape {batch + (d,)} + (r,) (batch + (d, r)); got {tuple(F.shape)}"
        )
    bad = ~torch.isfinite(F)
    if bad.any():
        raise ValueError(
            f"{where}: {name} must be finite; it has {int(bad.sum())} NaN/inf entries "
            "(an SVD of non-finite input can hang or poison the sketch)"
        )


def fd_update(state: FDState, F: Tensor, ell: int, *, beta: float = 1.0) -> tuple[FDState, Tensor]:
    r"""Sketchy's FD-update(β·Ḡ_{t−1}, M_t = F Fᵀ) (Feinberg et al. 2023, Alg. 1; docs/theory/sketching.md §B2).

    1. (λ_i, u_i), descending, of β·Ḡ_{t−1} + M_t from the thin SVD of Z = [U diag(√(βs)), F]; singular
       values ≤ τσ_1 (τ = max(d, ℓ)·ε_mach) count as 0 and their directions are dropped; λ_i := 0 beyond
       the number of singular values.
    2. ρ_t = λ_ℓ (0 if ℓ exceeds the number of singular values, in particular if ℓ > d).
    3. U ← (u_1..u_k), s_i ← λ_i − ρ_t (i ≤ k = min(ℓ−1, d)); ρ_{1:t} = β·ρ_{1:t−1} + ρ_t.

    Guarantees (tested in tests/theory/test_sketches.py, checked by ``memopt verify``): Ḡ_{t−1} + M_t − ρ_tI ⪯
    Ḡ_t ⪯ Ḡ_{t−1} + M_t, hence Ḡ_T ⪯ G_T ⪯ Ḡ_T + ρ_{1:T}I and ρ_{1:T} ≤ Ω_ℓ (β = 1; Observation 6 for β < 1).

    Parameters
    ----------
    state : FDState      Ḡ_{t−1}, ρ_{1:t−1}; U of shape B + (d, k)
    F : Tensor           B + (d, r), the factor of M_t = F Fᵀ (r = 1 and F = g for AdaGrad's g gᵀ); finite
    ell : int            ℓ, the sketch size the state was made with (k = min(ℓ−1, d))
    beta : float         β ∈ (0, 1]: discount of the past (EW-FD, §4.3); 1 = plain FD

    Returns
    -------
    (new_state, rho_t) : FDState in the state's dtype, ρ_t of shape B
    """
    U, s, rho = state
    batch, d, k = tuple(U.shape[:-2]), U.shape[-2], U.shape[-1]
    check_int(ell, "ell", where="fd_update", low=1)
    if k != min(ell - 1, d):
        raise ValueError(
            f"fd_update: ell={ell} does not match the state (it keeps k={k} directions for d={d}; "
            f"ell must satisfy min(ell - 1, d) = {k})"
        )
    beta = check_real(beta, "beta", where="fd_update", low=0.0, high=1.0, low_open=True)
    _check_factor(F, batch, d, "fd_update")
    F = F.to(dtype=U.dtype, device=U.device)
    root = (beta * s).clamp_min(0).sqrt()
    Z = torch.cat([U * root.unsqueeze(-2), F], dim=-1)  # B + (d, k + r)
    W, sig, _ = torch.linalg.svd(Z, full_matrices=False)
    tau = fd_threshold(d, ell, U.dtype)
    keep = sig > tau * sig[..., :1]
    lam = torch.where(keep, sig, torch.zeros_like(sig)).square()
    m = lam.shape[-1]
    if m < k:  # fewer singular values than kept directions: the rest are 0 eigenvalues, 0 columns
        lam = torch.cat([lam, lam.new_zeros(batch + (k - m,))], dim=-1)
        keep = torch.cat([keep, keep.new_zeros(batch + (k - m,))], dim=-1)
        W = torch.cat([W, W.new_zeros(batch + (d, k - m))], dim=-1)
    rho_t = lam[..., ell - 1] if ell <= m else lam.new_zeros(batch)
    s_new = (lam[..., :k] - rho_t.unsqueeze(-1)).clamp_min(0)
    U_new = W[..., :k] * keep[..., :k].unsqueeze(-2).to(W.dtype)
    return FDState(U=U_new, s=s_new, rho=beta * rho + rho_t), rho_t


def sketch_covariance(state: FDState) -> Tensor:
    """Ḡ_t = U diag(s) Uᵀ as a dense B + (d, d) matrix (tests and checks; O(d²))."""
    return (state.U * state.s.unsqueeze(-2)) @ state.U.transpose(-1, -2)


def _eye_times(c: Tensor, d: int, like: Tensor) -> Tensor:
    return c[..., None, None] * torch.eye(d, dtype=like.dtype, device=like.device)


def sketchy_covariance(state: FDState, *, delta: float = 0.0) -> Tensor:
    """G̃_t = Ḡ_t + (δ + ρ_{1:t})I: Sketchy's upper estimate of G_t (B2(a), B3 step 3), dense B + (d, d)."""
    d = state.U.shape[-2]
    return sketch_covariance(state) + _eye_times(state.rho + delta, d, state.U)


def rfd_covariance(state: FDState, *, alpha0: float = 0.0) -> Tensor:
    """Robust FD estimate Ḡ_t + α_tI, α_t = α_0 + ρ_{1:t}/2 (Luo et al. 2019; B2), dense B + (d, d).

    With α_0 = 0 the sandwich Ḡ_T ⪯ G_T ⪯ Ḡ_T + ρ_{1:T}I centres the error: ‖G_T − Ḡ_T − α_TI‖_2 ≤ ρ_{1:T}/2.
    """
    check_real(alpha0, "alpha0", where="rfd_covariance", low=0.0)
    d = state.U.shape[-2]
    return sketch_covariance(state) + _eye_times(alpha0 + 0.5 * state.rho, d, state.U)


class FDClassicState(NamedTuple):
    """Classic FD, fast version (B1): a 2ℓ-row buffer, the next zero row, the total shrinkage Δ."""

    B: Tensor  # batch + (2ℓ, d): rows of the sketch (unrotated new rows included)
    nxt: Tensor  # batch: index of the next zero row (a float scalar, counted in memory: 2ℓd + 2)
    shrink: Tensor  # batch: Δ = Σ δ over all shrinks


def fd_classic_init(d: int, ell: int, *, batch=(), dtype=torch.float64, device=None) -> FDClassicState:
    """Empty classic FD sketch with a 2ℓ × d buffer (2ℓd + 2 scalars, docs/theory/bounds.md §E.2)."""
    check_int(d, "d", where="fd_classic_init", low=1)
    check_int(ell, "ell", where="fd_classic_init", low=1)
    batch = check_batch(batch)
    dtype = _resolve_dtype(dtype, "fd_classic_init")
    return FDClassicState(
        B=torch.zeros(batch + (2 * ell, d), dtype=dtype, device=device),
        nxt=torch.zeros(batch, dtype=dtype, device=device),
        shrink=torch.zeros(batch, dtype=dtype, device=device),
    )


def fd_classic_update(state: FDClassicState, a: Tensor) -> FDClassicState:
    r"""Append the row a_t (Liberty 2013, fast version; docs/theory/sketching.md §B1).

    If the buffer has no zero row: thin SVD B = UΣVᵀ, δ = σ_ℓ² (0 if there are fewer than ℓ singular values),
    B ← diag(√max(σ_i² − δ, 0))Vᵀ (rows ℓ..2ℓ become 0), Δ ← Δ + δ. Then a_t goes into the first zero row.
    Every seed of the batch receives a row each call, so the buffers fill in lockstep.

    Parameters
    ----------
    state : FDClassicState   B of shape batch + (2ℓ, d)
    a : Tensor               batch + (d,), finite
    """
    B, nxt, shrink = state
    batch, two_ell, d = tuple(B.shape[:-2]), B.shape[-2], B.shape[-1]
    ell = two_ell // 2
    _check_factor(a, batch, d, "fd_classic_update", name="a", rows=True)
    a = a.to(dtype=B.dtype, device=B.device)
    row = int(nxt.reshape(-1)[0]) if nxt.numel() else 0
    if row == two_ell:
        _, sig, Vh = torch.linalg.svd(B, full_matrices=False)  # sig: batch + (m,), m = min(2ℓ, d)
        m = sig.shape[-1]
        delta = sig[..., ell - 1].square() if ell <= m else sig.new_zeros(batch)
        rows = (sig.square() - delta.unsqueeze(-1)).clamp_min(0).sqrt().unsqueeze(-1) * Vh
        B = torch.cat([rows, rows.new_zeros(batch + (two_ell - m, d))], dim=-2)
        shrink = shrink + delta
        # σ_i² − δ ≤ 0 for i ≥ ℓ: rows ℓ−1.. (0-based) are zero, so ℓ − 1 is the first free row
        row = ell - 1
    B = B.clone()
    B[..., row, :] = a
    return FDClassicState(B=B, nxt=torch.full_like(nxt, row + 1), shrink=shrink)


def fd_classic_covariance(state: FDClassicState) -> Tensor:
    """BᵀB of the whole buffer (the query; never only its first ℓ rows, B1 pitfalls), B + (d, d)."""
    return state.B.transpose(-1, -2) @ state.B


def fd_covariance_error_bound(A: Tensor, ell: int) -> Tensor:
    r"""The FD covariance guarantee min_{0≤k<ℓ} ‖A − A_k‖²_F/(ℓ−k) = Ω_ℓ of AᵀA (B1; Ghashami et al. 2016).

    Both FD layouts satisfy ‖AᵀA − BᵀB‖_2 ≤ this (classic: Δ ≤ it; Sketchy: ρ_{1:T} ≤ it, Lemma 1).

    Parameters
    ----------
    A : Tensor, B + (T, d)   the stream's rows a_t (or g_tᵀ)
    ell : int ≥ 1
    """
    from memopt_theory.bounds.quantities import omega_ell  # lazy: bounds may import this module

    check_int(ell, "ell", where="fd_covariance_error_bound", low=1)
    sig = torch.linalg.svdvals(A.to(torch.float64))  # ‖A − A_k‖²_F = Σ_{i>k} σ_i², no squaring of A
    d = A.shape[-1]
    lam = torch.cat([sig.square(), sig.new_zeros(A.shape[:-2] + (max(d - sig.shape[-1], 0),))], dim=-1)
    return omega_ell(lam, ell)
