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


# --- the diagonal-matched null -----------------------------------------------------------------------------------
def _real_factor(d: int, seed: int) -> torch.Tensor:
    """A correlated, anisotropic PSD factor: rank-2 plus a small ridge, coordinate scales spread over 10³."""
    g = torch.Generator().manual_seed(seed)
    A = (
        torch.randn(d, 2, generator=g, dtype=torch.float64)
        * torch.logspace(0, 1.5, d, dtype=torch.float64)[:, None]
    )
    return A @ A.T + 1e-3 * torch.eye(d, dtype=torch.float64)


def test_matched_null_is_the_isotropic_null_rescaled():
    """F_matched = diag(σ) F_iso diag(σ) with σ² = diag(F_real)/Σ_{k<T}β^k, for the same seed and draws: its
    correlation matrix is the isotropic null's exactly, so it holds no structure beyond the diagonal."""
    from spectra.null import matched_null_factors

    shapes = {"a": (6, 3), "b": (4, 1)}
    real = {"a": _real_factor(6, 0), "b": _real_factor(4, 1)}
    T, beta = 5, 0.8
    iso = null_factors(shapes, steps=T, beta=beta, seed=3, dtype=torch.float64)
    mat = matched_null_factors(real, shapes, steps=T, beta=beta, seed=3, dtype=torch.float64)
    mass = sum(beta**k for k in range(T))
    for k in shapes:
        sig = (torch.diagonal(real[k]) / mass).sqrt()
        torch.testing.assert_close(mat[k], sig[:, None] * iso[k] * sig[None, :], rtol=1e-14, atol=0)

        def corr(F):
            s = torch.diagonal(F).sqrt()
            return F / s[:, None] / s[None, :]

        torch.testing.assert_close(corr(mat[k]), corr(iso[k]), rtol=1e-12, atol=1e-12)


def test_matched_null_mean_is_the_real_diagonal():
    """E[F_matched] = diag(F_real): over M seeds the mean's diagonal is within 5 standard errors of diag(F_real)
    and its off-diagonal within 5 standard errors of 0 (errors estimated from the samples); the real factor's
    own off-diagonal mass is far outside that, so a null that copied F_real would fail."""
    from spectra.null import matched_null_factors

    d, r, T, beta, M = 5, 2, 3, 0.9, 3000
    real = {"f": _real_factor(d, 7)}
    runs = torch.stack(
        [
            matched_null_factors(real, {"f": (d, r)}, steps=T, beta=beta, seed=s, dtype=torch.float64)["f"]
            for s in range(M)
        ]
    )
    mean, se = runs.mean(0), runs.std(0) / math.sqrt(M)
    want = torch.diag(torch.diagonal(real["f"]))
    assert torch.all((mean - want).abs() <= 5 * se + 1e-12)
    off = ~torch.eye(d, dtype=torch.bool)
    assert torch.any((real["f"] - want)[off].abs() > 50 * se[off])  # the real factor is correlated


def test_matched_null_bad_input():
    from spectra.null import matched_null_factors

    shapes = {"f": (3, 2)}
    with pytest.raises(ValueError, match=r"real must map exactly the names of shapes \['f'\]; got \['g'\]"):
        matched_null_factors({"g": torch.eye(3)}, shapes, steps=1)
    with pytest.raises(ValueError, match=r"real\['f'\] must be a \(3, 3\) tensor; got \(2, 2\)"):
        matched_null_factors({"f": torch.eye(2)}, shapes, steps=1)
    with pytest.raises(ValueError, match=r"must have a finite diagonal >= 0"):
        matched_null_factors({"f": -torch.eye(3)}, shapes, steps=1)
