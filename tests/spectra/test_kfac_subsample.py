"""FactorRecorder(kfac_rows=m): K-FAC from m of the M rows, unbiased with the stated variance.

The recorder's docstring: Â_t = (1/m)·Σ_{r∈S} a_r a_rᵀ·(M/M) over a uniform m-subset S of the M rows is unbiased for
A_t = (1/M)·Σ_r a_r a_rᵀ, with Var(Â_t)_ij = (σ²_ij/m)·(M − m)/(M − 1), σ²_ij the population variance of
(a_r a_rᵀ)_ij over the rows. Checked by Monte Carlo over many steps with fixed inputs and output gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spectra.recorder import FactorRecorder


def _draws(m: int, steps: int):
    """Per-step K-FAC increments (A, G) of a Linear(3 → 2) fed the same M = 10 rows every step (β = 1)."""
    torch.manual_seed(0)
    layer = nn.Linear(3, 2, bias=False).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    w_out = torch.randn(10, 2, generator=g, dtype=torch.float64)
    rec = FactorRecorder(layer, ("kfac",), reduction="sum", kfac_rows=m, dtype=torch.float64, seed=3)
    prev, As, Gs = None, [], []
    with rec:
        for _ in range(steps):
            layer.zero_grad()
            (layer(x) * w_out).sum().backward()  # output gradient of row r is w_out[r]
            rec.step()
            F = rec.factors()
            cur = (F[":kfac_A"], F[":kfac_G"])
            if prev is None:
                As.append(cur[0].numpy().copy())
                Gs.append(cur[1].numpy().copy())
            else:
                As.append((cur[0] - prev[0]).numpy())
                Gs.append((cur[1] - prev[1]).numpy())
            prev = tuple(t.clone() for t in cur)
    return np.stack(As), np.stack(Gs), x.numpy(), w_out.numpy()


def _population(rows: np.ndarray, M: int, m: int, scale: float):
    """Exact mean and stated variance of the subsampled statistic: mean = scale·(1/M)Σ x xᵀ, var as docstring."""
    outer = (
        np.einsum("ri,rj->rij", rows, rows) * scale
    )  # per-row contribution, scaled like the recorder's factor
    mean = outer.mean(0)
    sigma2 = outer.var(0)  # population variance over the M rows
    return mean, sigma2 / m * (M - m) / (M - 1)


@pytest.mark.slow
def test_subsampled_kfac_is_unbiased_with_the_stated_variance():
    M, m, N = 10, 4, 6000
    As, Gs, x, w = _draws(m, N)
    # A = (1/M)Σ a aᵀ; G here = (1/N_ℓ)Σ ĝ ĝᵀ with a sum-reduced loss of N_ℓ = M terms (one per row)
    for draws, rows in ((As, x), (Gs, w)):
        mean, var = _population(rows, M, m, 1.0)
        # unbiased: the Monte Carlo mean is within 5 standard errors of the full statistic
        se = np.sqrt(var / N)
        assert np.all(np.abs(draws.mean(0) - mean) <= 5 * se + 1e-12), (draws.mean(0), mean)
        # variance: the sample variance of N draws has relative s.e. ≲ √((κ − 1)/N) ≈ 3 % here (κ: kurtosis of
        # a few-valued distribution); 10 % separates it from the formula without the finite-population factor
        # (M − m)/(M − 1) = 2/3, and from a with-replacement draw
        emp = draws.var(0)
        big = var > 1e-3 * var.max()
        np.testing.assert_allclose(emp[big], var[big], rtol=0.10)


def test_kfac_rows_at_or_above_M_is_the_exact_statistic():
    """kfac_rows ≥ M keeps every row: the exact statistic every step."""
    As, Gs, x, w = _draws(10, 3)
    # no randomness left: every step adds the same A (read back as differences of running sums: a few ulps)
    np.testing.assert_allclose(As[1], As[2], rtol=0, atol=1e-14 * np.abs(As[0]).max())
    mean, _ = _population(x, 10, 10, 1.0)
    np.testing.assert_allclose(
        As[0], mean, rtol=0, atol=1e-14 * np.abs(mean).max()
    )  # a Gram product vs einsum


def test_kfac_rows_must_be_a_positive_int():
    with pytest.raises(ValueError, match="kfac_rows"):
        FactorRecorder(nn.Linear(3, 2), ("kfac",), kfac_rows=0)
