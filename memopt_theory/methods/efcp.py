r"""EFCP — ``ef_mfac`` and ``ef_ggt`` (docs/theory/compressed.md §D5; Modoranu, Kalinov, Kurtic, Frantar, Alistarh, ICML 2024).

Update
------
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

**Low rank** (``compressor="lowrank"``; LR-MFAC): the parameter as (rows × rest), PowerSGD rank r with EF,
warm-started at the previous row's Q; the Gram from ⟨P_1Q_1ᵀ, P_2Q_2ᵀ⟩ = Σ(P_1ᵀP_2) ⊙ (Q_1ᵀQ_2); direction
λ^{−1}PQᵀ − Σ_jc_jP_jQ_jᵀ; EMA momentum. Ring memory m·r(a + b) + N (EF). See methods/_windows.py.

Oracles: density 1 ⇒ e ≡ 0 and ef_mfac ≡ mfac (μ = 0, wd = 0, lr = 1), ef_ggt ≡ ggt (β1 = 0, β2 = 1); the D2
identity Σc = Σg − e. No guarantee beyond D2; no H-norm metric (unconstrained only).

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): ``ef_mfac``: the sparse ring's values + 3w² + w + 1 + N error feedback (+ N momentum); the ring's indices are counted in ``bits``. ``ef_ggt``: the sparse ring's values + r² + 1 + N error feedback; indices in ``bits``.

Guarantee
---------
``ef_mfac``: none — no regret bound is claimed or checked for this rule.
``ef_ggt``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D5; arXiv 2306.06098.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("ef_mfac")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 3147789)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods import _windows as W
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods.ggt import ggt_coefficients
from memopt_theory.methods.mfac import replace_row_col, woodbury_coefficients, woodbury_setup
from memopt_theory.validation import check_choice, check_int, check_real, numel


@dataclass(frozen=True, kw_only=True)
class MFACConfig:
    """S-MFAC: ``window`` m ≥ 1, ``damp`` λ > 0, ``density`` ∈ (0, 1], heavy-ball ``momentum`` μ ∈ [0, 1),
    ``lr`` η > 0, ``weight_decay`` ≥ 0 and ``wd_mode`` ∈ {'wd', 'reg', 'both'} (§D5 step 4/6); ``compressor``
    'topk' (density) or 'lowrank' (``rank`` r ≥ 1, power iteration seeded by ``seed``; LR-MFAC, EMA momentum)."""

    window: int = 1024
    damp: float = 1e-4
    density: float = 0.01
    momentum: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    wd_mode: str = "wd"
    compressor: str = "topk"
    rank: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        w = "ef_mfac.Config"
        _check_compressor(self, w)
        check_int(self.window, "window", where=w, low=1)
        check_real(self.damp, "damp", where=w, low=0.0, low_open=True)
        check_real(self.density, "density", where=w, low=0.0, high=1.0, low_open=True)
        check_real(self.momentum, "momentum", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)
        check_choice(self.wd_mode, "wd_mode", ("wd", "reg", "both"), where=w)


@dataclass(frozen=True, kw_only=True)
class GGTConfig:
    """Sparse GGT: ``window`` r ≥ 1, ``density`` ∈ (0, 1], ε > 0 (δ-outside damping); ``compressor`` 'topk'
    or 'lowrank' (``rank``, ``seed``)."""

    window: int = 100
    density: float = 0.01
    eps: float = 1e-5
    compressor: str = "topk"
    rank: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        w = "ef_ggt.Config"
        _check_compressor(self, w)
        check_int(self.window, "window", where=w, low=1)
        check_real(self.density, "density", where=w, low=0.0, high=1.0, low_open=True)
        check_real(self.eps, "eps", where=w, low=0.0, low_open=True)


class MFACState(NamedTuple):
    ring: Any  # _windows.SparseRing or LowRankRing
    K: Tensor
    D: Tensor
    B: Tensor
    den: Tensor
    t: Tensor
    v: Tensor | None
    shape: Static


class GGTState(NamedTuple):
    ring: Any  # _windows.SparseRing or LowRankRing
    gram: Tensor  # batch + (r, r)
    t: Tensor
    shape: Static


def _ring_init(shape, config, batch, dtype, device, where):
    if config.compressor == "topk":
        return W.sparse_init(shape, config.window, config.density, batch, dtype, device, where)
    return W.lowrank_init(shape, config.window, config.rank, batch, dtype, device, where)


def _ring_memory(shape, config, where) -> tuple[int, int]:
    if config.compressor == "topk":
        return W.sparse_memory(shape, config.window, config.density, where)
    return W.lowrank_memory(shape, config.window, config.rank, where), 0


def _check_compressor(config, where: str) -> None:
    check_choice(config.compressor, "compressor", ("topk", "lowrank"), where=where)
    check_int(config.rank, "rank", where=where, low=1)
    check_int(config.seed, "seed", where=where, low=0)


def mfac_init(shape, config: MFACConfig, *, batch=(), dtype=torch.float64, device=None) -> MFACState:
    shape = check_shape(shape, where="ef_mfac.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ef_mfac.init")
    m = config.window
    z = torch.zeros(batch + (m, m), dtype=dtype, device=device)
    D, B, den = woodbury_setup(z, config.damp)
    n = numel(shape)
    return MFACState(
        ring=_ring_init(shape, config, batch, dtype, device, "ef_mfac.init"),
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
    c, ring, oh, Cc = W.insert(state.ring, g, state.t, seed=config.seed)
    K = replace_row_col(state.K, oh, Cc)
    D, B, den = woodbury_setup(K, config.damp)
    coef = woodbury_coefficients(Cc, D, B, den, config.damp)
    u = c / config.damp - W.combine(ring, coef)
    w = param.to(g.dtype).reshape(*batch, -1) if param is not None and config.weight_decay > 0 else None
    if w is not None and config.wd_mode in ("reg", "both"):
        u = u + (config.weight_decay / config.damp) * w
    v = state.v
    if v is not None:  # heavy ball for S-MFAC, EMA for LR-MFAC (§D5)
        ema = config.compressor == "lowrank"
        v = config.momentum * v + ((1 - config.momentum) * u if ema else u)
        u = v
    step = config.lr * u
    if w is not None and config.wd_mode in ("wd", "both"):
        step = step + config.weight_decay * w
    new = MFACState(ring=ring, K=K, D=D, B=B, den=den, t=state.t + 1, v=v, shape=state.shape)
    return step.reshape(batch + shape).to(grad.dtype), new


def mfac_memory(shape, config: MFACConfig) -> int:
    n, m = numel(shape), config.window
    ring, _ = _ring_memory(tuple(shape), config, "ef_mfac.memory")
    return ring + 3 * m * m + m + 1 + (n if config.momentum > 0 else 0)


def mfac_bits(shape, config: MFACConfig) -> int:
    return _ring_memory(tuple(shape), config, "ef_mfac.bits")[1]


def ggt_init(shape, config: GGTConfig, *, batch=(), dtype=torch.float64, device=None) -> GGTState:
    shape = check_shape(shape, where="ef_ggt.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ef_ggt.init")
    r = config.window
    return GGTState(
        ring=_ring_init(shape, config, batch, dtype, device, "ef_ggt.init"),
        gram=torch.zeros(batch + (r, r), dtype=dtype, device=device),
        t=torch.zeros(batch, dtype=dtype, device=device),
        shape=Static(shape),
    )


def ggt_update(grad: Tensor, state: GGTState, config: GGTConfig, *, param: Tensor | None = None):
    """u_t = ((CᵀC)^{1/2} + εI)^{−1}c_t over the window C of compressed gradients (caller: x ← x − ηu_t)."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.gram.dtype, where="ef_ggt.update").reshape(*batch, -1)
    c, ring, oh, Cc = W.insert(state.ring, g, state.t, seed=config.seed)
    gram = replace_row_col(state.gram, oh, Cc)
    alpha = ggt_coefficients(gram, Cc, config.eps)
    u = W.combine(ring, alpha) + c / config.eps
    new = GGTState(ring=ring, gram=gram, t=state.t + 1, shape=state.shape)
    return u.reshape(batch + shape).to(grad.dtype), new


def ggt_memory(shape, config: GGTConfig) -> int:
    r = config.window
    return _ring_memory(tuple(shape), config, "ef_ggt.memory")[0] + r * r + 1


def ggt_bits(shape, config: GGTConfig) -> int:
    return _ring_memory(tuple(shape), config, "ef_ggt.bits")[1]


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
        reference="docs/theory/compressed.md §D5; arXiv 2306.06098",
        roles={"lr": "lr", "rank": "rank"},
        default_lr=1e-3,
    ),
    Method(
        "ef_ggt",
        GGTConfig,
        ggt_init,
        ggt_update,
        ggt_memory,
        metric,
        bits=ggt_bits,
        reference="docs/theory/compressed.md §D5; arXiv 2306.06098",
        roles={"rank": "rank"},
        default_lr=1e-1,
    ),
)
