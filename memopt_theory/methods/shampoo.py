r"""Shampoo — ``shampoo`` (docs/theory/tensored.md §C1; Gupta, Koren, Singer, ICML 2018, arXiv 1802.09568).

Update
------
A parameter of shape S = (n_1, …, n_p) is an order-p tensor (p = len S; a vector is order 1, a matrix order 2,
a conv kernel order 4; axes of size 1 are kept as modes). One factor per mode:

    H^i_0 = εI_{n_i},   H^i_t = H^i_{t−1} + mat_i(G_t) mat_i(G_t)ᵀ,
    u_t = G_t ×_1 (H^1_t)^{−1/(2p)} ×_2 … ×_p (H^p_t)^{−1/(2p)},        H_t = ⊗_i (H^i_t)^{1/(2p)}.

For a matrix (p = 2): L_t = H^1_t, R_t = H^2_t and u_t = L_t^{−1/4} G_t R_t^{−1/4}. The exponent is
**−1/(2p)**, not −1/p (a common bug that gives −1/2 for matrices; §C1 pitfalls). Negative powers are
pseudo-inverses (§0) so ε = 0 is allowed. Reductions: p = 1 ⇒ full-matrix AdaGrad with δ = ε inside;
a vector stored as d×1 is *not* AdaGrad: u = L^{−1/4} g (ε + Σ‖g‖²)^{−1/4} (tests/theory/test_tensored_methods.py).
State: the factors, Σ n_i² scalars (roots are recomputed each step, never stored).

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): Σ_i n_i² (one factor per mode).

Guarantee
---------
``shampoo``: upper bound — R^lin_T ≤ (D²/(2η) + η·r̄)·Π_i tr (H^i_T)^{1/(2p)} (= √(2r̄)·D·Π_i tr (H^i_T)^{1/(2p)} at η = D/√(2r̄)) (Gupta, Koren, Singer 2018 (Shampoo), Thms 3 and 7); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Gupta, Koren, Singer 2018 (Shampoo), Thms 3 and 7; docs/theory/tensored.md §C1.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("shampoo")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 25)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, Guarantee, Setting, eta_d_over_sqrt_2r
from memopt_theory.linalg import default_rtol, pinv_power_values, sym_eigh
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Kronecker
from memopt_theory.tensoring import mode_gram, mode_product
from memopt_theory.validation import check_real


@dataclass(frozen=True, kw_only=True)
class Config:
    """Shampoo: ``eps`` ε ≥ 0 (H^i_0 = εI); ``exponent`` e > 0 of the preconditioner H^i ↦ (H^i)^{−e}.

    ``exponent=None`` (default) is the theorem's e = 1/(2p), p the parameter's order; another value is only
    for studying the wrong-exponent variants (e.g. 1/p) and voids every bound of §C1.
    """

    eps: float = 0.0
    exponent: float | None = None

    def __post_init__(self) -> None:
        check_real(self.eps, "eps", where="shampoo.Config", low=0.0)
        if self.exponent is not None:
            check_real(self.exponent, "exponent", where="shampoo.Config", low=0.0, low_open=True)


class State(NamedTuple):
    H: tuple[Tensor, ...]  # H^i_t, each batch + (n_i, n_i), ε included
    shape: Static


def exponent(config, order: int) -> float:
    """e of u = G ×_i (H^i)^{−e}: 1/(2p) unless the Config overrides it."""
    return 1.0 / (2 * order) if config.exponent is None else float(config.exponent)


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="shampoo.init", min_ndim=1)
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="shampoo.init")
    H = tuple(
        (config.eps * torch.eye(n, dtype=dtype, device=device)).expand(*batch, n, n).clone() for n in shape
    )
    return State(H=H, shape=Static(shape))


def factor_powers(H: tuple[Tensor, ...], power: float, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """(H^i)^{power} for each factor through float64 ``eigh``; negative powers are pseudo-inverses with the
    §0 cutoff τ = n_i·ε_mach of the state dtype (what that dtype can resolve)."""
    out = []
    for F in H:
        lam, Q = sym_eigh(F)
        f = pinv_power_values(lam, power, rtol=default_rtol(F.shape[-1], dtype))
        out.append((Q * f.unsqueeze(-2)) @ Q.transpose(-1, -2))
    return tuple(out)


def precondition(G: Tensor, roots: tuple[Tensor, ...]) -> Tensor:
    """G ×_1 A_1 ×_2 … ×_p A_p for symmetric A_i (batch + (n_i, n_i))."""
    p = len(roots)
    for i, A in enumerate(roots):
        G = mode_product(G, A, i, p)
    return G


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = G_t ×_i (H^i_t)^{−e}, with the factors after G_t is absorbed."""
    shape = tuple(state.shape)
    p = len(shape)
    full = tuple(state.H[0].shape[:-2]) + shape
    dtype = state.H[0].dtype
    g = prepare_grad(grad, full, dtype, where="shampoo.update")
    check_param(param, full, where="shampoo.update", needed=False)
    H = tuple(F + mode_gram(g, i, p) for i, F in enumerate(state.H))
    roots = factor_powers(H, -exponent(config, p), dtype)
    u = precondition(g.to(torch.float64), roots)
    return u.to(grad.dtype), State(H=H, shape=state.shape)


def memory(shape, config: Config) -> int:
    shape = check_shape(shape, where="shampoo.memory", min_ndim=1)
    return sum(n * n for n in shape)


def metric(state: State, config: Config) -> Kronecker:
    """H_t = ⊗_i (H^i_t)^{e}, e = 1/(2p): the norm of the projection in Lemma L1."""
    p = len(state.shape)
    dtype = state.H[0].dtype
    roots = factor_powers(state.H, exponent(config, p), dtype)
    return Kronecker(factors=tuple(F.to(dtype) for F in roots), shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """(D²/(2η) + η·r̄)·Π_i tr (H^i_t)^{1/(2p)}, read from the state's factors."""
    from memopt_theory import bounds

    r = bounds.mode_rank_bound(q.shape)
    return bounds.shampoo_regret_bound(tuple(q.state.H), q.D, r=r, eta=q.eta)


def _applies(config: Config, setting: Setting) -> str | None:
    if config.exponent is not None:
        return f"exponent = {config.exponent}: the theorem is for the exponent 1/(2p)"
    return None


GUARANTEE = Guarantee(
    title="Shampoo (D²/2η+ηr)Π tr H_i^(1/2p)",
    theorem="R^lin_T ≤ (D²/(2η) + η·r̄)·Π_i tr (H^i_T)^{1/(2p)} (= √(2r̄)·D·Π_i tr (H^i_T)^{1/(2p)} at η = D/√(2r̄))",
    reference="Gupta, Koren, Singer 2018 (Shampoo), Thms 3 and 7",
    bound=_bound,
    theory_eta=eta_d_over_sqrt_2r,
    applies=_applies,
    needs=frozenset({"state"}),
    instance_shape=(3, 2),
)

METHODS = (
    Method(
        "shampoo",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/tensored.md §C1",
        guarantee=GUARANTEE,
        default_lr=1e-1,
    ),
)
