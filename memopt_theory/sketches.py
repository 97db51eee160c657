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

from memopt_theory.metric import RowSpanLowRank
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
    "FDBufferState",
    "fd_buffer_init",
    "fd_buffer_update",
    "fd_buffer_eig",
    "fd_buffer_apply",
    "fd_buffer_covariance",
    "fd_buffer_metric",
    "fd_buffer_rows",
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


# ---------------------------------------------------------------------------------------------------------
# Buffered FD with a tracked Gram matrix: the amortised O(dℓ) option for the sketched AdaGrad family
# ---------------------------------------------------------------------------------------------------------


class FDBufferState(NamedTuple):
    r"""Liberty's 2ℓ-row FD buffer with its Gram matrix, batched over B (the fast option beside :class:`FDState`).

    The sketch is Ḡ_t = RᵀR (R the buffer's 2ℓ rows); K = RRᵀ is kept exactly so that the spectrum of Ḡ_t (the
    non-zero eigenvalues of RᵀR are those of K) is available in O(ℓ³) at every step, without touching the d
    columns. The rows are a tuple of B + (d,) tensors, so an append shares every other row with the previous
    state instead of copying 2ℓd numbers (the update stays pure); unfilled rows are one shared zero tensor.
    Memory (counted per row) 2ℓd + 4ℓ² + 2 scalars.
    """

    R: tuple  # 2ℓ tensors B + (d,): rotated survivors of the last shrink, then raw appended rows, then zeros
    K: Tensor  # B + (2ℓ, 2ℓ): R Rᵀ
    n: Tensor  # B: number of filled rows (a float, equal across seeds)
    rho: Tensor  # B: escaped mass Δ_t = Σ of the shrink thresholds δ so far


def fd_buffer_init(d: int, ell: int, *, batch=(), dtype=torch.float64, device=None) -> FDBufferState:
    """The empty buffer (Ḡ_0 = 0, Δ_0 = 0) for dimension d and sketch size ℓ (2ℓ rows)."""
    check_int(d, "d", where="fd_buffer_init", low=1)
    check_int(ell, "ell", where="fd_buffer_init", low=1)
    batch = check_batch(batch)
    dtype = _resolve_dtype(dtype, "fd_buffer_init")
    zero = torch.zeros(batch + (d,), dtype=dtype, device=device)
    z = lambda *s: torch.zeros(batch + s, dtype=dtype, device=device)  # noqa: E731
    return FDBufferState(R=(zero,) * (2 * ell), K=z(2 * ell, 2 * ell), n=z(), rho=z())


def fd_buffer_rows(state: FDBufferState) -> Tensor:
    """The rows as one B + (2ℓ, d) tensor (a copy; tests and checks)."""
    return torch.stack(state.R, dim=-2)


def _filled(state: FDBufferState) -> int:
    return int(state.n.reshape(-1)[0]) if state.n.numel() else 0


def _rows_times(rows, v: Tensor) -> Tensor:
    """R v for the first len(rows) rows: B + (len(rows),), one pass over the rows."""
    if not rows:
        return v.new_zeros(v.shape[:-1] + (0,))
    return torch.stack([torch.linalg.vecdot(r, v) for r in rows], dim=-1)


def _rows_transpose_times(rows, w: Tensor, like: Tensor) -> Tensor:
    """Rᵀw = Σ_i w_i·r_i for w: B + (len(rows),): B + (d,)."""
    out = torch.zeros_like(like)
    for i, r in enumerate(rows):
        out.add_(r * w[..., i : i + 1])
    return out


def _rotate_rows(rows, C: Tensor, block: int = 1 << 15) -> Tensor:
    """C R for C: B + (k, r) and the r rows, built in column blocks of the d axis: never a stacked copy of all
    r rows (at d = 2¹⁸, ℓ = 64, 4 seeds that copy alone is 1 GiB), only the B + (k, d) result and one block."""
    d = rows[0].shape[-1]
    out = rows[0].new_empty(C.shape[:-1] + (d,))
    for lo in range(0, d, block):
        hi = min(lo + block, d)
        out[..., lo:hi] = C @ torch.stack([r[..., lo:hi] for r in rows], dim=-2)
    return out


def _gram_threshold(ell: int, dtype: torch.dtype) -> float:
    """Eigenvalues of K ≤ τ_K·λ_1, τ_K = 8ℓ·ε_mach, are round-off of the Gram matrix and count as 0.

    eigh of K = RRᵀ has absolute eigenvalue error of order 2ℓ·ε_mach·λ_1 (K is 2ℓ×2ℓ, and forming RRᵀ adds
    another ε_mach·‖R‖²); 4× that margin keeps a genuinely zero direction from surviving as noise.
    """
    return 8 * ell * torch.finfo(dtype).eps


