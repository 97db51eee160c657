r"""S-AdaGrad regret bounds (Feinberg et al. 2023, Theorem 3 and Corollary 4; docs/theory/sketching.md §B3) [reconstructed].

Setting. S-AdaGrad (Alg. 2) with sketch size ℓ on g_1..g_T ∈ R^d, G_T = Σ_t g_tg_tᵀ with eigenvalues λ_i,
Ω_ℓ = min_{0≤k<ℓ} (ℓ−k)^{−1} Σ_{i>k} λ_i, G̃_t = Ḡ_t + (δ + ρ_{1:t})I, projection in ‖·‖_{G̃_t^{1/2}}, fixed η;
D as in bounds.adagrad. Writing c(D, η) = D²/2η + η (√2·D at the paper's η = D/√2):

    R^lin_T ≤ c·tr G̃_T^{1/2}                                   (L1 + L2 with X_t = G̃_t)
            ≤ c·(tr (G_T + δI)^{1/2} + √(d(d−ℓ)⁺ρ_{1:T}))         ("chain")
            ≤ c·(tr (G_T + δI)^{1/2} + √(d(d−ℓ)⁺Ω_ℓ))             (Corollary 4)
            ≤ c·(tr (G_T + δI)^{1/2} + d·√Ω_ℓ)                     (Theorem 3).

Derivation (re-derived here; the paper states Thm 3/Cor 4 at δ = 0, memopt carries δ through every link).
(i) B2(a): Ḡ_{t−1} + g_tg_tᵀ − ρ_tI ⪯ Ḡ_t, so G̃_t ⪰ G̃_{t−1} + g_tg_tᵀ: H_t = G̃_t^{1/2} is monotone (L3) and
L2 applies with X_t = G̃_t, X_0 = δI, giving the first line. (ii) Summing (i), G̃_T ⪰ G_T + δI, so by Weyl
μ_i := λ_i(G̃_T) ≥ λ_i(G_T + δI) =: ν_i. B2(b): tr G_T − tr Ḡ_T ≥ ℓρ_{1:T} (equality for rank-one updates
without thresholding; dropping round-off directions only widens it), hence Σ_i(μ_i − ν_i) = tr Ḡ_T + dρ_{1:T}
− tr G_T ≤ (d − ℓ)ρ_{1:T} (and = 0 when ℓ ≥ d: then ρ_{1:T} = 0 or G̃_T = G_T + δI exactly). With
√μ − √ν ≤ √(μ − ν) and Cauchy–Schwarz, Σ_i(√μ_i − √ν_i) ≤ √(d·Σ_i(μ_i − ν_i)) ≤ √(d(d−ℓ)⁺ρ_{1:T}).
(iii) Lemma 1 (B2(c)): ρ_{1:T} ≤ Ω_ℓ. (iv) (d − ℓ)⁺ ≤ d.

**The buffered sketch** (``s_adagrad.Config(sketch="buffer")``: Liberty's 2ℓ-row buffer, Ḡ_t = RᵀR,
ρ_{1:t} := Δ_t the sum of the shrink thresholds; memopt_theory.sketches.fd_buffer_update). The three facts the
chain uses hold for it with the same constants: (i) Ḡ_{t−1} + g_tg_tᵀ − δ_tI ⪯ Ḡ_t (a shrink lowers each
eigenvalue of RᵀR by min(λ_i, δ_t) ≤ δ_t, an append adds g_tg_tᵀ exactly) and Δ_t = Δ_{t−1} + δ_t, so
G̃_t ⪰ G̃_{t−1} + g_tg_tᵀ; (ii) tr G_T − tr Ḡ_T = Σ_shrinks Σ_i min(λ_i, δ) ≥ ℓΔ_T, the ℓ largest λ_i of a
shrink being ≥ δ = λ_ℓ; (iii) Δ_T ≤ Ω_ℓ (from (i)–(ii) by the FD argument, derived in fd_buffer_update).
Hence every line above holds verbatim for the buffered S-AdaGrad, with "chain" read at ρ_{1:T} = Δ_T:

    R^lin_T ≤ c·(tr (G_T + δI)^{1/2} + √(d(d−ℓ)⁺Δ_T)) ≤ c·(tr (G_T + δI)^{1/2} + √(d(d−ℓ)⁺Ω_ℓ)),

at the memory cost 2ℓd + 4ℓ² + 2 instead of (ℓ−1)(d+1) + 1 — the same ℓ buys the same bound with twice the
rows, in exchange for amortised O(dℓ) time per step instead of a thin SVD of a d×ℓ matrix.
"""

