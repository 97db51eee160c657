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

Damping that cannot make the factorisation fail. A ⪰ mI in exact arithmetic, so a failing Cholesky is round-off.
K is stored in the state's dtype (unit round-off u) from Gg accumulated in float64, so K̃ = K + E with
|E_ij| ≤ c‖g_i‖‖g_j‖, c = u + n·ε₆₄, hence ‖E‖₂ ≤ ‖E‖_F ≤ c·tr K and λ_min(K̃/λ + mI) ≥ m − c·tr K/λ — negative
when λ is below the resolution of K (λ = 1e−5 with float32 gradients of a diverging run raised a raw LinAlgError).
The factorisation uses λ' = max(λ, 4c'·tr K/m) with c' = c + 20m^{3/2}ε₆₄ and runs in float64: then
λ_min(A) ≥ 3m/4, κ(A) ≤ 4/3 + 1/(3c'), and 20m^{3/2}ε₆₄·κ(A) < 1, the condition under which Cholesky runs to
completion (Higham, Accuracy and Stability of Numerical Algorithms, Thm 10.7). λ' = λ unless the window's gradient
energy tr K exceeds λm/(4c') (default λ = 1e−5, m = 1024: ≈ 4e4 for float32 gradients, ≈ 1e7 for float64);
``effective_damp`` returns it, and F̂ above is then read with λ'.
Recommended lr 1e−4 (the paper's 1e−3 also trains a small MLP): early in the window F̂ ≈ λ'I + ggᵀ/m, so the
first step is ≈ m·g/‖g‖², a Newton step of length ≈ m/‖g‖ (lr 1e−2 diverged on a 20-16-5 MLP).

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

__all__ = ["Config", "State", "effective_damp", "woodbury_setup", "woodbury_coefficients", "replace_row_col"]


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


def effective_damp(K: Tensor, damp: float, n: int) -> Tensor:
    """λ' = max(λ, 4c·tr K/m), c = u + (n + 20m^{3/2})·ε₆₄ (u: unit round-off of K's dtype, n: gradient length),
    batch-shaped float64: the smallest damping for which K's round-off cannot make the float64 Cholesky of
    A = K/λ' + mI fail (module docstring)."""
    m = K.shape[-1]
    c = torch.finfo(K.dtype).eps / 2 + (n + 20 * m**1.5) * torch.finfo(torch.float64).eps
    tr = torch.diagonal(K, dim1=-2, dim2=-1).to(torch.float64).sum(-1)
    return (4 * c * tr / m).clamp_min(float(damp))


def woodbury_setup(K: Tensor, damp: float | Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(D, B, den) of the dynamic algorithm from the Gram K = GGᵀ (batch + (m, m)) and λ (a float or batch-shaped),
    factored in float64 and returned in K's dtype; a non-finite K or a failed factorisation raises a one-line
    ValueError naming λ and tr K (``effective_damp`` gives a λ for which it cannot fail)."""
    m = K.shape[-1]
    K64 = K.to(torch.float64)
    lam = torch.as_tensor(damp, dtype=torch.float64, device=K.device)
    lam = lam.reshape(lam.shape + (1, 1))
    eye = torch.eye(m, dtype=torch.float64, device=K.device)
    C, info = torch.linalg.cholesky_ex(K64 / lam + m * eye)  # A is SPD (≥ mI), so no pivoting is needed
    if not bool(torch.isfinite(K64).all()) or bool((info != 0).any()):
        tr = float(torch.diagonal(K64, dim1=-2, dim2=-1).sum(-1).max())
        raise ValueError(
            f"mfac: the damped window Gram K/damp + m·I (m = {m}) could not be factored: tr K = {tr:.3g} is not "
            f"finite or too large for damp = {float(torch.as_tensor(damp).min()):.3g} (use a larger damp, or a "
            "smaller lr if the gradients are blowing up)"
        )
    U = torch.diagonal(C, dim1=-2, dim2=-1).unsqueeze(-1) * C.transpose(-1, -2)
    D = torch.triu(U) - m * eye
    den = m + torch.diagonal(D, dim1=-2, dim2=-1)
    E = _elimination(D, den)
    B = torch.linalg.solve_triangular(E, eye.expand_as(E) / lam, upper=False, unitriangular=True)
    return D.to(K.dtype), B.to(K.dtype), den.to(K.dtype)


def woodbury_coefficients(Gx: Tensor, D: Tensor, B: Tensor, den: Tensor, damp: float | Tensor) -> Tensor:
    """c with F̂^{−1}x = λ^{−1}x − Gᵀc, from Gx (batch + (m,)) and the setup (q_i = g_iᵀH_{i−1}x, c = (q/den)ᵀB);
    λ a float or batch-shaped."""
    if isinstance(damp, Tensor):
        damp = damp.to(Gx.dtype).unsqueeze(-1)
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
        assert param is not None  # check_param(needed=weight_decay > 0) refused None
        g = g + config.weight_decay * param.to(g.dtype)
    g = g.reshape(*batch, -1)
    oh = ring_slot(state.t, config.window)
    G = state.G * (1 - oh.unsqueeze(-1)) + oh.unsqueeze(-1) * g.unsqueeze(-2)
    Gg = (G.to(torch.float64) @ g.to(torch.float64).unsqueeze(-1)).squeeze(-1).to(G.dtype)  # |E_ij| ≤ u|K_ij|
    K = replace_row_col(state.K, oh, Gg)
    lam = effective_damp(
        K, config.damp, g.shape[-1]
    )  # = λ unless K's round-off could make the factorisation fail
    D, B, den = woodbury_setup(K, lam)
    c = woodbury_coefficients(Gg, D, B, den, lam)
    u = g / lam.to(g.dtype).unsqueeze(-1) - (c.unsqueeze(-2) @ G).squeeze(-2)
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
        default_lr=1e-4,
    ),
)
