r"""A ``torch.optim.Optimizer`` over any registered method: ``make_optimizer(name, params, lr=..., **config)``.

The optimizer wraps the same pure ``init``/``update`` pair as the OCO learner (project convention: "one source of
truth"), so identical gradient sequences give identical trajectories:

* ``full_step`` methods (Adam-type: own step rule) get ``lr`` and ``weight_decay`` from the param group inside
  their Config and return the whole step: p ← p − direction. LR schedulers work because the Config is rebuilt
  from the group at every step.
* other methods return a direction: p ← p − lr·direction. If the method's Config has a ``weight_decay`` field
  (M-FAC's L2 mode) the group's value goes there; otherwise the optimizer applies decoupled decay
  p ← p − lr·wd·p from the same p the method saw.

Every other group option is a Config field (validated by the Config, per group). Each parameter has its own
method state, created on its first gradient, so a parameter that first gets a gradient late starts at t = 0.
A step is atomic: every update — the new method state, the direction and the new parameter value — is computed
and checked to be finite before any parameter or state changes, so a bad gradient (sparse, NaN/inf, on the meta
device, wrong dtype) or a finite one whose update overflows (a float32 gradient of 1e20 squares to inf) raises one
``ValueError`` naming the parameter and leaves parameters and optimizer state as they were. ``lr`` and
``weight_decay`` must be finite, lr > 0 and weight_decay ≥ 0 at construction, both ≥ 0 again at every step (a
scheduler or a hand edit of ``param_groups`` may change them; a schedule may end at lr = 0).

A step at lr = 0 follows torch's optimizers: the method state advances as usual (the gradient is absorbed, the
step counter moves) and the parameter does not move at all — decoupled weight decay, whose size is lr·wd, vanishes
too, and so does EFCP's η-free decay (``ef_mfac``). A full-step method's update runs with lr = 0 in its Config (the
pure Configs accept only lr > 0, where an OCO learner makes sense; the optimizer sets 0 on a Config validated at
lr = 1), so a state that carries lr — Adafactor's momentum of lr-scaled steps — becomes the lr → 0 limit
(m ← β1·m; its own rule would still move the parameter by that m, the optimizer does not). FD-SON/RFD-SON are the exception: their lr sets the sketched rows √η_t·g_t with η_t = 1/(lr·√t) or
1/(lr·t), which has no value at lr = 0, so their lr = 0 step leaves state and parameter unchanged (the gradient
is checked, not absorbed).

Mixed precision: a float16/bfloat16 parameter gets **float32** method state and float32 arithmetic, for every
method (``memopt_theory.methods._common.resolve_dtype``: half precision cannot hold squared gradients, and
torch's eigen/SVD/Cholesky routines do not take it); the gradient and parameter are read in float32 and the new
parameter value p − lr·direction is computed in float32 and rounded once to the parameter's dtype. float32 and
float64 parameters keep state in their own dtype. A 0-d parameter is stepped as a length-1 vector (its state is
that of shape (1,); Shampoo-type methods have no 0-axis form).

``state_dict`` holds only tensors and plain numbers: a method State (NamedTuples of tensors, None and static
shape metadata) is stored as its tensor leaves, keyed by their position, and rebuilt on the parameter's first
step after loading from the structure of a fresh ``init``; it loads with ``torch.load(weights_only=True)``. The
dict also names the method (key ``"method"``); ``load_state_dict`` refuses, before changing anything, a dict of
another method or optimizer and names the mismatch (method, Config options, or the stored tensors' count and
shapes against those this method's ``init`` makes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from memopt_theory import methods
from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import resolve_dtype
from memopt_theory.validation import all_finite, check_grad

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


def _count(template: Any) -> int:
    """How many tensors a state of this structure holds."""
    if template is _LEAF:
        return 1
    if isinstance(template, Static) or template is None:
        return 0
    return sum(_count(x) for x in template)


def _rebuild(template: Any, leaves: list) -> Any:
    """``template`` with its tensor markers replaced, in order, by ``leaves`` (consumed from the front)."""
    if template is _LEAF:
        return leaves.pop(0)
    if isinstance(template, Static) or template is None:
        return template
    items = [_rebuild(x, leaves) for x in template]
    return type(template)(*items) if hasattr(template, "_fields") else type(template)(items)


def _check_rate(value: Any, name: str, *, where: str, positive: bool) -> None:
    """lr (> 0) or weight_decay (≥ 0): a finite real number (``value < 0`` alone lets NaN through)."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        raise ValueError(
            f"{where}: {name} must be a real number {'>' if positive else '>='} 0 and finite; got {value!r}"
        )


