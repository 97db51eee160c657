r"""FD-SON and RFD-SON — ``fd_son``, ``rfd_son`` (Luo et al. 2016; Luo et al. 2019; docs/theory/sketching.md §B7, §B4).

Update
------
The unconstrained forms of the official Sketchy OCO testbed, constants (c_sk, c_α, η_eff):
FD-SON ((lr√t)^{−1/2}, 0, 1), RFD-SON ((lr·t)^{−1/2}, 1/2, 1). Per step (t counted from 1 after t ← t + 1):
ĝ = c_sk·g; (ρ_t, Ḡ_t) = FD-update(Ḡ_{t−1}, ĝĝᵀ) (rows √η_t·g of the sketched Newton matrix); α ← α + c_α·ρ_t
(α_0 = δ); direction A_t^{−1}g = U diag((α + s)^{−1})Uᵀg + α^{−1}(g − UUᵀg), any 1/x with x ≤ 0 read as 0.
The step rule is the method's own (η_eff = 1): ``full_step`` methods with ``lr`` inside; the direction is the
whole step, plus decoupled decay lr·wd·param. No metric (exponent −1, unconstrained only: no regret check).
State (testbed layout): min(ℓ, N)(N + 1) + 2.

Defaults. FD-SON's A_0 = αI needs α > 0 (Luo et al.'s analysis assumes it; only RFD's α_t grows with the escaped
mass): at δ = 0 with c_α = 0, α stays 0, the complement gets weight 0 and the sketch's last directions, whose
s_i after the FD shrink can be arbitrarily small, get 1/s_i — Newton steps on noise (a 20-16-5 MLP went from 0.88 to
82 in 200 steps at lr 1). RFD0 (δ = 0) has the same problem until the sketch first overflows (α_t = ρ_{1:t}/2 stays
0 for the first ℓ − 1 gradients): on that MLP it diverged at lr 1, 0.3, 0.03 and 1e−3 and trained only at 0.1 and
1e−2. Both default to δ = 1 (the top of the testbed's δ grid; RFD0 is δ = 0), with which both trained at every lr
in 1e−2..1 (loss ratio ≤ 0.02). Both expect lr ≈ 1 (the step is A_t^{−1}g with rows √(1/(lr·√t))·g: a
Newton-type step whose scale does not need a small lr).

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): ``fd_son``: min(ℓ, N)(N + 1) + 2 (the official testbed's layout). ``rfd_son``: min(ℓ, N)(N + 1) + 2 (the official testbed's layout).

Guarantee
---------
``fd_son``: none — no regret bound is claimed or checked for this rule.
``rfd_son``: none — no regret bound is claimed or checked for this rule.

References
----------
Luo et al. 2016 (FD-SON); official Sketchy OCO testbed FD_SON; docs/theory/sketching.md §B7, §B4; Luo et al. 2019 (RFD-SON, RFD0 at delta=0); official Sketchy OCO testbed RFD_SON; docs/theory/sketching.md §B7.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("fd_son")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 106)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.methods._sketch_common import (
    TestbedState,
    apply_low_rank,
    pos_pow,
    testbed_init,
    testbed_sketch_step,
)
from memopt_theory.validation import check_int, check_real, numel

State = TestbedState


@dataclass(frozen=True, kw_only=True)
class Config:
    """FD-SON: ``ell`` ℓ ≥ 1, ``lr`` > 0 (enters through c_sk), ``delta`` α_0 = δ ≥ 0 (default 1; see the module
    docstring), ``weight_decay`` ≥ 0."""

    _WHERE = "fd_son.Config"  # class attribute, not a field: names the method in error messages

    ell: int = 8
    lr: float = 1.0
    delta: float = 1.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        where = self._WHERE
        check_int(self.ell, "ell", where=where, low=1)
        check_real(self.lr, "lr", where=where, low=0.0, low_open=True)
        check_real(self.delta, "delta", where=where, low=0.0)
        check_real(self.weight_decay, "weight_decay", where=where, low=0.0)


@dataclass(frozen=True, kw_only=True)
class RfdConfig(Config):
    """RFD-SON: the fields of FD-SON's Config; α_0 = δ (default 1; RFD0 at δ = 0), α_t = δ + ρ_{1:t}/2."""

    _WHERE = "rfd_son.Config"


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="fd_son.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="fd_son.init")
    return testbed_init(shape, config.ell, config.delta, batch=batch, dtype=dtype, device=device)


def _update(grad, state: State, config: Config, param, *, robust: bool) -> tuple[Tensor, State]:
    where = "rfd_son.update" if robust else "fd_son.update"
    batch = tuple(state.t.shape)
    full = batch + tuple(state.shape)
    g = prepare_grad(grad, full, state.U.dtype, where=where)
    check_param(param, full, where=where, needed=config.weight_decay > 0)
    v = g.reshape(*batch, -1)
    t = state.t + 1
    # η_t = 1/(lr·√t) (FD-SON) or 1/(lr·t) (RFD-SON): the sketched rows are √η_t·g_t
    c_sk = (config.lr * t).rsqrt() if robust else (config.lr * t.sqrt()).rsqrt()
    st = testbed_sketch_step(state, c_sk.unsqueeze(-1) * v, config.ell, c_alpha=0.5 if robust else 0.0)
    a = st.alpha
    s = st.e.square()
    u = apply_low_rank(st.U, pos_pow(a.unsqueeze(-1) + s, -1.0), pos_pow(a, -1.0), v).reshape(grad.shape)
    if config.weight_decay > 0:
        u = u + config.lr * config.weight_decay * param.to(u.dtype)
    return u.to(grad.dtype), st


def update_fd_son(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """FD-SON step (B4 constants ((lr√t)^{−1/2}, 0, 1)): the whole step A_t^{−1}g_t (+ lr·wd·param)."""
    return _update(grad, state, config, param, robust=False)


def update_rfd_son(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """RFD-SON step (B4 constants ((lr·t)^{−1/2}, 1/2, 1)): α_t = δ + ρ_{1:t}/2, the whole step A_t^{−1}g_t."""
    return _update(grad, state, config, param, robust=True)


def memory(shape, config: Config) -> int:
    n = numel(shape)
    return min(config.ell, n) * (n + 1) + 2


def metric(state: State, config: Config) -> None:
    return None


METHODS = (
    Method(
        "fd_son",
        Config,
        init,
        update_fd_son,
        memory,
        metric,
        full_step=True,
        reference="Luo et al. 2016 (FD-SON); official Sketchy OCO testbed FD_SON; docs/theory/sketching.md §B7, §B4",
        roles={"lr": "lr", "sketch_size": "ell"},
        default_lr=1.0,
    ),
    Method(
        "rfd_son",
        RfdConfig,
        init,
        update_rfd_son,
        memory,
        metric,
        full_step=True,
        reference="Luo et al. 2019 (RFD-SON, RFD0 at delta=0); official Sketchy OCO testbed RFD_SON; docs/theory/sketching.md §B7",
        roles={"lr": "lr", "sketch_size": "ell"},
        default_lr=1.0,
    ),
)
