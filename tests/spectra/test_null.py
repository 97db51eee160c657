"""Null baseline: its mean and second moment against the Gaussian/Wishart closed forms, shapes, seeds, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from spectra.null import null_factors


def _mean_over_seeds(shapes, n_seeds, **kw):
    runs = [null_factors(shapes, seed=s, dtype=torch.float64, **kw) for s in range(n_seeds)]
    return {k: torch.stack([r[k] for r in runs]) for k in shapes}


def test_mean_is_discounted_identity():
    """E[F_T] = (Σ_{k<T} β^k)·I since E[XᵀX] = r·I for X ∈ R^{r×d} with N(0, 1) entries."""
    d, r, T, beta, M = 3, 2, 4, 0.5, 4000
    F = _mean_over_seeds({"f": (d, r)}, M, steps=T, beta=beta)["f"]
    mean = F.mean(0)
    c = sum(beta**k for k in range(T))
    # per-entry std of F_T: Var[(XᵀX/r)_{ii}] = 2/r, off-diagonal 1/r, summed with weights β^{2k};
    # the mean over M seeds has std σ/√M; 5σ on 9 entries: a false alarm below 1e-5
    var_diag = sum(beta ** (2 * k) for k in range(T)) * 2 / r
    sigma = math.sqrt(var_diag / M)
    assert torch.all((mean - c * torch.eye(d, dtype=torch.float64)).abs() <= 5 * sigma)


def test_second_moment_is_wishart():
    """One step: E[F_1²] = ((r + d + 1)/r)·I (Wishart: E[W²] = r(r + d + 1)I for W = XᵀX ~ W_d(r, I))."""
    d, r, M = 3, 4, 4000
    F = _mean_over_seeds({"f": (d, r)}, M, steps=1)["f"]
    second = (F @ F).mean(0)
    want = (r + d + 1) / r
    # 5 standard errors of the mean over M seeds, each estimated from the samples (the fourth moments of a
    # Wishart entry are messy; the sample std estimates them within a few % at M = 4000)
    sd = (F @ F).std(0) / math.sqrt(M)
    assert torch.all((second - want * torch.eye(d, dtype=torch.float64)).abs() <= 5 * sd + 1e-12)


def test_plain_sum_and_shapes_and_seed():
    shapes = {"a:shampoo_L": (5, 3), "a:kfac_A": (2, 7)}
    F1 = null_factors(shapes, steps=3, seed=1, dtype=torch.float64)
    F1b = null_factors(shapes, steps=3, seed=1, beta=1.0, dtype=torch.float64)
    F2 = null_factors(shapes, steps=3, seed=2, dtype=torch.float64)
    assert {k: tuple(v.shape) for k, v in F1.items()} == {"a:shampoo_L": (5, 5), "a:kfac_A": (2, 2)}
    assert all(torch.equal(F1[k], F1b[k]) for k in shapes)  # beta None is β = 1
    assert not torch.equal(F1["a:kfac_A"], F2["a:kfac_A"])
    for v in F1.values():  # a sum of Gram matrices: symmetric PSD
        torch.testing.assert_close(v, v.T)
        assert torch.linalg.eigvalsh(v).min() > -1e-12


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(shapes={"f": (3, 2)}, steps=0), ValueError, "steps must be >= 1"),
        (dict(shapes={"f": (3, 2)}, steps=1, beta=0.0), ValueError, r"beta must be in \(0, 1\]"),
        (dict(shapes={"f": (3, 2)}, steps=1, beta=1.01), ValueError, r"beta must be in \(0, 1\]"),
        (dict(shapes={}, steps=1), ValueError, "shapes must be a non-empty mapping"),
        (dict(shapes={"f": (3, 0)}, steps=1), ValueError, r"shapes\['f'\] must be a pair"),
    ],
)
def test_bad_input(kw, err, match):
    with pytest.raises(err, match=match):
        null_factors(**kw)