# methods whose lr is not a step multiplier but scales what the state absorbs (the sketched rows √η_t·g_t with
# η_t = 1/(lr·√t) or 1/(lr·t)): at lr = 0 they skip the gradient (module docstring)
_LR_SCALES_THE_STATE = frozenset({"fd_son", "rfd_son"})


def _describe(tensors: list) -> str:
    return "[" + ", ".join(f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}" for x in tensors) + "]"


class MethodOptimizer(torch.optim.Optimizer):
    """``torch.optim.Optimizer`` for the registered method ``method`` (see the module docstring).

    Parameters
    ----------
    params : iterable of tensors or of param-group dicts
    method : str            a registered name (memopt_theory.methods.names())
    lr : float > 0          η (full_step methods: their Config's lr); finite; None only where the Config's lr
                            defaults to None (Adafactor: the relative step min(1e−2, 1/√t))
    weight_decay : float ≥ 0, finite
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
        self._lr_none_ok = any(
            f.name == "lr" and f.default is None for f in dataclasses.fields(self.method.Config)
        )
        if not (lr is None and self._lr_none_ok):
            _check_rate(lr, "lr", where="make_optimizer", positive=True)
        _check_rate(weight_decay, "weight_decay", where="make_optimizer", positive=False)
        self._fields = fields
        self._templates: dict[int, Any] = {}
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, **config})
        for i, group in enumerate(self.param_groups):
            self._check_group(group, where=f"make_optimizer: param group {i}")
            self._config(group)  # validate every group's options now, not at the first step

    def _check_group(self, group: dict, *, where: str, at_step: bool = False) -> None:
        """lr > 0 (≥ 0 at a step and in a loaded state dict: a schedule such as cosine annealing may end at
        exactly 0, for every method; None where the Config's lr defaults to None) and weight_decay ≥ 0, both
        finite."""
        if not (group["lr"] is None and self._lr_none_ok):
            _check_rate(group["lr"], "lr", where=where, positive=not at_step)
        _check_rate(group["weight_decay"], "weight_decay", where=where, positive=False)

    def _config(self, group: dict) -> Any:
        kw = {k: v for k, v in group.items() if k in self._fields}
        zero = "lr" in self._fields and group["lr"] == 0
        if "lr" in self._fields:
            kw["lr"] = (
                1.0 if zero else group["lr"]
            )  # a Config takes lr > 0 only: validated at 1, then set to 0
        if "weight_decay" in self._fields:
            kw["weight_decay"] = group["weight_decay"]
        cfg = self.method.Config(**kw)
        if zero:
            object.__setattr__(cfg, "lr", 0.0)
        return cfg

    def _decoupled_wd(self, group: dict) -> float:
        return 0.0 if "weight_decay" in self._fields else float(group["weight_decay"])

    @staticmethod
    def _shape(p: Tensor) -> tuple[int, ...]:
        """The shape the method sees: the parameter's, a 0-d one as (1,)."""
        return tuple(p.shape) if p.ndim else (1,)

    def _state_dtype(self, p: Tensor) -> torch.dtype:
        return resolve_dtype(p.dtype, where=f"{self.method.name} optimizer")

    def _fresh(self, p: Tensor, cfg: Any, device: Any) -> Any:
        return self.method.init(self._shape(p), cfg, dtype=self._state_dtype(p), device=device)

    def _expected_leaves(self, p: Tensor, cfg: Any) -> list:
        """The tensors (shapes, dtypes) a fresh state of ``p`` holds, made on the meta device (no memory)."""
        try:
            return _leaves(self._fresh(p, cfg, "meta"), [])
        except (NotImplementedError, RuntimeError):  # an init that reads values: build it for real
            return _leaves(self._fresh(p, cfg, p.device), [])

    def _load_inner(self, p: Tensor, cfg: Any) -> Any:
        st = self.state[p]
        if not st:
            return self._fresh(p, cfg, p.device)
        key = id(p)
        if key not in self._templates:
            self._templates[key] = _skeleton(self._fresh(p, cfg, p.device))
        leaves = [st.get(f"s{i}") for i in range(len(st))]
        n_expected = _count(self._templates[key])
        if len(leaves) != n_expected or any(x is None for x in leaves):
            raise ValueError(
                f"{self.method.name} optimizer: the stored state of a parameter of shape {tuple(p.shape)} has "
                f"{len(st)} tensors ({', '.join(sorted(st))}); this method's state has {n_expected} (s0..): "
                "was it saved by another method?"
            )
        return _rebuild(self._templates[key], leaves)

    def _store_inner(self, p: Tensor, inner: Any) -> None:
        leaves = _leaves(inner, [])
        self.state[p] = {f"s{i}": x for i, x in enumerate(leaves)}
        if id(p) not in self._templates:
            self._templates[id(p)] = _skeleton(inner)

    def state_dict(self) -> dict:
        """torch's optimizer state dict plus ``"method"``: the registered name (checked on load)."""
        out = super().state_dict()
        out["method"] = self.method.name
        return out

    def _check_loadable(self, state_dict: Any) -> None:
        """Refuse (before anything changes) a state dict that this method cannot continue, naming why."""
        me = self.method.name
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                f"{me} optimizer: load_state_dict needs an optimizer state dict (keys 'state', 'param_groups'); "
                f"got {type(state_dict).__name__}"
                + (f" with keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict) else "")
            )
        saved = state_dict.get("method")
        if saved is not None and saved != me:
            raise ValueError(
                f"{me} optimizer: this state dict was saved by the {saved!r} optimizer; a {me} optimizer cannot "
                f"continue it (load it into make_optimizer({saved!r}, ...))"
            )
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)
        ):
            return  # torch's load_state_dict refuses it with its own message
        allowed = self._fields | {"params", "lr", "weight_decay", "param_names"}
        for gi, (saved_group, group) in enumerate(zip(groups, self.param_groups)):
            extra = sorted(set(saved_group) - allowed)
            if extra:
                raise ValueError(
                    f"{me} optimizer: the state dict's param group {gi} has option(s) {', '.join(extra)} that "
                    f"{me}.Config does not have: it was saved by another method or optimizer"
                )
            try:
                self._check_group(  # a dict saved at the end of a schedule may hold lr = 0
                    saved_group, where=f"{me} optimizer: the state dict's param group {gi}", at_step=True
                )
                cfg = self._config(saved_group)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"{me} optimizer: the state dict's param group {gi} is not a configuration of {me}: {e}"
                ) from None
            for pid, p in zip(saved_group["params"], group["params"]):
                st = state_dict["state"].get(pid)
                if not st:
                    continue
                try:
                    want = self._expected_leaves(p, cfg)
                except (TypeError, ValueError) as e:
                    raise ValueError(
                        f"{me} optimizer: the state dict's param group {gi} does not fit parameter {pid} (shape "
                        f"{tuple(p.shape)}): {e}; was it saved by another method?"
                    ) from None
                keys = [f"s{i}" for i in range(len(want))]
                got = [st[k] for k in keys if isinstance(st.get(k), Tensor)]
                if (
                    sorted(st) != sorted(keys)
                    or len(got) != len(want)
                    or any(
                        tuple(a.shape) != tuple(b.shape) or a.is_floating_point() != b.is_floating_point()
                        for a, b in zip(got, want)
                    )
                ):
                    shown = ", ".join(
                        f"{k}: {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}"
                        if isinstance(v, Tensor)
                        else f"{k}: {type(v).__name__}"
                        for k, v in st.items()
                    )
                    raise ValueError(
                        f"{me} optimizer: the saved state of parameter {pid} (shape {tuple(p.shape)}) is not a "
                        f"state of {me} with these options: saved {{{shown}}}; {me} keeps {len(want)} tensors "
                        f"{_describe(want)} — was it saved by another method or with other settings?"
                    )

    def load_state_dict(self, state_dict: dict) -> None:
        self._check_loadable(state_dict)
        state_dict = {k: v for k, v in state_dict.items() if k != "method"}
        super().load_state_dict(state_dict)
        # torch casts every floating state tensor to its parameter's dtype (a bfloat16 parameter's float32 state
        # would lose its precision) and integer ones keep theirs; the tensors are taken from the saved dict again
        # and given the method state's dtype (floating) or kept (integer indices, packed sign bytes: an int32
        # index above 2²⁴ would not survive a float32 round trip)
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            sdt = self._state_dtype(p)
            for k, v in state_dict["state"].get(i, {}).items():
                if isinstance(v, Tensor):
                    dtype = sdt if torch.is_floating_point(v) else v.dtype
                    self.state[p][k] = v.to(device=p.device, dtype=dtype)
        self._templates.clear()

    def _refuse(self, where: str, what: str, grad: Tensor, sdt: torch.dtype) -> ValueError:
        gmax = float(grad.detach().abs().max()) if grad.numel() else 0.0
        hint = ""
        if gmax * gmax > torch.finfo(sdt).max:
            hint = f"; its square overflows {str(sdt).replace('torch.', '')}"
        return ValueError(
            f"{where}: step refused, nothing changed: {what} (largest |grad| = {gmax:.3g}{hint}); scale the loss "
            "or gradient down, or use a wider dtype"
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step for every parameter with a gradient; ``closure`` re-evaluates the loss (with grad enabled)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        me = self.method.name
        pending = []
        for gi, group in enumerate(self.param_groups):
            self._check_group(group, where=f"{me} optimizer: param group {gi}", at_step=True)
            cfg = self._config(group)
            wd = self._decoupled_wd(group)
            lr = group["lr"]
            for pi, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                where = f"{me} optimizer: parameter {pi} of param group {gi} (shape {tuple(p.shape)})"
                if p.grad.is_sparse:
                    raise ValueError(
                        f"{me} optimizer: got a sparse gradient for a parameter of shape "
                        f"{tuple(p.shape)}; only dense gradients are supported"
                    )
                if p.device.type == "meta" or p.grad.device.type == "meta":
                    raise ValueError(
                        f"{where}: the parameter or its gradient is on the meta device (shapes only, no values); "
                        "materialise the model on a real device (e.g. module.to_empty(device='cpu')) first"
                    )
                shape, sdt = self._shape(p), self._state_dtype(p)
                g = p.grad.reshape(shape).to(sdt)
                if lr == 0 and me in _LR_SCALES_THE_STATE:
                    check_grad(g, shape, where=where)
                    continue
                x = p.detach().reshape(shape).to(sdt)
                inner = self._load_inner(p, cfg)
                try:  # the update validates the gradient (dense, floating, finite) itself
                    direction, new = self.method.update(g, inner, cfg, param=x)
                except (ValueError, torch.linalg.LinAlgError) as e:
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    if not torch.isfinite(g).all():  # a NaN/inf gradient: the update's own message says so
                        raise ValueError(f"{where}: {msg}") from e
                    raise self._refuse(where, f"the method's update failed ({msg})", g, sdt) from e
                if lr == 0:  # the parameter does not move (module docstring); the direction is still checked
                    q, ok = None, all_finite(direction)
                else:
                    if self.method.full_step:
                        q = x.sub(direction)
                    else:
                        q = x.mul(1 - lr * wd) if wd else x
                        q = q.sub(direction, alpha=lr)
                    q = q.to(p.dtype).reshape(p.shape)
                    ok = all_finite(q)  # q finite implies the direction is (lr > 0)
                # state leaves that are the old tensors were checked when they were stored. One flag per
                # parameter, read after the loop: on a GPU the checks queue behind the updates and the host waits
                # once per step
                old = {id(t) for t in _leaves(inner, [])}
                for t in _leaves(new, []):
                    if t.is_floating_point() and id(t) not in old:
                        ok = ok & all_finite(t).to(ok.device)
                pending.append((p, q, new, ok, where, g, direction, sdt))
        for p, _q, new, ok, where, g, direction, sdt in pending:
            if not bool(ok):
                if not torch.isfinite(direction).all():
                    what = "the update gave a non-finite direction"
                elif not all(torch.isfinite(t).all() for t in _leaves(new, []) if t.is_floating_point()):
                    what = "the update gave a non-finite method state"
                else:
                    what = f"the new parameter value is not finite in {str(p.dtype).replace('torch.', '')}"
                raise self._refuse(where, what, g, sdt)
        for p, q, new, *_ in pending:  # nothing changes unless every update succeeded
            if q is not None:
                p.copy_(q)
            self._store_inner(p, new)
        return loss


def make_optimizer(name: str, params: Iterable, lr: float = 1e-3, **config) -> MethodOptimizer:
    """A ``torch.optim.Optimizer`` running the registered method ``name`` on ``params``.

    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> opt = make_optimizer("smmf", model.parameters(), lr=1e-3, weight_decay=0.01, decay_rate=-0.8)
    >>> model(torch.ones(2, 4)).sum().backward()
    >>> opt.step()
    """
    return MethodOptimizer(params, name, lr=lr, **config)
