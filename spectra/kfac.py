r"""Per-step Kronecker-factor statistics: the pure functions the recorder and the null baseline share.

For a layer with weight W ∈ R^{m×n} (a conv weight read as (out, in·kh·kw)) and one step's gradient G = ∂ℓ/∂W:

* Shampoo (Gupta, Koren, Singer 2018; docs/theory/tensored.md §C1): L_t = G Gᵀ ∈ R^{m×m}, R_t = Gᵀ G ∈ R^{n×n}, from the
  gradient exactly as the optimizer sees it (mean- or sum-reduced loss, whatever the caller backpropagated).
* K-FAC (Martens & Grosse 2015; conv: Grosse & Martens 2016, "expand" as in Eschenhagen et al. 2023):
  with rows a_r (layer inputs, one row per example and weight-sharing position, a ones column appended when
  the layer has a bias) and ĝ_r (gradient of the *unreduced* loss term w.r.t. the layer output at the same
  row), A_t = (1/M) Σ_r a_r a_rᵀ over the M rows and G_t = (1/N_ℓ) Σ_r ĝ_r ĝ_rᵀ over the N_ℓ loss terms.
  Then the empirical Fisher of one loss term, (1/N_ℓ) Σ_n ∇ℓ_n ∇ℓ_nᵀ, is approximated by A_t ⊗ G_t. These are
  curvlinops' ``KFACLinearOperator`` factors for a mean-reduced loss (``kfac_approx="expand"``); for a
  sum-reduced loss curvlinops' G is N_ℓ times ours (its operator approximates Σ_n, not the mean).

Both factors are sums of outer products, so each is returned as a (sum, count) pair: summing pairs across
micro-batches or ranks and dividing once is exactly the factor of the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["weight_matrix", "shampoo_factors", "input_rows", "output_grad_rows", "gram", "accumulate"]


def weight_matrix(t: Tensor) -> Tensor:
    """A weight (or its gradient) as a matrix: Linear (out, in) as is; conv (out, in, *k) as (out, in·Πk)."""
    return t.reshape(t.shape[0], -1)


def shampoo_factors(grad: Tensor) -> tuple[Tensor, Tensor]:
    """L_t = G Gᵀ (m×m) and R_t = Gᵀ G (n×n) for G = ``weight_matrix(grad)``, in ``grad``'s dtype."""
    G = weight_matrix(grad)
    return G @ G.T, G.T @ G


def gram(rows: Tensor) -> Tensor:
    """Σ_r x_r x_rᵀ for rows (M, d): (d, d)."""
    return rows.T @ rows


def input_rows(module: nn.Module, x: Tensor) -> Tensor:
    """The K-FAC input rows a_r of ``module`` for its input ``x``: (M, n) with n = in·Πk (+1 with a bias).

    Linear: every leading axis is a row (batch × sequence positions share the weight). Conv2d: the im2col
    patches of ``F.unfold`` (channel-major (in, kh, kw), the order of ``weight.reshape(out, -1)``), one row per
    example and output position.
    """
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # (N, n, P)
        a = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:
        a = x.reshape(-1, x.shape[-1])
    if module.bias is not None:
        a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
    return a


def output_grad_rows(module: nn.Module, g: Tensor) -> Tensor:
    """Output-gradient rows (M, m) in the row order of ``input_rows``: conv (N, m, H, W) → (N·H·W, m)."""
    if isinstance(module, nn.Conv2d):
        g = g.movedim(1, -1)
    return g.reshape(-1, g.shape[-1])


def accumulate(total: Tensor | None, new: Tensor, beta: float) -> Tensor:
    r"""F_T = β F_{T−1} + F_t (F_0 = 0), i.e. F_T = Σ_t β^{T−t} F_t; β = 1 is the plain sum.

    The discounted sum without a (1 − β) weight, as EW-FD and tearfree's Sketchy factors do (docs/theory/sketching.md §B2,
    B5); spectral metrics are scale-free, so the weight would change nothing but the trace.
    """
    return new.clone() if total is None else total.mul(beta).add_(new)
