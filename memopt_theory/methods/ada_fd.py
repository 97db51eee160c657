r"""Ada-FD — ``ada_fd`` (Wan, Wei, Zhang, IJCAI 2018; docs/theory/sketching.md §B6), in the official testbed's form (B4).

Update
------
Mirror-descent form: H_t = δI + Ḡ_t^{1/2} with the FD sketch Ḡ_t of g_1..g_t (ℓ−1 directions kept, no escaped
mass added back), direction H_t^{−1}g_t = U diag(1/(δ + e))Uᵀg + δ^{−1}(g − UUᵀg), e = √ eigenvalues of Ḡ_t.
This is the testbed's ADA_FD (c_sk, c_α, η_eff) = (1, 0, lr): the learner's η = lr. The testbed returns NaN at
δ = 0 (0/0 at e_ℓ = 0), so δ > 0 is required. ℓ > N keeps all N directions: full-matrix AdaGrad δ-outside.
State (testbed layout): min(ℓ, N)(N + 1) + 2.

Default δ = 1 (the top of the testbed's δ grid). Without escaped mass the complement of the sketch's span is stepped
by g/δ: at the former δ = 1e−3 that is 1000·g in every direction the ℓ − 1 kept ones miss (most of a layer), which
diverged on a 20-16-5 MLP (0.88 → 5e2 at η = 1e−2); at δ = 1 the complement is an SGD step and the sketched
directions are AdaGrad-scaled (≤ g), so the recommended η is SGD-like, 1e−1.

``sketch="buffer"`` (option; "exact" stays the default and reference): Ḡ_t from Liberty's 2ℓ-row buffer with a
tracked Gram matrix (memopt_theory.sketches.fd_buffer_update, amortised O(Nℓ) per step, the same sandwich
Ḡ_t ⪯ G_t ⪯ Ḡ_t + Δ_tI and Δ_t ≤ Ω_ℓ), H_t = δI + Ḡ_t^{1/2}. Memory 2ℓN + 4ℓ² + 2.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): min(ℓ, N)(N + 1) + 2 (the official testbed's layout).

Guarantee
---------
``ada_fd``: none checked — none checked here: the paper's bound needs its own step-size analysis; η = D/√2 as for AdaGrad.

References
----------
Wan, Wei, Zhang 2018 (Ada-FD); official Sketchy OCO testbed ADA_FD; docs/theory/sketching.md §B6, §B4.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("ada_fd")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 106)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import Guarantee, eta_d_over_sqrt2
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods._sketch_common import (
    TestbedState,
    apply_low_rank,
    testbed_init,
    testbed_sketch_step,
)
from memopt_theory.metric import LowRankPlusScaled, RowSpanLowRank
from memopt_theory.sketches import (
    FDBufferState,
    fd_buffer_apply,
    fd_buffer_init,
    fd_buffer_metric,
    fd_buffer_update,
)
from memopt_theory.validation import check_choice, check_int, check_real, numel

SKETCHES = ("exact", "buffer")


class BufferState(NamedTuple):
    """``sketch="buffer"``: the 2ℓ-row FD buffer (R, K, n, Δ) and the parameter shape."""

    sketch: FDBufferState
    shape: Static


State = TestbedState | BufferState  # by ``Config.sketch``: "exact" → TestbedState, "buffer" → BufferState


@dataclass(frozen=True, kw_only=True)
class Config:
    """Ada-FD: sketch size ``ell`` ℓ ≥ 1 and ``delta`` δ > 0 (the fixed diagonal of H_t = δI + Ḡ_t^{1/2});
    ``sketch``: "exact" (per-step FD, the reference) or "buffer" (2ℓ-row buffer, amortised O(Nℓ))."""

    ell: int = 8
    delta: float = 1.0
    sketch: str = "exact"

    def __post_init__(self) -> None:
        check_int(self.ell, "ell", where="ada_fd.Config", low=1)
        check_real(self.delta, "delta", where="ada_fd.Config", low=0.0, low_open=True)
        check_choice(self.sketch, "sketch", SKETCHES, where="ada_fd.Config")


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="ada_fd.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ada_fd.init")
    if config.sketch == "buffer":
        sk = fd_buffer_init(numel(shape), config.ell, batch=batch, dtype=dtype, device=device)
        return BufferState(sketch=sk, shape=Static(shape))
    return testbed_init(shape, config.ell, config.delta, batch=batch, dtype=dtype, device=device)


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = (δI + Ḡ_t^{1/2})^{−1}g_t, Ḡ_t after g_t is absorbed (testbed order, B4)."""
    if config.sketch == "buffer":
        assert isinstance(state, BufferState), (
            "ada_fd.update: sketch='buffer' needs the state of init(sketch='buffer')"
        )
        batch = tuple(state.sketch.n.shape)
        full = batch + tuple(state.shape)
        g = prepare_grad(grad, full, state.sketch.K.dtype, where="ada_fd.update")
        check_param(param, full, where="ada_fd.update", needed=False)
        v = g.reshape(*batch, -1)
        sk, _ = fd_buffer_update(state.sketch, v)
        dl = torch.full(batch, config.delta, dtype=v.dtype, device=v.device)
        u = fd_buffer_apply(sk, lambda lam: 1.0 / (config.delta + lam.sqrt()), 1.0 / dl, v, last_row=True)
        return u.reshape(grad.shape).to(grad.dtype), BufferState(sketch=sk, shape=state.shape)
    assert isinstance(state, TestbedState), (
        "ada_fd.update: sketch='exact' needs the state of init(sketch='exact')"
    )
    batch = tuple(state.t.shape)
    full = batch + tuple(state.shape)
    g = prepare_grad(grad, full, state.U.dtype, where="ada_fd.update")
    check_param(param, full, where="ada_fd.update", needed=False)
    v = g.reshape(*batch, -1)
    st = testbed_sketch_step(state, v, config.ell, c_alpha=0.0)
    a = st.alpha
    u = apply_low_rank(st.U, 1.0 / (a.unsqueeze(-1) + st.e), 1.0 / a, v)
    return u.reshape(grad.shape).to(grad.dtype), st


