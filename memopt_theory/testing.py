r"""The method battery, shipped: every check the repository runs on its own methods, for any :class:`Method`.

A method defined outside memopt (a plugin, a notebook, a test) runs the same checks as the registered ones:

>>> from memopt_theory import methods, testing
>>> m = methods.get("adagrad_diag")
>>> testing.check_method(m, testing.Case(config=m.Config()))   # raises AssertionError naming the failed check

Each check is a function ``(method, case) -> None`` in :data:`CHECKS` (so a test suite can parametrise over
them and report which one failed); ``case`` is a :class:`Case` (or anything with its attributes):

- ``same_seed_same_numbers``: two runs from one seed agree bitwise;
- ``keeps_dtype``: float32 and float64 gradients give directions of that dtype, finite;
- ``float32_tracks_float64``: the float32 run follows the float64 one to 1e-3 (relative to the largest entry);
- ``batch_axis_equals_loop``: three seeds in one batched state give the numbers of three separate runs;
- ``update_is_pure``: ``update`` never mutates the state it is given;
- ``nonfinite_grad_refused``: a NaN/inf gradient raises "grad must be finite" and leaves the state intact;
- ``bad_grad_refused``: a gradient of the wrong shape raises ValueError naming "shape", an integer one TypeError;
- ``memory_equals_counted``: the closed form ``method.memory`` = the floating scalars counted in the state
  tensors (and ``bits`` = the counted non-floating bits), for every shape and config of the case;
- ``config_refuses_out_of_range``: for every constraint the Config declares (the check_int/check_real/
  check_choice calls of its ``__post_init__``, read back with :func:`memopt_theory.validation.recording`), a
  value just outside it (below ``low``, above ``high``, the open end itself, NaN/inf, a wrong type, an unknown
  choice) is refused with an error naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from memopt_theory.memory import counted_bits, counted_scalars, state_bytes
from memopt_theory.methods import Method
from memopt_theory.validation import Constraint, recording

__all__ = ["Case", "CHECKS", "check_method", "grads", "run", "declared_constraints", "out_of_range_values"]


@dataclass(frozen=True)
class Case:
    """How the battery runs one method: its ``config``, the ``shape`` it runs on for ``steps`` steps, and the
    ``shapes`` × (``config``, *``extra_configs``) on which memory = counted is checked."""

    config: Any
    shapes: tuple[tuple[int, ...], ...] = ((1,), (5,), (8,))
    shape: tuple[int, ...] = (6,)
    steps: int = 7
    extra_configs: tuple[Any, ...] = field(default=())


def grads(shape, steps, *, seed=0, batch=(), dtype=torch.float64, device="cpu") -> Tensor:
    """Seeded standard normal gradients, shape (steps,) + batch + shape (drawn in float64, then cast)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((steps, *batch, *shape), generator=gen, dtype=torch.float64).to(
        dtype=dtype, device=device
    )


def run(
    method: Method, case: Any, *, seed=0, dtype=torch.float64, device="cpu", batch=(), G=None
) -> tuple[Tensor, Any]:
    """Feed seeded gradients through ``method``; return (stacked directions, final state). The iterate starts
    at a seeded point and follows w ← w − 0.1·direction (− direction for full-step methods)."""
    cfg, shape = case.config, tuple(case.shape)
    if G is None:
        G = grads(shape, case.steps, seed=seed, batch=batch, dtype=dtype, device=device)
    w = grads(shape, 1, seed=seed + 1000, batch=batch, dtype=dtype, device=device)[0]
    st = method.init(shape, cfg, batch=batch, dtype=dtype, device=device)
    outs = []
    for g in G:
        u, st = method.update(g, st, cfg, param=w)
        w = w - (u if method.full_step else 0.1 * u)
        outs.append(u)
    return torch.stack(outs), st


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*[_clone(v) for v in x])
    if isinstance(x, tuple):
        return type(x)(_clone(v) for v in x) if type(x) is tuple else x
    return x


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


