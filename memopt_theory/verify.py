r"""``memopt verify``: every theorem/guarantee check of the toolkit on random instances, one table.

A check is a function ``run(seed: int, fast: bool) -> (measured, bound)`` whose docstring states the
theorem. Checks are found by registration, never by a package name written here: every entry point of the
group ``memopt.checks`` (pyproject.toml) names a package (each of its modules not starting with ``_``
defines ``CHECKS: tuple[Check, ...]`` or a function ``checks() -> tuple[Check, ...]``), a module of that form,
or a callable returning checks. A package outside memopt adds its checks by declaring its own entry point. A worst ratio measured/bound ≤ 1 means the theorem held on
every instance; for regret checks ``measured`` is the upper end of the certified regret interval.
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

__all__ = ["Check", "CheckResult", "all_checks", "run_check", "get", "names", "CHECK_GROUP"]

CHECK_GROUP = "memopt.checks"  # entry-point group: packages / modules / callables providing checks


@dataclass(frozen=True)
class Check:
    name: str  # short, e.g. "FD Lemma 1: rho <= Omega_l"
    reference: str  # e.g. "Feinberg et al. 2023, Lemma 1; docs/theory/sketching.md §B2(c)"
    run: Callable[[int, bool], tuple[float, float]]
    instances: int = 20  # default number of random instances (fast mode may use fewer)
    fast_instances: int = 5


@dataclass(frozen=True)
class CheckResult:
    check: Check
    instances: int
    worst_measured: float
    worst_bound: float
    worst_ratio: float

    @property
    def holds(self) -> bool:
        return self.worst_ratio <= 1.0


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
    for i in range(n):
        measured, bound = check.run(seed0 + i, fast)
        measured, bound = float(measured), float(bound)
        if not (math.isfinite(measured) and math.isfinite(bound)):
            raise ValueError(
                f"verify: {check.name} returned a non-finite pair ({measured}, {bound}) at seed {seed0 + i}"
            )
        ratio = measured / bound if bound > 0 else (0.0 if measured <= 0 else math.inf)
        if ratio > worst[0]:
            worst = (ratio, measured, bound)
    return CheckResult(check, n, worst[1], worst[2], worst[0])