def memory(shape, config: Config) -> int:
    n = numel(shape)
    if config.sketch == "buffer":
        return 2 * config.ell * n + 4 * config.ell**2 + 2
    return min(config.ell, n) * (n + 1) + 2


def metric(state: State, config: Config) -> LowRankPlusScaled | RowSpanLowRank:
    """H_t = δI + Ḡ_t^{1/2} = U diag(δ + e)Uᵀ + δ(I − UUᵀ)."""
    if config.sketch == "buffer":
        assert isinstance(state, BufferState), (
            "ada_fd.metric: sketch='buffer' needs the state of init(sketch='buffer')"
        )
        sk = state.sketch
        dl = torch.full(tuple(sk.n.shape), config.delta, dtype=sk.K.dtype, device=sk.K.device)
        return fd_buffer_metric(sk, lambda lam: config.delta + lam.sqrt(), dl, state.shape)
    assert isinstance(state, TestbedState), (
        "ada_fd.metric: sketch='exact' needs the state of init(sketch='exact')"
    )
    a = state.alpha
    return LowRankPlusScaled(U=state.U, s=a.unsqueeze(-1) + state.e, c=a, shape=tuple(state.shape))


GUARANTEE = Guarantee(
    title="Ada-FD (no bound checked)",
    theorem="none checked here: the paper's bound needs its own step-size analysis; η = D/√2 as for AdaGrad",
    reference="Wan, Wei, Zhang 2018",
    kind="none",
    theory_eta=eta_d_over_sqrt2,
)

METHODS = (
    Method(
        "ada_fd",
        Config,
        init,
        update,
        memory,
        metric,
        reference="Wan, Wei, Zhang 2018 (Ada-FD); official Sketchy OCO testbed ADA_FD; docs/theory/sketching.md §B6, §B4",
        guarantee=GUARANTEE,
        roles={"sketch_size": "ell"},
        default_lr=3e-1,
    ),
)
