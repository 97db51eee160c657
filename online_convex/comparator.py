r"""The best fixed point in hindsight, min_{x∈K} F_t(x) with F_t = Σ_{s<t} f_s, with a certified accuracy.

Regret against the best fixed point is L_t − min_K F_t (L_t the learner's loss), so a comparator that returns
value = F_t(x̂) ≥ min_K F_t ≥ lower gives the certified regret interval [L_t − value, L_t − lower], whose width
is the gap value − lower. The solver can be anything; the certificate is evaluated independently of it.

**The certificate: Fenchel weak duality.** Every loss is f_s(x) = φ(⟨a_s, x⟩, y_s) (problems.py), so for any
dual vector α ∈ dom φ*^{t}, with φ*(α, y) = sup_p αp − φ(p, y) the convex conjugate in p,
    min_{x∈K} Σ_s φ(⟨a_s, x⟩, y_s) ≥ −Σ_s φ*(α_s, y_s) + min_{x∈K} ⟨Σ_s α_s a_s, x⟩ =: D(α)
(Fenchel–Young: φ(p) ≥ αp − φ*(α) for each s, summed, then minimised over K). The last term is exact through
the domain's linear minimisation oracle; for K = R^S it is 0 if Σ_s α_s a_s = 0 and −∞ otherwise.
The conjugates (u = −yα):

=================  =========================================  ========================
problem            φ*(α, y)                                   dom
=================  =========================================  ========================
linear             0                                          α = 1
least_squares      α²/2 + αy                                  R
logistic           u log u + (1 − u) log(1 − u)               u ∈ [0, 1]
hinge              −u                                         u ∈ [0, 1]
=================  =========================================  ========================

With α_s = φ'(p_s) at x̂ (p_s = ⟨a_s, x̂⟩) and φ smooth, φ*(φ'(p)) = pφ'(p) − φ(p), so D(α) = F(x̂) −
max_{s∈K} ⟨∇F(x̂), x̂ − s⟩: the **Frank–Wolfe gap** certificate, zero exactly at the minimiser. For K = R^S the
natural α is first moved onto {Σ α_s a_s = 0} (α ← α − A A⁺α, A the t×N matrix of rows vec a_s), which changes
it by O(‖∇F(x̂)‖) — a residual at rounding level (≤ 10³·ε·Σ|α_s|‖a_s‖) is taken as 0. For hinge, α comes from
the LP's dual (polyhedral K) or a dual ascent (ball, nuclear ball). The reported lower end is
max(D(α), D(0)): α = 0 is feasible on every K and D(0) = Σ_s inf_p φ(p, y_s) = 0 for least squares, logistic
and hinge, which certifies the exact F* = 0 of an underdetermined unconstrained least squares (t ≤ N), where the
residual of the projected α need not be at rounding level.

**Rounding.** The solvers steer by the float64 estimate :func:`certify`, in which a residual Σα_s a_s at
rounding level counts as 0 — not a proof: on an unconstrained least squares with cond(A) = 1e10 that estimate
sat 2e-8 above the exact minimum, and F(x̂) rounded below it. The returned ends are therefore re-evaluated in
exact arithmetic (online_convex.certificate_exact): ``value`` is F_t at a point of K (x̂ itself whenever x̂ lies
in K exactly) rounded up, ``lower`` is max(D(α), D(0)) with α projected exactly onto {Σα_s a_s = 0} for
unbounded K, rounded down. lower > value is then impossible unless a bug: it raises, never clipped.

**Solvers.** linear: x̂ = lmo(Σ a_s), exact (gap 0). least squares / logistic: proximal Newton
x ← Π_K^{∇²F}(x − ∇²F⁻¹∇F) with Armijo backtracking (one step for least squares), Π^{∇²F} from
online_convex.domains_hnorm; nuclear ball: FISTA with restarts and Euclidean projections; unconstrained least
squares: the pseudo-inverse (min-norm solution). hinge (online_convex.comparator_hinge): HiGHS linear
programs (scipy.optimize.linprog) on box, simplex, R^S; on the ball and nuclear ball the dual
max_{u∈[0,1]^t} Σu_s − σ_K(Σ u_s y_s a_s) by L-BFGS-B, x̂ = lmo(−Σ u_s y_s a_s), then the Huber-smoothed hinge
(δ = 1 … 10⁻⁸, proximal Newton on the ball; FISTA to 10⁻⁴ on the nuclear ball), keeping per seed the best
primal value and the best dual bound. There the gap is not promised below rtol (measured on the ball: 2.6e-10 relative at t = 30, d = 3;
4e-9 to 2e-8 at t = 400, d = 16; 1e-8 to 1e-6 on breast_cancer, 3–5 s a solve; on a 2×8 nuclear ball 1e-5).

**Unbounded problems.** On K = R^S the infimum of a linear loss (Σa_s ≠ 0) or of the logistic loss on weakly
separable data (some v ≠ 0 with y_s⟨a_s, v⟩ ≥ 0 for all s, one strictly; an LP decides it) is not attained:
a ValueError asks for a bounded domain or ``radius=``, which then solves over {‖x‖ ≤ radius} and says so in
``note``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from memopt_theory.metric import Dense
from memopt_theory.validation import check_int, check_real
from online_convex.domains import Domain, make_domain
from online_convex.problems import Problem, RoundData

__all__ = ["ComparatorResult", "best_fixed_point", "dual_lower_bound", "certify"]


@dataclass
class ComparatorResult:
    """x̂ (B + S) in K; value = F_t(x̂) ≥ min_K F_t ≥ lower (both shape B); ``note`` says what K was used."""

    x: Tensor
    value: Tensor
    lower: Tensor
    note: str = ""

    @property
    def gap(self) -> Tensor:
        """value − lower ≥ 0: the width of every regret interval built on this comparator."""
        return self.value - self.lower


# --- the certificate ----------------------------------------------------------------------------------------
def _conjugate(name: str, alpha: Tensor, y: Tensor) -> Tensor:
    """φ*(α, y) elementwise (+inf outside its domain); module table."""
    inf = torch.full_like(alpha, math.inf)
    if name == "linear":
        return torch.where(alpha == 1, torch.zeros_like(alpha), inf)
    if name == "least_squares":
        return 0.5 * alpha**2 + alpha * y
    u = -y * alpha
    ok = (u >= 0) & (u <= 1)
    if name == "logistic":
        ent = torch.special.xlogy(u, u) + torch.special.xlogy(1 - u, 1 - u)  # 0·log 0 = 0
        return torch.where(ok, ent, inf)
    if name == "hinge":
        return torch.where(ok, -u, inf)
    raise ValueError(f"no conjugate for problem {name!r}")


def _rows(data: RoundData, t_end: int) -> Tensor:
    """A as (*B, t, N): the rounds' vec a_s as rows, seeds leading."""
    k = len(data.shape)
    return data.a[:t_end].flatten(start_dim=data.a.ndim - k).movedim(0, -2)