def fd_buffer_eig(state: FDBufferState) -> tuple[Tensor, Tensor]:
    """(λ, W), descending: K = W diag(λ) Wᵀ with round-off eigenvalues (≤ τ_K·λ_1) set to exactly 0.

    The non-zero eigenvalues of Ḡ = RᵀR are the λ_i > 0, with unit eigenvectors v_i = RᵀW_i/√λ_i.
    """
    lam, W = torch.linalg.eigh(0.5 * (state.K + state.K.transpose(-1, -2)))
    lam, W = lam.flip(-1), W.flip(-1)
    ell = len(state.R) // 2
    top = lam[..., :1].clamp_min(0)
    lam = torch.where(lam > _gram_threshold(ell, lam.dtype) * top, lam, torch.zeros_like(lam))
    return lam, W


def fd_buffer_update(state: FDBufferState, a: Tensor) -> tuple[FDBufferState, Tensor]:
    r"""Append the row a_t (B + (d,)); when the buffer is full, shrink it first (Liberty 2013, fast FD).

    **Shrink** (all 2ℓ rows filled): K = W diag(λ) Wᵀ, δ = λ_ℓ (the ℓ-th largest; 0 if fewer are non-zero),
    R ← diag(√((λ_i − δ)⁺/λ_i)) W_iᵀ R for i < ℓ (the ℓ − 1 survivors; their rows are orthogonal, with
    squared norms (λ_i − δ)⁺), the other rows 0, K ← R Rᵀ recomputed from the new rows, Δ ← Δ + δ.
    In Ḡ's eigenbasis the shrink replaces each λ_i by (λ_i − δ)⁺. **Append**: R_n = a, K_{n·} = K_{·n} = R a.
    One shrink per ℓ + 1 rows costs O(dℓ²), each append O(dℓ): amortised O(dℓ) per row (B1's fast FD).

    **Guarantee** (derived in the FD style; tested in tests/theory/test_fd_buffer.py). Let A_t be the rows
    a_1..a_t, G_t = A_tᵀA_t, Ḡ_t = RᵀR after the call, Δ_t the escaped mass. Then

    (a) Ḡ_{t−1} + a_taᵀ_t − δ_tI ⪯ Ḡ_t ⪯ Ḡ_{t−1} + a_taᵀ_t (δ_t the shrink's threshold, 0 if none), because a
        shrink lowers each eigenvalue of RᵀR by min(λ_i, δ) ∈ [0, δ]; summing, Ḡ_t ⪯ G_t ⪯ Ḡ_t + Δ_tI.
    (b) tr G_t − tr Ḡ_t = Σ_shrinks Σ_i min(λ_i, δ) ≥ ℓ·Δ_t: the ℓ largest λ_i are ≥ δ = λ_ℓ.
    (c) Δ_t ≤ Ω_ℓ = min_{0≤k<ℓ} ‖A_t − [A_t]_k‖²_F/(ℓ − k), exactly Lemma 1's bound for Sketchy's FD: for the
        top-k right singular vectors v_1..v_k of A_t, ‖Ḡ_t^{1/2}v_j‖² ≥ ‖A_tv_j‖² − Δ_t by (a), so
        tr Ḡ_t ≥ Σ_{j≤k}‖Ḡ_t^{1/2}v_j‖² ≥ ‖[A_t]_k‖²_F − kΔ_t; with (b), ℓΔ_t ≤ ‖A_t‖²_F − ‖[A_t]_k‖²_F + kΔ_t.

    So every consequence of Lemma 1 that uses only (a)–(c) — in particular S-AdaGrad's regret chain
    (memopt_theory.bounds.sketchy) — holds with ρ_{1:t} := Δ_t. It is nearly tight: on orthonormal rows
    (A = I_T) the shrinks at rows 2ℓ + 1 + k(ℓ + 1) each remove δ = 1, so Δ_T ≈ T/(ℓ + 1) against
    Ω_ℓ = T/ℓ. Round-off: eigenvalues of K ≤ τ_K·λ_1 count as 0 (:func:`fd_buffer_eig`), and the shrink's
    rows come from K's eigenvectors (the squared singular values, accurate to ≈ ℓ·ε_mach·λ_1 absolutely,
    not relatively like the exact update's SVD of Z): directions far below ℓ·ε_mach·λ_1 are not resolved.

    Returns
    -------
    (new_state, delta_t) : the state after a_t is absorbed, and this call's δ_t (0 without a shrink), shape B
    """
    R, K, n, rho = state
    two_ell = len(R)
    batch, d = tuple(R[0].shape[:-1]), R[0].shape[-1]
    ell = two_ell // 2
    _check_factor(a, batch, d, "fd_buffer_update", name="a", rows=True)
    a = a.to(dtype=R[0].dtype, device=R[0].device)
    row = _filled(state)
    delta = rho.new_zeros(batch)
    if row == two_ell:
        lam, W = fd_buffer_eig(state)
        delta = lam[..., ell - 1]
        keep = ell - 1
        shrunk = (lam[..., :keep] - delta.unsqueeze(-1)).clamp_min(0)
        safe = torch.where(lam[..., :keep] > 0, lam[..., :keep], torch.ones_like(shrunk))
        scale = torch.where(shrunk > 0, (shrunk / safe).sqrt(), torch.zeros_like(shrunk))
        top = _rotate_rows(R, (W[..., :keep] * scale.unsqueeze(-2)).transpose(-1, -2))  # B + (ℓ−1, d)
        zero = a.new_zeros(batch + (d,))
        R = tuple(top.unbind(-2)) + (zero,) * (two_ell - keep)
        K = a.new_zeros(batch + (two_ell, two_ell))
        K[..., :keep, :keep] = top @ top.transpose(-1, -2)
        rho = rho + delta
        row = keep
    else:
        K = K.clone()
    ra = _rows_times(R[:row], a)  # B + (row,)
    R = R[:row] + (a.clone(),) + R[row + 1 :]
    K[..., row, :row] = ra
    K[..., :row, row] = ra
    K[..., row, row] = (a * a).sum(-1)
    return FDBufferState(R=R, K=K, n=torch.full_like(n, row + 1), rho=rho), delta


