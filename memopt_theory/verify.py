r"""``memopt verify``: every theorem/guarantee check of the toolkit on random instances, one table.

A check is a function ``run(seed: int, fast: bool) -> (measured, bound)`` whose docstring states the
theorem (STYLE.md §2.1). Checks live in the packages ``memopt_theory.checks`` and ``online_convex.checks``
(the latter only when the simulator is installed, which it always is in this distribution): each module
there defines ``CHECKS: tuple[Check, ...]``. A worst ratio measured/bound ≤ 1 means the theorem held on
every instance; for regret checks ``measured`` is the upper end of the certified regret interval.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Check", "CheckResult", "all_checks", "run_check", "CHECK_PACKAGES"]

CHECK_PACKAGES = ("memopt_theory.checks", "online_convex.checks")


@dataclass(frozen=True)
class Check:
    name: str  # short, e.g. "FD Lemma 1: rho <= Omega_l"
    reference: str  # e.g. "Feinberg et al. 2023, Lemma 1; ALGORITHMS.md B2(c)"
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


def all_checks() -> list[Check]:
    out: list[Check] = []
    for pkg_name in CHECK_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            mod = importlib.import_module(f"{pkg_name}.{info.name}")
            out.extend(mod.CHECKS)
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"verify: check names must be unique; repeated: {sorted(dup)}")
    return out


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