def dual_lower_bound(problem: Problem, data: RoundData, t_end: int, domain: Domain, alpha: Tensor) -> Tensor:
    """D(α) = −Σ_{s<t_end} φ*(α_s, y_s) + min_{x∈K} ⟨Σ_s α_s a_s, x⟩ ≤ min_K F_t (weak duality), shape B.

    alpha: (t_end, *B). For unbounded K the last term is 0 when Σα_s a_s vanishes up to rounding, else −inf.
    """
    y = data.y[:t_end]
    conj = _conjugate(problem.name, alpha, y).sum(0)
    k = len(data.shape)
    v = (alpha.reshape(*alpha.shape, *([1] * k)) * data.a[:t_end]).sum(0)  # Σ α_s a_s, B + S
    if domain.bounded:
        lin = (v * domain.lmo(v)).flatten(start_dim=v.ndim - k).sum(-1)
    else:
        size = (
            alpha.abs().unsqueeze(-1)
            * data.a[:t_end].flatten(start_dim=data.a.ndim - k).norm(dim=-1, keepdim=True)
        ).sum(0)
        resid = v.flatten(start_dim=v.ndim - k).norm(dim=-1)
        tol = 1e3 * torch.finfo(v.dtype).eps * size.squeeze(-1)  # rounding level of the sum Σ α_s a_s
        lin = torch.where(resid <= tol, torch.zeros_like(resid), torch.full_like(resid, -math.inf))
    return -conj + lin


def _null_projected(data: RoundData, t_end: int, alpha: Tensor) -> Tensor:
    """α − A A⁺α (rows of A the vec a_s): the nearest α with Σ α_s a_s = 0, per seed."""
    A = _rows(data, t_end)  # (*B, t, N)
    a_t = alpha.movedim(0, -1).unsqueeze(-1)  # (*B, t, 1)
    z = torch.linalg.pinv(A.transpose(-1, -2)) @ (A.transpose(-1, -2) @ a_t)  # A A⁺α through pinv(Aᵀ)Aᵀα
    return (a_t - z).squeeze(-1).movedim(-1, 0)