def fd_buffer_apply(
    state: FDBufferState, f_on, f_off: Tensor, v: Tensor, *, eig=None, last_row: bool = False
) -> Tensor:
    r"""f(Ḡ)v for Ḡ = RᵀR: Σ_{λ_i>0} f_on(λ_i)·v_iv_iᵀv + f_off·(v − Σ_{λ_i>0} v_iv_iᵀv), in O(dℓ).

    With v_i = RᵀW_i/√λ_i this is f_off·v + RᵀW diag((f_on(λ) − f_off)/λ) Wᵀ(Rv) on the λ_i > 0.

    Parameters
    ----------
    f_on : callable     λ (B + (2ℓ,), > 0 where used) ↦ the factor on each eigen-direction
    f_off : Tensor B    the factor on the complement of Ḡ's range
    v : Tensor          B + (d,)
    eig : (λ, W)        :func:`fd_buffer_eig` of this state, if already computed
    last_row : bool     v is the row the last update appended: then Rv is K's last filled column (the
                        update computed it), which saves one pass over the d columns
    """
    lam, W = fd_buffer_eig(state) if eig is None else eig
    pos = lam > 0
    safe = torch.where(pos, lam, torch.ones_like(lam))
    coef = torch.where(pos, (f_on(safe) - f_off.unsqueeze(-1)) / safe, torch.zeros_like(lam))
    m = _filled(state)
    Rv = state.K[..., :m, m - 1] if last_row and m > 0 else _rows_times(state.R[:m], v)
    Wm = W[..., :m, :]  # rows ≥ m of R are 0: only W's first m rows meet R
    inner = (Wm @ (coef * (Wm.transpose(-1, -2) @ Rv.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)).squeeze(-1)
    return f_off.unsqueeze(-1) * v + _rows_transpose_times(state.R[:m], inner, v)


def fd_buffer_metric(state: FDBufferState, h_on, h_off: Tensor, shape) -> RowSpanLowRank:
    """H = Σ_{λ_i>0} h_on(λ_i)v_iv_iᵀ + h_off(I − Σ v_iv_iᵀ) without forming the d × 2ℓ basis (O(dℓ) per use)."""
    lam, W = fd_buffer_eig(state)
    m = _filled(state)
    inv = torch.where(lam > 0, torch.where(lam > 0, lam, torch.ones_like(lam)).rsqrt(), torch.zeros_like(lam))
    safe = torch.where(lam > 0, lam, torch.ones_like(lam))
    s = torch.where(lam > 0, h_on(safe), h_off.unsqueeze(-1).expand_as(lam))
    return RowSpanLowRank(
        rows=state.R[:m], M=W[..., :m, :] * inv.unsqueeze(-2), s=s, c=h_off, shape=tuple(shape)
    )


def fd_buffer_covariance(state: FDBufferState) -> Tensor:
    """Ḡ = RᵀR as a dense B + (d, d) matrix (tests and checks; O(d²))."""
    R = fd_buffer_rows(state)
    return R.transpose(-1, -2) @ R
