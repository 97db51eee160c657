r"""``memopt verify`` checks for Frequent Directions and S-AdaGrad's trace chain (docs/theory/sketching.md §B1, §B2, §B3).

Each ``run(seed, fast)`` draws a seeded stream with a decaying spectrum (so that sketching loses mass and the
inequalities are not trivially met), runs the exact code the toolkit uses (``memopt_theory.sketches``), and
returns (measured, bound) from brute-force float64 linear algebra. Matrix inequalities X ⪯ Y are reported as the
generalised eigenvalue λ_max(Y^{−1/2} X Y^{−1/2}) against 1 (Y ≻ 0 on these streams: T > d Gaussian rows).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from memopt_theory.bounds.quantities import omega_ell, psd_eigvals_desc
from memopt_theory.bounds.sketchy import s_adagrad_trace_terms
from memopt_theory.sketches import (
    fd_classic_covariance,
    fd_classic_init,
    fd_classic_update,
    fd_init,
    fd_update,
    rfd_covariance,
    sketch_covariance,
)
from memopt_theory.verify import Check

__all__ = ["CHECKS"]


def _instance(seed: int, fast: bool, *, r: int = 1) -> tuple[Tensor, int]:
    """A stream F of shape (T, d, r) with power-law column scales, and a sketch size 2 ≤ ℓ < d."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(6, 10)) if fast else int(rng.integers(12, 31))
    T = 4 * d if fast else 10 * d
    ell = int(rng.integers(2, d // 2 + 1))
    scales = np.arange(1, d + 1) ** -rng.uniform(0.3, 1.2)
    F = rng.standard_normal((T, d, r)) * scales[None, :, None]
    return torch.from_numpy(F), ell


def _sketch(F: Tensor, ell: int, beta: float = 1.0):
    state = fd_init(F.shape[1], ell)
    for Ft in F:
        state, _ = fd_update(state, Ft, ell, beta=beta)
    return state


def _gram(F: Tensor, beta: float = 1.0) -> Tensor:
    T = F.shape[0]
    w = torch.tensor([beta ** (T - 1 - t) for t in range(T)], dtype=F.dtype)
    return torch.einsum("t,tir,tjr->ij", w, F, F)


def _gen_max(X: Tensor, Y: Tensor) -> float:
    """λ_max of the pencil (X, Y), Y ≻ 0: the least c with X ⪯ cY."""
    return float(scipy.linalg.eigh(X.numpy(), Y.numpy(), eigvals_only=True)[-1])


def classic_fd_bound(seed: int, fast: bool) -> tuple[float, float]:
    r"""Classic FD (Liberty 2013; Ghashami et al. 2016; B1): ‖AᵀA − BᵀB‖_2 ≤ min_{0≤k<ℓ} ‖A − A_k‖²_F/(ℓ−k).

    The min over k makes one ratio cover every k < ℓ; the fast 2ℓ-row buffer is queried whole.
    """
    F, ell = _instance(seed, fast)
    A = F[..., 0]
    state = fd_classic_init(A.shape[1], ell)
    for a in A:
        state = fd_classic_update(state, a)
    err = torch.linalg.matrix_norm(A.T @ A - fd_classic_covariance(state), ord=2)
    return float(err), float(omega_ell(psd_eigvals_desc(A.T @ A), ell))


def classic_fd_projection(seed: int, fast: bool) -> tuple[float, float]:
    r"""Classic FD projection error (Ghashami et al. 2016; B1), k = ⌊ℓ/2⌋:
    ‖A − A·V_kV_kᵀ‖²_F ≤ ℓ/(ℓ−k)·‖A − A_k‖²_F, V_k the top-k right singular vectors of the sketch B.
    (Derivation in tests/theory/test_sketches.py::test_classic_fd_projection_bound.)"""
    F, ell = _instance(seed, fast)
    A = F[..., 0]
    state = fd_classic_init(A.shape[1], ell)
    for a in A:
        state = fd_classic_update(state, a)
    k = ell // 2
    Vk = torch.linalg.svd(state.B, full_matrices=False)[2][:k].T
    err = float(((A - A @ Vk @ Vk.T) ** 2).sum())
    return err, ell / (ell - k) * float((torch.linalg.svdvals(A) ** 2)[k:].sum())


def sketch_below(seed: int, fast: bool) -> tuple[float, float]:
    r"""FD under-approximates (B2(a), B1 P1): Ḡ_T = BᵀB ⪯ AᵀA = G_T, i.e. λ_max(G_T^{−1/2}Ḡ_TG_T^{−1/2}) ≤ 1."""
    F, ell = _instance(seed, fast)
    return _gen_max(sketch_covariance(_sketch(F, ell)), _gram(F)), 1.0


def sandwich_above(seed: int, fast: bool) -> tuple[float, float]:
    r"""Sketchy's sandwich, upper side (Feinberg et al. 2023; B2(a)): G_T ⪯ Ḡ_T + ρ_{1:T}I."""
    F, ell = _instance(seed, fast)
    s = _sketch(F, ell)
    d = F.shape[1]
    return _gen_max(_gram(F), sketch_covariance(s) + s.rho * torch.eye(d, dtype=F.dtype)), 1.0


def lemma1(seed: int, fast: bool) -> tuple[float, float]:
    r"""Lemma 1 (Feinberg et al. 2023; B2(c)): ρ_{1:T} ≤ Ω_ℓ = min_{0≤k<ℓ} (ℓ−k)^{−1} Σ_{i>k} λ_i(G_T)."""
    F, ell = _instance(seed, fast)
    return float(_sketch(F, ell).rho), float(omega_ell(psd_eigvals_desc(_gram(F)), ell))


def trace_gap(seed: int, fast: bool) -> tuple[float, float]:
    r"""Trace identity (B2(b)) with rank-2 updates M_t = F_tF_tᵀ: ℓ·ρ_{1:T} ≤ tr G_T − tr Ḡ_T
    (= ℓρ_{1:T} + Σ_t Σ_{i>ℓ} λ_i^{(t)}; for rank-one updates it is an equality, tested in test_sketches)."""
    F, ell = _instance(seed, fast, r=2)
    s = _sketch(F, ell)
    return ell * float(s.rho), float(torch.trace(_gram(F)) - torch.trace(sketch_covariance(s)))


def ew_fd_observation6(seed: int, fast: bool) -> tuple[float, float]:
    r"""EW-FD Observation 6 (Feinberg et al. 2023, §4.3): ρ^{(β)}_{1:T} ≤ min_{k<ℓ} Σ_{i>k} λ_i(G^{(β)}_T)/(ℓ−k),
    G^{(β)}_T = Σ_t β^{T−t}g_tg_tᵀ, with β drawn in [0.9, 0.999]."""
    F, ell = _instance(seed, fast)
    beta = float(np.random.default_rng(seed + 10_000).uniform(0.9, 0.999))
    s = _sketch(F, ell, beta)
    return float(s.rho), float(omega_ell(psd_eigvals_desc(_gram(F, beta)), ell))


def ew_fd_sandwich(seed: int, fast: bool) -> tuple[float, float]:
    r"""EW-FD Observation 6, matrix part: G^{(β)}_T ⪯ Ḡ_T + ρ^{(β)}_{1:T}I (β ∈ [0.9, 0.999])."""
    F, ell = _instance(seed, fast)
    beta = float(np.random.default_rng(seed + 10_000).uniform(0.9, 0.999))
    s = _sketch(F, ell, beta)
    d = F.shape[1]
    return _gen_max(_gram(F, beta), sketch_covariance(s) + s.rho * torch.eye(d, dtype=F.dtype)), 1.0


def rfd_half_error(seed: int, fast: bool) -> tuple[float, float]:
    r"""Robust FD (Luo et al. 2019), α_0 = 0: ‖G_T − Ḡ_T − (ρ_{1:T}/2)I‖_2 ≤ ρ_{1:T}/2."""
    F, ell = _instance(seed, fast)
    s = _sketch(F, ell)
    err = torch.linalg.matrix_norm(_gram(F) - rfd_covariance(s), ord=2)
    return float(err), 0.5 * float(s.rho)


def _trace_links(seed: int, fast: bool) -> tuple[float, dict[str, float]]:
    F, ell = _instance(seed, fast)
    s = _sketch(F, ell)
    d = F.shape[1]
    Gt = sketch_covariance(s) + s.rho * torch.eye(d, dtype=F.dtype)
    measured = float(psd_eigvals_desc(Gt).sqrt().sum())
    terms = s_adagrad_trace_terms(_gram(F), ell, rho=s.rho)
    return measured, {k: float(v) for k, v in terms.items()}


def chain_link1(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-AdaGrad chain, link 1 (B3): tr G̃_T^{1/2} ≤ tr G_T^{1/2} + √(d(d−ℓ)ρ_{1:T}), G̃_T = Ḡ_T + ρ_{1:T}I."""
    measured, t = _trace_links(seed, fast)
    return measured, t["chain"]


def trace_cor4(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-AdaGrad, Corollary 4's trace term (B3): the measured tr G̃_T^{1/2} of the run's sketch (G̃_T = Ḡ_T + ρ_{1:T}I)
    ≤ tr G_T^{1/2} + √(d(d−ℓ)Ω_ℓ) (chain link 1 followed by Lemma 1's ρ_{1:T} ≤ Ω_ℓ)."""
    measured, t = _trace_links(seed, fast)
    return measured, t["cor4"]


def trace_thm3(seed: int, fast: bool) -> tuple[float, float]:
    r"""S-AdaGrad, Theorem 3's trace term (B3): the measured tr G̃_T^{1/2} ≤ tr G_T^{1/2} + d·√Ω_ℓ."""
    measured, t = _trace_links(seed, fast)
    return measured, t["thm3"]


_REF = "Feinberg et al. 2023 (Sketchy)"
CHECKS = (
    Check(
        "FD classic: ||AtA-BtB|| <= min_k tail_k/(l-k)",
        "Ghashami et al. 2016; docs/theory/sketching.md §B1",
        classic_fd_bound,
    ),
    Check(
        "FD classic: projection err <= l/(l-k) tail_k",
        "Ghashami et al. 2016; docs/theory/sketching.md §B1",
        classic_fd_projection,
    ),
    Check("FD: Gbar <= G (gen. eig)", f"{_REF}, Alg. 1; docs/theory/sketching.md §B2(a)", sketch_below),
    Check(
        "FD sandwich: G <= Gbar + rho I (gen. eig)",
        f"{_REF}; docs/theory/sketching.md §B2(a)",
        sandwich_above,
    ),
    Check("FD Lemma 1: rho <= Omega_l", f"{_REF}, Lemma 1; docs/theory/sketching.md §B2(c)", lemma1),
    Check(
        "FD trace: l*rho <= tr G - tr Gbar (rank 2)", f"{_REF}; docs/theory/sketching.md §B2(b)", trace_gap
    ),
    Check(
        "EW-FD Obs. 6: rho_beta <= Omega_l(G_beta)",
        f"{_REF}, Observation 6; docs/theory/sketching.md §B2",
        ew_fd_observation6,
    ),
    Check(
        "EW-FD Obs. 6: G_beta <= Gbar + rho_beta I",
        f"{_REF}, Observation 6; docs/theory/sketching.md §B2",
        ew_fd_sandwich,
    ),
    Check(
        "RFD: ||G - Gbar - rho/2 I|| <= rho/2",
        "Luo et al. 2019; docs/theory/sketching.md §B2",
        rfd_half_error,
    ),
    Check(
        "S-AdaGrad chain 1: tr Gtilde^1/2 <= chain",
        f"{_REF}, Thm 3 proof; docs/theory/sketching.md §B3",
        chain_link1,
    ),
    Check("S-AdaGrad trace: tr Gtilde^1/2 <= Cor. 4 term", f"{_REF}, Cor. 4", trace_cor4),
    Check("S-AdaGrad trace: tr Gtilde^1/2 <= Thm 3 term", f"{_REF}, Thm 3", trace_thm3),
)