def certify(
    problem: Problem, data: RoundData, t_end: int, domain: Domain, x: Tensor, alpha: Tensor | None = None
):
    """(value, lower) for a candidate x̂ ∈ K: value = F_t(x̂); lower = D(α) with α = φ'(⟨a_s, x̂⟩) unless given
    (for smooth φ on bounded K: the Frank–Wolfe bound F(x̂) − max_{s∈K}⟨∇F(x̂), x̂ − s⟩)."""
    value = problem.total_loss(x, data, t_end)
    if alpha is None:
        p, y, _ = problem._margins(x, data, t_end, "certify")
        alpha = problem.dphi(p, y)
        if not domain.bounded and problem.name != "linear":
            alpha = _null_projected(data, t_end, alpha)
            if problem.labels_pm1:  # dom φ* is u = −yα ∈ [0, 1]; the projection leaves u ≈ 0 at −1e-16
                alpha = -y * (-y * alpha).clamp(
                    0, 1
                )  # moves Σα_s a_s by rounding only (checked by the bound)
    lower = dual_lower_bound(problem, data, t_end, domain, alpha)
    # α = 0 is dual feasible on every K (Σ 0·a_s = 0): D(0) = Σ_s inf_p φ(p, y_s), which is 0 for least squares,
    # logistic and hinge and −inf for linear. It certifies F* ≥ 0 where the natural α's residual Σα_s a_s is
    # not at rounding level, e.g. an underdetermined unconstrained least squares (t ≤ N), where F* = 0 exactly.
    lower = torch.maximum(lower, dual_lower_bound(problem, data, t_end, domain, torch.zeros_like(alpha)))
    return (
        value,
        lower,
    )  # float64 estimates for the solvers' stopping rules; best_fixed_point re-evaluates exactly


# --- solvers --------------------------------------------------------------------------------------------------
def _newton(
    problem: Problem,
    data: RoundData,
    t_end: int,
    domain: Domain,
    x: Tensor,
    rtol: float,
    max_iter: int,
    certified: bool = True,
) -> Tensor:
    """Proximal Newton: x⁺ = Π_K^{H}(x − H⁻¹∇F(x)), H = ∇²F(x) + μI (μ = 10⁻¹²·tr H/N keeps it invertible where
    F is flat in some directions), then Armijo backtracking on x + τ(x⁺ − x), per seed; stops when every seed's certified gap is
    ≤ rtol·(1 + |F|) (``certified``) or, otherwise, when no seed moves by more than 10⁻¹⁴·(1 + ‖x‖)."""
    k, N = len(data.shape), domain.n
    eye = torch.eye(N, dtype=x.dtype, device=x.device)
    for _ in range(max_iter):
        if certified:
            value, lower = certify(problem, data, t_end, domain, x)
            if bool(((value - lower) <= rtol * (1 + value.abs())).all()):
                break
        else:
            value = problem.total_loss(x, data, t_end)
        g = problem.total_grad(x, data, t_end).flatten(start_dim=x.ndim - k)
        Hs = problem.total_hessian(x, data, t_end)
        mu = 1e-12 * torch.diagonal(Hs, dim1=-2, dim2=-1).sum(-1) / N
        # H = 0 (F locally linear, e.g. a smoothed hinge with no margin in its quadratic zone): a long
        # projected-gradient step, μ = 10⁻⁶‖∇F‖/(1 + ‖x‖), instead of a division by zero
        flat = 1e-6 * g.norm(dim=-1) / (1 + x.flatten(start_dim=x.ndim - k).norm(dim=-1))
        mu = torch.where(mu > 0, mu, flat) + torch.finfo(x.dtype).tiny
        Hs = Hs + mu[..., None, None] * eye
        step = torch.linalg.solve(Hs, g.unsqueeze(-1)).squeeze(-1)
        y = (x.flatten(start_dim=x.ndim - k) - step).reshape(x.shape)
        xp = domain.project(y, Dense(Hs, domain.shape)) if domain.bounded else y
        d = xp - x
        slope = (g * d.flatten(start_dim=x.ndim - k)).sum(-1)  # ⟨∇F, d⟩ ≤ 0 for the prox-Newton direction
        tau = torch.ones_like(value)
        for _ in range(40):  # halve τ where the Armijo condition fails
            trial = x + tau.reshape(*tau.shape, *([1] * k)) * d
            ok = problem.total_loss(trial, data, t_end) <= value + 1e-4 * tau * slope + 1e-15 * value.abs()
            if bool(ok.all()):
                break
            tau = torch.where(ok, tau, tau / 2)
        x = x + tau.reshape(*tau.shape, *([1] * k)) * d
        moved = (tau.reshape(*tau.shape, *([1] * k)) * d).flatten(start_dim=x.ndim - k).norm(dim=-1)
        if not certified and bool(
            (moved <= 1e-14 * (1 + x.flatten(start_dim=x.ndim - k).norm(dim=-1))).all()
        ):
            break
    return x


