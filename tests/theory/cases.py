"""Case table for the method battery: every registered method has an entry (test_battery checks that).

Each family's cases live in a module ``tests/theory/cases_<family>.py`` defining ``CASES: dict[str, Case]``;
this module merges them, so families are added without editing a shared file.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memopt_theory import methods


@dataclass(frozen=True)
class Case:
    config: Any  # a Config instance for the battery
    shapes: tuple[tuple[int, ...], ...] = ((1,), (5,), (8,))  # shapes for the memory test
    shape: tuple[int, ...] = (6,)  # the shape the battery runs on
    steps: int = 7
    extra_configs: tuple[Any, ...] = field(default=())  # further configs checked for memory = counted


def _collect() -> dict[str, Case]:
    out: dict[str, Case] = {}
    here = Path(__file__).parent
    for info in pkgutil.iter_modules([str(here)]):
        if info.name.startswith("cases_"):
            mod = importlib.import_module(f"tests.theory.{info.name}")
            for k, v in mod.CASES.items():
                if k in out:
                    raise ValueError(f"battery case {k!r} defined twice ({info.name})")
                out[k] = v
    return out


def grads(shape, steps, *, seed=0, batch=(), dtype=torch.float64, device="cpu"):
    """Seeded standard normal gradients, shape (steps,) + batch + shape."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((steps, *batch, *shape), generator=gen, dtype=torch.float64).to(
        dtype=dtype, device=device
    )


def run(
    name, *, seed=0, dtype=torch.float64, device="cpu", batch=(), config=None, shape=None, steps=None, G=None
):
    """Feed seeded gradients through ``name``; return (stacked directions, final state).

    The iterate starts at a seeded point and follows w ← w − 0.1·direction (or − direction for full-step
    methods), so rules that read ``param`` see a moving iterate.
    """
    m, case = methods.get(name), CASES[name]
    cfg = case.config if config is None else config
    shape = case.shape if shape is None else shape
    steps = case.steps if steps is None else steps
    if G is None:
        G = grads(shape, steps, seed=seed, batch=batch, dtype=dtype, device=device)
    w = grads(shape, 1, seed=seed + 1000, batch=batch, dtype=dtype, device=device)[0]
    st = m.init(tuple(shape), cfg, batch=batch, dtype=dtype, device=device)
    outs = []
    for g in G:
        u, st = m.update(g, st, cfg, param=w)
        w = w - (u if m.full_step else 0.1 * u)
        outs.append(u)
    return torch.stack(outs), st


CASES = _collect()
