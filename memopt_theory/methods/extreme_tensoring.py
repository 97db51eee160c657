r"""Extreme Tensoring — ``extreme_tensoring`` (docs/theory/tensored.md §C2; Chen, Agarwal, Hazan, Zhang, Zhang,
arXiv 1902.04620, ICLR 2020). No official code: the rule is [reconstructed] from the abstract and Shampoo's
tensor case, and its bound is derived in memopt_theory/bounds/tensored.py.

Update
------
The N-element parameter is viewed as a d_1×…×d_p tensor (row-major, zero-padded to Π d_i ≥ N; the reshape
rule and the treatment of N that does not factor are in memopt_theory/tensoring.py). One *diagonal*
accumulator per mode:

    h^{(i)}_0 = ε1,   h^{(i)}_t[k] = h^{(i)}_{t−1}[k] + Σ_{j: j_i = k} G_t[j]²,
    u_t[j] = g_t[j] / Π_i h^{(i)}_t[j_i]^{1/(2p)}     (0/0 := 0),       H_t = diag(Π_i h^{(i)}_t[j_i]^{1/(2p)}).

Padded entries have zero gradient, so they never change an accumulator. p = 1 ⇒ diagonal AdaGrad with
s_0 = ε1 (δ-inside, δ = ε). State: Σ d_i scalars (padded sizes).

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): Σ_i d_i, one accumulator per index of each tensoring mode.

Guarantee
---------
``extreme_tensoring``: upper bound — R^lin_T ≤ (D_∞²/(2η) + η)·Π_i Σ_k h^{(i)}_T[k]^{1/(2p)} (Chen, Agarwal, Hazan, Zhang, Zhang, arXiv 1902.04620 (Extreme Tensoring)); carried as ``GUARANTEE`` and checked by ``memopt verify``.

References
----------
Chen, Agarwal, Hazan, Zhang, Zhang, arXiv 1902.04620 (Extreme Tensoring); docs/theory/tensored.md §C2.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("extreme_tensoring")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 7)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.guarantee import BoundInputs, Guarantee, Setting, eta_dinf_over_sqrt2
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Diagonal
from memopt_theory.tensoring import check_mode_sizes, default_mode_sizes, from_tensor, max_order, to_tensor
from memopt_theory.validation import check_int, check_real


@dataclass(frozen=True, kw_only=True)
class Config:
    """Extreme Tensoring: tensor ``order`` p ≥ 1 with the §C2 default mode sizes, or explicit ``mode_sizes``
    (then ``order`` must be None or equal len(mode_sizes)); neither given: p = min(3, ⌊log2 N⌋) (at least 1); ``eps`` ε ≥ 0 (h^{(i)}_0 = ε1); ``exponent``
    None = the theorem's 1/(2p) (another value > 0 voids the §C2 bound)."""

    order: int | None = None
    mode_sizes: tuple[int, ...] | None = None
    eps: float = 0.0
    exponent: float | None = None

    def __post_init__(self) -> None:
        w = "extreme_tensoring.Config"
        if self.order is not None:
            check_int(self.order, "order", where=w, low=1)
        if self.mode_sizes is not None:
            try:
                sizes = tuple(self.mode_sizes)
            except TypeError:
                raise TypeError(f"{w}: mode_sizes must be a tuple of ints; got {self.mode_sizes!r}") from None
            if not sizes or any(type(d) is not int or d < 1 for d in sizes):
                raise ValueError(
                    f"{w}: mode_sizes must be a non-empty tuple of ints >= 1; got {self.mode_sizes!r}"
                )
            object.__setattr__(self, "mode_sizes", sizes)
            if self.order is not None and self.order != len(self.mode_sizes):
                raise ValueError(
                    f"{w}: order must be None or len(mode_sizes) = {len(self.mode_sizes)}; got order = {self.order}"
                )
        check_real(self.eps, "eps", where=w, low=0.0)
        if self.exponent is not None:
            check_real(self.exponent, "exponent", where=w, low=0.0, low_open=True)


def mode_sizes(shape: tuple[int, ...], config: Config) -> tuple[int, ...]:
    """(d_1, …, d_p) for a parameter of this shape: the requested sizes (validated against N) or the default."""
    N = math.prod(shape)
    if config.mode_sizes is not None:
        return check_mode_sizes(N, config.mode_sizes, where="extreme_tensoring")
    p = min(3, max_order(N)) if config.order is None else config.order
    return default_mode_sizes(N, p)


