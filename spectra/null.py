r"""Null baseline: Kronecker factors of structureless Gaussian gradients, accumulated like the real ones.

For every recorded factor of dimension d that adds r outer products a step (``FactorRecorder.factor_shapes``)
the null draws rows X_t ∈ R^{r×d} with i.i.d. N(0, 1) entries and feeds F_t = (1/r) X_tᵀX_t through the same
``gram`` and ``accumulate`` the recorder uses: F_T = Σ_{t=1}^{T} β^{T−t} F_t, with the run's β and number of
accumulated steps T. Any concentration of the real spectrum beyond this null's (a Marchenko–Pastur-like
spread, not a flat line, when r is comparable to d) is structure in the gradients, not finite-sample noise.

**Matched (diagonal) null.** The isotropic null tests anisotropy as much as low rank: a factor whose
coordinates merely have unequal scales (a few large input features, no correlation at all) already
concentrates its trace far beyond it. :func:`matched_null_factors` removes that: it keeps the real factor's
per-coordinate scale and nothing else. With σ_i² = (F_real)_ii / Σ_{k<T} β^k it feeds rows X_t·diag(σ) (X_t
as above) through the same accumulation, so F_matched = diag(σ)·F_iso·diag(σ) with F_iso the isotropic null of
the same seed, E[F_matched] = diag(F_real) exactly, and its correlation matrix F_ij/√(F_ii F_jj) is the
isotropic null's: any low-rank structure it shows is what the diagonal alone implies. Concentration of the
real spectrum beyond *this* null is correlation between coordinates — low rank, not anisotropy.

Moments (the test's independent calculation): E[X_tᵀX_t] = r·I, so E[F_T] = (Σ_{k<T} β^k)·I; for T = 1,
E[F_1²] = (1/r²)·E[(XᵀX)²] = ((r + d + 1)/r)·I (Wishart second moment: E[W²] = r(r + d + 1)I for W ~ W_d(r, I)).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from memopt_theory.validation import check_int, check_real
from spectra.kfac import accumulate, gram

__all__ = ["null_factors", "matched_null_factors"]


def null_factors(
    shapes: Mapping[str, tuple[int, int]],
    *,
    steps: int,
    beta: float | None = None,
    seed: int = 0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """Null factors {name: (d, d)} for ``shapes`` {name: (d, r)} after ``steps`` accumulated steps.

    Parameters
    ----------
    shapes : {name: (d, r)}, d, r ≥ 1 (e.g. ``FactorRecorder.factor_shapes()``)
    steps : int ≥ 1, accumulated steps T (``FactorRecorder.num_updates``)
    beta : float in (0, 1] or None (= 1, plain sum), the recorder's β
    seed : int ≥ 0; the Gaussian draws come from one CPU generator, so every device gets the same numbers
    """
    where = "null_factors"
    check_int(steps, "steps", where=where, low=1)
    beta = 1.0 if beta is None else check_real(beta, "beta", where=where, low=0, high=1, low_open=True)
    check_int(seed, "seed", where=where, low=0)
    if not isinstance(shapes, Mapping) or not shapes:
        raise ValueError(f"{where}: shapes must be a non-empty mapping name -> (d, r); got {shapes!r}")
    for name, s in shapes.items():
        if not (isinstance(s, tuple) and len(s) == 2 and all(type(v) is int and v >= 1 for v in s)):
            raise ValueError(f"{where}: shapes[{name!r}] must be a pair (d, r) of ints >= 1; got {s!r}")
    gen = torch.Generator().manual_seed(seed)
    totals: dict[str, Tensor | None] = dict.fromkeys(shapes)
    for _ in range(steps):
        for name, (d, r) in shapes.items():
            X = torch.randn(r, d, generator=gen, dtype=dtype).to(device)
            totals[name] = accumulate(totals[name], gram(X) / r, beta)
    return totals  # type: ignore[return-value]


def matched_null_factors(
    real: Mapping[str, Tensor],
    shapes: Mapping[str, tuple[int, int]],
    *,
    steps: int,
    beta: float | None = None,
    seed: int = 0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """Diagonal-matched null {name: (d, d)}: E[F] = diag(real[name]), no correlation (module docstring).

    Parameters
    ----------
    real : {name: (d, d)} the real factors (e.g. ``FactorRecorder.factors()``), one per name of ``shapes``,
        with a finite non-negative diagonal
    shapes, steps, beta, seed, device, dtype : as :func:`null_factors` (the same seed gives the same draws)
    """
    where = "matched_null_factors"
    if not isinstance(real, Mapping) or set(real) != set(shapes):
        got: object = sorted(real) if isinstance(real, Mapping) else type(real).__name__
        raise ValueError(f"{where}: real must map exactly the names of shapes {sorted(shapes)}; got {got}")
    iso = null_factors(shapes, steps=steps, beta=beta, seed=seed, device=device, dtype=torch.float64)
    b = 1.0 if beta is None else float(beta)
    mass = sum(b**k for k in range(steps))  # E[F_iso] = mass·I
    out = {}
    for name, F in iso.items():
        d = shapes[name][0]
        R = real[name]
        if not isinstance(R, Tensor) or tuple(R.shape) != (d, d):
            got = tuple(R.shape) if isinstance(R, Tensor) else type(R).__name__
            raise ValueError(f"{where}: real[{name!r}] must be a ({d}, {d}) tensor; got {got}")
        diag = torch.diagonal(R).detach().to(device=F.device, dtype=torch.float64)
        if not bool(torch.isfinite(diag).all()) or bool((diag < 0).any()):
            raise ValueError(f"{where}: real[{name!r}] must have a finite diagonal >= 0; got {diag.tolist()}")
        sigma = (diag / mass).sqrt()
        out[name] = (sigma[:, None] * F * sigma[None, :]).to(dtype)
    return out
