r"""SMMF — ``smmf`` (docs/theory/compressed.md §D6; Park & Lee, AAAI 2025, arXiv 2412.08894; eai-lab/SMMF).

Update
------
Any tensor of N entries is viewed as its most square matrix (n̂, m̂) (``factorization.square_shape``). The first
moment is stored as rank-one non-negative factors of |M| plus its sign (packed 8 to a byte), the second as
rank-one factors of V; each step decompresses, updates and recompresses, t = 1, 2, …:

    M̂ = (2S − 1) ⊙ r_Mc_Mᵀ,  V̂ = r_Vc_Vᵀ                     (factors start at 0)
    β1,t = β1·λ^{t−1},  β2,t = 1 − t^γ                          (β2,1 = 0)
    M = β1,tM̂ + (1 − β1,t)Ĝ,  V = β2,tV̂ + (1 − β2,t)Ĝ²
    S = 1[M > 0],  (r_M, c_M) = NNMF(|M|),  (r_V, c_V) = NNMF(V)
    step = η·wd·θ + η·reshape⁻¹(M/(√V + ε))                     (this step's *uncompressed* M, V; no bias correction)

Why the factors are Adafactor's factored estimate (the test's oracle). NNMF keeps the row sums r = A1 and the
column sums (up to the normalisation of the shorter factor, which sums to 1), and V̂_{t−1}1 = r_V(c_Vᵀ1) = r_V
(n̂ ≥ m̂; symmetrically otherwise). Row and column sums are linear, so by induction V_t1 and 1ᵀV_t equal those of the
*dense* β2,t-EMA V^dense_t of Ĝ², and r_Vc_Vᵀ = (V^dense_t 1)(1ᵀV^dense_t)/(1ᵀV^dense_t 1) — Adafactor's V̂ with ε1 = 0.
N prime ⇒ (n̂, m̂) = (N, 1), NNMF is exact, and SMMF is dense Adam without bias correction under the β1,t, β2,t
schedules.

Full step (own lr and decoupled decay, mode 'adamw'): the caller applies θ ← θ − step. ``beta1=None`` drops the
first moment and the sign. ``vector_reshape=False`` sends tensors whose squeezed shape is 1-D to a dense path with
the same schedules; 0-d tensors stay factored.
State: r_M, c_M, r_V, c_V, t: 2(n̂ + m̂) + 1 scalars + 8⌈N/8⌉ sign bits (N bits rounded up to whole bytes; the
official code's torch.bool spends 8N); β1 = None: n̂ + m̂ + 1 and no sign; dense path: 2N + 1 (N + 1).
No regret inequality is specified (§D6: the AdamNC template's constants for SMMF are unknown); no H-norm metric.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): 2(n̂ + m̂) + 1 for the square matricisation n̂×m̂ of N (n̂ + m̂ + 1 without momentum), plus N sign bits in ``bits``.

Guarantee
---------
``smmf``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D6; arXiv 2412.08894.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("smmf")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 15)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.factorization import nnmf, pack_signs, packed_bytes, square_shape, unpack_signs
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.validation import check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """SMMF: lr η > 0, β1 ∈ [0, 1) or None, ε ≥ 0, weight_decay ≥ 0, decay_rate γ ∈ [−1, 0), growth_rate
    λ ∈ (0, 1], vector_reshape (factor 1-D tensors too)."""

    lr: float = 1e-3
    beta1: float | None = 0.9
    eps: float = 1e-8
    weight_decay: float = 0.0
    decay_rate: float = -0.5
    growth_rate: float = 0.999
    vector_reshape: bool = True

    def __post_init__(self) -> None:
        w = "smmf.Config"
        check_real(self.lr, "lr", where=w, low=0.0, low_open=True)
        if self.beta1 is not None:
            check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.eps, "eps", where=w, low=0.0)
        check_real(self.weight_decay, "weight_decay", where=w, low=0.0)
        # β2,t = 1 − t^γ must lie in [0, 1): γ < 0 (γ ≥ −1 keeps the average at least as long as AdaGrad's 1/t)
        check_real(self.decay_rate, "decay_rate", where=w, low=-1.0, high=0.0, high_open=True)
        check_real(self.growth_rate, "growth_rate", where=w, low=0.0, high=1.0, low_open=True)
        if not isinstance(self.vector_reshape, bool):
            raise TypeError(f"{w}: vector_reshape must be a bool; got {self.vector_reshape!r}")


class State(NamedTuple):
    r_M: Tensor | None  # batch + (n̂,)   (dense path: M, batch + (N,))
    c_M: Tensor | None  # batch + (m̂,)   (dense path: None)
    sign: Tensor | None  # batch + (⌈N/8⌉,) uint8, packed 1[M > 0]
    r_V: Tensor  # batch + (n̂,)      (dense path: V, batch + (N,))
    c_V: Tensor | None  # batch + (m̂,)
    t: Tensor  # batch
    shape: Static


def _is_dense_path(shape: tuple[int, ...], config: Config) -> bool:
    return not config.vector_reshape and len(shape) > 0 and sum(s > 1 for s in shape) == 1


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="smmf.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="smmf.init")
    N = numel(shape)

    def z(*s):
        return torch.zeros(batch + s, dtype=dtype, device=device)

    mom = config.beta1 is not None
    t = z()
    if _is_dense_path(shape, config):
        return State(z(N) if mom else None, None, None, z(N), None, t, Static(shape))
    n, m = square_shape(N)
    sign = torch.zeros(batch + (packed_bytes(N),), dtype=torch.uint8, device=device) if mom else None
    return State(z(n) if mom else None, z(m) if mom else None, sign, z(n), z(m), t, Static(shape))


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """The whole SMMF step η·wd·θ + η·M/(√V + ε); the caller applies θ ← θ − step."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.r_V.dtype, where="smmf.update")
    check_param(param, batch + shape, where="smmf.update", needed=config.weight_decay > 0)
    N = numel(shape)
    t = state.t + 1
    tb = t.reshape(*batch, 1, 1)
    b2 = 1 - tb**config.decay_rate
    dense = state.c_V is None
    G = g.reshape(*batch, N, 1) if dense else g.reshape(*batch, *square_shape(N))
    if dense:
        V = b2 * state.r_V.unsqueeze(-1) + (1 - b2) * G * G
        M_hat = None if state.r_M is None else state.r_M.unsqueeze(-1)
    else:
        assert state.c_V is not None  # not dense
        V = b2 * (state.r_V.unsqueeze(-1) * state.c_V.unsqueeze(-2)) + (1 - b2) * G * G
        M_hat = None
        if state.r_M is not None:
            assert state.sign is not None and state.c_M is not None  # factored momentum keeps signs and c_M
            S = unpack_signs(state.sign, N).reshape(G.shape)
            M_hat = torch.where(S, 1.0, -1.0).to(G.dtype) * (
                state.r_M.unsqueeze(-1) * state.c_M.unsqueeze(-2)
            )
    if M_hat is not None:
        assert config.beta1 is not None  # init keeps a momentum only when beta1 is set
        b1 = config.beta1 * config.growth_rate ** (tb - 1)
        M = b1 * M_hat + (1 - b1) * G
    else:
        M = G
    u = M / (V.sqrt() + config.eps)
    step = config.lr * u.reshape(batch + shape)
    if config.weight_decay > 0:
        assert param is not None  # check_param(needed=weight_decay > 0) refused None
        step = step + config.lr * config.weight_decay * param.to(step.dtype)
    if dense:
        new = State(None if M_hat is None else M.squeeze(-1), None, None, V.squeeze(-1), None, t, state.shape)
    else:
        r_V, c_V = nnmf(V)
        r_M = c_M = sign = None
        if M_hat is not None:
            r_M, c_M = nnmf(M.abs())
            sign = pack_signs((M > 0).reshape(*batch, N))  # zeros count negative (§D6 step 5)
        new = State(r_M, c_M, sign, r_V, c_V, t, state.shape)
    return step.to(grad.dtype), new


def memory(shape, config: Config) -> int:
    N = numel(shape)
    mom = config.beta1 is not None
    if _is_dense_path(tuple(shape), config):
        return (2 * N if mom else N) + 1
    n, m = square_shape(N)
    return (2 if mom else 1) * (n + m) + 1


def bits(shape, config: Config) -> int:
    if config.beta1 is None or _is_dense_path(tuple(shape), config):
        return 0
    return 8 * packed_bytes(numel(shape))


def metric(state: State, config: Config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "smmf",
        Config,
        init,
        update,
        memory,
        metric,
        bits=bits,
        full_step=True,
        reference="docs/theory/compressed.md §D6; arXiv 2412.08894",
        roles={"lr": "lr"},
        default_lr=1e-3,
    ),
)
