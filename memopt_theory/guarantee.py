r"""What a method promises: its regret guarantee and the roles of its hyper-parameters, as data.

A registered :class:`memopt_theory.methods.Method` carries ``guarantee`` (a :class:`Guarantee` or None) and
``roles`` (a mapping from a role such as ``"sketch_size"`` or ``"lr"`` to the Config field that plays it). The
simulator (online_convex), ``memopt regret``, the regret overlays and ``memopt verify`` read these fields and
never a method's name, so adding a method with a theorem is adding one module under memopt_theory/methods.

A guarantee is stated for online convex optimisation: rounds t = 1..T, the learner plays x_t ∈ K, receives
g_t = ∇f_t(x_t) and steps x_{t+1} = Π_K^{H_t}(x_t − η·u_t) (projection in the method's own metric H_t). The
bound is on the linearised regret R^lin_t = sup_{x*∈K} Σ_{s≤t} ⟨g_s, x_s − x*⟩, which is ≥ the regret by
convexity. It has three parts:

- ``bound(inputs) -> Tensor``: the right-hand side of the theorem at round t, per seed, from the run's own
  quantities (:class:`BoundInputs`); None when the method has no bound (kind "none");
- ``theory_eta(inputs) -> Tensor | float``: the step size η the theorem prescribes (:class:`EtaInputs`), or None;
- ``applies(config, setting) -> str | None``: None when the theorem covers this Config in this
  :class:`Setting` (domain, projection, step-size mode), else a one-line reason.

Roles in use: ``"sketch_size"`` (the field ℓ that ``memopt regret --ranks`` sweeps), ``"lr"`` (the field holding
the step size of a method with its own step rule), ``"rank"`` (a compression rank).

Example
-------
>>> import math
>>> from memopt_theory import methods
>>> g = methods.get("adagrad_full").guarantee
>>> g.kind
'upper bound'
>>> s = Setting(shape=(4,), D=2.0, D_inf=2.0, projection="euclidean", eta_mode="theory")
>>> g.reason(methods.get("adagrad_full").Config(), s)
"projection 'euclidean': the theorem needs the projection in the method's metric H_t"
>>> round(g.theory_eta(EtaInputs(config=None, shape=(4,), D=2.0, D_inf=2.0, T=10)), 12)  # D/√2
1.414213562373
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = [
    "Guarantee",
    "Setting",
    "BoundInputs",
    "EtaInputs",
    "KINDS",
    "ROLES",
    "eta_d_over_sqrt2",
    "eta_dinf_over_sqrt2",
    "eta_d_over_sqrt_2r",
]

KINDS = ("tight", "upper bound", "none")
ROLES = ("sketch_size", "lr", "rank")
NEEDS = ("dense_G", "grad_bound", "state")


@dataclass(frozen=True)
class Setting:
    """Where a bound would be used. ``D``/``D_inf``: ℓ2/ℓ∞ diameter of K (inf: unbounded); ``projection``:
    "metric" (Π_K^{H_t}) or "euclidean"; ``eta_mode``: "theory" (η = ``theory_eta``) or "given"."""

    shape: tuple[int, ...]
    D: float
    D_inf: float
    projection: str = "metric"
    eta_mode: str = "theory"


@dataclass(frozen=True)
class EtaInputs:
    """What a theory step size may read: the Config, parameter shape, diameters, horizon T and, when the
    guarantee ``needs`` "grad_bound", G ≥ max_t ‖g_t‖_2 per seed."""

    config: Any
    shape: tuple[int, ...]
    D: float
    D_inf: float
    T: int
    grad_bound: Tensor | None = None

    def need_grad_bound(self) -> Tensor:
        """G, which a guarantee that ``needs`` "grad_bound" receives."""
        if self.grad_bound is None:
            raise ValueError("EtaInputs: grad_bound is None; declare 'grad_bound' in the guarantee's needs")
        return self.grad_bound


@dataclass(frozen=True)
class BoundInputs:
    """The run's quantities at round t, per seed (batch B): ``eta`` (B), ``sum_sq`` B + S = Σ_{s≤t} g_s²,
    ``G`` B + (N, N) = Σ_{s≤t} g_sg_sᵀ (only when the guarantee needs "dense_G"), ``grad_bound`` (B) (only with
    "grad_bound"), ``state`` the method state after round t (only with "state")."""

    config: Any
    shape: tuple[int, ...]
    t: int
    T: int
    eta: Tensor
    D: float
    D_inf: float
    sum_sq: Tensor
    G: Tensor | None = None
    grad_bound: Tensor | None = None
    state: Any = None

    def need(self, name: str) -> Any:
        """The field ``name`` ("G", "grad_bound" or "state"), which the guarantee declared in ``needs``."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"BoundInputs: {name} is None; declare it in the guarantee's needs")
        return value


