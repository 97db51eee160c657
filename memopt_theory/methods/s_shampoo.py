r"""Sketchy Shampoo — ``s_shampoo`` (docs/theory/sketching.md §B5; Feinberg et al., NeurIPS 2023, arXiv 2302.03764,
Algorithm 3).

Update
------
Shampoo (§C1) with every Kronecker factor replaced by an FD sketch plus its escaped mass. For a parameter of
order p (shape (n_1, …, n_p); a matrix: L for mode 1, R for mode 2), per mode i:

    (ρ^i_t, H̄^i_t) = FD-update(β2·H̄^i_{t−1}, mat_i(G_t) mat_i(G_t)ᵀ)       (memopt_theory.sketches.fd_update)
    H̃^i_t = H̄^i_t + (ε + ρ^i_{1:t}) I_{n_i}
    u_t = G_t ×_1 (H̃^1_t)^{−1/(2p)} ×_2 … ×_p (H̃^p_t)^{−1/(2p)},       H_t = ⊗_i (H̃^i_t)^{1/(2p)}.

ε is kept every step (docs/theory/README.md: "memopt keeps ε every step", which makes Theorem 5 hold verbatim);
ε = 0 is allowed, negative powers then being pseudo-inverses (§0 cutoff). With H̄ = U diag(s) Uᵀ and
c = ε + ρ, (H̃)^{−e} = U diag((s + c)^{−e} − c^{−e}) Uᵀ + c^{−e} I is applied in O(n k) per column, never as an
n×n matrix (only ``metric`` builds the dense factors). Oracle: ℓ ≥ n_i for every mode ⇒ H̃^i_t equals
Shampoo's H^i_t (ℓ > n: exact sketch; ℓ = n: Ḡ + ρI = G exactly, §B2) ⇒ identical to ``shampoo``.
Official DL configuration (google-research/precondition tearfree ``sketchy``, rank k ⇒ ℓ = k + 1): its escaped
mass decays by √β2 (``tail_decay="sqrt_beta2"``; H̄ itself decays by β2 in both) and its ε is relative,
ε·(λ₁(H̄^i_t) + ρ^i_{1:t}) per factor (``relative_eps=True``); with both, and ε = ``epsilon``, the update is
tearfree's (tests/theory/test_method_defaults.py re-derives it in float64). Tearfree gives the complement of the
sketch weight 0 while its tail is exactly 0; memopt gives it (ε + 0)^{−1/(2p)}, but then every mode fibre of the
gradient lies in the sketch's span, so the step is the same. Theorem 5 needs β2 = 1 and absolute ε.
State: one FD sketch per mode, Σ_i (min(ℓ−1, n_i)(n_i + 1) + 1) scalars.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): Σ_i (min(ℓ − 1, n_i)(n_i + 1) + 1): one FD sketch and escaped mass per mode.

Guarantee
---------
``s_shampoo``: upper bound — R^lin_T ≤ (D²/(2η) + η·r̄)·Π_i tr (H̃^i_T)^{1/(2p)}, H̃^i the sketched factors plus their escaped mass (Feinberg et al. 2023 (Sketchy), Alg. 3 and Thm 5); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Feinberg et al. 2023 (Sketchy), Alg. 3 and Thm 5; docs/theory/sketching.md §B5.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("s_shampoo")
>>> cfg = m.Config(ell=2)
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 11)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, Guarantee, Setting, eta_d_over_sqrt_2r
from memopt_theory.linalg import default_rtol
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Kronecker
from memopt_theory.sketches import FDState, fd_init, fd_update
from memopt_theory.tensoring import mode_product, unfold
from memopt_theory.validation import check_choice, check_int, check_real


@dataclass(frozen=True, kw_only=True)
class Config:
    """S-Shampoo: ``ell`` ℓ ≥ 1 (paper sketch size; min(ℓ−1, n_i) directions kept per mode; default 8 as the
    other sketched methods), ``eps`` ε ≥ 0,
    ``beta2`` β2 ∈ (0, 1] (1: sums, Theorem 5; < 1: EW-FD per factor, no guarantee), ``tail_decay`` "beta2"
    (ρ_{1:t} = β2ρ_{1:t−1} + ρ_t, the paper's Observation 6) or "sqrt_beta2" (√β2, the official tearfree code),
    ``relative_eps`` (False: ε absolute; True: ε·(λ₁(H̄) + ρ_{1:t}) per factor, tearfree's default)."""

    ell: int = 8
    eps: float = 0.0
    beta2: float = 1.0
    tail_decay: str = "beta2"
    relative_eps: bool = False

    def __post_init__(self) -> None:
        w = "s_shampoo.Config"
        check_int(self.ell, "ell", where=w, low=1)
        check_real(self.eps, "eps", where=w, low=0.0)
        check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0, low_open=True)
        check_choice(self.tail_decay, "tail_decay", ("beta2", "sqrt_beta2"), where=w)
        if not isinstance(self.relative_eps, bool):
            raise TypeError(f"{w}: relative_eps must be a bool; got {self.relative_eps!r}")


class State(NamedTuple):
    sketches: tuple[FDState, ...]  # one per mode: U (n_i, k_i), s (k_i,), rho ()
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="s_shampoo.init", min_ndim=1)
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="s_shampoo.init")
    sk = tuple(fd_init(n, config.ell, batch=batch, dtype=dtype, device=device) for n in shape)
    return State(sketches=sk, shape=Static(shape))


