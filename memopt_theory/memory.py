r"""Memory: the closed-form model of docs/theory/bounds.md §E.2 beside the bytes a state actually holds.

Persistent state only (the iterate and the incoming gradient excluded, §0). Floating tensors count as
scalars; integer and boolean tensors (indices, packed sign bits, ring positions) count as bits, so the
model is checked in two numbers: ``counted_scalars(state) == method.memory(shape, config)`` and
``counted_bits(state) == method.bits(shape, config)`` (tests/theory/test_memory.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Static",
    "state_bytes",
    "counted_scalars",
    "counted_bits",
    "MemoryRow",
    "memory_row",
    "memory_table",
]


class Static(tuple):
    """Static metadata inside a State (a parameter shape, mode sizes): not stored memory, never counted.

    Anything else in a State must be a tensor, a nested tuple of tensors or None, so that every persistent
    number is counted.
    """

    __slots__ = ()


def _tensors(state: Any):
    if state is None or isinstance(state, Static):
        return
    if isinstance(state, Tensor):
        yield state
        return
    if isinstance(state, (tuple, list)):  # NamedTuples nest: S-Shampoo holds two FD states
        for x in state:
            yield from _tensors(x)
        return
    if isinstance(state, (int, float, bool, str)):
        raise TypeError(
            f"state_bytes: a state holds a plain {type(state).__name__} ({state!r}); "
            "persistent numbers must be tensors so that they are counted"
        )
    raise TypeError(f"state_bytes: cannot count {type(state).__name__}; States hold tensors and tuples")


def state_bytes(state: Any) -> int:
    """Bytes held by a State, counted from the tensors it actually holds (booleans: 1 byte each)."""
    return sum(t.numel() * t.element_size() for t in _tensors(state))


def counted_scalars(state: Any) -> int:
    """Number of floating-point scalars the state holds."""
    return sum(t.numel() for t in _tensors(state) if torch.is_floating_point(t) or torch.is_complex(t))


def counted_bits(state: Any) -> int:
    """Bits of non-floating storage (integer indices, packed sign bytes, bool masks as 1 byte each)."""
    return sum(t.numel() * t.element_size() * 8 for t in _tensors(state) if not torch.is_floating_point(t))


@dataclass(frozen=True)
class MemoryRow:
    method: str
    shape: tuple[int, ...]
    model_scalars: int
    counted_scalars: int
    model_bits: int
    counted_bits: int
    bytes_float32: int  # model at fp32 + bits/8: what the state costs in a float32 training run

    @property
    def agrees(self) -> bool:
        return self.model_scalars == self.counted_scalars and self.model_bits == self.counted_bits


def memory_row(name: str, shape: tuple[int, ...], config: Any = None, *, count: bool = True) -> MemoryRow:
    """Closed form and (if ``count``) the tensors of a freshly initialised and one-step-updated state."""
    from memopt_theory import methods

    m = methods.get(name)
    cfg = m.Config() if config is None else config
    scal, bits = int(m.memory(shape, cfg)), int(m.bits(shape, cfg))
    cs, cb = -1, -1
    if count:
        st = m.init(tuple(shape), cfg, dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        g = torch.randn(tuple(shape), dtype=torch.float64, generator=gen)
        w = torch.randn(tuple(shape), dtype=torch.float64, generator=gen)  # rules that read the iterate
        _, st = m.update(g, st, cfg, param=w)  # windows and sketches allocate on init; one step proves it
        cs, cb = counted_scalars(st), counted_bits(st)
    return MemoryRow(name, tuple(shape), scal, cs, bits, cb, 4 * scal + (bits + 7) // 8)


def memory_table(shape: tuple[int, ...], configs: dict[str, Any], *, count: bool = True) -> list[MemoryRow]:
    return [memory_row(n, shape, c, count=count) for n, c in configs.items()]
