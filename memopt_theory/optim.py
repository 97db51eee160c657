r"""A ``torch.optim.Optimizer`` over any registered method: ``make_optimizer(name, params, lr=..., **config)``.

The optimizer wraps the same pure ``init``/``update`` pair as the OCO learner (ARCHITECTURE.md, "one source of
truth"), so identical gradient sequences give identical trajectories:

* ``full_step`` methods (Adam-type: own step rule) get ``lr`` and ``weight_decay`` from the param group inside
  their Config and return the whole step: p ← p − direction. LR schedulers work because the Config is rebuilt
  from the group at every step.
* other methods return a direction: p ← p − lr·direction. If the method's Config has a ``weight_decay`` field
  (M-FAC's L2 mode) the group's value goes there; otherwise the optimizer applies decoupled decay
  p ← p − lr·wd·p from the same p the method saw.

Every other group option is a Config field (validated by the Config, per group). Each parameter has its own
method state, created on its first gradient, so a parameter that first gets a gradient late starts at t = 0.
A step is atomic: every update is computed before any parameter or state changes, so a bad gradient (sparse,
NaN/inf, wrong dtype) raises and leaves parameters and optimizer state as they were.

``state_dict`` holds only tensors and plain numbers: a method State (NamedTuples of tensors, None and static
shape metadata) is stored as its tensor leaves, keyed by their position, and rebuilt on the parameter's first
step after loading from the structure of a fresh ``init``; it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from memopt_theory import methods
from memopt_theory.memory import Static
from memopt_theory.methods import Method

__all__ = ["MethodOptimizer", "make_optimizer"]


def _leaves(state: Any, out: list) -> list:
    """Tensor leaves of a State in depth-first order (None and Static leaves hold no stored numbers)."""
    if isinstance(state, Tensor):
        out.append(state)
    elif isinstance(state, Static) or state is None:
        pass
    elif isinstance(state, tuple):
        for x in state:
            _leaves(x, out)
    else:
        raise TypeError(
            f"MethodOptimizer: a method state holds a {type(state).__name__}; expected tensors/tuples"
        )
    return out


_LEAF = object()  # where a tensor sits in a state's structure


def _skeleton(state: Any) -> Any:
    """The structure of a State with every tensor replaced by a marker (kept per parameter, holds no memory)."""
    if isinstance(state, Tensor):
        return _LEAF
    if isinstance(state, Static) or state is None:
        return state
    items = [_skeleton(x) for x in state]
    return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)


def _rebuild(template: Any, leaves: list) -> Any:
    """``template`` with its tensor markers replaced, in order, by ``leaves`` (consumed from the front)."""
    if template is _LEAF:
        return leaves.pop(0)
    if isinstance(template, Static) or template is None:
        return template
    items = [_rebuild(x, leaves) for x in template]
    return type(template)(*items) if hasattr(template, "_fields") else type(template)(items)


class MethodOptimizer(torch.optim.Optimizer):
    """``torch.optim.Optimizer`` for the registered method ``method`` (see the module docstring).

    Parameters
    ----------
    params : iterable of tensors or of param-group dicts
    method : str            a registered name (memopt_theory.methods.names())
    lr : float > 0          η (full_step methods: their Config's lr); None only where the Config's lr defaults to
                            None (Adafactor: the relative step min(1e−2, 1/√t))
    weight_decay : float ≥ 0
    **config                fields of the method's Config (per group overridable)
    """

    def __init__(
        self, params: Iterable, method: str, *, lr: float = 1e-3, weight_decay: float = 0.0, **config
    ):
        self.method: Method = methods.get(method)
        fields = {f.name for f in dataclasses.fields(self.method.Config)}
        bad = sorted(set(config) - fields)
        if bad:
            raise ValueError(
                f"make_optimizer: {', '.join(bad)} {'is not a' if len(bad) == 1 else 'are not'} "
                f"{method}.Config field{'s' if len(bad) > 1 else ''}; allowed: {', '.join(sorted(fields))}"
            )
        # lr=None is accepted where the method's own Config defaults to it (Adafactor's relative step)
        lr_none = lr is None and any(
            f.name == "lr" and f.default is None for f in dataclasses.fields(self.method.Config)
        )
        for name, value, low_open in (
            ("lr", 1.0 if lr_none else lr, True),
            ("weight_decay", weight_decay, False),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
                or (low_open and value == 0)
            ):
                raise ValueError(
                    f"make_optimizer: {name} must be a real number {'>' if low_open else '>='} 0; got {value!r}"
                )
        self._fields = fields
        self._templates: dict[int, Any] = {}
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, **config})
        for group in self.param_groups:
            self._config(group)  # validate every group's options now, not at the first step

    def _config(self, group: dict) -> Any:
        kw = {k: v for k, v in group.items() if k in self._fields}
        if "lr" in self._fields:
            kw["lr"] = group["lr"]
        if "weight_decay" in self._fields:
            kw["weight_decay"] = group["weight_decay"]
        return self.method.Config(**kw)

    def _decoupled_wd(self, group: dict) -> float:
        return 0.0 if "weight_decay" in self._fields else float(group["weight_decay"])

    def _load_inner(self, p: Tensor, cfg: Any) -> Any:
        st = self.state[p]
        if not st:
            return self.method.init(tuple(p.shape), cfg, dtype=p.dtype, device=p.device)
        key = id(p)
        if key not in self._templates:
            self._templates[key] = _skeleton(
                self.method.init(tuple(p.shape), cfg, dtype=p.dtype, device=p.device)
            )
        leaves = [st[f"s{i}"] for i in range(len(st))]
        inner = _rebuild(self._templates[key], leaves)
        if leaves:  # the stored state has more tensors than the method's structure: not this method's state
            raise ValueError(
                f"{self.method.name} optimizer: the stored state of a parameter of shape {tuple(p.shape)} has "
                f"{len(st)} tensors, which does not match this method's state; was it saved by another method?"
            )
        return inner

    def _store_inner(self, p: Tensor, inner: Any) -> None:
        leaves = _leaves(inner, [])
        self.state[p] = {f"s{i}": x for i, x in enumerate(leaves)}
        if id(p) not in self._templates:
            self._templates[id(p)] = _skeleton(inner)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        # torch casts every state tensor to its parameter's dtype; integer indices and packed sign bytes keep
        # theirs (an int32 index above 2²⁴ would not survive a float32 round trip), so they are taken from the
        # saved dict again
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            for k, v in state_dict["state"].get(i, {}).items():
                if isinstance(v, Tensor) and not torch.is_floating_point(v):
                    self.state[p][k] = v.to(device=p.device)
        self._templates.clear()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step for every parameter with a gradient; ``closure`` re-evaluates the loss (with grad enabled)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pending = []
        for group in self.param_groups:
            cfg = self._config(group)
            wd = self._decoupled_wd(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError(
                        f"{self.method.name} optimizer: got a sparse gradient for a parameter of shape "
                        f"{tuple(p.shape)}; only dense gradients are supported"
                    )
                inner = self._load_inner(p, cfg)
                direction, new = self.method.update(p.grad, inner, cfg, param=p.detach())
                pending.append((p, group["lr"], wd, direction, new))
        for p, lr, wd, direction, new in pending:  # nothing changes unless every update succeeded
            if self.method.full_step:
                p.sub_(direction)
            else:
                if wd:
                    p.mul_(1 - lr * wd)
                p.sub_(direction, alpha=lr)
            self._store_inner(p, new)
        return loss


def make_optimizer(name: str, params: Iterable, lr: float = 1e-3, **config) -> MethodOptimizer:
    """A ``torch.optim.Optimizer`` running the registered method ``name`` on ``params``.

    >>> opt = make_optimizer("smmf", model.parameters(), lr=1e-3, weight_decay=0.01, decay_rate=-0.8)
    """
    return MethodOptimizer(params, name, lr=lr, **config)