class State(NamedTuple):
    h: tuple[Tensor, ...]  # h^{(i)}_t, batch + (d_i,)
    shape: Static  # the parameter shape S
    sizes: Static  # the mode sizes (d_1, …, d_p)


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="extreme_tensoring.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="extreme_tensoring.init")
    sizes = mode_sizes(shape, config)
    h = tuple(torch.full(batch + (d,), config.eps, dtype=dtype, device=device) for d in sizes)
    return State(h=h, shape=Static(shape), sizes=Static(sizes))


def _diag(h: tuple[Tensor, ...], config: Config) -> Tensor:
    """Π_i h^{(i)}[j_i]^{e} as a batch + (d_1, …, d_p) tensor, e = 1/(2p) by default."""
    p = len(h)
    e = 1.0 / (2 * p) if config.exponent is None else float(config.exponent)
    out = None
    for i, hi in enumerate(h):
        f = hi.clamp_min(0).pow(e)
        f = f.reshape(*hi.shape[:-1], *([1] * i), hi.shape[-1], *([1] * (p - 1 - i)))
        out = f if out is None else out * f
    assert out is not None  # one factor per tensoring axis, p ≥ 1
    return out


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t[j] = g_t[j]/Π_i h^{(i)}_t[j_i]^{1/(2p)} with the accumulators after g_t is absorbed."""
    shape, sizes = tuple(state.shape), tuple(state.sizes)
    batch = tuple(state.h[0].shape[:-1])
    g = prepare_grad(grad, batch + shape, state.h[0].dtype, where="extreme_tensoring.update")
    check_param(param, batch + shape, where="extreme_tensoring.update", needed=False)
    nb, p = len(batch), len(sizes)
    G2 = to_tensor(g * g, sizes, nb)
    modes = tuple(range(nb, nb + p))
    # torch's sum over an empty dim tuple reduces everything: with p = 1 there is nothing to contract
    h = tuple(
        hi + (G2.sum(dim=tuple(m for m in modes if m != nb + i)) if p > 1 else G2)
        for i, hi in enumerate(state.h)
    )
    D = from_tensor(_diag(h, config), shape, nb)
    # D = 0 only where some h^{(i)}[j_i] = 0, i.e. a whole slice has had zero gradient so far: g_j = 0 there
    u = torch.where(D > 0, g / torch.where(D > 0, D, torch.ones_like(D)), torch.zeros_like(g))
    return u.to(grad.dtype), State(h=h, shape=state.shape, sizes=state.sizes)


def memory(shape, config: Config) -> int:
    return sum(mode_sizes(check_shape(shape, where="extreme_tensoring.memory"), config))


def metric(state: State, config: Config) -> Diagonal:
    """H_t = diag(Π_i h^{(i)}_t[j_i]^{1/(2p)}) on the parameter's (unpadded) coordinates."""
    nb = state.h[0].ndim - 1
    return Diagonal(h=from_tensor(_diag(state.h, config), tuple(state.shape), nb), shape=tuple(state.shape))


def _bound(q: BoundInputs) -> Tensor:
    """(D_∞²/(2η) + η)·Π_i Σ_k h^{(i)}_t[k]^{1/(2p)}, read from the state."""
    from memopt_theory import bounds

    return bounds.extreme_tensoring_regret_bound(tuple(q.state.h), q.D_inf, eta=q.eta)


def _applies(config: Config, setting: Setting) -> str | None:
    if config.exponent is not None:
        return f"exponent = {config.exponent}: the theorem is for the exponent 1/(2p)"
    return None


GUARANTEE = Guarantee(
    title="ExtTensoring (D∞²/2η+η)Π Σh^(1/2p)",
    theorem="R^lin_T ≤ (D_∞²/(2η) + η)·Π_i Σ_k h^{(i)}_T[k]^{1/(2p)}",
    reference="Chen, Agarwal, Hazan, Zhang, Zhang, arXiv 1902.04620 (Extreme Tensoring)",
    bound=_bound,
    theory_eta=eta_dinf_over_sqrt2,
    applies=_applies,
    needs=frozenset({"state"}),
    instance_shape=(3, 2),
)

METHODS = (
    Method(
        "extreme_tensoring",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/tensored.md §C2",
        guarantee=GUARANTEE,
        default_lr=1e-1,
    ),
)
