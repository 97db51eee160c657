r"""Loss families of the OCO simulator: generalised linear losses f_t(x) = φ(⟨a_t, x⟩, y_t).

⟨·,·⟩ is the Frobenius product, so a vector problem (parameter shape S = (d,)) and a matrix or tensor problem
(S = (m, n), …, the shapes the tensored methods need) share one code path; the (sub)gradient is
g_t = φ'(p_t, y_t)·a_t with p_t = ⟨a_t, x⟩ (chain rule through the linear map x ↦ ⟨a_t, x⟩).

=================  =========================  ==============================  ===========================
name               φ(p, y)                    φ'(p, y)                        φ''(p, y)
=================  =========================  ==============================  ===========================
``linear``         p  (y unused, 0)           1                               0
``least_squares``  ½(p − y)²                  p − y                           1
``logistic``       log(1 + e^{−yp}), y = ±1   −y·σ(−yp)                       σ(yp)·σ(−yp)
``hinge``          max(0, 1 − yp), y = ±1     −y·1[yp < 1] (0 at the kink)    0 (a.e.)
=================  =========================  ==============================  ===========================

For ``linear`` the round vector a_t *is* the gradient g_t (the adversary's choice); every φ is convex in p, so
every f_t is convex in x. Shapes: B are the seed (batch) axes, S the parameter shape; a round holds
a: B + S and y: B; a stream of T rounds is a :class:`RoundData` with a: (T, *B, *S) and y: (T, *B).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["RoundData", "Problem", "get_problem", "PROBLEM_NAMES", "get", "names"]


@dataclass(frozen=True)
class RoundData:
    """T rounds of data for all seeds: a: (T, *B, *S) floating, y: (T, *B) of a's dtype and device.

    Validated at construction: T ≥ 1, finite entries, y's shape a prefix of a's.
    """

    a: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        where = "RoundData"
        for name, v in (("a", self.a), ("y", self.y)):
            if not isinstance(v, Tensor):
                raise TypeError(f"{where}: {name} must be a torch.Tensor; got {type(v).__name__}")
            if not torch.is_floating_point(v):
                raise TypeError(f"{where}: {name} must have a floating dtype; got {v.dtype}")
            if not bool(torch.isfinite(v).all()):
                raise ValueError(
                    f"{where}: {name} must be finite; it has {int((~torch.isfinite(v)).sum())} NaN/inf entries"
                )
        if self.y.ndim < 1 or self.a.ndim <= self.y.ndim:
            raise ValueError(
                f"{where}: need a of shape (T, *B, *S) with len(S) >= 1 and y of shape (T, *B); "
                f"got a {tuple(self.a.shape)}, y {tuple(self.y.shape)}"
            )
        if tuple(self.a.shape[: self.y.ndim]) != tuple(self.y.shape):
            raise ValueError(
                f"{where}: y's shape (T, *B) = {tuple(self.y.shape)} must be the leading axes of a's shape "
                f"{tuple(self.a.shape)}"
            )
        if self.y.shape[0] < 1:
            raise ValueError(f"{where}: T (the number of rounds, axis 0) must be >= 1; got {self.y.shape[0]}")
        if self.a.dtype != self.y.dtype or self.a.device != self.y.device:
            raise ValueError(
                f"{where}: a and y must share dtype and device; got {self.a.dtype}/{self.a.device} "
                f"and {self.y.dtype}/{self.y.device}"
            )

    @property
    def T(self) -> int:
        return int(self.y.shape[0])

    @property
    def batch(self) -> tuple[int, ...]:
        """The seed axes B."""
        return tuple(self.y.shape[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        """The parameter shape S."""
        return tuple(self.a.shape[self.y.ndim :])


def _inner(a: Tensor, x: Tensor, k: int) -> Tensor:
    """⟨a, x⟩ over the last k axes (the parameter axes S)."""
    return (a * x).flatten(start_dim=a.ndim - k).sum(-1)


@dataclass(frozen=True)
class Problem:
    """A generalised linear loss f(x) = φ(⟨a, x⟩, y); see the module docstring for the four families.

    ``labels_pm1``: y must lie in {−1, +1} (logistic, hinge); checked by :meth:`check_data`.
    """

    name: str
    _phi: Callable[[Tensor, Tensor], Tensor]
    _dphi: Callable[[Tensor, Tensor], Tensor]
    _ddphi: Callable[[Tensor, Tensor], Tensor]
    labels_pm1: bool
    smooth: bool  # φ has a Lipschitz derivative (least squares, logistic, linear)

    def phi(self, p: Tensor, y: Tensor) -> Tensor:
        """φ(p, y), elementwise."""
        return self._phi(p, y)

    def dphi(self, p: Tensor, y: Tensor) -> Tensor:
        """φ'(p, y) = ∂φ/∂p (the subgradient the module table names where φ has a kink)."""
        return self._dphi(p, y)

    def ddphi(self, p: Tensor, y: Tensor) -> Tensor:
        """φ''(p, y) = ∂²φ/∂p² (0 for linear and, almost everywhere, hinge); used by Newton-type solvers."""
        return self._ddphi(p, y)

    # one round ------------------------------------------------------------------------------------------
    def _check_round(self, x: Tensor, a: Tensor, y: Tensor, where: str) -> int:
        if tuple(a.shape) != tuple(x.shape):
            raise ValueError(
                f"{self.name}.{where}: a has shape {tuple(a.shape)}; x has {tuple(x.shape)} (both B + S)"
            )
        if y.ndim > x.ndim - 1 or tuple(x.shape[: y.ndim]) != tuple(y.shape):
            raise ValueError(
                f"{self.name}.{where}: y has shape {tuple(y.shape)}; it must be the batch axes B of x's shape "
                f"{tuple(x.shape)} = B + S"
            )
        return x.ndim - y.ndim

    def loss(self, x: Tensor, a: Tensor, y: Tensor) -> Tensor:
        """f(x) = φ(⟨a, x⟩, y) per seed: x, a of shape B + S, y of shape B → shape B."""
        k = self._check_round(x, a, y, "loss")
        return self._phi(_inner(a, x, k), y)

    def grad(self, x: Tensor, a: Tensor, y: Tensor) -> Tensor:
        """∇f(x) = φ'(⟨a, x⟩, y)·a, shape B + S."""
        k = self._check_round(x, a, y, "grad")
        d = self._dphi(_inner(a, x, k), y)
        return d.reshape(*d.shape, *([1] * k)) * a

    # a stream of rounds ---------------------------------------------------------------------------------
    def check_data(self, data: RoundData) -> None:
        """Labels y ∈ {−1, +1} for logistic and hinge; a ValueError naming the offending values otherwise."""
        if not isinstance(data, RoundData):
            raise TypeError(f"{self.name}: data must be a RoundData; got {type(data).__name__}")
        if self.labels_pm1:
            bad = (data.y != 1) & (data.y != -1)
            if bool(bad.any()):
                vals = torch.unique(data.y[bad])[:5].tolist()
                raise ValueError(
                    f"{self.name}: labels y must be -1 or +1; got {int(bad.sum())} others, e.g. {vals}"
                )

    def _margins(self, x: Tensor, data: RoundData, t_end: int, where: str) -> tuple[Tensor, Tensor, int]:
        """p_s = ⟨a_s, x⟩ for s < t_end: shape (t_end, *B); also y[:t_end] and len(S)."""
        self.check_data(data)
        if type(t_end) is not int or not 0 <= t_end <= data.T:
            raise ValueError(f"{self.name}.{where}: t_end must be an int in [0, T={data.T}]; got {t_end!r}")
        if tuple(x.shape) != tuple(data.a.shape[1:]):
            raise ValueError(
                f"{self.name}.{where}: x has shape {tuple(x.shape)}; the data's rounds have shape B + S = "
                f"{tuple(data.a.shape[1:])}"
            )
        k = len(data.shape)
        a = data.a[:t_end].flatten(start_dim=data.a.ndim - k)  # (t, *B, N)
        p = (a * x.flatten(start_dim=x.ndim - k)).sum(-1)
        return p, data.y[:t_end], k

    def total_loss(self, x: Tensor, data: RoundData, t_end: int) -> Tensor:
        """F_t(x) = Σ_{s<t_end} f_s(x) for x of shape B + S → shape B (0 for t_end = 0)."""
        p, y, _ = self._margins(x, data, t_end, "total_loss")
        return self._phi(p, y).sum(0)

    def total_grad(self, x: Tensor, data: RoundData, t_end: int) -> Tensor:
        """∇F_t(x) = Σ_{s<t_end} φ'(p_s, y_s)·a_s, shape B + S."""
        p, y, k = self._margins(x, data, t_end, "total_grad")
        d = self._dphi(p, y)
        return (d.reshape(*d.shape, *([1] * k)) * data.a[:t_end]).sum(0)

    def total_hessian(self, x: Tensor, data: RoundData, t_end: int) -> Tensor:
        """∇²F_t(x) = Σ_{s<t_end} φ''(p_s, y_s)·vec a_s vec a_sᵀ, shape B + (N, N), N = ΠS (row-major vec)."""
        p, y, k = self._margins(x, data, t_end, "total_hessian")
        a = data.a[:t_end].flatten(start_dim=data.a.ndim - k)  # (t, *B, N)
        w = self._ddphi(p, y).unsqueeze(-1) * a
        return torch.einsum("t...i,t...j->...ij", w, a)


