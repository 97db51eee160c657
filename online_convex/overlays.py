r"""Regret bounds to draw beside a run: each learner's own guarantee evaluated on the run's quantities.

A registered method may carry a :class:`memopt_theory.guarantee.Guarantee`; nothing here knows a method by
name. At checkpoint t the simulator holds, per seed, the coordinate sums Σ_{s≤t} g_s², the learner's η, the
domain's D and D_∞ and, when the guarantee ``needs`` them, G_t = Σ_{s≤t} g_sg_sᵀ ("dense_G", kept only while
N ≤ ``MAX_DENSE``), an a-priori gradient bound G ≥ max_t ‖g_t‖ ("grad_bound") and the learner's state after
round t ("state"); :func:`bound_at` hands them to the guarantee's ``bound`` as a
:class:`memopt_theory.guarantee.BoundInputs`.

A bound is drawn when :func:`why_no_bound` finds no reason against it: the method declares a bound, K is
bounded, the projection is in the method's metric H_t (the AdaGrad-family proofs compare ‖x − x*‖_{H_t}
across rounds, which needs the H_t-norm projection), G_t fits, and the guarantee's own ``applies`` test
passes (e.g. for ``ogd`` the theory step and δ = 0; for ``sm3`` the variant with a metric). Every bound in the
registry is stated for a step size η that does not depend on t, so it holds at every checkpoint t ≤ T.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

__all__ = ["MAX_DENSE", "bound_name", "why_no_bound", "needs_dense_G", "needs_grad_bound", "bound_at"]

MAX_DENSE = 1024  # beyond this N the simulator does not keep the N×N G_t a bound would need


def _setting(learner, eta_mode: Any):
    from memopt_theory.guarantee import Setting

    return Setting(
        shape=tuple(learner.shape),
        D=float(learner.domain.diameter),
        D_inf=float(learner.domain.diameter_inf),
        projection=learner.projection,
        eta_mode="theory" if eta_mode == "theory" else "given",
    )


def why_no_bound(learner, n: int, eta_mode: Any) -> str | None:
    """None when the learner's guarantee draws a bound for this run, else the reason (one line)."""
    g = learner.spec.guarantee
    if g is None:
        return f"{learner.method} declares no guarantee"
    reason = g.reason(learner.config, _setting(learner, eta_mode))
    if reason is None and "dense_G" in g.needs and n > MAX_DENSE:
        reason = f"N = {n} > MAX_DENSE = {MAX_DENSE}: the bound needs the dense N×N Σ g gᵀ"
    return reason


def bound_name(learner, n: int, eta_mode: Any) -> str | None:
    """The bound drawn for this learner (its guarantee's label), or None when no theorem covers it."""
    if why_no_bound(learner, n, eta_mode) is not None:
        return None
    return learner.spec.guarantee.label(learner.config)


def needs_dense_G(learner) -> bool:
    g = learner.spec.guarantee
    return g is not None and "dense_G" in g.needs


def needs_grad_bound(learner) -> bool:
    g = learner.spec.guarantee
    return g is not None and "grad_bound" in g.needs


def bound_at(
    learner,
    t: int,
    T: int,
    *,
    G: Tensor | None,
    sum_sq: Tensor,
    grad_bound: Tensor | None,
    state: Any = None,
) -> Tensor:
    """The bound at checkpoint t, per seed (shape B). ``G``: B + (N, N) Σ g gᵀ; ``sum_sq``: B + S Σ g²;
    ``state``: the learner's method state after round t (the tensored bounds read their factors from it)."""
    from memopt_theory.guarantee import BoundInputs

    g = learner.spec.guarantee
    if g is None or g.bound is None:
        raise ValueError(f"bound_at: no bound for method {learner.method!r}")
    for need, value in (("dense_G", G), ("grad_bound", grad_bound), ("state", state)):
        if need in g.needs and value is None:
            raise ValueError(f"bound_at: the {learner.method} bound needs {need} (got None)")
    q = BoundInputs(
        config=learner.config,
        shape=tuple(learner.shape),
        t=int(t),
        T=int(T),
        eta=learner.eta,
        D=float(learner.domain.diameter),
        D_inf=float(learner.domain.diameter_inf),
        sum_sq=sum_sq,
        G=G,
        grad_bound=grad_bound,
        state=state,
    )
    return g.bound(q)
