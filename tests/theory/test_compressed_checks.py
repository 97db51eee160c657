"""The compressed family's theorem checks (memopt_theory/checks/compressed.py) hold on their fast instances."""

import pytest

from memopt_theory.checks.compressed import CHECKS
from memopt_theory.verify import run_check


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name.split(":")[0])
def test_check_holds(check):
    result = run_check(check, fast=True)
    # the bounds already carry their own round-off allowance (see each check's comments): no extra slack here
    assert result.worst_ratio <= 1.0, (check.name, result.worst_measured, result.worst_bound)
