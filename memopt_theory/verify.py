r"""``memopt verify``: every theorem/guarantee check of the toolkit on random instances, one table.

A check is a function ``run(seed: int, fast: bool) -> (measured, bound)`` whose docstring states the
theorem. Checks are found by registration, never by a package name written here: every entry point of the
group ``memopt.checks`` (pyproject.toml) names a package (each of its modules not starting with ``_``
defines ``CHECKS: tuple[Check, ...]`` or a function ``checks() -> tuple[Check, ...]``), a module of that form,
or a callable returning checks. A package outside memopt adds its checks by declaring its own entry point. A
worst ratio measured/bound ≤ 1 means the theorem held on every instance.

Regret checks (``Check.regret``) measure the quantity their theorem bounds (the linearised regret
Σ_t ⟨g_t, x_t − x*⟩ against the best comparator of the learner's domain) and may return a :class:`Measurement`:
a (measured, bound) pair that also carries the pair at the horizon T. Their pair is the largest ratio over the
checkpoints t ≥ t₀ of the run (t₀ is stated by the check; the ratio at t = 1 says nothing about the √T
behaviour). An instance whose measured regret is ≤ 0 is *uninformative*: any non-negative bound holds there, so it
is not counted; a regret check none of whose instances is informative does not hold.

Tightness: for a regret check the largest ratio found, ``worst_ratio``, is also its best-found tightness; a
check that declares ``tightness_cap`` (an analytic bound on the ratio any instance of its family can reach,
derived in its docstring) reports it beside the ratio.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from memopt_theory._entry_points import registered

__all__ = ["Check", "CheckResult", "Measurement", "all_checks", "run_check", "get", "names", "CHECK_GROUP"]

CHECK_GROUP = "memopt.checks"  # entry-point group: packages / modules / callables providing checks


class Measurement(tuple):
    """A (measured, bound) pair — it unpacks as one — that also carries the pair at the horizon T.

    ``measured, bound`` is the pair of largest ratio over the checkpoints t ≥ t₀; ``at_T`` the pair at t = T
    (None where the check has no horizon).
    """

    at_T: tuple[float, float] | None

    def __new__(cls, measured: float, bound: float, *, at_T: tuple[float, float] | None = None):
        self = super().__new__(cls, (float(measured), float(bound)))
        self.at_T = None if at_T is None else (float(at_T[0]), float(at_T[1]))
        return self


@dataclass(frozen=True)
class Check:
    name: str  # short, e.g. "FD Lemma 1: rho <= Omega_l"
    reference: str  # e.g. "Feinberg et al. 2023, Lemma 1"
    run: Callable[[int, bool], tuple[float, float]]
    instances: int = 20  # default number of random instances (fast mode may use fewer)
    fast_instances: int = 5
    theorem: str = ""  # the inequality checked, in words ("" -> the name)
    regret: bool = False  # a regret theorem: measured ≤ 0 is uninformative, ratio at T is reported
    t0: str | None = None  # for regret checks: from which round t the worst ratio is taken (stated in words)
    tightness_cap: float | None = None  # a derived bound on the reachable ratio, or None


def _ratio(measured: float, bound: float) -> float:
    return measured / bound if bound > 0 else (0.0 if measured <= 0 else math.inf)


@dataclass(frozen=True)
class CheckResult:
    check: Check
    instances: int
    worst_measured: float
    worst_bound: float
    worst_ratio: float
    informative: int = -1  # instances with measured > 0 (regret checks); -1: not a regret check
    ratio_at_T: float | None = None  # largest measured/bound at the horizon over informative instances

    @property
    def holds(self) -> bool:
        if self.check.regret and self.informative == 0:
            return False
        return self.worst_ratio <= 1.0

    def record(self) -> dict:
        """The JSON record of ``memopt verify --out``."""
        c = self.check

        def num(v):
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "name": c.name,
            "theorem": c.theorem or c.name,
            "reference": c.reference,
            "instances": self.instances,
            "informative": None if self.informative < 0 else self.informative,
            "worst_measured": num(self.worst_measured),
            "worst_bound": num(self.worst_bound),
            "worst_ratio": num(self.worst_ratio),
            "ratio_at_T": num(self.ratio_at_T),
            "t0": c.t0,
            "tightness_cap": c.tightness_cap,
            "holds": self.holds,
        }


def _module_checks(mod: ModuleType) -> list[Check]:
    fn = getattr(mod, "checks", None)
    found = fn() if callable(fn) else getattr(mod, "CHECKS", None)
    if found is None:
        raise ImportError(f"verify: {mod.__name__} defines neither CHECKS nor checks()")
    return list(found)


def _from_target(obj: Any) -> list[Check]:
    if isinstance(obj, ModuleType):
        if hasattr(obj, "__path__"):  # a package: each public submodule
            out: list[Check] = []
            for info in sorted(pkgutil.iter_modules(obj.__path__), key=lambda i: i.name):
                if not info.name.startswith("_"):
                    out += _module_checks(importlib.import_module(f"{obj.__name__}.{info.name}"))
            return out
        return _module_checks(obj)
    if callable(obj):
        return list(obj())
    raise TypeError(
        f"verify: a {CHECK_GROUP} entry point must name a package, module or callable; got {obj!r}"
    )


def all_checks() -> list[Check]:
    """Every registered check (entry-point group ``memopt.checks``, in entry-point name order)."""
    eps = sorted(registered(CHECK_GROUP), key=lambda e: e.name)
    if not eps:
        raise RuntimeError(
            f"verify: no {CHECK_GROUP!r} entry points found; install the package (pip install -e .)"
        )
    out: list[Check] = []
    for ep in eps:
        out += _from_target(ep.load())
    names_ = [c.name for c in out]
    dup = {n for n in names_ if names_.count(n) > 1}
    if dup:
        raise ValueError(f"verify: check names must be unique; repeated: {sorted(dup)}")
    return out


def names() -> list[str]:
    """Names of every registered check, in run order."""
    return [c.name for c in all_checks()]


def get(name: str) -> Check:
    """The registered check ``name``; an unknown name raises listing how many are known."""
    found = {c.name: c for c in all_checks()}
    if name not in found:
        raise ValueError(f"unknown check {name!r}; {len(found)} registered (memopt_theory.verify.names())")
    return found[name]


def run_check(
    check: Check, *, instances: int | None = None, fast: bool = False, seed0: int = 0
) -> CheckResult:
    n = instances if instances is not None else (check.fast_instances if fast else check.instances)
    worst = (-math.inf, math.nan, math.nan)
    informative, at_T = 0, None
    for i in range(n):
        out = check.run(seed0 + i, fast)
        measured, bound = (float(v) for v in out)
        if not (math.isfinite(measured) and math.isfinite(bound)):
            raise ValueError(
                f"verify: {check.name} returned a non-finite pair ({measured}, {bound}) at seed {seed0 + i}"
            )
        if check.regret:
            if measured <= 0:
                continue  # uninformative: every bound ≥ 0 holds there
            informative += 1
            pair_T = getattr(out, "at_T", None)
            if pair_T is not None and pair_T[0] > 0:
                r_T = _ratio(*pair_T)
                at_T = r_T if at_T is None else max(at_T, r_T)
        ratio = _ratio(measured, bound)
        if ratio > worst[0]:
            worst = (ratio, measured, bound)
    if check.regret and informative == 0:
        worst = (math.nan, math.nan, math.nan)
    return CheckResult(check, n, worst[1], worst[2], worst[0], informative if check.regret else -1, at_T)
