r"""The method registry: one pure ``init``/``update`` pair per update rule, each with its guarantee.

>>> import torch
>>> from memopt_theory import methods
>>> m = methods.get("s_adagrad")
>>> cfg = m.Config(ell=16)                         # frozen, keyword-only, validated at construction
>>> state = m.init((64,), cfg, batch=(8,))         # 8 independent runs (seeds) in one state
>>> grad = torch.randn(8, 64, dtype=torch.float64)
>>> direction, state = m.update(grad, state, cfg)  # pure: never mutates its input state
>>> tuple(direction.shape)
(8, 64)
>>> m.memory((64,), cfg)                           # closed-form stored scalars, one run: 15·65 + 1
976
>>> type(m.metric(state, cfg)).__name__            # H_t as a memopt_theory.metric.Metric, or None
'LowRankPlusScaled'
>>> m.field_for("sketch_size"), m.guarantee.kind   # roles of the Config fields, the theorem it carries
('ell', 'upper bound')

Every module of this package whose name does not start with ``_`` is imported on first use and must
define ``METHODS``: a tuple of :class:`Method`. Adding a method is adding a module; nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memopt_theory.guarantee import Guarantee
from memopt_theory.protocols import InitFn, MemoryFn, MetricFn, UpdateFn

__all__ = ["Method", "get", "names", "all_methods", "register", "unregister", "with_guarantee"]


def _no_bits(shape: tuple[int, ...], config: Any) -> int:
    return 0


@dataclass(frozen=True)
class Method:
    """One registered update rule.

    Attributes
    ----------
    name : str             registry name (docs/theory/README.md heading)
    Config : type          frozen keyword-only dataclass validating every field in ``__post_init__``
    init : (shape, config, *, batch=(), dtype=float64, device=None) -> State; the state is kept in ``dtype``
        for float32/float64 and in float32 for float16/bfloat16 (every method: ``_common.resolve_dtype``)
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
    reference : str        the paper / section of docs/theory/README.md
    guarantee : Guarantee | None   its regret theorem as data (memopt_theory.guarantee): bound, the step size
        the theorem prescribes, when it applies; the simulator, CLIs, overlays and verify read only this
    roles : {role: field}  which Config field plays which role ("sketch_size", "lr", "rank")
    default_lr : float | None  recommended lr (η) with the default Config on an ordinary model (a small MLP trains
        with it: tests/theory/test_method_defaults.py); None: the method's own schedule (Adafactor's relative step)
    """

    name: str
    Config: type
    init: InitFn
    update: UpdateFn
    memory: MemoryFn
    metric: MetricFn
    bits: MemoryFn = field(default=_no_bits)
    full_step: bool = False
    reference: str = ""
    default_lr: float | None = 1e-3
    guarantee: Guarantee | None = None
    roles: Mapping[str, str] = field(default_factory=dict)

    def field_for(self, role: str) -> str | None:
        """The Config field that plays ``role`` (e.g. "sketch_size" → "ell"), or None."""
        return self.roles.get(role)


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


def register(method: Method) -> Method:
    """Add ``method`` to the registry (for methods defined outside this package, e.g. in a test or a plugin);
    a different method under a registered name raises."""
    if not isinstance(method, Method):
        raise TypeError(f"register: method must be a Method; got {type(method).__name__}")
    _load()
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"register: a method named {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method added by :func:`register` (unknown names raise as in :func:`get`)."""
    get(name)
    del _METHODS[name]


def with_guarantee() -> list[Method]:
    """Registered methods whose guarantee has a regret bound, sorted by name."""
    return [m for m in all_methods() if m.guarantee is not None and m.guarantee.bound is not None]
