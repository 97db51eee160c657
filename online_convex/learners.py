r"""A learner = a registered method + a step size η + a domain K: x_{t+1} = Π_K^{H_t}(x_t − η·u_t).

u_t is the method's direction (memopt_theory.methods) after it absorbs g_t, and H_t its metric
(``method.metric``): the AdaGrad-family theorems (docs/theory/bounds.md §0, Lemma L1) need the projection in the
‖·‖_{H_t} norm, not the Euclidean one, so that is the default (``projection="metric"``). Methods with their
own step rule (``full_step``: Adam-type) return the whole step and run unconstrained only: x_{t+1} = x_t − u_t.

``eta="theory"`` is the step size the method's own guarantee prescribes (``method.guarantee.theory_eta``,
memopt_theory.guarantee), resolved per seed from the domain and the data by :meth:`Learner.resolve` (the
simulator calls it). Examples from the registry: η = D/√2 for full-matrix AdaGrad (its bound
(D²/(2η) + η)·tr G_T^{1/2} is smallest there), η = D_∞/√2 for the diagonal and SM3-type rules, η = D/G for
OGD (a guarantee that ``needs`` "grad_bound" receives G ≥ max_t ‖g_t‖_2 from :func:`gradient_bound`). An
unbounded K has no theory step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from memopt_theory import methods
from memopt_theory.validation import all_finite
from online_convex.problems import RoundData

__all__ = ["Learner", "gradient_bound", "theory_eta_methods", "StepRefused", "check_finite_step"]


def theory_eta_methods() -> list[str]:
    """Registered methods whose guarantee prescribes a step size (``eta='theory'``)."""
    return [m.name for m in methods.all_methods() if m.guarantee is not None and m.guarantee.theory_eta]


def _bounded(domain) -> bool:
    return math.isfinite(float(domain.diameter))


def gradient_bound(problem, data: RoundData, domain) -> Tensor:
    r"""G ≥ max_t sup_{x∈K} ‖∇f_t(x)‖_2 per seed (shape B), known before the run (OGD's step needs it).

    linear: ‖a_t‖ exactly (the gradient is a_t). logistic, hinge: |φ'| ≤ 1, so ‖a_t‖. least squares:
    |p − y| ≤ ‖a_t‖·r + |y_t| with r = max_{x∈K} ‖x‖ ≤ ‖Π_K(0)‖ + diam K (triangle inequality).
    """
    k = len(data.shape)
    norm_a = data.a.flatten(start_dim=data.a.ndim - k).norm(dim=-1)  # (T, *B)
    if problem.name in ("linear", "logistic", "hinge"):
        return norm_a.amax(dim=0)
    if problem.name == "least_squares":
        if not _bounded(domain):
            raise ValueError(
                f"gradient_bound: least squares on the unbounded domain {domain.name!r} has no finite G"
            )
        x0 = domain.project(torch.zeros(data.a.shape[1:], dtype=data.a.dtype, device=data.a.device))
        r = x0.flatten(start_dim=x0.ndim - k).norm(dim=-1) + float(domain.diameter)
        return (norm_a * (norm_a * r + data.y.abs())).amax(dim=0)
    raise ValueError(f"gradient_bound: no a-priori gradient bound for problem {problem.name!r}")


@dataclass(frozen=True)
class Learner:
    """Method + step size + domain.

    Attributes
    ----------
    method : str                 a registered method name (memopt_theory.methods)
    config : Config or None      the method's Config (None: its defaults)
    eta : float > 0, "theory", or a Tensor of shape B (per seed; what :meth:`resolve` produces)
    domain : Domain              K (online_convex.domains); its shape is the parameter shape S
    projection : "metric" (Π_K^{H_t}, the theorems' projection) or "euclidean" (Π_K)
    """

    method: str
    config: Any = None
    eta: Any = "theory"
    domain: Any = None
    projection: str = "metric"

    def __post_init__(self) -> None:
        m = methods.get(self.method)
        if self.config is None:
            object.__setattr__(self, "config", m.Config())
        elif not isinstance(self.config, m.Config):
            raise TypeError(
                f"Learner: config must be a {self.method}.Config; got {type(self.config).__name__}"
            )
        if self.domain is None or not hasattr(self.domain, "project"):
            raise TypeError(f"Learner: domain must be an online_convex.domains Domain; got {self.domain!r}")
        if self.projection not in ("metric", "euclidean"):
            raise ValueError(f"Learner: projection must be 'metric' or 'euclidean'; got {self.projection!r}")
        if m.full_step:
            if _bounded(self.domain):
                raise ValueError(
                    f"Learner: {self.method} has its own step rule (full_step) and runs unconstrained only; "
                    f"got the bounded domain {self.domain.name!r}"
                )
            return
        if isinstance(self.eta, str):
            if self.eta != "theory":
                raise ValueError(
                    f"Learner: eta must be a positive number, a per-seed tensor or 'theory'; got {self.eta!r}"
                )
            if m.guarantee is None or m.guarantee.theory_eta is None:
                raise ValueError(
                    f"Learner: eta='theory' is defined for {', '.join(theory_eta_methods())} (methods whose "
                    f"guarantee prescribes a step); got method {self.method!r}"
                )
            if not _bounded(self.domain):
                raise ValueError(
                    f"Learner: eta='theory' needs a bounded domain (η depends on diam K); got {self.domain.name!r}"
                )
        elif isinstance(self.eta, Tensor):
            if not bool((self.eta > 0).all()) or not bool(torch.isfinite(self.eta).all()):
                raise ValueError("Learner: eta (per-seed tensor) must be finite and > 0")
        elif (
            isinstance(self.eta, bool)
            or not isinstance(self.eta, (int, float))
            or not (0 < self.eta < math.inf)
        ):
            raise ValueError(
                f"Learner: eta must be a finite number > 0, a per-seed tensor or 'theory'; got {self.eta!r}"
            )

    @property
    def spec(self):
        return methods.get(self.method)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.domain.shape)

    # --------------------------------------------------------------------------------------------------
    def resolve(
        self, problem, data: RoundData, *, grad_bound: Tensor | None = None, T: int | None = None
    ) -> Learner:
        """This learner with η a per-seed tensor (shape B): "theory" is computed from K and the data.

        ``grad_bound`` (B) and ``T`` override what is read from ``data`` (the sparse simulator knows both without
        a dense T×d array)."""
        if self.spec.full_step:
            return self
        B, dt, dev = data.batch, data.a.dtype, data.a.device
        if isinstance(self.eta, Tensor):
            if tuple(self.eta.shape) != B:
                raise ValueError(f"Learner: eta has shape {tuple(self.eta.shape)}; the data have seeds {B}")
            return self
        if self.eta != "theory":
            return replace(self, eta=torch.full(B, float(self.eta), dtype=dt, device=dev))
        from memopt_theory.guarantee import EtaInputs

        g = self.spec.guarantee
        G = None
        if "grad_bound" in g.needs:
            G = (grad_bound if grad_bound is not None else gradient_bound(problem, data, self.domain)).to(dt)
        q = EtaInputs(
            config=self.config,
            shape=self.shape,
            D=float(self.domain.diameter),
            D_inf=float(self.domain.diameter_inf),
            T=int(data.T if T is None else T),
            grad_bound=G,
        )
        eta = torch.as_tensor(g.theory_eta(q), dtype=dt, device=dev)
        eta = eta.expand(B).clone() if eta.ndim == 0 else eta
        return replace(self, eta=eta)

    def initial_point(self, batch: tuple[int, ...], dtype=torch.float64, device=None) -> Tensor:
        """x_1 = Π_K(0) (docs/theory/sketching.md §B3 step 0)."""
        return self.domain.project(torch.zeros(tuple(batch) + self.shape, dtype=dtype, device=device))

    def init(self, shape, batch, dtype=torch.float64, device=None):
        """The method's state for ``batch`` seeds; ``shape`` must be the domain's (the stream's S)."""
        shape = tuple(shape)
        if shape != self.shape:
            raise ValueError(
                f"Learner: dimension mismatch: the stream's parameter shape is {shape}, the learner's domain "
                f"{self.domain.name!r} has shape {self.shape}"
            )
        state = self.spec.init(shape, self.config, batch=tuple(batch), dtype=dtype, device=device)
        if (
            self.projection == "metric"
            and _bounded(self.domain)
            and self.spec.metric(state, self.config) is None
        ):
            raise ValueError(
                f"Learner: {self.method} has no metric H_t, so it cannot be projected in ‖·‖_H onto "
                f"{self.domain.name!r}; use an unconstrained domain or projection='euclidean'"
            )
        return state

    def step(self, g: Tensor, x: Tensor, state, *, t: int | None = None) -> tuple[Tensor, Any]:
        """(x_{t+1}, state_t) from g_t at x_t: Π_K^{H_t}(x_t − η·u_t), u_t, H_t after g_t is absorbed.

        The direction and the new state, then x_{t+1}, are checked finite before they are returned (one
        reduction per tensor): a finite gradient whose square overflows (1e20 in float32) raises one
        :class:`StepRefused` (a ValueError) naming the method, the round ``t`` (the simulator adds it) and the
        seeds, and the caller's state stays as it was (``update`` is pure), so no later round meets a poisoned
        state."""
        try:
            u, new = self.spec.update(g, state, self.config, param=x)
        except (ValueError, torch.linalg.LinAlgError) as e:  # e.g. factorising an overflowed factor
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise StepRefused(self.method, t, _refusal(g, self.shape, f"the update failed ({msg})")) from e
        # x_t − u or x_t − η·u alone (no projection) cannot fail on a NaN/inf: one check of all three after it.
        # A projection must not see one (an eigh/SVD of a non-finite metric fails or hangs): check before it
        plain = self.spec.full_step or (self.domain.name == "unconstrained" and not _bounded(self.domain))
        before = {} if plain else {"direction": u, "state": new}
        if before:
            check_finite_step(self.method, t, g, self.shape, **before)
        x_new = self.move(x, u, new)
        after = {"direction": u, "state": new} if plain else {}
        check_finite_step(self.method, t, g, self.shape, **after, iterate=x_new)
        return x_new, new

    def move(self, x: Tensor, u: Tensor, state) -> Tensor:
        """x_{t+1} = Π_K^{H_t}(x_t − η·u_t) from the direction u_t and the state after g_t (``step`` minus the
        method's update, so that a profile can time the two apart)."""
        m = self.spec
        if m.full_step:
            return x - u
        if isinstance(self.eta, Tensor):
            eta = self.eta.reshape(*self.eta.shape, *([1] * len(self.shape)))
        elif isinstance(self.eta, str):
            raise ValueError(
                "Learner.step: eta='theory' must be resolved first (Learner.resolve(problem, data))"
            )
        else:
            eta = self.eta
        y = x - eta * u
        if not _bounded(self.domain) and self.domain.name == "unconstrained":
            return y
        if bool(self.domain.contains(y, atol=0.0).all()):
            return y  # y ∈ K is its own projection in every norm: skip building H_t
        H = m.metric(state, self.config) if self.projection == "metric" else None
        return self.domain.project(y, H)


def _named_leaves(obj: Any, name: str) -> list[tuple[str, Tensor]]:
    """(path, tensor) for every floating tensor in a direction/state/iterate (NamedTuple fields by name)."""
    if isinstance(obj, Tensor):
        return [(name, obj)] if obj.is_floating_point() else []
    if isinstance(obj, tuple):
        keys = getattr(obj, "_fields", None) or [f"[{i}]" for i in range(len(obj))]
        return [
            leaf
            for k, x in zip(keys, obj)
            for leaf in _named_leaves(x, f"{name}.{k}" if k[0] != "[" else name + k)
        ]
    return []


def _seed_rows(x: Tensor, shape: tuple[int, ...], batch: tuple[int, ...]) -> Tensor | None:
    """``x`` as (n_seeds, -1) when it carries the seed axes in front (seeds flattened row-major), else None."""
    if tuple(x.shape[: len(batch)]) != batch:
        return None
    return x.reshape(math.prod(batch), -1)


class StepRefused(ValueError):
    """A learner step that would store a NaN/inf (or whose update failed): ``method``, ``round`` (None where the
    caller did not say) and the ``detail`` naming the tensor and the seeds; :meth:`at_round` adds the round."""

    def __init__(self, method: str, round: int | None, detail: str):
        self.method, self.round, self.detail = method, round, detail
        where = f"{method} learner" + (f", round {round}" if round is not None else "")
        super().__init__(f"{where}: {detail}")

    def at_round(self, round: int) -> StepRefused:
        return StepRefused(self.method, round, self.detail)


def _refusal(g: Tensor, shape: tuple[int, ...], what: str, seeds=None) -> str:
    batch = tuple(g.shape[: g.ndim - len(shape)])
    rows = g.detach().reshape(math.prod(batch), -1).abs()
    if seeds is None:  # the seeds whose gradient is non-finite or squares past the dtype's range
        big = math.sqrt(torch.finfo(g.dtype).max)
        seeds = (~(rows <= big).all(-1)).nonzero().flatten().tolist()
    gmax = float(rows[seeds].max()) if seeds and rows.shape[1] else math.nan
    hint = (
        f"; its square overflows {str(g.dtype).replace('torch.', '')}"
        if gmax * gmax > torch.finfo(g.dtype).max
        else ""
    )
    n = math.prod(batch)
    if (
        not seeds
    ):  # nothing to blame on the gradient (an option or shape error, or an overflow built up slowly)
        return f"{what} (largest |g_t| = {float(rows.max()) if rows.numel() else 0.0:.3g}, {n} seeds); state not kept"
    return (
        f"{what} for seed(s) {seeds} of {n} (largest |g_t| there = {gmax:.3g}{hint}); the state was not kept: "
        "scale the stream down or use float64"
    )


def _floating(obj: Any, out: list) -> list:
    if isinstance(obj, Tensor):
        if obj.is_floating_point() and obj.numel():
            out.append(obj.detach())
    elif isinstance(obj, tuple):
        for x in obj:
            _floating(x, out)
    return out


def check_finite_step(method: str, t: int | None, g: Tensor, shape, **named) -> None:
    """Raise one :class:`StepRefused` if a tensor in ``named`` (direction, state, iterate) holds a NaN/inf, naming
    the method, round ``t``, the tensor and the seeds (rows of the leading seed axes of ``g``). The fast path is
    one aminmax reduction per tensor (NaN reaches both ends, ±inf one) and one host sync for all of them; the
    tensor and seeds are located only on failure."""
    tensors: list[Tensor] = []
    for v in named.values():
        _floating(v, tensors)
    if not tensors or bool(torch.isfinite(torch.stack([e for x in tensors for e in torch.aminmax(x)])).all()):
        return
    shape = tuple(shape)
    batch = tuple(g.shape[: g.ndim - len(shape)])
    for name, x in [leaf for k, v in named.items() for leaf in _named_leaves(v, k)]:
        if bool(all_finite(x)):
            continue
        rows = _seed_rows(x, shape, batch)
        seeds = None if rows is None else (~torch.isfinite(rows).all(-1)).nonzero().flatten().tolist()
        raise StepRefused(method, t, _refusal(g, shape, f"the update gave a non-finite {name}", seeds))