def _fista(
    problem: Problem,
    data: RoundData,
    t_end: int,
    domain: Domain,
    x: Tensor,
    rtol: float,
    max_iter: int,
    curvature: float | None = None,
) -> Tensor:
    """Accelerated projected gradient (Beck & Teboulle 2009) with function-value restarts (O'Donoghue & Candès
    2015), per seed; step 1/L, L = c·‖A‖₂² with c = sup φ'' (1 least squares, ¼ logistic, or ``curvature``),
    Euclidean projections. Unless ``curvature`` is given, stops when every seed's certified gap is
    ≤ rtol·(1 + |F|) (checked every 10 steps)."""
    k = len(data.shape)
    bshape = lambda v: v.reshape(*v.shape, *([1] * k))  # noqa: E731
    A = _rows(data, t_end)
    c = curvature if curvature is not None else (0.25 if problem.name == "logistic" else 1.0)
    L = bshape(torch.linalg.matrix_norm(A, ord=2) ** 2 * c + torch.finfo(x.dtype).tiny)
    z, x_prev = x, x
    theta = torch.ones(x.shape[: x.ndim - k], dtype=x.dtype, device=x.device)
    f_prev = problem.total_loss(x, data, t_end)
    for it in range(max_iter):
        x_new = domain.project(z - problem.total_grad(z, data, t_end) / L)
        f_new = problem.total_loss(x_new, data, t_end)
        if curvature is None and it % 10 == 0:
            value, lower = certify(problem, data, t_end, domain, x_new)
            if bool(((value - lower) <= rtol * (1 + value.abs())).all()):
                return x_new
        restart = f_new > f_prev
        theta_new = (1 + torch.sqrt(1 + 4 * theta**2)) / 2
        momentum = torch.where(restart, torch.zeros_like(theta), (theta - 1) / theta_new)
        z = x_new + bshape(momentum) * (x_new - x_prev)
        theta = torch.where(restart, torch.ones_like(theta), theta_new)
        x_prev, f_prev = x_new, f_new
    return x_prev


def _weakly_separable(data: RoundData, t_end: int) -> list[int]:
    """Seeds with a direction v ∈ [−1, 1]^N, y_s⟨a_s, v⟩ ≥ 0 for all s and Σ_s y_s⟨a_s, v⟩ > 0 (LP): there the
    logistic loss decreases for ever along v, so its infimum over R^S is not attained."""
    A = _rows(data, t_end).reshape(-1, t_end, math.prod(data.shape)).cpu().double().numpy()
    Y = data.y[:t_end].movedim(0, -1).reshape(-1, t_end).cpu().double().numpy()
    bad = []
    for b in range(A.shape[0]):
        M = Y[b][:, None] * A[b]
        res = linprog(-M.sum(0), A_ub=-M, b_ub=np.zeros(t_end), bounds=[(-1, 1)] * M.shape[1], method="highs")
        if res.status == 0 and -res.fun > 1e-9 * (1 + np.abs(M).sum()):
            bad.append(b)
    return bad


