"""Small pieces every method module shares (not a method: the registry skips modules starting with ``_``)."""

from __future__ import annotations

import torch
from torch import Tensor

from memopt_theory.validation import check_batch, check_grad, check_shape

__all__ = ["check_grad", "check_batch", "check_shape", "resolve_dtype", "prepare_grad", "check_param"]


def resolve_dtype(dtype, *, where: str) -> torch.dtype:
    if dtype is None:
        return torch.float64
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{where}: dtype must be a floating torch.dtype; got {dtype!r}")
    return dtype


def prepare_grad(
    grad: Tensor, expected_shape: tuple[int, ...], state_dtype: torch.dtype, *, where: str
) -> Tensor:
    """Validate ``grad`` (shape batch + S, finite, floating) and cast it to the state's dtype."""
    check_grad(grad, expected_shape, where=where)
    return grad.to(state_dtype)


def check_param(param: Tensor | None, expected_shape: tuple[int, ...], *, where: str, needed: bool) -> None:
    if param is None:
        if needed:
            raise ValueError(
                f"{where}: param (the current iterate) is required by this configuration; got None"
            )
        return
    if not isinstance(param, Tensor) or tuple(param.shape) != tuple(expected_shape):
        got = tuple(param.shape) if isinstance(param, Tensor) else type(param).__name__
        raise ValueError(f"{where}: param must be a tensor of shape {tuple(expected_shape)}; got {got}")