def _linear_phi(p: Tensor, y: Tensor) -> Tensor:
    return p


def _logistic_phi(p: Tensor, y: Tensor) -> Tensor:
    return F.softplus(-y * p)  # log(1 + e^{−yp}) without overflow for large |p|


def _logistic_dphi(p: Tensor, y: Tensor) -> Tensor:
    return -y * torch.sigmoid(-y * p)


def _logistic_ddphi(p: Tensor, y: Tensor) -> Tensor:
    s = torch.sigmoid(y * p)
    return s * (1 - s)


def _hinge_phi(p: Tensor, y: Tensor) -> Tensor:
    return (1 - y * p).clamp_min(0)


def _hinge_dphi(p: Tensor, y: Tensor) -> Tensor:
    return torch.where(y * p < 1, -y, torch.zeros_like(p))  # subgradient 0 at the kink yp = 1


def _ones(p: Tensor, y: Tensor) -> Tensor:
    return torch.ones_like(p)


def _zeros(p: Tensor, y: Tensor) -> Tensor:
    return torch.zeros_like(p)


def _ls_phi(p: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (p - y) ** 2


def _ls_dphi(p: Tensor, y: Tensor) -> Tensor:
    return p - y


# module-level functions, not lambdas: a Problem pickles by reference (process pools, dask)
_PROBLEMS: dict[str, Problem] = {
    "linear": Problem("linear", _linear_phi, _ones, _zeros, False, True),
    "least_squares": Problem("least_squares", _ls_phi, _ls_dphi, _ones, False, True),
    "logistic": Problem("logistic", _logistic_phi, _logistic_dphi, _logistic_ddphi, True, True),
    "hinge": Problem("hinge", _hinge_phi, _hinge_dphi, _zeros, True, False),
}
PROBLEM_NAMES: tuple[str, ...] = tuple(_PROBLEMS)


def get_problem(name: str) -> Problem:
    """The loss family called ``name``; unknown names raise a ValueError listing the known ones."""
    if name not in _PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; known problems: {', '.join(PROBLEM_NAMES)}")
    return _PROBLEMS[name]


# the registry idiom shared by methods, problems, domains, streams and checks
def names() -> list[str]:
    """Registered loss families, in registration order (= PROBLEM_NAMES)."""
    return list(PROBLEM_NAMES)


def get(name: str) -> Problem:
    """The loss family ``name`` (same as :func:`get_problem`)."""
    return get_problem(name)