def best_fixed_point(
    problem: Problem | str,
    data: RoundData,
    domain: Domain,
    t_end: int,
    *,
    rtol: float = 1e-9,
    max_iter: int | None = None,
    radius: float | None = None,
) -> ComparatorResult:
    """min_{x∈K} F_t(x), F_t = Σ_{s<t_end} f_s, with value = F_t(x̂) ≥ min_K F_t ≥ lower per seed.

    Parameters
    ----------
    problem : Problem or its name
    data : RoundData, a (T, *B, *S), y (T, *B)
    domain : Domain on shape S
    t_end : int in [0, T]
    rtol : float in (0, 1): the solvers stop once gap ≤ rtol·(1 + |value|) (not guaranteed for hinge on the
        ball / nuclear ball, or when max_iter runs out; the gap is reported either way)
    max_iter : int ≥ 1, solver iterations (default 100 Newton, 5000 FISTA)
    radius : float > 0, only with the unconstrained domain: solve over {‖x‖ ≤ radius} instead (``note`` says so)

    Returns
    -------
    ComparatorResult with x (B + S), value, lower (B), gap = value − lower.
    """
    from online_convex.certificate_exact import exact_lower, exact_value
    from online_convex.comparator_hinge import hinge_dual, hinge_lp, hinge_refine
    from online_convex.problems import get_problem

    where = "best_fixed_point"
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not isinstance(problem, Problem):
        raise TypeError(f"{where}: problem must be a Problem or a problem name; got {type(problem).__name__}")
    if not isinstance(data, RoundData):
        raise TypeError(f"{where}: data must be a RoundData; got {type(data).__name__}")
    if not isinstance(domain, Domain):
        raise TypeError(
            f"{where}: domain must be a Domain (online_convex.domains.make_domain); got {type(domain).__name__}"
        )
    if tuple(domain.shape) != data.shape:
        raise ValueError(
            f"{where}: the domain has shape {domain.shape}; the data's rounds have parameter shape {data.shape}"
        )
    check_int(t_end, "t_end", where=where, low=0, high=data.T)
    rtol = check_real(rtol, "rtol", where=where, low=0.0, high=1.0, low_open=True, high_open=True)
    if max_iter is not None:
        check_int(max_iter, "max_iter", where=where, low=1)
    problem.check_data(data)
    note = f"over {domain!r}"
    if radius is not None:
        if domain.name != "unconstrained":
            raise ValueError(
                f"{where}: radius= only applies to the unconstrained domain; got domain {domain.name!r}"
            )
        domain = make_domain(
            "l2_ball", domain.shape, radius=check_real(radius, "radius", where=where, low=0.0, low_open=True)
        )
        note = f"over the l2 ball of radius {radius!r} (radius=; the unconstrained infimum may be lower)"
    x = torch.zeros(*data.batch, *data.shape, dtype=data.a.dtype, device=data.a.device)
    if domain.bounded:
        x = domain.project(x)
    if t_end == 0:  # F_0 ≡ 0
        zero = torch.zeros(data.batch, dtype=x.dtype, device=x.device)
        return ComparatorResult(x, zero, zero.clone(), note)
    name, alpha = problem.name, None
    hint = "pick a bounded domain (l2_ball, box, simplex, nuclear_ball) or pass radius= to solve over a ball"
    if name == "linear":
        c = problem.total_grad(x, data, t_end)  # Σ a_s
        if not domain.bounded:
            if bool((c != 0).any()):
                raise ValueError(f"{where}: a linear loss with Σ a_s ≠ 0 has infimum −inf over R^S; {hint}")
        else:
            x = domain.lmo(c)
        alpha = torch.ones_like(data.y[:t_end])
    elif name == "hinge":
        x, alpha = (
            hinge_lp(data, t_end, domain)
            if domain.name in ("box", "simplex", "unconstrained")
            else hinge_refine(data, t_end, domain, *hinge_dual(data, t_end, domain), rtol, max_iter or 300)
        )
    elif not domain.bounded and name == "least_squares":
        A = _rows(data, t_end)
        x = torch.linalg.pinv(A) @ data.y[:t_end].movedim(0, -1).unsqueeze(-1)  # min-norm least squares
        x = x.squeeze(-1).reshape(*data.batch, *data.shape)
    else:
        if not domain.bounded:
            bad = _weakly_separable(data, t_end)
            if bad:
                raise ValueError(
                    f"{where}: the logistic data of seed(s) {bad} are separable, so the infimum over R^S is not attained; {hint}"
                )
        if domain.name == "nuclear_ball":
            x = _fista(problem, data, t_end, domain, x, rtol, max_iter or 5000)
        else:
            x = _newton(problem, data, t_end, domain, x, rtol, max_iter or 100)
    if alpha is None:  # the dual point certify() would use: α = φ'(⟨a_s, x̂⟩), projected for unbounded K
        p, y, _ = problem._margins(x, data, t_end, where)
        alpha = problem.dphi(p, y)
        if not domain.bounded and problem.labels_pm1:  # u = −yα ∈ [0, 1] before the exact projection
            alpha = -y * (-y * alpha).clamp(0, 1)
    value, _ = exact_value(problem, data, t_end, domain, x)
    lower = exact_lower(problem, data, t_end, domain, alpha)
    crossed = lower > value
    if bool(crossed.any()):  # impossible for exact bounds: a bug in a solver or in the certificate
        b = int(crossed.reshape(-1).nonzero()[0])
        raise RuntimeError(
            f"{where}: certificate crossing for seed {b} ({problem.name}, {domain.name}, t_end = {t_end}): "
            f"lower {float(lower.reshape(-1)[b])!r} > value {float(value.reshape(-1)[b])!r}"
        )
    return ComparatorResult(x, value, lower, note)