def _eps(sk: FDState, config: Config) -> Tensor:
    """The ε added to the factor, batch-shaped: ε, or ε·(λ₁(H̄) + ρ_{1:t}) with ``relative_eps``."""
    rho = sk.rho.to(torch.float64)
    if not config.relative_eps:
        return torch.full_like(rho, config.eps)
    s = sk.s.to(torch.float64).clamp_min(0)
    top = s.amax(dim=-1) if s.shape[-1] else torch.zeros_like(rho)
    return config.eps * (top + rho)


def _powers(sk: FDState, eps: Tensor, power: float) -> tuple[Tensor, Tensor]:
    """(a, f_c) with (H̃)^{power} = U diag(a) Uᵀ + f_c I, H̃ = U diag(s) Uᵀ + cI, c = ε + ρ_{1:t} (ε batch-shaped,
    from ``_eps``); for power < 0 eigenvalues ≤ τ·λ_max(H̃) (τ = n·ε_mach of the state dtype) count as 0
    (pseudo-inverse, §0)."""
    s = sk.s.to(torch.float64).clamp_min(0)
    c = (sk.rho.to(torch.float64) + eps).unsqueeze(-1)  # B + (1,)
    on, off = s + c, c
    if power >= 0:
        f_on, f_off = on.pow(power), off.pow(power)
    else:
        tau = default_rtol(sk.U.shape[-2], sk.U.dtype)
        top = torch.maximum(on.amax(dim=-1, keepdim=True) if on.shape[-1] else off, off)
        keep_on, keep_off = on > tau * top, off > tau * top
        f_on = torch.where(keep_on, torch.where(keep_on, on, 1.0).pow(power), 0.0)
        f_off = torch.where(keep_off, torch.where(keep_off, off, 1.0).pow(power), 0.0)
    return f_on - f_off, f_off.squeeze(-1)


def _apply_mode(X: Tensor, sk: FDState, a: Tensor, f_c: Tensor, i: int, p: int) -> Tensor:
    """X ×_i (U diag(a) Uᵀ + f_c I) without forming the n_i×n_i matrix."""
    U = sk.U.to(torch.float64)
    Y = mode_product(X, U.transpose(-1, -2), i, p)  # mode i: n_i → k_i
    Y = Y * a.reshape(*a.shape[:-1], *([1] * i), a.shape[-1], *([1] * (p - 1 - i)))
    Y = mode_product(Y, U, i, p)
    return Y + f_c.reshape(*f_c.shape, *([1] * p)) * X


