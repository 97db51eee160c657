r"""Null baseline: Kronecker factors of structureless Gaussian gradients, accumulated like the real ones.

For every recorded factor of dimension d that adds r outer products a step (``FactorRecorder.factor_shapes``)
the null draws rows X_t ∈ R^{r×d} with i.i.d. N(0, 1) entries and feeds F_t = (1/r) X_tᵀX_t through the same
``gram`` and ``accumulate`` the recorder uses: F_T = Σ_{t=1}^{T} β^{T−t} F_t, with the run's β and number of
accumulated steps T. Any concentration of the real spectrum beyond this null's (a Marchenko–Pastur-like
spread, not a flat line, when r is comparable to d) is structure in the gradients, not finite-sample noise.

Moments (the test's independent calculation): E[X_tᵀX_t] = r·I, so E[F_T] = (Σ_{k<T} β^k)·I; for T = 1,
E[F_1²] = (1/r²)·E[(XᵀX)²] = ((r + d + 1)/r)·I (Wishart second moment: E[W²] = r(r + d + 1)I for W ~ W_d(r, I)).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from memopt_theory.validation import check_int, check_real
from spectra.kfac import accumulate, gram

__all__ = ["null_factors"]


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
