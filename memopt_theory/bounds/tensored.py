r"""Regret bounds of the tensored preconditioners (docs/theory/tensored.md §C1, §C2, §C4, S-Shampoo §B5).

All are [reconstructed] in docs/theory/README.md; each is derived below from the lemmas of §0 (L1 adaptive mirror
descent, L2 trace lemma, L3 Löwner–Heinz) and checked on instances by ``memopt verify``
(memopt_theory/checks/tensored.py, online_convex/checks/tensored.py). Bounds are on the linearised regret
R^lin_T(x*) = Σ_t ⟨g_t, x_t − x*⟩ of a fixed comparator x*; D = max_t ‖x_t − x*‖_F (D_∞ in ‖·‖_∞) or diam K; the
projection, if any, is in the method's ‖·‖_{H_t}. Every function returns a float64 tensor of the batch shape.

**Kronecker lemma, order p** (Gupta et al. 2018, Lemma 8 / §C1). Let G_s have order p, r_i ≥ rank mat_i(G_s)
for all s, r = (Π_i r_i)^{1/p}, X_t = Σ_{s≤t} g_sg_sᵀ (g = vec G), H^i_t = εI + Σ_{s≤t} mat_i(G_s)mat_i(G_s)ᵀ. Then

    εI + X_t/r ⪯ ⊗_i (H^i_t)^{1/p}.

Proof. (a) One mode: write mat_i(G) = Σ_{k≤r_i} σ_k a_k b_kᵀ (SVD); up to the permutation that brings mode i first,
g = Σ_k σ_k a_k ⊗ b_k, and Cauchy–Schwarz (Σ_k x_k)(Σ_k x_k)ᵀ ⪯ r_i Σ_k x_kx_kᵀ gives
ggᵀ ⪯ r_i Σ_k σ_k² a_ka_kᵀ ⊗ b_kb_kᵀ ⪯ r_i Σ_k σ_k² a_ka_kᵀ ⊗ I = r_i·mat_i(G)mat_i(G)ᵀ ⊗ I. Summing,
A_i := I ⊗ … ⊗ H^i_t ⊗ … ⊗ I ⪰ εI + X_t/r_i. (b) The operators A_i commute; the Ando–Li–Mathias geometric mean
is jointly monotone and equals (Π_i A_i)^{1/p} = ⊗_i (H^i_t)^{1/p} for commuting arguments, so
⊗_i(H^i_t)^{1/p} ⪰ mean_i(εI + X_t/r_i). These arguments are functions of X_t (they commute), with eigenvalues
ε + λ/r_i, and the geometric mean is superadditive (Π_i(a_i + b_i)^{1/p} ≥ Π a_i^{1/p} + Π b_i^{1/p}, Hölder), so
the mean is ⪰ εI + X_t·Π_i r_i^{−1/p} = εI + X_t/r. ∎ (p = 2: εI + X/r ⪯ L^{1/2} ⊗ R^{1/2}.)

**Shampoo theorem, order p.** With H_t = ⊗_i (H^i_t)^{1/(2p)}, fixed η and the H_t-norm projection:

    R^lin_T ≤ (D²/2η + ηr)·Π_i tr (H^i_T)^{1/(2p)},   = √(2r)·D·Π_i tr (H^i_T)^{1/(2p)} at η = D/√(2r);

for a matrix √(2r)·D·tr L_T^{1/4}·tr R_T^{1/4}. Proof. H_t ⪰ H_{t−1} (each factor grows; L3; ⊗ of ordered PSD
factors is ordered). L3 with α = ½ on the lemma: H_t ⪰ (εI + X_t/r)^{1/2} = r^{−1/2}(rεI + X_t)^{1/2}, so
g_tᵀH_t^+g_t ≤ √r·g_tᵀ(rεI + X_t)^{−1/2}g_t (for ε = 0, g_t ∈ range H_t since mat_i(G_t)'s column space lies in
range H^i_t); L2 with X_0 = rεI gives Σ_t g_tᵀH_t^+g_t ≤ 2√r·tr(rεI + X_T)^{1/2} ≤ 2r·tr H_T; L1 then gives
(D²/2η)tr H_T + (η/2)·2r·tr H_T, and tr(⊗_i A_i) = Π_i tr A_i. ∎ If ‖mat_i(G_t)‖_2 ≤ 1: tr (H^i_T)^{1/(2p)} ≤
n_i(ε + T)^{1/(2p)} and the bound is O(√T) for p = 2 (O(T^{1/2}) in general: Π_i T^{1/(2p)} = T^{1/2}).

**S-Shampoo, Theorem 5** (Feinberg et al. 2023; §B5), β2 = 1. H̃^i_t = H̄^i_t + (ε + ρ^i_{1:t})I with the FD
sketch H̄^i of Σ_s mat_i(G_s)mat_i(G_s)ᵀ. B2(a) gives H̃^i_t ⪰ H̃^i_{t−1} + mat_i(G_t)mat_i(G_t)ᵀ and H̃^i_t ⪰ H^i_t, so
the proof above applies verbatim with H̃ in place of H (only A_i ⪰ εI + X_t/r_i and monotonicity were used):

    R^lin_T ≤ (D²/2η + ηr)·Π_i tr (H̃^i_T)^{1/(2p)}                                      (chain, link 1)
           ≤ (D²/2η + ηr)·Π_i (tr (H^i_T)^{1/(2p)} + n_i·Ω_{i,ℓ}^{1/(2p)})                 (Theorem 5)

Link 2: eigenvalues of H̄^i_T + εI are ≤ those of H^i_T (Weyl, H̄ ⪯ ΣGGᵀ), x ↦ x^{1/(2p)} is subadditive
((a + c)^α ≤ a^α + c^α), and ρ^i_{1:T} ≤ Ω_{i,ℓ} (Lemma 1) with Ω from the spectrum of Σ_t mat_i(G_t)mat_i(G_t)ᵀ. For
p = 2 and η = D/√(2r) this is the paper's √(2r)·D·(tr L_T^{1/4} + mΩ_L^{1/4})(tr R_T^{1/4} + nΩ_R^{1/4}).

**Extreme Tensoring** (§C2). ν_t[j] := Π_i h^{(i)}_t[j_i]^{1/p}, H_t = diag(√ν_t). Each h^{(i)}_t[j_i] ≥
h^{(i)}_{t−1}[j_i] + g_{t,j}² (the slice sum contains j), and the geometric mean is superadditive, so
ν_t[j] ≥ ν_{t−1}[j] + g_{t,j}² ≥ Σ_{s≤t}g_{s,j}². L1 (diagonal: ‖z‖²_{H_t−H_{t−1}} ≤ D_∞²·tr(H_t − H_{t−1})) and L2 per
coordinate (scalars X_t = ν_t[j]) give

    R^lin_T ≤ (D_∞²/2η + η)·Σ_{j≤N} √ν_T[j] ≤ (D_∞²/2η + η)·Π_i Σ_k h^{(i)}_T[k]^{1/(2p)},

the last form summing over the zero-padded tensor too (padded terms are ≥ 0); √2·D_∞·(…) at η = D_∞/√2.
μ_T = Σ_j√ν_T[j] / Σ_j‖g_{1:T,j}‖_2 ≥ 1 is the paper's data-dependent constant.

**SM3** (§C4). SM3-I: ν_t(i) = min_{r∋i} μ_t(r) ≥ min_{r∋i}(μ_{t−1}(r) + g_t(i)²) = ν_{t−1}(i) + g_t(i)². SM3-II:
ν'_t(i) = min_{r∋i} μ'_{t−1}(r) + g_t(i)² and μ'_{t−1}(r) = max_{j∈S_r} ν'_{t−1}(j) ≥ ν'_{t−1}(i), so
ν'_t(i) ≥ ν'_{t−1}(i) + g_t(i)². Either way L1 + L2 per coordinate give R^lin_T ≤ (D_∞²/2η + η)·Σ_i √ν_T(i)
((3/2)D_∞Σ√ν at η = D_∞; the paper states the looser 2D_∞Σ√ν). For SM3-II the state holds μ'_T, not ν'_T;
min_{r∋i} μ'_T(r) ≥ ν'_T(i) gives a computable upper bound (memopt_theory.methods.sm3.nu).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memopt_theory.bounds.quantities import _as_tensor, adaptive_coefficient, omega_ell, psd_eigvals_desc
from memopt_theory.validation import check_int, check_real

__all__ = [
    "mode_rank_bound",
    "kronecker_trace_root",
    "shampoo_coefficient",
    "shampoo_regret_bound",
    "s_shampoo_regret_bound",
    "extreme_tensoring_regret_bound",
    "sm3_regret_bound",
]


def _factors(factors, where: str) -> tuple[Tensor, ...]:
    if not isinstance(factors, (tuple, list)) or not factors:
        raise ValueError(
            f"{where}: factors must be a non-empty tuple of B + (n_i, n_i) PSD tensors; got {factors!r}"
        )
    out = []
    for i, F in enumerate(factors):
        if not isinstance(F, Tensor) or F.ndim < 2 or F.shape[-1] != F.shape[-2]:
            got = tuple(F.shape) if isinstance(F, Tensor) else type(F).__name__
            raise ValueError(f"{where}: factors[{i}] must have shape B + (n, n); got {got}")
        if not torch.is_floating_point(F) or not torch.isfinite(F).all():
            raise ValueError(f"{where}: factors[{i}] must be finite and floating; got dtype {F.dtype}")
        out.append(F.to(torch.float64))
    return tuple(out)


def mode_rank_bound(shape) -> float:
    r"""r̄ = (Π_i min(n_i, N/n_i))^{1/p} for a parameter of shape (n_1, …, n_p), N = Π n_i.

    mat_i(G) is n_i × (N/n_i), so rank mat_i(G) ≤ min(n_i, N/n_i) for *every* G of this shape: r̄ is a valid r
    of the Shampoo / S-Shampoo theorems known before any data (matrices: min(m, n); vectors, p = 1: 1, the
    full-matrix AdaGrad case). The theorems hold for any r ≥ (Π_i max_t rank mat_i(G_t))^{1/p}, and their
    coefficient D²/2η + ηr grows with r, so r̄ gives a valid, possibly looser, bound; η = D/√(2r̄) is the
    a-priori theory step.
    """
    shape = tuple(shape)
    if not shape or any(type(n) is not int or n < 1 for n in shape):
        raise ValueError(f"mode_rank_bound: shape must be a non-empty tuple of ints >= 1; got {shape!r}")
    N = math.prod(shape)
    return math.prod(min(n, N // n) for n in shape) ** (1.0 / len(shape))


def kronecker_trace_root(factors) -> Tensor:
    r"""tr H = Π_i tr (H^i)^{1/(2p)} for H = ⊗_i (H^i)^{1/(2p)}, p = len(factors) (tr of ⊗ = Π of tr)."""
    F = _factors(factors, "kronecker_trace_root")
    p = len(F)
    out = None
    for A in F:
        tr = psd_eigvals_desc(A).pow(1.0 / (2 * p)).sum(-1)
        out = tr if out is None else out * tr
    assert out is not None  # _factors refused an empty tuple
    return out


def shampoo_coefficient(D, eta, r) -> Tensor:
    r"""D²/(2η) + η·r (any fixed η), or √(2r)·D (η = None: the minimiser η = D/√(2r))."""
    where = "shampoo_coefficient"
    D, r = _as_tensor(D, "D", where), _as_tensor(r, "r", where)
    if (D < 0).any() or (r < 1).any():
        raise ValueError(f"{where}: D must be >= 0 and r >= 1; got D={D}, r={r}")
    if eta is None:
        return (2 * r).sqrt() * D
    eta = _as_tensor(eta, "eta", where)
    if (eta <= 0).any():
        raise ValueError(f"{where}: eta must be > 0; got {eta}")
    return D.square() / (2 * eta) + eta * r


def shampoo_regret_bound(factors, D, *, r=1.0, eta=None) -> Tensor:
    r"""Shampoo (Gupta, Koren, Singer 2018, Thms 3 and 7; docs/theory/tensored.md §C1) [reconstructed, derived above].

    Theorem. rank mat_i(G_t) ≤ r_i, r = (Π r_i)^{1/p}, H^i_T = εI + Σ_t mat_i(G_t)mat_i(G_t)ᵀ, fixed η, projection in
    ‖·‖_{H_t}: R^lin_T ≤ (D²/2η + ηr)·Π_i tr (H^i_T)^{1/(2p)}; at η = D/√(2r) (``eta=None``):
    √(2r)·D·Π_i tr (H^i_T)^{1/(2p)} — for matrices √(2r)·D·tr L_T^{1/4}·tr R_T^{1/4}. Also the chain link 1 of
    S-Shampoo when given its factors H̃^i_T.

    Parameters
    ----------
    factors : tuple of Tensor, each B + (n_i, n_i)   H^i_T (ε included), p = len(factors)
    D : float or Tensor B    max_t ‖X_t − X*‖_F or diam K
    r : float or Tensor B    (Π_i r_i)^{1/p} ≥ 1
    eta : float, Tensor B or None
    """
    return shampoo_coefficient(D, eta, r) * kronecker_trace_root(factors)


def s_shampoo_regret_bound(grams, D, ell: int, *, eps: float = 0.0, r=1.0, eta=None) -> Tensor:
    r"""S-Shampoo Theorem 5 (Feinberg et al. 2023; docs/theory/sketching.md §B5) [reconstructed, derived above], β2 = 1.

    Theorem. R^lin_T ≤ (D²/2η + ηr)·Π_i (tr (εI + M_i)^{1/(2p)} + n_i·Ω_{i,ℓ}^{1/(2p)}), M_i = Σ_t mat_i(G_t)mat_i(G_t)ᵀ,
    Ω_{i,ℓ} = Lemma 1's bound for the spectrum of M_i; at η = D/√(2r): √(2r)·D·(tr L_T^{1/4} + mΩ_L^{1/4})·(tr R_T^{1/4}
    + nΩ_R^{1/4}) for matrices.

    Parameters
    ----------
    grams : tuple of Tensor, each B + (n_i, n_i)   M_i = Σ_t mat_i(G_t)mat_i(G_t)ᵀ (without ε)
    ell : int ≥ 1   the sketch size ℓ
    eps : float ≥ 0  the ε of H̃ = H̄ + (ε + ρ)I
    """
    where = "s_shampoo_regret_bound"
    M = _factors(grams, where)
    check_int(ell, "ell", where=where, low=1)
    eps = check_real(eps, "eps", where=where, low=0.0)
    p = len(M)
    prod = None
    for A in M:
        lam = psd_eigvals_desc(A)
        n = A.shape[-1]
        term = (lam + eps).pow(1.0 / (2 * p)).sum(-1) + n * omega_ell(lam, ell).pow(1.0 / (2 * p))
        prod = term if prod is None else prod * term
    assert prod is not None  # _factors refused an empty tuple
    return shampoo_coefficient(D, eta, r) * prod


def extreme_tensoring_regret_bound(h, D_inf, *, eta=None) -> Tensor:
    r"""Extreme Tensoring (Chen et al. 2020; docs/theory/tensored.md §C2) [reconstructed, derived above].

    Theorem. With the accumulators h^{(i)}_T (B + (d_i,), ε included), fixed η, diagonal H_t-norm projection:
    R^lin_T ≤ (D_∞²/2η + η)·Π_i Σ_k h^{(i)}_T[k]^{1/(2p)}; √2·D_∞·(…) at η = D_∞/√2 (``eta=None``). The product
    also counts padded coordinates; the tighter (D_∞²/2η + η)·Σ_{j≤N} √ν_T[j] on the parameter's coordinates is
    :func:`sm3_regret_bound` applied to ν_T = H_T² (the method's ``metric(state).h`` squared).
    """
    where = "extreme_tensoring_regret_bound"
    if not isinstance(h, (tuple, list)) or not h:
        raise ValueError(f"{where}: h must be a non-empty tuple of B + (d_i,) tensors; got {h!r}")
    p = len(h)
    tr = None
    for hi in h:
        t = _as_tensor(hi, "h", where).clamp_min(0).pow(1.0 / (2 * p)).sum(-1)
        tr = t if tr is None else tr * t
    assert tr is not None  # h is non-empty (checked above)
    coef = (
        math.sqrt(2) * _as_tensor(D_inf, "D_inf", where) if eta is None else adaptive_coefficient(D_inf, eta)
    )
    return coef * tr


def sm3_regret_bound(nu: Tensor, D_inf, *, eta=None, nbatch: int = 0) -> Tensor:
    r"""SM3 (Anil et al. 2019; docs/theory/tensored.md §C4) [reconstructed, derived above].

    Theorem. If ν_t(i) ≥ ν_{t−1}(i) + g_t(i)² (SM3-I's ν, SM3-II's ν'), u_t = g_t/√ν_t, fixed η, diagonal
    projection: R^lin_T ≤ (D_∞²/2η + η)·Σ_i √ν_T(i); √2·D_∞·Σ_i √ν_T(i) at η = D_∞/√2 (``eta=None``).

    Parameters
    ----------
    nu : Tensor, B + S   ν_T (or an upper bound on it, e.g. :func:`memopt_theory.methods.sm3.nu` for SM3-II)
    nbatch : int         number of leading batch axes B
    """
    where = "sm3_regret_bound"
    check_int(nbatch, "nbatch", where=where, low=0)
    v = _as_tensor(nu, "nu", where)
    if (v < 0).any():
        raise ValueError(f"{where}: nu must be >= 0")
    tr = v.sqrt().flatten(start_dim=nbatch).sum(-1) if v.ndim > nbatch else v.sqrt()
    coef = (
        math.sqrt(2) * _as_tensor(D_inf, "D_inf", where) if eta is None else adaptive_coefficient(D_inf, eta)
    )
    return coef * tr
