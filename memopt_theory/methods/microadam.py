r"""MicroAdam — ``microadam`` (reference point; docs/theory/compressed.md §D8; Modoranu et al., NeurIPS 2024;
IST-DASLab/ISTA-DASLab-Optimizers).

Update
------
Adam statistics recomputed each step from a ring of m sparse gradients, with the dropped mass kept as a 4-bit
quantised error (§D1 quantiser, blocks of B_q entries). Step t = 1, 2, …:

1. a = g + Q^{−1}(e).
2. Block-wise top-k of |a| (blocks of B_k ≤ 32768 entries, k_b = max(1, ⌊density·B_k⌋) per block, indices
   block-relative in int16 — 0..32767 fits, unlike the reference package, whose blocks can exceed int16) into ring
   row (t − 1) mod m; a[I] ← 0; e ← Q(a).
3. m̂ = ((1−β1)/(1−β1^t))Σ_rows β1^{age}V_row, v̂ = ((1−β2)/(1−β2^t))Σ_rows β2^{age}V_row² (densified),
   age = (t − 1 − row) mod m (rows not yet written are zero).
4. step = η·wd·θ + η·m̂/(√v̂ + ε) (θ(1 − η·wd) first, then the Adam step; the caller applies θ ← θ − step).

Oracle (derived): density 1 selects every entry, so a[I] ← 0 leaves 0, Q(0) = 0 exactly (constant block) and
e ≡ 0; for t ≤ m the ring holds g_1..g_t and m̂ = ((1−β1)/(1−β1^t))Σ_s β1^{t−s}g_s is Adam's bias-corrected
first moment (v̂ likewise), so MicroAdam = Adam (standard ε).
State: values (mk, state dtype; the reference uses bf16), block minima/maxima (2⌈N/B_q⌉), t:
mk + 2⌈N/B_q⌉ + 1 scalars; bits 8⌈N/2⌉ (4-bit codes, 2 a byte) + 16mk (int16 indices) — E.2's 4N + 16wk.
No guarantee; no H-norm metric.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): w·(kept entries per block)·blocks + 2⌈N/B_q⌉ + 1, plus 4N + 16wk bits (4-bit error feedback, int16 indices).

Guarantee
---------
``microadam``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D8; arXiv 2405.15593.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("microadam")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 13)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.compressors import dequantize4, quantize4, top_k
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods.ggt import ring_slot
from memopt_theory.validation import check_int, check_real, numel

MAX_TOPK_BLOCK = 32768  # block-relative indices 0..32767 fit a signed int16


@dataclass(frozen=True, kw_only=True)
class Config:
    """MicroAdam: lr η > 0, ``window`` m ≥ 1, ``density`` ∈ (0, 1], β1, β2 ∈ [0, 1), ε ≥ 0, weight_decay ≥ 0,
    ``quant_block`` B_q ≥ 1, ``topk_block`` B_k ∈ [1, 32768]."""

    lr: float = 1e-3
    window: int = 10
    density: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    quant_block: int = 100_000
    topk_block: int = MAX_TOPK_BLOCK

    def __post_init__(self) -> None:
        w = "microadam.Config"
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        check_int(self.window, "window", where=w, low=1)
        check_real(self.density, "density", where=w, low=0.0, high=1.0, low_open=True)
        check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.eps, "eps", where=w, low=0.0)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)
        check_int(self.quant_block, "quant_block", where=w, low=1)
        check_int(self.topk_block, "topk_block", where=w, low=1, high=MAX_TOPK_BLOCK)


class State(NamedTuple):
    values: Tensor  # batch + (m, k)
    indices: Tensor  # batch + (m, k) int16, block-relative
    codes: Tensor  # batch + (⌈N/2⌉,) uint8: the 4-bit error e
    lo: Tensor  # batch + (⌈N/B_q⌉,)
    hi: Tensor  # batch + (⌈N/B_q⌉,)
    t: Tensor  # batch
    shape: Static


def _blocks(N: int, config: Config) -> tuple[int, int, int]:
    """(block size B, number of blocks, k per block)."""
    B = min(config.topk_block, N)
    return B, -(-N // B), max(1, int(config.density * B))


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="microadam.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="microadam.init")
    N = numel(shape)
    _, nb, kb = _blocks(N, config)
    k, nq = nb * kb, -(-N // config.quant_block)
    return State(
        values=torch.zeros(batch + (config.window, k), dtype=dtype, device=device),
        indices=torch.zeros(batch + (config.window, k), dtype=torch.int16, device=device),
        codes=torch.zeros(batch + ((N + 1) // 2,), dtype=torch.uint8, device=device),
        lo=torch.zeros(batch + (nq,), dtype=dtype, device=device),
        hi=torch.zeros(batch + (nq,), dtype=dtype, device=device),
        t=torch.zeros(batch, dtype=dtype, device=device),
        shape=Static(shape),
    )


def _densify_rows(values: Tensor, indices: Tensor, N: int, B: int, nb: int) -> Tensor:
    """Ring rows as dense batch + (m, N) (block-relative indices → global)."""
    kb = values.shape[-1] // nb
    offset = (torch.arange(nb, device=values.device) * B).repeat_interleave(kb)
    glob = indices.long() + offset
    out = torch.zeros((*values.shape[:-1], nb * B), dtype=values.dtype, device=values.device)
    return out.scatter(-1, glob, values)[..., :N]


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole MicroAdam step η·wd·θ + η·m̂/(√v̂ + ε); the caller applies θ ← θ − step."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.values.dtype, where="microadam.update").reshape(*batch, -1)
    check_param(param, batch + shape, where="microadam.update", needed=config.weight_decay > 0)
    N, Bq, m = g.shape[-1], config.quant_block, config.window
    B, nb, kb = _blocks(N, config)
    a = g + dequantize4(state.codes, state.lo, state.hi, N, Bq)
    ab = torch.nn.functional.pad(a, (0, nb * B - N)).reshape(*batch, nb, B)
    vals, idx = top_k(
        ab, kb
    )  # per block; padding is 0 and ties go to the lowest index, so real entries first
    vals, idx = vals.reshape(*batch, -1), idx.reshape(*batch, -1)
    oh = ring_slot(state.t, m).unsqueeze(-1)
    values = state.values * (1 - oh) + oh * vals.unsqueeze(-2)
    indices = torch.where(oh > 0, idx.to(torch.int16).unsqueeze(-2), state.indices)
    kept_mask = (
        _densify_rows(torch.ones_like(vals).unsqueeze(-2), idx.unsqueeze(-2), N, B, nb).squeeze(-2) > 0
    )
    codes, lo, hi = quantize4(torch.where(kept_mask, 0.0, a), Bq)
    t = state.t + 1
    rows = torch.arange(m, device=g.device, dtype=g.dtype)
    age = torch.remainder(t.unsqueeze(-1) - 1 - rows, m)  # batch + (m,)
    V = _densify_rows(values, indices, N, B, nb)  # batch + (m, N)
    b1, b2 = config.beta1, config.beta2
    tb = t.unsqueeze(-1)
    m_hat = ((1 - b1) / (1 - b1**tb)) * ((b1**age).unsqueeze(-2) @ V).squeeze(-2)
    v_hat = ((1 - b2) / (1 - b2**tb)) * ((b2**age).unsqueeze(-2) @ (V * V)).squeeze(-2)
    step = config.lr * m_hat / (v_hat.sqrt() + config.eps)
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=weight_decay > 0) refused None
        step = step + config.lr * config.weight_decay * param.to(step.dtype).reshape(*batch, -1)
    new = State(values, indices, codes, lo, hi, t, state.shape)
    return step.reshape(batch + shape).to(grad.dtype), new


def memory(shape, config: Config) -> int:
    N = numel(shape)
    _, nb, kb = _blocks(N, config)
    return config.window * nb * kb + 2 * (-(-N // config.quant_block)) + 1


def bits(shape, config: Config) -> int:
    N = numel(shape)
    _, nb, kb = _blocks(N, config)
    return 8 * ((N + 1) // 2) + 16 * config.window * nb * kb


def metric(state: State, config: Config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "microadam",
        Config,
        init,
        update,
        memory,
        metric,
        bits=bits,
        full_step=True,
        reference="docs/theory/compressed.md §D8; arXiv 2405.15593",
        roles={"lr": "lr"},
        default_lr=1e-2,
    ),
)
