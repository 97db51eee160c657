r"""Convex domains K of the OCO simulator, with Euclidean and ‖·‖_H projections and a linear minimisation oracle.

Every domain acts on tensors of shape B + S (B the seed axes, S = ``shape`` the parameter shape), coordinates
flattened row-major where a vector view is needed (as in memopt_theory.metric).

==================  ===========================================  =====================================
name                K                                            Euclidean projection Π_K(y)
==================  ===========================================  =====================================
``unconstrained``   R^S                                          y
``l2_ball``         {‖x‖_F ≤ R}                                  y·min(1, R/‖y‖)
``box``             {lo ≤ x_i ≤ hi}                              clip(y, lo, hi)
``simplex``         {x ≥ 0, Σ_i x_i = R} (R = 1: probabilities)  y − θ clipped at 0, θ from the sorted y
``nuclear_ball``    {X ∈ R^{m×n}: ‖X‖_* = Σσ_i ≤ R}              SVD; σ projected on the ℓ1 ball of radius R
==================  ===========================================  =====================================

Projections in ‖z‖²_H = zᵀHz (Π_K^H(y) = argmin_{x∈K} ‖x − y‖_H, what Lemma L1 of docs/theory/README.md needs) are in
:mod:`online_convex.domains_hnorm`; :meth:`Domain.project` dispatches to them by Metric class.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from memopt_theory.metric import Identity, Metric
from memopt_theory.validation import check_real, check_shape

__all__ = [
    "Domain",
    "Unconstrained",
    "L2Ball",
    "Box",
    "Simplex",
    "NuclearBall",
    "make_domain",
    "DOMAIN_NAMES",
    "get",
    "names",
]


class Domain:
    """A closed convex set K ⊆ R^S; see the module table. Subclasses are frozen after construction."""

    name: str
    shape: tuple[int, ...]
    diameter: float  # sup ‖x − x'‖_2 over K (Frobenius for matrices); inf if unbounded
    diameter_inf: float  # sup ‖x − x'‖_∞ over K

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.diameter)

    def _check(self, y: Tensor, what: str, where: str) -> tuple[int, ...]:
        """Validate a B + S tensor; return B."""
        if not isinstance(y, Tensor) or not torch.is_floating_point(y):
            got = y.dtype if isinstance(y, Tensor) else type(y).__name__
            raise TypeError(f"{self.name}.{where}: {what} must be a floating torch.Tensor; got {got}")
        k = len(self.shape)
        if y.ndim < k or tuple(y.shape[y.ndim - k :]) != self.shape:
            raise ValueError(
                f"{self.name}.{where}: {what} has shape {tuple(y.shape)}; the domain's shape is {self.shape}, "
                f"so {what} must have shape B + {self.shape}"
            )
        return tuple(y.shape[: y.ndim - k])

    def _flat(self, y: Tensor) -> Tensor:
        return y.flatten(start_dim=y.ndim - len(self.shape))

    # --- the public API ----------------------------------------------------------------------------------
    def project(self, y: Tensor, H: Metric | None = None) -> Tensor:
        """Π_K(y) (H None or Identity) or Π_K^H(y) = argmin_{x∈K} ‖x − y‖_H, shape B + S.

        H must be PSD with batch axes B (or none, shared by all seeds). For singular H the projection is the
        limit ε → 0 of Π_K^{H+εI}(y), which is the Euclidean-nearest point to y among the minimisers of
        ‖x − y‖_H over K (Tikhonov limit); see :mod:`online_convex.domains_hnorm`. A Metric class the domain
        cannot project in raises a ValueError naming both.
        """
        B = self._check(y, "y", "project")
        if not bool(torch.isfinite(y).all()):
            raise ValueError(
                f"{self.name}.project: y must be finite; it has {int((~torch.isfinite(y)).sum())} NaN/inf entries"
            )
        if H is None or isinstance(H, Identity):
            return self._project_euclid(y)
        if not isinstance(H, Metric):
            raise TypeError(
                f"{self.name}.project: H must be a memopt_theory.metric.Metric or None; got {type(H).__name__}"
            )
        if tuple(H.shape) != self.shape:
            raise ValueError(
                f"{self.name}.project: H acts on shape {tuple(H.shape)}; the domain's shape is {self.shape}"
            )
        if tuple(H.batch) not in ((), B):
            raise ValueError(
                f"{self.name}.project: H has batch axes {tuple(H.batch)}; y has {B} (or use no batch axes)"
            )
        from online_convex import domains_hnorm  # the H-norm algorithms live beside, one concept per module

        return domains_hnorm.project(self, y, H)

    def lmo(self, c: Tensor) -> Tensor:
        """A linear minimisation oracle: s = argmin_{s∈K} ⟨c, s⟩, shape B + S (ValueError if K is unbounded)."""
        self._check(c, "c", "lmo")
        return self._lmo(c)

    def contains(self, x: Tensor, atol: float = 1e-9) -> Tensor:
        """Whether each seed's x lies in K up to ``atol`` (absolute, in the constraint's own units), shape B."""
        self._check(x, "x", "contains")
        return self._contains(x, check_real(atol, "atol", where=f"{self.name}.contains", low=0.0))

    def _project_euclid(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _lmo(self, c: Tensor) -> Tensor:
        raise NotImplementedError

    def _contains(self, x: Tensor, atol: float) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"make_domain({self.name!r}, {self.shape}{', ' if params else ''}{params})"

    def params(self) -> dict[str, float]:
        return {}


class Unconstrained(Domain):
    name = "unconstrained"
    diameter = math.inf
    diameter_inf = math.inf

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def _project_euclid(self, y: Tensor) -> Tensor:
        return y

    def _lmo(self, c: Tensor) -> Tensor:
        raise ValueError(
            "unconstrained.lmo: K = R^S is unbounded, so min ⟨c, s⟩ is −inf; use a bounded domain "
            "(l2_ball, box, simplex, nuclear_ball)"
        )

    def _contains(self, x: Tensor, atol: float) -> Tensor:
        return torch.isfinite(self._flat(x)).all(-1)


class L2Ball(Domain):
    name = "l2_ball"

    def __init__(self, shape: tuple[int, ...], radius: float):
        self.shape, self.radius = shape, radius
        self.diameter = 2 * radius
        self.diameter_inf = 2 * radius  # ±R·e_1

    def params(self) -> dict[str, float]:
        return {"radius": self.radius}

    def _project_euclid(self, y: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(self._flat(y), dim=-1)
        scale = (self.radius / norm.clamp_min(torch.finfo(y.dtype).tiny)).clamp_max(1.0)
        return y * scale.reshape(*scale.shape, *([1] * len(self.shape)))

    def _lmo(self, c: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(self._flat(c), dim=-1)
        # c = 0: every s is optimal and 0 is returned (R/tiny would overflow to inf and 0·inf is NaN)
        scale = torch.where(norm > 0, -self.radius / torch.where(norm > 0, norm, torch.ones_like(norm)), 0.0)
        return c * scale.reshape(*scale.shape, *([1] * len(self.shape)))

    def _contains(self, x: Tensor, atol: float) -> Tensor:
        return torch.linalg.vector_norm(self._flat(x), dim=-1) <= self.radius + atol


class Box(Domain):
    name = "box"

    def __init__(self, shape: tuple[int, ...], lo: float, hi: float):
        self.shape, self.lo, self.hi = shape, lo, hi
        self.diameter = (hi - lo) * math.sqrt(self.n)
        self.diameter_inf = hi - lo

    def params(self) -> dict[str, float]:
        return {"lo": self.lo, "hi": self.hi}

    def _project_euclid(self, y: Tensor) -> Tensor:
        return y.clamp(self.lo, self.hi)

    def _lmo(self, c: Tensor) -> Tensor:
        return torch.where(c > 0, torch.full_like(c, self.lo), torch.full_like(c, self.hi))

    def _contains(self, x: Tensor, atol: float) -> Tensor:
        f = self._flat(x)
        return ((f >= self.lo - atol) & (f <= self.hi + atol)).all(-1)


def project_simplex(v: Tensor, radius: float) -> Tensor:
    """Euclidean projection of each row v (shape (..., n)) onto {x ≥ 0, Σx = radius}.

    KKT: x = max(v − θ, 0) with θ chosen so that Σx = radius; with u the entries sorted decreasingly and
    ρ the largest j with u_j − (Σ_{i≤j} u_i − radius)/j > 0, θ = (Σ_{i≤ρ} u_i − radius)/ρ
    (Held, Wolfe & Crowder 1974; Duchi et al. 2008, Fig. 1).
    """
    u = torch.sort(v, dim=-1, descending=True).values
    css = torch.cumsum(u, dim=-1) - radius
    j = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = ((u - css / j) > 0).sum(-1, keepdim=True)  # ≥ 1: j = 1 always satisfies it
    theta = torch.gather(css, -1, rho - 1) / rho.to(v.dtype)
    return (v - theta).clamp_min(0)


class Simplex(Domain):
    name = "simplex"

    def __init__(self, shape: tuple[int, ...], radius: float):
        self.shape, self.radius = shape, radius
        self.diameter = radius * math.sqrt(2) if self.n > 1 else 0.0  # between two vertices R·e_i, R·e_j
        self.diameter_inf = radius if self.n > 1 else 0.0

    def params(self) -> dict[str, float]:
        return {"radius": self.radius}

    def _project_euclid(self, y: Tensor) -> Tensor:
        return project_simplex(self._flat(y), self.radius).reshape(y.shape)

    def _lmo(self, c: Tensor) -> Tensor:
        f = self._flat(c)
        s = torch.zeros_like(f).scatter_(-1, f.argmin(-1, keepdim=True), self.radius)  # the best vertex R·e_i
        return s.reshape(c.shape)

    def _contains(self, x: Tensor, atol: float) -> Tensor:
        f = self._flat(x)
        return (f >= -atol).all(-1) & ((f.sum(-1) - self.radius).abs() <= atol)


class NuclearBall(Domain):
    name = "nuclear_ball"

    def __init__(self, shape: tuple[int, ...], radius: float):
        self.shape, self.radius = shape, radius
        self.diameter = 2 * radius  # ‖X‖_F ≤ ‖X‖_*, attained by ±R·u vᵀ
        self.diameter_inf = 2 * radius  # ±R·e_1 e_1ᵀ

    def params(self) -> dict[str, float]:
        return {"radius": self.radius}

    def _project_euclid(self, y: Tensor) -> Tensor:
        # ‖·‖_F and ‖·‖_* are unitarily invariant, so the projection keeps the singular vectors and projects σ
        # on the ℓ1 ball (von Neumann's trace inequality makes that optimal)
        U, s, Vh = torch.linalg.svd(y, full_matrices=False)
        inside = s.sum(-1, keepdim=True) <= self.radius
        s_new = torch.where(inside, s, project_simplex(s, self.radius))
        return (U * s_new.unsqueeze(-2)) @ Vh

    def _lmo(self, c: Tensor) -> Tensor:
        # min ⟨C, S⟩ over ‖S‖_* ≤ R is −R·σ_1(C), attained at −R·u_1 v_1ᵀ (the dual norm is the spectral norm)
        U, _, Vh = torch.linalg.svd(c, full_matrices=False)
        return -self.radius * U[..., :, :1] @ Vh[..., :1, :]

    def _contains(self, x: Tensor, atol: float) -> Tensor:
        return torch.linalg.svdvals(x).sum(-1) <= self.radius + atol


_DOMAINS = {
    "unconstrained": Unconstrained,
    "l2_ball": L2Ball,
    "box": Box,
    "simplex": Simplex,
    "nuclear_ball": NuclearBall,
}
DOMAIN_NAMES: tuple[str, ...] = tuple(_DOMAINS)
_PARAMS: dict[str, dict[str, float | None]] = {
    "unconstrained": {},
    "l2_ball": {"radius": None},
    "box": {"lo": None, "hi": None},
    "simplex": {"radius": 1.0},
    "nuclear_ball": {"radius": None},
}  # None: required


def make_domain(name: str, shape, **params) -> Domain:
    """The domain ``name`` on parameter shape ``shape``; see the module table for names and parameters.

    ``unconstrained`` (none), ``l2_ball`` (radius > 0), ``box`` (lo < hi), ``simplex`` (radius > 0, default 1),
    ``nuclear_ball`` (radius > 0; shape (m, n)). Unknown names or parameters raise a ValueError listing the
    allowed ones.
    """
    if name not in _DOMAINS:
        raise ValueError(f"unknown domain {name!r}; known domains: {', '.join(DOMAIN_NAMES)}")
    where = f"make_domain({name!r})"
    shape = check_shape(shape, where=where, min_ndim=1)
    allowed = _PARAMS[name]
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise ValueError(
            f"{where}: unknown parameter(s) {', '.join(extra)}; allowed: {', '.join(allowed) or 'none'}"
        )
    missing = [k for k, v in allowed.items() if v is None and k not in params]
    if missing:
        raise ValueError(f"{where}: missing parameter(s) {', '.join(missing)}")
    p = {k: params.get(k, v) for k, v in allowed.items()}
    if "radius" in p:
        p["radius"] = check_real(p["radius"], "radius", where=where, low=0.0, low_open=True)
    if name == "box":
        lo = check_real(p["lo"], "lo", where=where)
        hi = check_real(p["hi"], "hi", where=where)
        if not lo < hi:
            raise ValueError(f"{where}: need lo < hi; got lo={lo!r}, hi={hi!r}")
        p = {"lo": lo, "hi": hi}
    if name == "nuclear_ball" and len(shape) != 2:
        raise ValueError(f"{where}: the nuclear norm needs a matrix shape (m, n); got {shape}")
    return _DOMAINS[name](shape, **p)


# the registry idiom shared by methods, problems, domains, streams and checks
def names() -> list[str]:
    """Registered domain names, in registration order (= DOMAIN_NAMES)."""
    return list(DOMAIN_NAMES)


def get(name: str) -> Callable[..., Domain]:
    """A constructor ``(shape, **params) -> Domain`` for domain ``name`` (:func:`make_domain` with the name
    bound); unknown names raise listing the known ones."""
    if name not in _DOMAINS:
        raise ValueError(f"unknown domain {name!r}; known domains: {', '.join(DOMAIN_NAMES)}")
    return functools.partial(make_domain, name)