from __future__ import annotations

from torch import Tensor

from memopt_theory.bounds.adagrad import _check_psd_matrix
from memopt_theory.bounds.quantities import _as_tensor, adaptive_coefficient, omega_ell, psd_eigvals_desc
from memopt_theory.validation import check_choice, check_int, check_real

__all__ = ["s_adagrad_regret_bound", "s_adagrad_trace_terms"]


def s_adagrad_trace_terms(G: Tensor, ell: int, *, rho=None, delta: float = 0.0) -> dict[str, Tensor]:
    r"""The trace factors of the module's chain: "chain" (needs ρ_{1:T}), "cor4", "thm3"; each of shape B.

    Multiply by D²/2η + η for the regret bounds (see the module docstring for the derivation).
    """
    where = "s_adagrad_trace_terms"
    _check_psd_matrix(G, where)
    check_int(ell, "ell", where=where, low=1)
    delta = check_real(delta, "delta", where=where, low=0.0)
    lam = psd_eigvals_desc(G)
    d = G.shape[-1]
    base = (lam + delta).sqrt().sum(-1)
    omega = omega_ell(lam, ell)
    gap = max(d - ell, 0)
    out = {"cor4": base + (d * gap * omega).sqrt(), "thm3": base + d * omega.sqrt()}
    if rho is not None:
        r = _as_tensor(rho, "rho", where)
        if (r < 0).any():
            raise ValueError(f"{where}: rho (the escaped mass ρ_{{1:T}}) must be >= 0; got {rho!r}")
        out["chain"] = base + (d * gap * r).sqrt()
    return out


def s_adagrad_regret_bound(
    G: Tensor, D, eta, ell: int, *, form: str = "cor4", rho=None, delta: float = 0.0
) -> Tensor:
    r"""S-AdaGrad regret bound (Feinberg et al. 2023): Theorem 3, Corollary 4, or the run's chain link.

    Theorem 3:      R^lin_T ≤ (D²/2η + η)·(tr G_T^{1/2} + d·√Ω_ℓ)
    Corollary 4:    R^lin_T ≤ (D²/2η + η)·(tr G_T^{1/2} + √(d(d−ℓ)Ω_ℓ))
    chain:          R^lin_T ≤ (D²/2η + η)·(tr G_T^{1/2} + √(d(d−ℓ)ρ_{1:T}))  (ρ_{1:T} of the run)
    At η = D/√2 the factor is √2·D (the paper's statement); with δ > 0, G_T → G_T + δI everywhere; (d − ℓ)
    means max(d − ℓ, 0). Derivation in the module docstring. The same forms hold for the buffered sketch
    (``sketch="buffer"``), with rho = its escaped mass Δ_T (module docstring, last paragraph).

    Parameters
    ----------
    G : Tensor, B + (d, d)   G_T = Σ_t g_tg_tᵀ
    D, eta : float or Tensor of shape B
    ell : int ≥ 1            ℓ, the paper's sketch size
    form : "cor4" | "thm3" | "chain"
    rho : float or Tensor B  ρ_{1:T}, required (only) for form="chain"
    delta : float ≥ 0        S-AdaGrad's δ
    """
    where = "s_adagrad_regret_bound"
    check_choice(form, "form", ("cor4", "thm3", "chain"), where=where)
    if form == "chain" and rho is None:
        raise ValueError(f"{where}: form='chain' needs rho (the run's escaped mass ρ_{{1:T}}); got None")
    terms = s_adagrad_trace_terms(G, ell, rho=rho, delta=delta)
    return adaptive_coefficient(D, eta) * terms[form]