def _always(config: Any, setting: Setting) -> str | None:
    return None


@dataclass(frozen=True)
class Guarantee:
    """A method's regret theorem as data (see the module docstring).

    Attributes
    ----------
    title : str            short label drawn beside a run, e.g. "AdaGrad (D²/2η+η)tr G^½"
    theorem : str          the statement in one line, e.g. "R^lin_T ≤ √2·D·tr G_T^{1/2} at η = D/√2"
    reference : str        paper and section
    kind : "tight", "upper bound" or "none"
    bound : (BoundInputs) -> Tensor (B,), or None (kind "none")
    theory_eta : (EtaInputs) -> Tensor | float, or None (no prescribed step)
    applies : (config, Setting) -> str | None: a reason when the theorem does not cover this Config/setting
        (beyond the generic ones :meth:`reason` checks: a bound exists, K bounded, projection in H_t)
    needs : subset of {"dense_G", "grad_bound", "state"}: what ``bound``/``theory_eta`` read
    title_for : (config) -> str, optional: a title that depends on the Config (default ``title``)
    instance_shape : the parameter shape of the generic simulated check (``memopt verify``)
    instance_config : Config fields of that check (the defaults otherwise; required fields must be given)
    """

    title: str
    theorem: str
    reference: str = ""
    kind: str = "upper bound"
    bound: Callable[[BoundInputs], Tensor] | None = None
    theory_eta: Callable[[EtaInputs], Tensor | float] | None = None
    applies: Callable[[Any, Setting], str | None] = _always
    needs: frozenset[str] = field(default_factory=frozenset)
    title_for: Callable[[Any], str] | None = None
    instance_shape: tuple[int, ...] = (6,)
    instance_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Guarantee: kind must be one of {KINDS}; got {self.kind!r}")
        if (self.kind == "none") != (self.bound is None):
            raise ValueError(
                f"Guarantee {self.title!r}: kind 'none' goes with bound=None and only then; got kind "
                f"{self.kind!r} and bound={self.bound!r}"
            )
        object.__setattr__(self, "needs", frozenset(self.needs))
        bad = self.needs - set(NEEDS)
        if bad:
            raise ValueError(
                f"Guarantee {self.title!r}: needs must be a subset of {NEEDS}; got {sorted(bad)}"
            )

    def label(self, config: Any) -> str:
        """The title for this Config."""
        return self.title_for(config) if self.title_for is not None else self.title

    def reason(self, config: Any, setting: Setting) -> str | None:
        """None when the bound covers ``config`` in ``setting``, else why not (one line)."""
        if self.bound is None:
            return "the method has no regret bound"
        if not math.isfinite(float(setting.D)):
            return "unbounded domain: the bound grows with diam K"
        if setting.projection != "metric":
            return f"projection {setting.projection!r}: the theorem needs the projection in the method's metric H_t"
        return self.applies(config, setting)


def eta_d_over_sqrt2(q: EtaInputs) -> float:
    """η = D/√2: minimises (D²/(2η) + η)·c over η."""
    return float(q.D) / math.sqrt(2)


def eta_dinf_over_sqrt2(q: EtaInputs) -> float:
    """η = D_∞/√2: minimises (D_∞²/(2η) + η)·c over η."""
    return float(q.D_inf) / math.sqrt(2)


def eta_d_over_sqrt_2r(q: EtaInputs) -> float:
    """η = D/√(2r̄), r̄ = (Π_i min(n_i, N/n_i))^{1/p} the a-priori mode-rank bound: minimises (D²/(2η) + η·r̄)·c."""
    from memopt_theory.bounds.tensored import mode_rank_bound

    return float(q.D) / math.sqrt(2 * mode_rank_bound(q.shape))


def roles_of(method: Any) -> Mapping[str, str]:
    """The method's role → field mapping (empty when it declares none)."""
    return getattr(method, "roles", None) or {}
