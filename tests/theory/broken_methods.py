"""Deliberately broken variants of diagonal AdaGrad, one per battery check (memopt_theory.testing.CHECKS):
each breaks exactly what its check looks for, so test_battery can show that every check fails when it should.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from memopt_theory import methods
from memopt_theory.testing import Case
from memopt_theory.validation import check_choice, check_real

BASE = methods.get("adagrad_diag")


def _variant(name: str, **kw) -> methods.Method:
    return dataclasses.replace(BASE, name=f"broken_{name}", **kw)


def _noisy(g, st, cfg, *, param=None):
    u, st = BASE.update(g, st, cfg, param=param)
    return u + 1e-3 * torch.rand(u.shape, dtype=u.dtype), st  # unseeded global RNG: same seed ≠ same numbers


def _always_double(g, st, cfg, *, param=None):
    u, st = BASE.update(g, st, cfg, param=param)
    return u.double(), st


def _float32_off(g, st, cfg, *, param=None):
    u, st = BASE.update(g, st, cfg, param=param)
    return (u * 1.01 if u.dtype == torch.float32 else u), st  # a 1 % float32-only error


def _batch_dependent(g, st, cfg, *, param=None):
    u, st = BASE.update(g, st, cfg, param=param)
    return u * (1 + 0.1 * g.ndim), st  # depends on whether a batch axis is present


def _impure(g, st, cfg, *, param=None):
    st.s.add_(1.0)  # mutates its input state
    return BASE.update(g, st, cfg, param=param)


def _swallows_nan(g, st, cfg, *, param=None):
    return BASE.update(torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0), st, cfg, param=param)


def _casts_ints(g, st, cfg, *, param=None):
    return BASE.update(g.double() if not torch.is_floating_point(g) else g, st, cfg, param=param)


@dataclass(frozen=True, kw_only=True)
class LaxConfig:
    """Declares delta ≥ 0 but swallows the refusal."""

    delta: float = 0.0
    delta_mode: str = "inside"

    def __post_init__(self) -> None:
        with contextlib.suppress(ValueError, TypeError):
            check_real(self.delta, "delta", where="broken.Config", low=0.0)
        check_choice(self.delta_mode, "delta_mode", ("inside", "outside"), where="broken.Config")


_CASE = Case(config=BASE.Config())
BROKEN = {
    "same_seed_same_numbers": (_variant("rng", update=_noisy), _CASE),
    "keeps_dtype": (_variant("dtype", update=_always_double), _CASE),
    "float32_tracks_float64": (_variant("f32", update=_float32_off), _CASE),
    "batch_axis_equals_loop": (_variant("batch", update=_batch_dependent), _CASE),
    "update_is_pure": (_variant("impure", update=_impure), _CASE),
    "nonfinite_grad_refused": (_variant("nan", update=_swallows_nan), _CASE),
    "bad_grad_refused": (_variant("ints", update=_casts_ints), _CASE),
    "memory_equals_counted": (
        _variant("memory", memory=lambda shape, cfg: BASE.memory(shape, cfg) + 1),
        _CASE,
    ),
    "config_refuses_out_of_range": (_variant("lax", Config=LaxConfig), Case(config=LaxConfig())),
}
