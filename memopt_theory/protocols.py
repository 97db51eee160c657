r"""Typed interfaces of a method: what ``Method.init``, ``update``, ``memory`` and ``metric`` must accept.

A method's State is any pytree of tensors (a NamedTuple in this package) and its Config a frozen dataclass;
both stay ``Any`` here. These Protocols are structural: a plain function of the right signature satisfies them.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["InitFn", "UpdateFn", "MemoryFn", "MetricFn"]


class InitFn(Protocol):
    """``init(shape, config, *, batch=(), dtype=float64, device=None) -> State``: the state before round 1."""

    def __call__(
        self,
        shape: tuple[int, ...],
        config: Any,
        *,
        batch: tuple[int, ...] = ...,
        dtype: torch.dtype = ...,
        device: Any = ...,
    ) -> Any: ...


class UpdateFn(Protocol):
    """``update(grad, state, config, *, param=None) -> (direction, new_state)``: pure (never mutates state)."""

    def __call__(
        self, grad: Tensor, state: Any, config: Any, *, param: Tensor | None = ...
    ) -> tuple[Tensor, Any]: ...


class MemoryFn(Protocol):
    """``memory(shape, config) -> int``: persistent floating scalars of one run, in closed form."""

    def __call__(self, shape: tuple[int, ...], config: Any, /) -> int: ...


class MetricFn(Protocol):
    """``metric(state, config) -> Metric | None``: H_t after the last update (None: unconstrained only)."""

    def __call__(self, state: Any, config: Any, /) -> Any: ...
