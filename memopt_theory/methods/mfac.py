r"""M-FAC — ``mfac`` (docs/theory/compressed.md §D4; Frantar, Kurtic, Alistarh, NeurIPS 2021; IST-DASLab/M-FAC).

Update
------
Inverse damped empirical Fisher over a ring of m gradients, F̂ = λI + (1/m)Σ_{i=1}^m g_ig_iᵀ (divided by m, not by
the number stored: empty slots are zero rows), applied in O(Nm + m²) by the dynamic Woodbury algorithm.

Derivation. H_0 = λ^{−1}I and Sherman–Morrison with u = g_i/m, v = g_i give
H_i = (H_{i−1}^{−1} + g_ig_iᵀ/m)^{−1} = H_{i−1} − (H_{i−1}g_i)(H_{i−1}g_i)ᵀ/(m + g_iᵀH_{i−1}g_i), and H_m = F̂^{−1}.
Write H_{i−1}g_i = Σ_j B_ij g_j (B lower triangular, B_ii = λ^{−1}) and D_ij = g_iᵀH_{i−1}g_j (i ≤ j),
den_i = m + D_ii. Then H_mx = λ^{−1}x − Σ_i (q_i/den_i) H_{i−1}g_i with q_i = g_iᵀH_{i−1}x, i.e.
H_mx = λ^{−1}x − Gᵀc, c_j = Σ_i (q_i/den_i)B_ij. D comes from one factorisation of A = λ^{−1}GGᵀ + mI: with the
Cholesky A = CCᵀ, U = diag(C_ii)Cᵀ is the U of the unpivoted LU (unit-lower L) and D = triu(U) − mI; B follows from
B_ij = −Σ_{k=j}^{i−1}(D_ki/den_k)B_kj. q is obtained from λ^{−1}Gx by the same forward elimination.
(Checked against solve(λI + GᵀG/m, x) in tests/theory/test_compressed_methods.py.)

Optimiser (D4): g ← g + wd·w (L2, needs ``param``); window update with g, then u = F̂^{−1}g; EMA momentum
v = μv + (1−μ)u when μ > 0. The step has no lr or decay mode of its own, so ``full_step`` is False: the caller
applies w ← w − ηu. State: G (mN), K = GGᵀ, D, B (3m²), den (m), t (ring position): mN + 3m² + m + 1, + N momentum.
No H-norm metric: unconstrained only.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): wN + 3w² + w + 1 (+ N momentum): the ring of w gradients, its Gram and two triangular coefficient matrices.

Guarantee
---------
``mfac``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D4; arXiv 2107.03356.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("mfac")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 3159041)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods.ggt import ring_slot
from memopt_theory.validation import check_int, check_real, numel

__all__ = ["Config", "State", "woodbury_setup", "woodbury_coefficients", "replace_row_col"]


@dataclass(frozen=True, kw_only=True)
class Config:
    """M-FAC: ``window`` m ≥ 1, damping λ > 0 (``damp``), EMA ``momentum`` μ ∈ [0, 1), L2 ``weight_decay`` ≥ 0."""

    window: int = 1024
    damp: float = 1e-5
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        w = "mfac.Config"
        check_int(self.window, "window", where=w, low=1)
        check_real(self.damp, "damp", where=w, low=0.0, low_open=True)
        check_real(self.momentum, "momentum", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)


class State(NamedTuple):
    G: Tensor  # batch + (m, N): ring of gradients
    K: Tensor  # batch + (m, m): GGᵀ
    D: Tensor  # batch + (m, m): D_ij = g_iᵀH_{i−1}g_j (upper)
    B: Tensor  # batch + (m, m): H_{i−1}g_i = Σ_j B_ij g_j (lower)
    den: Tensor  # batch + (m,): m + D_ii
    t: Tensor  # batch: completed steps (ring position t mod m)
    v: Tensor | None  # batch + (N,) momentum (None when μ = 0)
    shape: Static


def _elimination(D: Tensor, den: Tensor) -> Tensor:
    """I + L̃ with L̃_ik = D_ki/den_k for k < i (strictly lower): unit lower triangular, batch + (m, m).

    Both recursions of the dynamic algorithm are forward substitutions with this matrix:
    B_ij = λ^{−1}δ_ij − Σ_{k=j}^{i−1}(D_ki/den_k)B_kj  ⇔  (I + L̃)B = λ^{−1}I, and the IHVP's sweep
    q_i = q⁰_i − Σ_{k<i}(D_ki/den_k)q_k  ⇔  (I + L̃)q = q⁰ (q⁰ = λ^{−1}Gx). One batched triangular solve (LAPACK
    trsm, the same substitution order) replaces m Python-level steps: O(m³) flops but no O(m) interpreter loop,
    so the official window m = 1024 takes milliseconds, not seconds.
    """
    m = D.shape[-1]
    eye = torch.eye(m, dtype=D.dtype, device=D.device)
    return eye + torch.tril((D / den.unsqueeze(-1)).transpose(-1, -2), diagonal=-1)


def woodbury_setup(K: Tensor, damp: float) -> tuple[Tensor, Tensor, Tensor]:
    """(D, B, den) of the dynamic algorithm from the Gram K = GGᵀ (batch + (m, m)) and λ."""
    m = K.shape[-1]
    eye = torch.eye(m, dtype=K.dtype, device=K.device)
    C = torch.linalg.cholesky(K / damp + m * eye)  # A is SPD (≥ mI), so no pivoting is needed
    U = torch.diagonal(C, dim1=-2, dim2=-1).unsqueeze(-1) * C.transpose(-1, -2)
    D = torch.triu(U) - m * eye
    den = m + torch.diagonal(D, dim1=-2, dim2=-1)
    E = _elimination(D, den)
    B = torch.linalg.solve_triangular(E, (1.0 / damp) * eye.expand_as(E), upper=False, unitriangular=True)
    return D, B, den


def woodbury_coefficients(Gx: Tensor, D: Tensor, B: Tensor, den: Tensor, damp: float) -> Tensor:
    """c with F̂^{−1}x = λ^{−1}x − Gᵀc, from Gx (batch + (m,)) and the setup (q_i = g_iᵀH_{i−1}x, c = (q/den)ᵀB)."""
    q0 = (Gx / damp).unsqueeze(-1)
    q = torch.linalg.solve_triangular(_elimination(D, den), q0, upper=False, unitriangular=True).squeeze(-1)
    return ((q / den).unsqueeze(-2) @ B).squeeze(-2)


def replace_row_col(K: Tensor, oh: Tensor, k: Tensor) -> Tensor:
    """K with row and column of the one-hot slot ``oh`` (batch + (m,)) replaced by k (batch + (m,))."""
    r, c = oh.unsqueeze(-1), oh.unsqueeze(-2)
    K = K * (1 - r) + r * k.unsqueeze(-2)
    return K * (1 - c) + c * k.unsqueeze(-1)


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="mfac.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="mfac.init")
    n, m = numel(shape), config.window
    z = torch.zeros(batch + (m, m), dtype=dtype, device=device)
    D, B, den = woodbury_setup(z, config.damp)
    return State(
        G=torch.zeros(batch + (m, n), dtype=dtype, device=device),
        K=z,
        D=D,
        B=B,
        den=den,
        t=torch.zeros(batch, dtype=dtype, device=device),
        v=torch.zeros(batch + (n,), dtype=dtype, device=device) if config.momentum > 0 else None,
        shape=Static(shape),
    )


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u = F̂^{−1}(g + wd·w) with the window after g enters it (EMA momentum if μ > 0)."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.G.dtype, where="mfac.update")
    check_param(param, batch + shape, where="mfac.update", needed=config.weight_decay > 0)
    if config.weight_decay > 0:
        g = g + config.weight_decay * param.to(g.dtype)
    g = g.reshape(*batch, -1)
    oh = ring_slot(state.t, config.window)
    G = state.G * (1 - oh.unsqueeze(-1)) + oh.unsqueeze(-1) * g.unsqueeze(-2)
    Gg = (G @ g.unsqueeze(-1)).squeeze(-1)
    K = replace_row_col(state.K, oh, Gg)
    D, B, den = woodbury_setup(K, config.damp)
    c = woodbury_coefficients(Gg, D, B, den, config.damp)
    u = g / config.damp - (c.unsqueeze(-2) @ G).squeeze(-2)
    v = state.v
    if v is not None:
        v = config.momentum * v + (1 - config.momentum) * u
        u = v
    new = State(G=G, K=K, D=D, B=B, den=den, t=state.t + 1, v=v, shape=state.shape)
    return u.reshape(batch + shape).to(grad.dtype), new


def memory(shape, config: Config) -> int:
    n, m = numel(shape), config.window
    return m * n + 3 * m * m + m + 1 + (n if config.momentum > 0 else 0)


def metric(state: State, config: Config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "mfac",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/compressed.md §D4; arXiv 2107.03356",
    ),
)
