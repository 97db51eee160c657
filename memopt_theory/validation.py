"""Argument checks shared by every method: one message format — where, the argument, what is allowed, what came.

Errors are ``ValueError``/``TypeError`` naming the argument, the value and what is allowed (the project conventions,
"Conventions that cut across").
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "all_finite",
    "check_grad",
    "check_shape",
    "check_batch",
    "check_int",
    "check_real",
    "check_choice",
    "numel",
    "Constraint",
    "recording",
]


@dataclass(frozen=True)
class Constraint:
    """One declared constraint on a named argument, as the check_* call that enforces it states it:
    ``kind`` "int" (in [low, high]), "real" (finite, in the interval with open ends where marked) or "choice"."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()


_REC = threading.local()


@contextlib.contextmanager
def recording() -> Iterator[list[Constraint]]:
    """Collect the constraints of every check_int/check_real/check_choice called inside the block, e.g. while a
    Config validates itself: the constraints are declared once, in ``__post_init__``, and read back as data
    (memopt_theory.testing generates the refusal tests from them)."""
    prev = getattr(_REC, "out", None)
    out: list[Constraint] = []
    _REC.out = out
    try:
        yield out
    finally:
        _REC.out = prev


def _record(c: Constraint) -> None:
    out = getattr(_REC, "out", None)
    if out is not None:
        out.append(c)


def numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def check_shape(shape, *, where: str, ndim: int | None = None, min_ndim: int = 0) -> tuple[int, ...]:
    """A parameter shape: a tuple of ints ≥ 1 (optionally of a given number of axes)."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: shape must be a tuple of ints; got {shape!r}") from None
    if any(type(n) is not int or n < 1 for n in shape):
        raise ValueError(f"{where}: shape must hold ints >= 1; got {shape!r}")
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{where}: shape must have {ndim} axes; got {shape!r}")
    if len(shape) < min_ndim:
        raise ValueError(f"{where}: shape must have at least {min_ndim} axes; got {shape!r}")
    return shape


def check_batch(batch) -> tuple[int, ...]:
    """Leading batch (seed) axes: () for one run, (n,) for n independent runs."""
    if isinstance(batch, int) and not isinstance(batch, bool):
        batch = (batch,)
    try:
        batch = tuple(batch)
    except TypeError:
        raise TypeError(f"batch must be a tuple of ints (or an int); got {batch!r}") from None
    if any(type(n) is not int or n < 1 for n in batch):
        raise ValueError(f"batch must hold ints >= 1; got {batch!r}")
    return batch


def check_grad(grad: Tensor, shape: Sequence[int], *, where: str) -> None:
    """The incoming gradient: a finite floating tensor of exactly the state's (batch + parameter) shape."""
    if not isinstance(grad, Tensor):
        raise TypeError(f"{where}: grad must be a torch.Tensor; got {type(grad).__name__}")
    if grad.is_sparse or grad.layout != torch.strided:
        raise ValueError(
            f"{where}: grad must be a dense tensor; got layout {grad.layout} (sparse gradients are not supported)"
        )
    if not torch.is_floating_point(grad):
        raise TypeError(
            f"{where}: grad must have a floating dtype (float16/bfloat16/float32/float64); got {grad.dtype}"
        )
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(f"{where}: grad has shape {tuple(grad.shape)}; the state expects {tuple(shape)}")
    if grad.device.type == "meta":
        raise ValueError(
            f"{where}: grad is on the meta device (a shape without values); compute it on a real device"
        )
    if bool(all_finite(grad)):
        return
    bad = ~torch.isfinite(grad)
    if bad.any():
        raise ValueError(
            f"{where}: grad must be finite; it has {int(bad.sum())} NaN/inf entries "
            "(one NaN in a preconditioner would poison every later step)"
        )


def all_finite(x: Tensor) -> Tensor:
    """A 0-d bool tensor (no host sync): every entry of ``x`` is finite. Through ``aminmax`` (NaN propagates to
    both ends, ±inf shows at one): one fused reduction, where ``torch.isfinite(x).all()`` writes a full bool
    tensor first (about 50× slower on a CPU for a million float32 entries)."""
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    lo, hi = torch.aminmax(x.detach())
    return torch.isfinite(lo) & torch.isfinite(hi)


def check_int(value, name: str, *, where: str, low: int | None = None, high: int | None = None) -> int:
    _record(Constraint(name, "int", low, high))
    if type(value) is not int:
        raise TypeError(f"{where}: {name} must be an int; got {value!r} ({type(value).__name__})")
    if low is not None and value < low:
        raise ValueError(f"{where}: {name} must be >= {low}; got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{where}: {name} must be <= {high}; got {value!r}")
    return value


def check_real(
    value,
    name: str,
    *,
    where: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real in [low, high] (open ends where asked)."""
    _record(Constraint(name, "real", low, high, low_open, high_open))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: {name} must be a real number; got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: {name} must be finite; got {value!r}")
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{where}: {name} must be in {rng}; got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{where}: {name} must be in {rng}; got {value!r}")
    return v


def check_choice(value, name: str, choices: Sequence[str], *, where: str) -> str:
    _record(Constraint(name, "choice", choices=tuple(choices)))
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
