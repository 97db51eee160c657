"""One battery over every registered method: no method escapes it. The checks live in memopt_theory.testing
(shipped, so a method outside the repository runs the same ones); this module parametrises them over the
registry."""

from __future__ import annotations

import pytest
import torch

from memopt_theory import methods, testing
from tests.theory.cases import CASES

NAMES = methods.names()


def test_every_method_has_a_case():
    assert sorted(CASES) == NAMES


def _clone(x):
    return testing._clone(x)


def _assert_same(a, b):
    assert testing._same(a, b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("check", sorted(testing.CHECKS))
def test_battery(name, check):
    """Every check of the shipped battery (memopt_theory.testing) on every registered method: memory =
    counted, purity, batching, dtype, same seed = same numbers, refusal of out-of-range Config fields
    generated from the constraints each Config declares (see memopt_theory.testing for each tolerance)."""
    testing.CHECKS[check](methods.get(name), CASES[name])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_keeps_dtype_on_cuda(name):
    testing.keeps_dtype(methods.get(name), CASES[name], devices=("cuda",))


@pytest.mark.parametrize("check", sorted(testing.CHECKS))
def test_each_battery_check_can_fail(check):
    """A method broken in the way each check looks for is caught: the battery is not vacuous."""
    from tests.theory.broken_methods import BROKEN

    broken, case = BROKEN[check]
    with pytest.raises(AssertionError):
        testing.CHECKS[check](broken, case)


def test_unknown_method_lists_known_names():
    with pytest.raises(ValueError, match="registered: .*adagrad_full"):
        methods.get("adagrad_ful")