def _absorb(sk: FDState, F: Tensor, config: Config) -> FDState:
    """FD-update(β2·H̄, FFᵀ) with the escaped mass decayed by β2 (``fd_update``) or by √β2 (tearfree)."""
    new, rho_t = fd_update(sk, F, config.ell, beta=config.beta2)
    if config.tail_decay == "sqrt_beta2" and config.beta2 < 1:
        new = new._replace(rho=config.beta2**0.5 * sk.rho + rho_t.to(sk.rho.dtype))
    return new


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = G_t ×_i (H̃^i_t)^{−1/(2p)} with the sketches after G_t is absorbed (Algorithm 3)."""
    shape = tuple(state.shape)
    p = len(shape)
    U0 = state.sketches[0].U
    full = tuple(U0.shape[:-2]) + shape
    g = prepare_grad(grad, full, U0.dtype, where="s_shampoo.update")
    check_param(param, full, where="s_shampoo.update", needed=False)
    sk = tuple(_absorb(s, unfold(g, i, p), config) for i, s in enumerate(state.sketches))
    u = g.to(torch.float64)
    for i, s in enumerate(sk):
        a, f_c = _powers(s, _eps(s, config), -1.0 / (2 * p))
        u = _apply_mode(u, s, a, f_c, i, p)
    return u.to(grad.dtype), State(sketches=sk, shape=state.shape)


def memory(shape, config: Config) -> int:
    shape = check_shape(shape, where="s_shampoo.memory", min_ndim=1)
    return sum(min(config.ell - 1, n) * (n + 1) + 1 for n in shape)


def factors(state: State, config: Config, power: float) -> tuple[Tensor, ...]:
    """Dense (H̃^i_t)^{power}, each batch + (n_i, n_i) in float64 (metric, tests, bound checks)."""
    out = []
    for sk in state.sketches:
        a, f_c = _powers(sk, _eps(sk, config), power)
        U = sk.U.to(torch.float64)
        n = U.shape[-2]
        eye = torch.eye(n, dtype=torch.float64, device=U.device)
        out.append((U * a.unsqueeze(-2)) @ U.transpose(-1, -2) + f_c[..., None, None] * eye)
    return tuple(out)


def metric(state: State, config: Config) -> Kronecker:
    """H_t = ⊗_i (H̃^i_t)^{1/(2p)}."""
    p = len(state.shape)
    dtype = state.sketches[0].U.dtype
    F = factors(state, config, 1.0 / (2 * p))
    return Kronecker(factors=tuple(f.to(dtype) for f in F), shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """The Shampoo bound on the sketched factors H̃^i_t = H̄^i_t + (ε + ρ^i)I."""
    from memopt_theory import bounds

    r = bounds.mode_rank_bound(q.shape)
    return bounds.shampoo_regret_bound(factors(q.state, q.config, 1.0), q.D, r=r, eta=q.eta)


def _applies(config: Config, setting: Setting) -> str | None:
    if config.beta2 != 1.0:
        return f"beta2 = {config.beta2}: exponentially weighted FD factors have no guarantee (beta2 = 1)"
    if config.relative_eps:
        return "relative_eps: ε·(λ₁ + ρ) moves with t, so H̃_t need not grow monotonically as Theorem 5 needs"
    return None


GUARANTEE = Guarantee(
    title="S-Shampoo (D²/2η+ηr)Π tr H~_i^(1/2p)",
    theorem="R^lin_T ≤ (D²/(2η) + η·r̄)·Π_i tr (H̃^i_T)^{1/(2p)}, H̃^i the sketched factors plus their escaped mass",
    reference="Feinberg et al. 2023 (Sketchy), Alg. 3 and Thm 5",
    bound=_bound,
    theory_eta=eta_d_over_sqrt_2r,
    applies=_applies,
    needs=frozenset({"state"}),
    instance_shape=(3, 2),
    instance_config={"ell": 2},
)

METHODS = (
    Method(
        "s_shampoo",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/sketching.md §B5; Sketchy Alg. 3",
        guarantee=GUARANTEE,
        default_lr=1e-1,
        roles={"sketch_size": "ell"},
    ),
)
