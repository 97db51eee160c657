r"""EFCP — ``ef_mfac`` and ``ef_ggt`` (ALGORITHMS.md §D5; Modoranu, Kalinov, Kurtic, Frantar, Alistarh, ICML 2024).

Gradients are compressed with error feedback *before* they enter the preconditioner's window:
a = e + g, c = top-k(a) (k = ⌊density·N⌋, 99 % sparsity = density 0.01), e ← a − c. The window holds the k values and
k indices of each c (int32 while N < 2³¹, else int64), so the memory saving is real: no dense window exists,
only the current c is densified (transient N).

**S-MFAC** (``ef_mfac``, EFCP's ``SparseGradientMFAC``): c enters the ring (row/column of K = CCᵀ by sparse
dots), the dynamic algorithm of §D4 (shared with ``mfac``) gives u = F̂^{−1}c with F̂ = λI + (1/m)Σ_window c_ic_iᵀ;
modes 'reg'/'both' add (wd/λ)·w; heavy-ball v = μv + u (not D4's EMA); modes 'wd'/'both' decay w ← w(1 − wd)
*without* η, then w ← w − ηu. That decay has its own rule, so ``ef_mfac`` is ``full_step``: its Config holds
``lr`` and the direction is wd·w + lr·u (the caller applies w ← w − direction).
State: values + indices (mk each), e (N), K, D, B (3m²), den (m), t: mk + N + 3m² + m + 1 (+ N momentum) scalars and
mk·b_idx bits.

**Sparse GGT** (``ef_ggt``): the same EF top-k, a window of c_t with no decay (β2 = 1), and §D3's direction with
m_t := c_t (β1 = 0) through the stored r×r Gram; the caller applies x ← x − ηu (not full_step).
State: values + indices (rk), e (N), Gram (r²), t: rk + N + r² + 1 scalars, rk·b_idx bits (E.2's rk + d + r² plus
the ring counter).

Oracles: density 1 ⇒ e ≡ 0 and ef_mfac ≡ mfac (μ = 0, wd = 0, lr = 1), ef_ggt ≡ ggt (β1 = 0, β2 = 1); the D2
identity Σc = Σg − e. No guarantee beyond D2; no H-norm metric (unconstrained only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.compressors import EFState, ErrorFeedback, TopK, k_of_density
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods.ggt import ggt_coefficients, ring_slot
from memopt_theory.methods.mfac import replace_row_col, woodbury_coefficients, woodbury_setup
from memopt_theory.validation import check_choice, check_int, check_real, numel


def index_dtype(n: int) -> torch.dtype:
    """The narrowest of int32/int64 holding indices < n."""
    return torch.int32 if n < 2**31 else torch.int64


def index_bits(n: int) -> int:
    return 32 if n < 2**31 else 64


@dataclass(frozen=True, kw_only=True)
class MFACConfig:
    """S-MFAC: ``window`` m ≥ 1, ``damp`` λ > 0, ``density`` ∈ (0, 1], heavy-ball ``momentum`` μ ∈ [0, 1),
    ``lr`` η > 0, ``weight_decay`` ≥ 0 and ``wd_mode`` ∈ {'wd', 'reg', 'both'} (§D5 step 4/6)."""

    window: int = 1024
    damp: float = 1e-4
    density: float = 0.01
    momentum: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    wd_mode: str = "wd"

    def __post_init__(self) -> None:
        w = "ef_mfac.Config"
        check_int(self.window, "window", where=w, low=1)
        check_real(self.damp, "damp", where=w, low=0.0, low_open=True)
        check_real(self.density, "density", where=w, low=0.0, high=1.0, low_open=True)
        check_real(self.momentum, "momentum", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)
        check_choice(self.wd_mode, "wd_mode", ("wd", "reg", "both"), where=w)


@dataclass(frozen=True, kw_only=True)
class GGTConfig:
    """Sparse GGT: ``window`` r ≥ 1, ``density`` ∈ (0, 1], ε > 0 (δ-outside damping)."""

    window: int = 100
    density: float = 0.01
    eps: float = 1e-5

    def __post_init__(self) -> None:
        w = "ef_ggt.Config"
        check_int(self.window, "window", where=w, low=1)
        check_real(self.density, "density", where=w, low=0.0, high=1.0, low_open=True)
        check_real(self.eps, "eps", where=w, low=0.0, low_open=True)


class SparseRing(NamedTuple):
    values: Tensor  # batch + (m, k)
    indices: Tensor  # batch + (m, k), int32/int64
    e: Tensor  # batch + (N,): error feedback buffer


class MFACState(NamedTuple):
    ring: SparseRing
    K: Tensor
    D: Tensor
    B: Tensor
    den: Tensor
    t: Tensor
    v: Tensor | None
    shape: Static


class GGTState(NamedTuple):
    ring: SparseRing
    gram: Tensor  # batch + (r, r)
    t: Tensor
    shape: Static


def _ring_init(shape, window, density, batch, dtype, device, where) -> SparseRing:
    n = numel(shape)
    k = k_of_density(density, n, where=where)
    return SparseRing(
        values=torch.zeros(batch + (window, k), dtype=dtype, device=device),
        indices=torch.zeros(batch + (window, k), dtype=index_dtype(n), device=device),
        e=torch.zeros(batch + (n,), dtype=dtype, device=device),
    )


def _ring_insert(ring: SparseRing, g: Tensor, t: Tensor) -> tuple[Tensor, SparseRing, Tensor, Tensor]:
    """EF top-k of g (batch + (N,)) into slot t mod m; returns (c dense, new ring, one-hot slot, C c)."""
    m, k = ring.values.shape[-2:]
    c, (vals, idx), ef = ErrorFeedback(TopK(k=k)).step(g, EFState(e=ring.e, comp=None))
    oh = ring_slot(t, m)
    values = ring.values * (1 - oh.unsqueeze(-1)) + oh.unsqueeze(-1) * vals.unsqueeze(-2)
    indices = torch.where(oh.unsqueeze(-1) > 0, idx.to(ring.indices.dtype).unsqueeze(-2), ring.indices)
    # ⟨c_j, c⟩ for every ring row j by sparse dots: gather c at the row's indices
    dense = c.unsqueeze(-2).expand(*c.shape[:-1], m, c.shape[-1])
    Cc = (torch.gather(dense, -1, indices.long()) * values).sum(-1)
    return c, SparseRing(values=values, indices=indices, e=ef.e), oh, Cc


def _ring_transpose_apply(ring: SparseRing, coef: Tensor, n: int) -> Tensor:
    """Σ_j coef_j c_j (batch + (N,)) by a scatter-add of the stored values."""
    batch = coef.shape[:-1]
    src = (coef.unsqueeze(-1) * ring.values).reshape(*batch, -1)
    out = torch.zeros(batch + (n,), dtype=coef.dtype, device=coef.device)
    return out.scatter_add(-1, ring.indices.long().reshape(*batch, -1), src)


def mfac_init(shape, config: MFACConfig, *, batch=(), dtype=torch.float64, device=None) -> MFACState:
    shape = check_shape(shape, where="ef_mfac.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ef_mfac.init")
    m = config.window
    z = torch.zeros(batch + (m, m), dtype=dtype, device=device)
    D, B, den = woodbury_setup(z, config.damp)
    n = numel(shape)
    return MFACState(
        ring=_ring_init(shape, m, config.density, batch, dtype, device, "ef_mfac.init"),
        K=z,
        D=D,
        B=B,
        den=den,
        t=torch.zeros(batch, dtype=dtype, device=device),
        v=torch.zeros(batch + (n,), dtype=dtype, device=device) if config.momentum > 0 else None,
        shape=Static(shape),
    )


def mfac_update(grad: Tensor, state: MFACState, config: MFACConfig, *, param: Tensor | None = None):
    """The whole S-MFAC step wd·w + η·u (mode 'wd'/'both') or η·u (mode 'reg'); the caller applies w ← w − step."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.K.dtype, where="ef_mfac.update").reshape(*batch, -1)
    check_param(param, batch + shape, where="ef_mfac.update", needed=config.weight_decay > 0)
    n = g.shape[-1]
    c, ring, oh, Cc = _ring_insert(state.ring, g, state.t)
    K = replace_row_col(state.K, oh, Cc)
    D, B, den = woodbury_setup(K, config.damp)
    coef = woodbury_coefficients(Cc, D, B, den, config.damp)
    u = c / config.damp - _ring_transpose_apply(ring, coef, n)
    w = param.to(g.dtype).reshape(*batch, -1) if config.weight_decay > 0 else None
    if w is not None and config.wd_mode in ("reg", "both"):
        u = u + (config.weight_decay / config.damp) * w
    v = state.v
    if v is not None:
        v = config.momentum * v + u
        u = v
    step = config.lr * u
    if w is not None and config.wd_mode in ("wd", "both"):
        step = step + config.weight_decay * w
    new = MFACState(ring=ring, K=K, D=D, B=B, den=den, t=state.t + 1, v=v, shape=state.shape)
    return step.reshape(batch + shape).to(grad.dtype), new


