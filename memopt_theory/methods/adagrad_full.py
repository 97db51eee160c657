r"""Full-matrix AdaGrad — ``adagrad_full`` (docs/theory/baselines.md §A3; Duchi, Hazan, Singer 2011).

Update
------
S_t = S_{t−1} + g_tg_tᵀ (S_0 = 0) over the flattened parameter (N = ΠS coordinates); H_t = S_t^{1/2}
(δ = 0, pseudo-inverse), (S_t + δI)^{1/2} ("inside": the target of S-AdaGrad and Shampoo) or δI + S_t^{1/2}
("outside": the target of GGT). Two solvers give the same direction H_t^+ g_t:

``solver="eigh"`` (the reference): one float64 ``eigh`` of S_t per step, with the §0 pseudo-inverse cutoff
τ = N·ε_mach·λ_1. State: S, N² scalars.

``solver="incremental"`` ("inside" only): an ``eigh`` only every ``refresh`` steps. Between two of them
S_t = Q(Λ + ZZᵀ)Qᵀ, where S_b = QΛQᵀ is the last decomposed statistic and Z = Qᵀ[g_{b+1} … g_t] holds the
k ≤ ``refresh`` gradients since, in that eigenbasis. With M = Λ + δI + ZZᵀ (spectrum inside [lo, hi], lo the
smallest eigenvalue of S_b plus δ, hi a running upper bound λ_max(S_b) + δ + Σ‖g_j‖²), the direction is
    u_t = Q·M^{−1/2}z_t,   M^{−1/2} ≈ Σ_j w_j (M + s_jI)^{−1}   (rational approximation, ``nodes`` poles).
The poles and weights come from M^{−1/2} = (2/π)∫_0^∞ (M + τ²I)^{−1}dτ, substituted τ = √lo·sc(u | 1 − lo/hi)
and summed by the midpoint rule (Hale, Higham & Trefethen 2008, "Computing A^α, log(A) … by contour
integrals", method 3): the error decays like exp(−π²N / log(16·hi/lo)). Because r(x) = Σ_j w_j/(x + s_j) and
x^{−1/2} commute with M, ‖r(M)z − M^{−1/2}z‖ ≤ max_{x∈[lo,hi]} |r(x)√x − 1| · ‖M^{−1/2}z‖: the relative error
of the direction is at most the scalar relative error on [lo, hi], which is evaluated (on a 4000-point log
grid) when the window is opened, for node counts 8, 12, 16, … up to ``nodes``: the fewest that meet
``quad_tol`` are used, and a window that no count fits is not used (the step takes the eigh route). Each (M + s_jI)^{−1}z_t = D_j^{−1}Z C_j^{−1}e_k (D_j = Λ + (δ + s_j)I, C_j = I + ZᵀD_j^{−1}Z; the
Woodbury identity with z_t the newest column of Z, so no cancelling terms), and C_j^{−1} grows by one
row and column per step (bordering), so a step costs O(nodes·N·k) plus two N×N matrix–vector products
instead of an O(N³) ``eigh``. A window closes (and ``eigh`` runs, giving exactly the reference direction)
after ``refresh`` steps, when hi leaves the window's upper end (4·(hi + refresh·‖g_b‖²) at opening, room for
``refresh`` gradients like the opening one; hi/lo enters the error only through its logarithm), or when lo ≤ τ·hi
(δ = 0 and S_b singular: the pseudo-inverse cutoff could act, so the reference route is taken). Seeds of a
batch share the window (one lo, one hi, one set of nodes). State: S and Q (N² each), Λ (N), Z (N·refresh),
C_j^{−1} (nodes·refresh²), the nodes (2·nodes) and 5 bookkeeping scalars.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): N² (the dense Σ g gᵀ) with ``solver="eigh"``; the incremental solver adds Q (N²), Λ (N), Z (N·refresh), the
C_j^{−1} (nodes·refresh²), the nodes (2·nodes) and 5 scalars.

Guarantee
---------
``adagrad_full``: upper bound — R^lin_T ≤ (D²/(2η) + η)·tr G_T^{1/2} (= √2·D·tr G_T^{1/2} at η = D/√2) (Duchi, Hazan, Singer 2011 (JMLR 12); Hazan, Introduction to Online Convex Optimization, ch. 5); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Duchi, Hazan, Singer 2011 (JMLR 12); Hazan, Introduction to Online Convex Optimization, ch. 5; docs/theory/baselines.md §A3.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("adagrad_full")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 144)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy.special import ellipj, ellipkm1
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, Guarantee, eta_d_over_sqrt2
from memopt_theory.linalg import default_rtol, sym_eigh
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import LowRankPlusScaled
from memopt_theory.validation import check_choice, check_int, check_real, numel

_WHERE = "adagrad_full.Config"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Full-matrix AdaGrad: ``delta`` δ ≥ 0, placed "inside" ((S + δI)^{1/2}) or "outside" (δI + S^{1/2}).

    ``solver``: "eigh" (reference, one eigh per step) or "incremental" (module docstring; "inside" only), with
    ``refresh`` (most steps between two eigh), ``nodes`` (poles of the rational approximation) and
    ``quad_tol`` (largest relative error of that approximation a window may have).
    """

    delta: float = 0.0
    delta_mode: str = "inside"
    solver: str = "eigh"
    refresh: int = 32
    nodes: int = 40
    quad_tol: float = 1e-11

    def __post_init__(self) -> None:
        check_real(self.delta, "delta", where=_WHERE, low=0.0)
        check_choice(self.delta_mode, "delta_mode", ("inside", "outside"), where=_WHERE)
        check_choice(self.solver, "solver", ("eigh", "incremental"), where=_WHERE)
        check_int(self.refresh, "refresh", where=_WHERE, low=1)
        check_int(self.nodes, "nodes", where=_WHERE, low=2)
        check_real(self.quad_tol, "quad_tol", where=_WHERE, low=0.0)
        if not 0.0 < self.quad_tol < 1.0:
            raise ValueError(f"{_WHERE}: quad_tol must be in (0, 1); got {self.quad_tol!r}")
        if self.solver == "incremental" and self.delta_mode != "inside":
            raise ValueError(
                f"{_WHERE}: solver='incremental' needs delta_mode='inside' (its rational approximation is of "
                f"(S + δI)^(-1/2)); got delta_mode={self.delta_mode!r}"
            )


