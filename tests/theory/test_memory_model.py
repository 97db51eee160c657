"""The closed-form memory model (docs/theory/bounds.md §E.2) equals the counted tensors for every registered method over
a range of shapes: sizes 1 and 2, a prime, a power of two, matrices with a unit axis either side, and order-3
and order-4 tensors (the battery checks each method on its own few shapes; this sweeps one common list)."""

from __future__ import annotations

import re

import pytest
import torch

from memopt_theory import methods
from memopt_theory.memory import counted_bits, counted_scalars, state_bytes
from tests.theory.cases import CASES, grads

SHAPES = [(1,), (2,), (7,), (13,), (64,), (2, 5), (6, 4), (1, 9), (9, 1), (3, 2, 4), (2, 1, 3, 5)]
# what a method may refuse for a shape (a rank above the shape's smallest side; a tensoring order with
# 2^order > N): documented limits of the configuration, not of the memory model
REFUSALS = re.compile(r"rank must be <= min|order must be in")


@pytest.mark.parametrize("name", methods.names())
def test_memory_model_equals_counted_over_shapes(name):
    m, case = methods.get(name), CASES[name]
    for cfg in (case.config, *case.extra_configs):
        checked = 0
        for shape in SHAPES:
            try:
                st = m.init(shape, cfg)
            except ValueError as e:
                assert REFUSALS.search(str(e)), (shape, cfg, str(e))
                continue
            w = torch.zeros(shape, dtype=torch.float64)
            for g in grads(shape, 2, seed=3):  # a stepped state: windows, sketches and counters are filled
                _, st = m.update(g, st, cfg, param=w)
            assert counted_scalars(st) == m.memory(shape, cfg), (shape, cfg)
            assert counted_bits(st) == m.bits(shape, cfg), (shape, cfg)
            assert state_bytes(st) == 8 * m.memory(shape, cfg) + m.bits(shape, cfg) // 8, (shape, cfg)
            checked += 1
        assert checked >= len(SHAPES) - 2, cfg  # at most the two unit-axis matrices are refused per config