def _fail(method: Method, check: str, msg: str) -> AssertionError:
    return AssertionError(f"{method.name}: {check}: {msg}")


def same_seed_same_numbers(method: Method, case: Any) -> None:
    a, b = run(method, case, seed=0)[0], run(method, case, seed=0)[0]
    if not torch.equal(a, b):  # bitwise, not allclose
        raise _fail(method, "same_seed_same_numbers", "two runs from seed 0 differ")


def keeps_dtype(method: Method, case: Any, devices: tuple[str, ...] = ("cpu",)) -> None:
    for device in devices:
        for dtype in (torch.float32, torch.float64):
            out, _ = run(method, case, dtype=dtype, device=device)
            if out.dtype != dtype or out.device.type != device:
                raise _fail(method, "keeps_dtype", f"{dtype}/{device} in, {out.dtype}/{out.device} out")
            if not bool(torch.isfinite(out).all()):
                raise _fail(method, "keeps_dtype", f"non-finite directions in {dtype}")


def float32_tracks_float64(method: Method, case: Any) -> None:
    """7 steps of well-conditioned updates lose at most ~1e-4 relative in float32 (ε ≈ 1.2e-7 amplified by
    eigendecompositions/SVDs with condition numbers ≲ 1e3): tolerance 1e-3 of the largest entry."""
    a = run(method, case, seed=3, dtype=torch.float32)[0].double()
    b = run(method, case, seed=3, dtype=torch.float64)[0]
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))


def batch_axis_equals_loop(method: Method, case: Any) -> None:
    """Batched BLAS/LAPACK calls may sum in another order: agreement to float64 round-off (1e-9 relative)."""
    G = grads(case.shape, case.steps, seed=5, batch=(3,))
    batched, _ = run(method, case, batch=(3,), G=G, seed=5)
    for i in range(3):
        st = method.init(tuple(case.shape), case.config)
        w = grads(case.shape, 1, seed=1005, batch=(3,))[0][i]
        outs = []
        for g in G[:, i]:
            u, st = method.update(g, st, case.config, param=w)
            w = w - (u if method.full_step else 0.1 * u)
            outs.append(u)
        torch.testing.assert_close(batched[:, i], torch.stack(outs), rtol=1e-9, atol=1e-12)


def update_is_pure(method: Method, case: Any) -> None:
    st = method.init(tuple(case.shape), case.config)
    w = grads(case.shape, 1, seed=7)[0]
    for g in grads(case.shape, 3, seed=2):
        before = _clone(st)
        _, new = method.update(g, st, case.config, param=w)
        if not _same(st, before):
            raise _fail(method, "update_is_pure", "update changed the state it was given")
        st = new


def nonfinite_grad_refused(method: Method, case: Any) -> None:
    for bad in ("nan", "inf"):
        st = method.init(tuple(case.shape), case.config)
        w = torch.zeros(case.shape, dtype=torch.float64)
        _, st = method.update(grads(case.shape, 1)[0], st, case.config, param=w)
        g = grads(case.shape, 1, seed=1)[0]
        g.view(-1)[0] = float(bad)
        before = _clone(st)
        try:
            method.update(g, st, case.config, param=w)
        except ValueError as e:
            if "grad must be finite" not in str(e):
                raise _fail(method, "nonfinite_grad_refused", f"wrong message: {e}") from None
        else:
            raise _fail(method, "nonfinite_grad_refused", f"a {bad} gradient was accepted")
        if not _same(st, before):
            raise _fail(method, "nonfinite_grad_refused", "the refused update changed the state")


def bad_grad_refused(method: Method, case: Any) -> None:
    st = method.init(tuple(case.shape), case.config)
    w = torch.zeros(case.shape, dtype=torch.float64)
    wrong = torch.zeros((*case.shape[:-1], case.shape[-1] + 1), dtype=torch.float64)
    for g, err, word in (
        (wrong, ValueError, "shape"),
        (torch.zeros(case.shape, dtype=torch.int64), TypeError, "floating"),
    ):
        try:
            method.update(g, st, case.config, param=w)
        except err as e:
            if word not in str(e):
                raise _fail(method, "bad_grad_refused", f"message lacks {word!r}: {e}") from None
        else:
            raise _fail(method, "bad_grad_refused", f"{tuple(g.shape)} {g.dtype} gradient accepted")