class State(NamedTuple):
    S: Tensor  # batch + (N, N): Σ g gᵀ
    shape: Static


class IncrementalState(NamedTuple):
    S: Tensor  # batch + (N, N): Σ g gᵀ (exact; decomposed when a window opens)
    Q: Tensor  # batch + (N, N): eigenvectors of S_b (float64)
    lam: Tensor  # batch + (N,): eigenvalues of S_b after the §0 cutoff (float64)
    Z: Tensor  # batch + (N, refresh): Qᵀg_j of the window's gradients, zero columns unused
    Cinv: Tensor  # batch + (nodes, refresh, refresh): C_j^{-1}, leading k×k block used
    quad: Tensor  # (2, nodes): weights w_j and poles s_j of the window
    book: Tensor  # (5,): k, lo, hi, window's upper end, nodes in use (0: window unusable)
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None):
    shape = check_shape(shape, where="adagrad_full.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="adagrad_full.init")
    n = numel(shape)
    check_dense_state_bytes(n, batch, dtype, where="adagrad_full.init")
    S = torch.zeros(batch + (n, n), dtype=dtype, device=device)
    if config.solver == "eigh":
        return State(S=S, shape=Static(shape))
    f64 = dict(dtype=torch.float64, device=device)
    K, P = config.refresh, config.nodes
    return IncrementalState(
        S=S,
        Q=torch.eye(n, **f64).expand(batch + (n, n)).clone(),
        lam=torch.zeros(batch + (n,), **f64),
        Z=torch.zeros(batch + (n, K), **f64),
        Cinv=torch.zeros(batch + (P, K, K), **f64),
        quad=torch.zeros(2, P, **f64),
        book=torch.zeros(5, **f64),  # window unusable: the first step decomposes
        shape=Static(shape),
    )


class StateTooLarge(ValueError, MemoryError):
    """A dense statistic refused before allocation (a ValueError for the CLI, a MemoryError by meaning)."""


def max_state_bytes() -> int:
    """The largest dense statistic ``init`` allocates: $MEMOPT_MAX_STATE_BYTES, else half the physical memory."""
    env = os.environ.get("MEMOPT_MAX_STATE_BYTES")
    if env is not None:
        try:
            v = int(float(env))
        except ValueError:
            raise ValueError(f"MEMOPT_MAX_STATE_BYTES must be a number of bytes; got {env!r}") from None
        if v < 1:
            raise ValueError(f"MEMOPT_MAX_STATE_BYTES must be >= 1; got {env!r}")
        return v
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def check_dense_state_bytes(n: int, batch: tuple[int, ...], dtype: torch.dtype, *, where: str) -> None:
    """Refuse an N×N statistic above :func:`max_state_bytes` with its size, instead of an allocator crash."""
    per = n * n * torch.finfo(dtype).bits // 8
    total = per * math.prod(batch)
    limit = max_state_bytes()
    if total > limit:
        raise StateTooLarge(
            f"{where}: full-matrix AdaGrad at N={n} needs {torch.finfo(dtype).bits // 8}·N² = {per:,} bytes "
            f"({per / 2**30:.3g} GiB) per seed, {total:,} bytes for batch {batch}; the limit is {limit:,} bytes "
            "(half the physical memory, or $MEMOPT_MAX_STATE_BYTES); use a sketched method (s_adagrad, O(Nℓ))"
        )


def _h_eigs(lam: Tensor, config: Config) -> Tensor:
    """Eigenvalues of H_t from those of S_t.

    ``eigh`` returns the null space of a singular S_t as eigenvalues of size ≈ ε·λ_1 (either sign); their
    square roots ≈ √ε·√λ_1 would pass any cutoff applied to H, so the §0 cutoff is applied to S_t itself:
    eigenvalues ≤ τ·λ_1(S_t), τ = N·ε_mach, are set to exactly 0 before the root.
    """
    tau = default_rtol(lam.shape[-1], lam.dtype)
    top = lam.amax(dim=-1, keepdim=True).clamp_min(0)
    lam = torch.where(lam > tau * top, lam, torch.zeros_like(lam))
    if config.delta_mode == "inside":
        return (lam + config.delta).sqrt()
    return lam.sqrt() + config.delta


def _cutoff(lam: Tensor) -> Tensor:
    """The §0 cutoff of ``_h_eigs``: eigenvalues ≤ τ·λ_1 (τ = N·ε_mach) set to exactly 0."""
    tau = default_rtol(lam.shape[-1], lam.dtype)
    top = lam.amax(dim=-1, keepdim=True).clamp_min(0)
    return torch.where(lam > tau * top, lam, torch.zeros_like(lam))


def _eigh_direction(S: Tensor, v: Tensor, config: Config) -> tuple[Tensor, Tensor, Tensor]:
    """(u, λ, Q): the reference direction H_t^+ v from one ``eigh`` of S, and that decomposition."""
    lam, Q = sym_eigh(S)
    h = _h_eigs(lam, config)
    hinv = torch.where(h > 0, 1.0 / torch.where(h > 0, h, torch.ones_like(h)), torch.zeros_like(h))  # H^+
    u = Q @ (hinv * (Q.transpose(-1, -2) @ v.to(Q.dtype).unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
    return u.squeeze(-1), lam, Q


def quadrature(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Weights w and poles s (float64, length n) with Σ_j w_j/(x + s_j) ≈ x^{−1/2} on [lo, hi], 0 < lo ≤ hi.

    x^{−1/2} = (2/π)∫_0^∞ dτ/(x + τ²); τ = √lo·sc(u | m), m = 1 − lo/hi, u ∈ (0, K(m)), dτ = √lo·dn/cn² du;
    midpoint rule at u_j = (j + ½)K/n. Nodes past K/2 use sc(u) = 1/(√(1−m)·sc(K − u)) (and the matching
    derivative), which keeps cn near K(m) out of the computation (it loses all digits as m → 1).
    """
    p = lo / hi
    m = 1.0 - p
    K = float(ellipkm1(p))  # K(m) accurate for m near 1
    u = (np.arange(n) + 0.5) * K / n
    first = u <= K / 2
    sn, cn, dn, _ = ellipj(np.where(first, u, K - u), m)
    sc = np.where(first, sn / cn, cn / (np.sqrt(p) * sn))
    deriv = np.where(first, dn / cn**2, dn / (np.sqrt(p) * sn**2))
    return 2.0 * np.sqrt(lo) * K / (np.pi * n) * deriv, lo * sc**2


def quadrature_error(lo: float, hi: float, n: int, points: int = 4000) -> float:
    """max |r(x)·√x − 1| over a log grid of [lo, hi] (``points`` points): the relative error of ``quadrature``."""
    w, s = quadrature(lo, hi, n)
    x = np.geomspace(lo, hi, points)
    r = (w[None, :] / (x[:, None] + s[None, :])).sum(axis=1)
    return float(np.abs(r * np.sqrt(x) - 1.0).max())


def _open_window(S: Tensor, v: Tensor, state: IncrementalState, config: Config):
    """The eigh route for this step, and a new window from its decomposition (module docstring)."""
    u, lam, Q = _eigh_direction(S, v, config)
    lam = _cutoff(lam)
    lo = float(lam.amin()) + config.delta
    hi = float(lam.amax()) + config.delta
    top = 4.0 * (hi + config.refresh * float((v * v).sum(dim=-1).amax()))  # room for `refresh` such gradients
    usable = lo > default_rtol(lam.shape[-1], lam.dtype) * top and lo > 0
    quad, used = torch.zeros_like(state.quad), 0
    if usable:  # the fewest nodes of a ladder up to config.nodes that meet quad_tol on [lo, top]
        for n in sorted(
            {n for n in (8, 12, 16, 20, 24, 32, 40, 48, 64) if n < config.nodes} | {config.nodes}
        ):
            if quadrature_error(lo, top, n) <= config.quad_tol:
                w, s = quadrature(lo, top, n)
                quad[:, :n] = torch.as_tensor(np.stack([w, s]), dtype=torch.float64)
                used = n
                break
    book = torch.tensor([0.0, lo, hi, top, float(used)], dtype=torch.float64, device=state.book.device)
    new = IncrementalState(
        S=S,
        Q=Q,
        lam=lam,
        Z=torch.zeros_like(state.Z),
        Cinv=torch.zeros_like(state.Cinv),
        quad=quad,
        book=book,
        shape=state.shape,
    )
    return u, new


def _incremental_step(S: Tensor, v: Tensor, state: IncrementalState, config: Config):
    k, lo, hi, top, used = state.book.tolist()
    k, used = int(k), int(used)
    hi = hi + float((v * v).sum(dim=-1).amax())  # λ_max(S_t) + δ ≤ λ_max(S_b) + δ + Σ‖g_j‖²
    if not used or k >= config.refresh or hi > top:
        return _open_window(S, v, state, config)
    Q, lam, Z, Cinv = state.Q, state.lam, state.Z, state.Cinv
    z = (Q.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)  # batch + (N,)
    w, s = state.quad[0, :used], state.quad[1, :used]
    D = lam.unsqueeze(-2) + (config.delta + s).unsqueeze(-1)  # batch + (P, N): diagonal of Λ + (δ + s_j)I
    Dz = z.unsqueeze(-2) / D
    Zk = Z[..., :k]  # batch + (N, k)
    c = Dz @ Zk  # batch + (P, k): Z_oldᵀ D_j^{-1} z
    Ck = Cinv[..., :used, :k, :k]
    b = (Ck @ c.unsqueeze(-1)).squeeze(-1)  # C_j,old^{-1} c
    sigma = 1.0 + (z.unsqueeze(-2) * Dz).sum(dim=-1) - (c * b).sum(dim=-1)  # Schur complement, ≥ 1
    X = (z.unsqueeze(-2) - b @ Zk.transpose(-1, -2)) / (D * sigma.unsqueeze(-1))  # (M + s_jI)^{-1}z per pole
    y = (w.unsqueeze(-1) * X).sum(dim=-2)
    u = (Q @ y.unsqueeze(-1)).squeeze(-1)
    Z = Z.clone()
    Z[..., k] = z
    Cinv = Cinv.clone()  # bordering: [[C, c], [cᵀ, γ]]^{-1} = [[C^{-1} + bbᵀ/σ, −b/σ], [−bᵀ/σ, 1/σ]]
    si = (1.0 / sigma).unsqueeze(-1)
    Cinv[..., :used, :k, :k] = Ck + b.unsqueeze(-1) * (b * si).unsqueeze(-2)
    Cinv[..., :used, :k, k] = -b * si
    Cinv[..., :used, k, :k] = -b * si
    Cinv[..., :used, k, k] = si.squeeze(-1)
    book = torch.tensor([k + 1.0, lo, hi, top, used], dtype=torch.float64, device=state.book.device)
    return u, state._replace(S=S, Z=Z, Cinv=Cinv, book=book)


def update(grad: Tensor, state, config: Config, *, param: Tensor | None = None):
    """u_t = H_t^+ g_t with S_t = S_{t−1} + g_tg_tᵀ (the state after g_t is absorbed)."""
    batch = tuple(state.S.shape[:-2])
    full = batch + tuple(state.shape)
    g = prepare_grad(grad, full, state.S.dtype, where="adagrad_full.update")
    check_param(param, full, where="adagrad_full.update", needed=False)
    v = g.reshape(*batch, -1)
    S = torch.baddbmm(
        state.S.reshape(-1, *state.S.shape[-2:]), v.reshape(-1, v.shape[-1], 1), v.reshape(-1, 1, v.shape[-1])
    ).reshape(state.S.shape)  # S + vvᵀ, one kernel
    if config.solver == "eigh":
        u, _, _ = _eigh_direction(S, v, config)
        return u.reshape(grad.shape).to(grad.dtype), State(S=S, shape=state.shape)
    u, new = _incremental_step(S, v.to(torch.float64), state, config)
    return u.reshape(grad.shape).to(grad.dtype), new


def memory(shape, config: Config) -> int:
    n = numel(shape)
    if config.solver == "eigh":
        return n**2
    K, P = config.refresh, config.nodes
    return 2 * n**2 + n + n * K + P * K * K + 2 * P + 5


def metric(state, config: Config) -> LowRankPlusScaled:
    """H_t in its eigenbasis: Q diag(h) Qᵀ with all N eigenvectors (U = Q, c = 0), so that an H-norm projection
    reuses this ``eigh`` instead of decomposing a dense H again; ``.dense()`` gives the N×N matrix. Both solvers
    hold the exact S_t and decompose it here (a learner asks only when x_t − ηu_t leaves the domain); at the
    step that decomposed S_t (k = 0, or the initial S = 0 = I·0·I) that decomposition is reused."""
    if isinstance(state, IncrementalState) and int(state.book[0]) == 0:
        lam, Q = state.lam, state.Q
    else:
        lam, Q = sym_eigh(state.S)
    h = _h_eigs(lam, config).to(state.S.dtype)
    c = torch.zeros(h.shape[:-1], dtype=h.dtype, device=h.device)
    return LowRankPlusScaled(U=Q.to(state.S.dtype), s=h, c=c, shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """(D²/(2η) + η)·tr (G_t + δI)^{1/2}."""
    from memopt_theory import bounds

    return bounds.adagrad_full_regret_bound(
        q.need("G"), q.D, q.eta, delta=q.config.delta, delta_mode=q.config.delta_mode
    )


GUARANTEE = Guarantee(
    title="AdaGrad (D²/2η+η)tr G^½",
    theorem="R^lin_T ≤ (D²/(2η) + η)·tr G_T^{1/2} (= √2·D·tr G_T^{1/2} at η = D/√2)",
    reference="Duchi, Hazan, Singer 2011 (JMLR 12); Hazan, Introduction to Online Convex Optimization, ch. 5",
    bound=_bound,
    theory_eta=eta_d_over_sqrt2,
    needs=frozenset({"dense_G"}),
)

METHODS = (
    Method(
        "adagrad_full",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/baselines.md §A3",
        guarantee=GUARANTEE,
        default_lr=1e-1,
    ),
)
