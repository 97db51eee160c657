r"""The method registry: one pure ``init``/``update`` pair per update rule of ALGORITHMS.md.

>>> from memopt_theory import methods
>>> m = methods.get("s_adagrad")
>>> cfg = m.Config(ell=16)                         # frozen, keyword-only, validated at construction
>>> state = m.init((64,), cfg, batch=(8,))         # 8 independent runs (seeds) in one state
>>> direction, state = m.update(grad, state, cfg)  # pure: never mutates its input state
>>> m.memory((64,), cfg)                           # closed-form stored scalars, one run
>>> m.metric(state, cfg)                           # H_t as a memopt_theory.metric.Metric, or None

Every module of this package whose name does not start with ``_`` is imported on first use and must
define ``METHODS``: a tuple of :class:`Method`. Adding a method is adding a module; nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Method", "get", "names", "all_methods"]


def _no_bits(shape: tuple[int, ...], config: Any) -> int:
    return 0


@dataclass(frozen=True)
class Method:
    """One registered update rule.

    Attributes
    ----------
    name : str             registry name (ALGORITHMS.md heading)
    Config : type          frozen keyword-only dataclass validating every field in ``__post_init__``
    init : (shape, config, *, batch=(), dtype=float64, device=None) -> State
    update : (grad, state, config, *, param=None) -> (direction, new_state); grad of shape batch + shape;
        ``param`` is the current iterate, needed only by rules that read it (decoupled weight decay,
        Adafactor's relative step); every update accepts the keyword.
    memory : (shape, config) -> int   persistent floating scalars for ONE run (E.2 table)
    metric : (state, config) -> Metric | None  H_t (after the last update) for projections in ‖·‖_H;
        None = unconstrained only
    bits : (shape, config) -> int      persistent non-floating storage in bits (signs, indices); default 0
    full_step : bool       False: the caller applies w ← w − η·direction (η: learner eta / optimizer lr).
        True: the method has its own step rule and its Config holds ``lr`` (and ``weight_decay``); the
        direction is the whole step, decoupled decay included (lr·wd·param + lr·u), and the caller
        applies w ← w − direction.
    reference : str        the paper / section of ALGORITHMS.md
    default_lr : float | None  recommended lr (η) with the default Config on an ordinary model (a small MLP trains
        with it: tests/theory/test_method_defaults.py); None: the method's own schedule (Adafactor's relative step)
    """

    name: str
    Config: type
    init: Callable[..., Any]
    update: Callable[..., Any]
    memory: Callable[[tuple[int, ...], Any], int]
    metric: Callable[[Any, Any], Any]
    bits: Callable[[tuple[int, ...], Any], int] = field(default=_no_bits)
    full_step: bool = False
    reference: str = ""
    default_lr: float | None = 1e-3


_METHODS: dict[str, Method] = {}
_LOADED = False


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        found = getattr(mod, "METHODS", None)
        if found is None:
            raise ImportError(f"memopt_theory.methods.{info.name} defines no METHODS tuple")
        for m in found:
            if m.name in _METHODS and _METHODS[m.name] is not m:
                raise ImportError(f"method {m.name!r} registered twice ({info.name})")
            _METHODS[m.name] = m
    _LOADED = True


def names() -> list[str]:
    """Registered method names, sorted."""
    _load()
    return sorted(_METHODS)


def all_methods() -> list[Method]:
    _load()
    return [_METHODS[n] for n in sorted(_METHODS)]


def get(name: str) -> Method:
    """The registered method ``name``; an unknown name raises listing every known one."""
    _load()
    if not isinstance(name, str) or name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