def memory_equals_counted(method: Method, case: Any) -> None:
    for cfg in (case.config, *case.extra_configs):
        for shape in case.shapes:
            st = method.init(tuple(shape), cfg)
            w = torch.zeros(shape, dtype=torch.float64)
            for gi in grads(shape, 2, seed=1):
                _, st = method.update(gi, st, cfg, param=w)
            got = (counted_scalars(st), counted_bits(st), state_bytes(st))
            # float64 scalars are 8 bytes; bits are stored in whole bytes per tensor
            want = (method.memory(shape, cfg), method.bits(shape, cfg))
            want3 = (*want, 8 * want[0] + want[1] // 8)
            if got != want3:
                raise _fail(
                    method,
                    "memory_equals_counted",
                    f"shape {shape}, {cfg}: counted (scalars, bits, bytes) {got}, closed form {want3}",
                )


def declared_constraints(config: Any) -> dict[str, list[Constraint]]:
    """The constraints ``config``'s class checks in ``__post_init__``, by field (re-validating a copy)."""
    fields = {f.name for f in dataclasses.fields(config)}
    with recording() as rec:
        dataclasses.replace(config)
    out: dict[str, list[Constraint]] = {}
    for c in rec:
        if c.name in fields:
            out.setdefault(c.name, []).append(c)
    return out


def out_of_range_values(c: Constraint) -> list[Any]:
    """Values outside constraint ``c`` (each must be refused)."""
    if c.kind == "choice":
        return ["not-a-choice", None]
    bad: list[Any] = [] if c.kind == "int" else [math.nan, math.inf, -math.inf]
    if c.kind == "int":
        bad.append(1.5)
    if c.low is not None:
        bad.append(c.low if c.low_open else (c.low - 1 if c.kind == "int" else c.low - max(1e-3, abs(c.low))))
    if c.high is not None:
        bad.append(
            c.high if c.high_open else (c.high + 1 if c.kind == "int" else c.high + max(1e-3, abs(c.high)))
        )
    bad.append("x")
    return bad


def config_refuses_out_of_range(method: Method, case: Any) -> None:
    declared = declared_constraints(case.config)
    if not declared and dataclasses.fields(case.config):
        raise _fail(method, "config_refuses_out_of_range", "the Config declares no constraint on any field")
    for name, cons in declared.items():
        for c in cons:
            for v in out_of_range_values(c):
                try:
                    dataclasses.replace(case.config, **{name: v})
                except (ValueError, TypeError) as e:
                    if name not in str(e):
                        raise _fail(
                            method,
                            "config_refuses_out_of_range",
                            f"{name}={v!r} refused without naming it: {e}",
                        ) from None
                else:
                    raise _fail(method, "config_refuses_out_of_range", f"{name}={v!r} accepted ({c})")


CHECKS: dict[str, Callable[[Method, Any], None]] = {
    "same_seed_same_numbers": same_seed_same_numbers,
    "keeps_dtype": keeps_dtype,
    "float32_tracks_float64": float32_tracks_float64,
    "batch_axis_equals_loop": batch_axis_equals_loop,
    "update_is_pure": update_is_pure,
    "nonfinite_grad_refused": nonfinite_grad_refused,
    "bad_grad_refused": bad_grad_refused,
    "memory_equals_counted": memory_equals_counted,
    "config_refuses_out_of_range": config_refuses_out_of_range,
}


def check_method(method: Method, case: Any = None) -> None:
    """Run every check of :data:`CHECKS` on ``method`` (default case: its default Config on shape (6,))."""
    if case is None:
        case = Case(config=method.Config())
    for fn in CHECKS.values():
        fn(method, case)
