r"""GGT — ``ggt`` (docs/theory/compressed.md §D3; Agarwal, Bullins, Chen, Hazan, Singh, Zhang, Zhang, ICML 2019).

Update
------
Full-matrix AdaGrad on a window of the r most recent gradients, through the r×r Gram matrix.

m_t = β1m_{t−1} + (1−β1)g_t (β1 = 0 ⇒ m_t = g_t); the window holds g_t, β2g_{t−1}, …, β2^{r−1}g_{t−r+1} as the
rows of W ∈ R^{r×N} (stored already decayed: each step multiplies the ring by β2 before writing g_t into slot
(t − 1) mod r, so the r decay weights of E.2 need not be stored; a step counter t locates the ring slot).

Eigen-trick (derivation). Let WWᵀ = V diag(σ²) Vᵀ (the r×r Gram, rows of W as vectors). Then U = WᵀV diag(1/σ)
has orthonormal columns spanning the rows of W, and WᵀW = U diag(σ²) Uᵀ (the N×N matrix Σ_i w_iw_iᵀ). Hence
(( WᵀW )^{1/2} + εI)^{−1} = U diag(1/(σ + ε)) Uᵀ + (I − UUᵀ)/ε, and applied to m

    u_t = U diag(1/(σ_i + ε) − 1/ε) Uᵀ m_t + m_t/ε = Wᵀα + m_t/ε,
    α = V diag((1/(σ_i + ε) − 1/ε)/σ_i²) Vᵀ (W m_t),

so only the Gram and W m_t (r numbers) are needed. Eigenvalues σ_i² ≤ r·ε_mach·σ_1² of the Gram are round-off
(§0's pseudo-inverse cutoff applied to the r×r Gram) and are dropped. The caller applies x ← x − ηu_t.

Default β1 = 0 (the paper's Algorithm 1; EFCP's example). With β1 = 0, m_t = g_t is a row of W, so for every
eigen-direction |U_iᵀg_t| ≤ σ_i (σ_i² = Σ_rows (U_iᵀw)² ≥ (U_iᵀg_t)²) and g_t has no part outside the span:
|U_iᵀu_t| = |U_iᵀg_t|/(σ_i + ε) < 1, so ‖u_t‖ < √r whatever the gradients' scale, and ηu_t is a trust-region-like
step (recommended η 1e−1 for an ordinary model; tests/theory/test_method_defaults.py). With β1 > 0 the window of
raw gradients no longer spans m_t once t > r (m_t remembers gradients that left the window), and that part is
multiplied by 1/ε = 1e4 at the default ε: the old default β1 = 0.9 (taken from the TF reference, which buffers
*momenta* so that m_t stays in the span) diverged on a small MLP and on OCO streams.

State: W (rN), m (N, only when β1 > 0), t (1): rN + N + 1 (E.2 lists rN + N + r with stored decay weights;
here they are folded into W and the ring needs the counter instead). Transient: r×r eigh.
No H-norm metric: unconstrained only.

Memory
------
Persistent floating scalars of one run, ``memory(shape, config)``, for N = numel(shape): rN + N·[β1 > 0] + 1: the decayed window, the momentum and a step counter (bounds.md §E.2 lists rN + N + r with stored decay weights; here they are folded into the window).

Guarantee
---------
``ggt``: none — no regret bound is claimed or checked for this rule.

References
----------
docs/theory/compressed.md §D3; arXiv 1806.02958.

Example
-------
>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("ggt")
>>> cfg = m.Config()
>>> state = m.init((4, 3), cfg)
>>> g = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
>>> u, state = m.update(g, state, cfg, param=torch.zeros((4, 3), dtype=torch.float64))
>>> tuple(u.shape), bool(torch.isfinite(u).all()), m.memory((4, 3), cfg)
((4, 3), True, 121)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_shape, prepare_grad, resolve_dtype
from memopt_theory.validation import check_int, check_real, numel


@dataclass(frozen=True, kw_only=True)
class Config:
    """GGT: ``window`` r ≥ 1, β1 ∈ [0, 1) (default 0: see the module docstring), β2 ∈ [0, 1] (window decay),
    ε > 0 (δ-outside damping)."""

    window: int = 10
    beta1: float = 0.0
    beta2: float = 1.0
    eps: float = 1e-4

    def __post_init__(self) -> None:
        w = "ggt.Config"
        check_int(self.window, "window", where=w, low=1)
        check_real(self.beta1, "beta1", where=w, low=0.0, high=1.0, high_open=True)
        check_real(self.beta2, "beta2", where=w, low=0.0, high=1.0)
        check_real(self.eps, "eps", where=w, low=0.0, low_open=True)


class State(NamedTuple):
    W: Tensor  # batch + (r, N): decayed window, ring order
    m: Tensor | None  # batch + (N,) first moment (None when β1 = 0)
    t: Tensor  # batch: completed steps
    shape: Static


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="ggt.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="ggt.init")
    n = numel(shape)
    W = torch.zeros(batch + (config.window, n), dtype=dtype, device=device)
    m = torch.zeros(batch + (n,), dtype=dtype, device=device) if config.beta1 > 0 else None
    return State(W=W, m=m, t=torch.zeros(batch, dtype=dtype, device=device), shape=Static(shape))


def ring_slot(t: Tensor, r: int) -> Tensor:
    """One-hot batch + (r,) of the slot (t mod r) that step t + 1 writes (t = completed steps)."""
    slot = torch.remainder(t, r).long()
    return torch.nn.functional.one_hot(slot, r).to(t.dtype)


def ggt_coefficients(gram: Tensor, Wm: Tensor, eps: float) -> Tensor:
    """α with ((WᵀW)^{1/2} + εI)^{−1}m = Wᵀα + m/ε, from the Gram WWᵀ (batch + (r, r)) and Wm (batch + (r,))."""
    lam, V = torch.linalg.eigh(gram)
    r = gram.shape[-1]
    keep = lam > r * torch.finfo(gram.dtype).eps * lam[..., -1:].clamp_min(0)
    lam_safe = torch.where(keep, lam, torch.ones_like(lam))
    sig = lam_safe.sqrt()
    w = torch.where(keep, (1 / (sig + eps) - 1 / eps) / lam_safe, torch.zeros_like(lam))
    return ((V * w.unsqueeze(-2)) @ (V.transpose(-1, -2) @ Wm.unsqueeze(-1))).squeeze(-1)


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = ((WᵀW)^{1/2} + εI)^{−1} m_t with the window after g_t is written (the caller applies x ← x − ηu_t)."""
    shape = tuple(state.shape)
    batch = tuple(state.t.shape)
    g = prepare_grad(grad, batch + shape, state.W.dtype, where="ggt.update").reshape(*batch, -1)
    oh = ring_slot(state.t, config.window).unsqueeze(-1)
    W = config.beta2 * state.W * (1 - oh) + oh * g.unsqueeze(-2)
    m = config.beta1 * state.m + (1 - config.beta1) * g if state.m is not None else g
    gram = W @ W.transpose(-1, -2)
    alpha = ggt_coefficients(gram, (W @ m.unsqueeze(-1)).squeeze(-1), config.eps)
    u = (W.transpose(-1, -2) @ alpha.unsqueeze(-1)).squeeze(-1) + m / config.eps
    new = State(W=W, m=state.m if state.m is None else m, t=state.t + 1, shape=state.shape)
    return u.reshape(batch + shape).to(grad.dtype), new


def memory(shape, config: Config) -> int:
    n = numel(shape)
    return config.window * n + (n if config.beta1 > 0 else 0) + 1


def metric(state: State, config: Config) -> None:
    return None  # no H-norm metric: unconstrained only (§0)


METHODS = (
    Method(
        "ggt",
        Config,
        init,
        update,
        memory,
        metric,
        reference="docs/theory/compressed.md §D3; arXiv 1806.02958",
        default_lr=1e-1,
    ),
)
