r"""Regret bounds of OGD and the AdaGrad family (docs/theory/baselines.md §A1–§A3, docs/theory/bounds.md §0 Lemmas L1–L3).

All bounds are on the linearised regret R^lin_T(x*) = Σ_t ⟨g_t, x_t − x*⟩ for a fixed comparator x*; D (D_∞) is
diam K or, for unconstrained runs, the a-posteriori max_t ‖x_t − x*‖_2 (‖·‖_∞) with the same x*. Every function
returns a float64 tensor of the batch shape; D, eta (and G for OGD) may be floats or batch-shaped tensors.

Derivation shared by the AdaGrad bounds [reconstructed, docs/theory/bounds.md §0]: L1 (adaptive mirror descent with
H_t ⪰ H_{t−1}, H_0 = 0, projection in ‖·‖_{H_t}) gives
    R^lin_T ≤ (1/2η) Σ_t ‖x_t − x*‖²_{H_t − H_{t−1}} + (η/2) Σ_t g_tᵀH_t^+g_t
           ≤ (D²/2η)·tr H_T + (η/2) Σ_t g_tᵀH_t^+g_t          (zᵀAz ≤ ‖z‖² tr A for A ⪰ 0, telescoping),
and L2 (X_t ⪰ X_{t−1} + g_tg_tᵀ ⇒ Σ_t g_tᵀ(X_t^{1/2})^+g_t ≤ 2 tr X_T^{1/2}) bounds the second sum by
η·tr X_T^{1/2}. With H_T = X_T^{1/2}: R^lin_T ≤ (D²/2η + η)·tr H_T, minimised at η = D/√2 to √2·D·tr H_T.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memopt_theory.bounds.quantities import _as_tensor, adaptive_coefficient, trace_sqrt
from memopt_theory.validation import check_choice, check_int, check_real

__all__ = ["ogd_regret_bound", "adagrad_diag_regret_bound", "adagrad_full_regret_bound"]


def _check_psd_matrix(G: Tensor, where: str) -> None:
    if not isinstance(G, Tensor) or G.ndim < 2 or G.shape[-1] != G.shape[-2]:
        got = tuple(G.shape) if isinstance(G, Tensor) else type(G).__name__
        raise ValueError(
            f"{where}: G must be a tensor of shape B + (d, d) (the PSD matrix Σ g gᵀ); got {got}"
        )
    if not torch.is_floating_point(G) or not torch.isfinite(G).all():
        raise ValueError(f"{where}: G must be a finite floating tensor; got dtype {G.dtype}")


def ogd_regret_bound(D, G, T: int, *, schedule: str = "sqrt") -> Tensor:
    r"""OGD (Zinkevich 2003; Hazan, Intro. to OCO, Thm 3.1; docs/theory/baselines.md §A1) [reconstructed].

    Theorem. K convex with diameter D, ‖g_t‖_2 ≤ G. Projected OGD with η_t = D/(G√t) ("sqrt") has
    R^lin_T ≤ (3/2)·G·D·√T; with the fixed η = D/(G√T) ("constant"), R^lin_T ≤ G·D·√T.

    Derivation. ‖x_{t+1} − x*‖² ≤ ‖x_t − η_tg_t − x*‖² (projection is non-expansive) gives
    ⟨g_t, x_t − x*⟩ ≤ (‖x_t − x*‖² − ‖x_{t+1} − x*‖²)/(2η_t) + η_tG²/2. Summing with η_t non-increasing,
    Σ_t (1/η_t − 1/η_{t−1})D²/2 telescopes to D²/(2η_T) = GD√T/2, and (G²/2)Σ_t η_t ≤ (GD/2)·2√T (Σ t^{−1/2} ≤ 2√T):
    together (3/2)GD√T. Fixed η: D²/(2η) + ηG²T/2 = GD√T.
    """
    where = "ogd_regret_bound"
    D, G = _as_tensor(D, "D", where), _as_tensor(G, "G", where)
    check_int(T, "T", where=where, low=0)
    check_choice(schedule, "schedule", ("sqrt", "constant"), where=where)
    if (D < 0).any() or (G < 0).any():
        raise ValueError(f"{where}: D and G must be >= 0; got D={D}, G={G}")
    factor = 1.5 if schedule == "sqrt" else 1.0
    return factor * G * D * math.sqrt(T)


def adagrad_diag_regret_bound(sum_sq: Tensor, D_inf, eta) -> Tensor:
    r"""Diagonal AdaGrad (Duchi, Hazan, Singer 2011, Thm 5; docs/theory/baselines.md §A2) [reconstructed].

    Theorem. δ = 0, H_t = diag(√s_t), s_t = Σ_{s≤t} g_s², projection in ‖·‖_{H_t}, fixed η:
    R^lin_T ≤ (D_∞²/2η + η)·Σ_i ‖g_{1:T,i}‖_2, i.e. √2·D_∞·Σ_i ‖g_{1:T,i}‖_2 at η = D_∞/√2.

    Derivation. L1 with diagonal H_t: Σ_t ‖z_t‖²_{H_t − H_{t−1}} ≤ ‖z_t‖²_∞ tr(H_t − H_{t−1}) gives
    (D_∞²/2η)·Σ_i √s_{T,i}; L2 on each coordinate (scalars X_t = s_{t,i}) gives (η/2)·2Σ_i √s_{T,i}.

    Parameters
    ----------
    sum_sq : Tensor, B + (d,)   Σ_t g_{t,i}² per coordinate (‖g_{1:T,i}‖_2²)
    D_inf, eta : float or Tensor of shape B
    """
    where = "adagrad_diag_regret_bound"
    s = _as_tensor(sum_sq, "sum_sq", where)
    if s.ndim < 1 or (s < 0).any():
        raise ValueError(
            f"{where}: sum_sq must be a tensor B + (d,) of non-negative sums of squares; got {sum_sq!r}"
        )
    return adaptive_coefficient(D_inf, eta) * s.sqrt().sum(-1)


def adagrad_full_regret_bound(G: Tensor, D, eta, *, delta: float = 0.0, delta_mode: str = "inside") -> Tensor:
    r"""Full-matrix AdaGrad (Duchi, Hazan, Singer 2011; docs/theory/baselines.md §A3) [reconstructed].

    Theorem. G_T = Σ_t g_tg_tᵀ, projection in ‖·‖_{H_t}, fixed η:
    * δ-inside, H_t = (G_t + δI)^{1/2}:   R^lin_T ≤ (D²/2η + η)·tr (G_T + δI)^{1/2}
      (δ = 0: √2·D·tr G_T^{1/2} at η = D/√2);
    * δ-outside, H_t = δI + G_t^{1/2}:    R^lin_T ≤ (D²/2η)·(tr G_T^{1/2} + dδ) + η·tr G_T^{1/2}.

    Derivation. Inside: L1 with tr H_T = tr(G_T + δI)^{1/2}, and L2 with X_t = G_t + δI, X_0 = δI ⪰ 0.
    Outside: tr H_T = dδ + tr G_T^{1/2}; H_t ⪰ G_t^{1/2} and g_t ∈ range G_t give g_tᵀH_t^{−1}g_t ≤
    g_tᵀ(G_t^{1/2})^+g_t, and L2 with X_t = G_t bounds their sum by 2 tr G_T^{1/2}.

    Parameters
    ----------
    G : Tensor, B + (d, d)   G_T (PSD)
    D, eta : float or Tensor of shape B
    delta : float ≥ 0; delta_mode : "inside" | "outside"
    """
    where = "adagrad_full_regret_bound"
    _check_psd_matrix(G, where)
    delta = check_real(delta, "delta", where=where, low=0.0)
    check_choice(delta_mode, "delta_mode", ("inside", "outside"), where=where)
    d = G.shape[-1]
    G = G.to(torch.float64)
    if delta_mode == "inside":
        eye = torch.eye(d, dtype=torch.float64, device=G.device)
        return adaptive_coefficient(D, eta) * trace_sqrt(G + delta * eye)
    D, eta = _as_tensor(D, "D", where), _as_tensor(eta, "eta", where)
    adaptive_coefficient(D, eta)  # validates D ≥ 0, η > 0
    tr = trace_sqrt(G)
    return D.square() / (2 * eta) * (tr + d * delta) + eta * tr
