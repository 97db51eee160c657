"""Small pieces every method module shares (not a method: the registry skips modules starting with ``_``)."""

from __future__ import annotations

import torch
from torch import Tensor

from memopt_theory.validation import check_batch, check_grad, check_shape

__all__ = [
    "HALF_DTYPES",
    "check_grad",
    "check_batch",
    "check_shape",
    "resolve_dtype",
    "prepare_grad",
    "check_param",
]


HALF_DTYPES = (torch.float16, torch.bfloat16)


def resolve_dtype(dtype, *, where: str) -> torch.dtype:
    """The dtype a method's state is kept (and its arithmetic done) in, for a requested ``dtype``.

    float32 and float64 are kept as asked (None means float64). float16 and bfloat16 give **float32** state, for
    every method: half precision cannot hold what the update rules accumulate (a squared gradient of 1e-4 is
    below float16's smallest normal number, ε = 1e-8 rounds to 0, sums of squares overflow float16 at 65504)
    and torch's eigen/SVD/Cholesky routines do not take it. ``update`` casts the gradient to the state's dtype
    and returns the direction in the gradient's dtype. This is what torch's own optimizers and
    pytorch-optimizer do for mixed-precision training (float32 state, the parameter updated in its own dtype).
    """
    if dtype is None:
        return torch.float64
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{where}: dtype must be a floating torch.dtype; got {dtype!r}")
    return torch.float32 if dtype in HALF_DTYPES else dtype


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