def mfac_memory(shape, config: MFACConfig) -> int:
    n, m = numel(shape), config.window
    k = k_of_density(config.density, n, where="ef_mfac.memory")
    return m * k + n + 3 * m * m + m + 1 + (n if config.momentum > 0 else 0)


def mfac_bits(shape, config: MFACConfig) -> int:
    n = numel(shape)
    return config.window * k_of_density(config.density, n, where="ef_mfac.bits") * index_bits(n)


def ggt_init(shape, config: GGTConfig, *, batch=(), dtype=torch.float64, device=None) -> GGTState:
    shape = check_shape(shape, where="ef_ggt.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ef_ggt.init")
    r = config.window
    return GGTState(
        ring=_ring_init(shape, r, config.density, batch, dtype, device, "ef_ggt.init"),
        gram=torch.zeros(batch + (r, r), dtype=dtype, device=device),
        t=torch.zeros(batch, dtype=dtype, device=device),
        shape=Static(shape),
    )


def ggt_update(grad: Tensor, state: GGTState, config: GGTConfig, *, param: Tensor | None = None):
    """u_t = ((CᵀC)^{1/2} + εI)^{−1}c_t over the window C of compressed gradients (caller: x ← x − ηu_t)."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.gram.dtype, where="ef_ggt.update").reshape(*batch, -1)
    c, ring, oh, Cc = _ring_insert(state.ring, g, state.t)
    gram = replace_row_col(state.gram, oh, Cc)
    alpha = ggt_coefficients(gram, Cc, config.eps)
    u = _ring_transpose_apply(ring, alpha, g.shape[-1]) + c / config.eps
    new = GGTState(ring=ring, gram=gram, t=state.t + 1, shape=state.shape)
    return u.reshape(batch + shape).to(grad.dtype), new


def ggt_memory(shape, config: GGTConfig) -> int:
    n, r = numel(shape), config.window
    return r * k_of_density(config.density, n, where="ef_ggt.memory") + n + r * r + 1


def ggt_bits(shape, config: GGTConfig) -> int:
    n = numel(shape)
    return config.window * k_of_density(config.density, n, where="ef_ggt.bits") * index_bits(n)


def metric(state, config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "ef_mfac",
        MFACConfig,
        mfac_init,
        mfac_update,
        mfac_memory,
        metric,
        bits=mfac_bits,
        full_step=True,
        reference="ALGORITHMS.md §D5; arXiv 2306.06098",
    ),
    Method(
        "ef_ggt",
        GGTConfig,
        ggt_init,
        ggt_update,
        ggt_memory,
        metric,
        bits=ggt_bits,
        reference="ALGORITHMS.md §D5; arXiv 2306.06098",
    ),
)
