r"""Projections in the H-norm: Π_K^H(y) = argmin_{x∈K} ½‖x − y‖²_H for a PSD H (docs/theory/bounds.md §0, Lemma L1).

Which (domain, Metric) pairs are supported, and how:

================  ==================  ===========================================================================
domain            Metric              algorithm
================  ==================  ===========================================================================
unconstrained     any                 x = y
any               Identity / None     Euclidean (domains.py)
l2_ball           Diagonal, Dense,    eigen-reduction + secular equation (below), exact up to one 1-D root
                  LowRankPlusScaled,  (monotone Newton, batched over seeds, on the device). Dense: ``eigh`` of H; LowRankPlusScaled: its own
                  RowSpanLowRank,     (RowSpanLowRank, the FD buffer's: the same split through its rows, O(Nr))
                  Kronecker           eigenbasis U ⊕ (I − UUᵀ), O(Nk); Kronecker: ``eigh`` of each factor, O(Σn_i³)
box               Diagonal            coordinatewise clipping (derivation below)
simplex           Diagonal            KKT: x_i = max(0, y_i − ν/h_i), Σx_i = R, one root ν (brentq)
box, simplex      Dense, LowRank…,    through ``H.dense()`` (small N only: N ≤ 2048): box by bounded least squares
                  Kronecker           (scipy.optimize.lsq_linear, 'bvls', exact active set); simplex by the same
                                      with the constraint Σx = R dualised and its multiplier ν found by brentq
nuclear_ball      anything but        unsupported: the H-weighted problem is not unitarily invariant, so the SVD
                  Identity            reduction fails (ValueError)
================  ==================  ===========================================================================

**Ball, the secular equation** (§B3 step 5 for H = G̃^{1/2}). Write H = Q diag(λ) Qᵀ and z = Qᵀy. If ‖y‖ ≤ R,
x = y. Otherwise the constraint is active and KKT gives H(x − y) + μx = 0, μ > 0, i.e.
x(μ) = (H + μI)^{-1}Hy = Q diag(λ/(λ + μ)) z, with μ the root of
    φ(μ)² = Σ_i z_i² λ_i²/(λ_i + μ)² = R²;
φ decreases strictly from φ(0⁺)² = Σ_{λ_i>0} z_i² to 0, and φ(λ_max‖y‖/R) ≤ R brackets the root.
Newton solves 1/φ(μ) − 1/R = 0, concave and nearly linear in μ (Moré & Sorensen 1983): a few steps.

**Singular H, the choice made here.** ‖x − y‖_H does not see the null space of H, so the minimiser is not
unique. We return lim_{ε→0} Π_K^{H+εI}(y): among the minimisers of ‖x − y‖_H over K, the one nearest to y in
‖·‖_2 (the Tikhonov limit; it is continuous in H on the positive-definite cone, and is what a learner
converges to as its H_t fills in). Eigenvalues λ_i ≤ N·ε_mach·λ_max count as 0 (§0 convention).
 - ball: if Σ_{λ_i>0} z_i² > R² a root μ > 0 exists and the null part is 0 (its factor ε/(ε + μ) → 0);
   otherwise the range part is kept (x_r = y_r) and the null part scaled by a = √((R² − ‖y_r‖²)/‖y_n‖²) ∈ [0, 1):
   the spec's "UUᵀy + a(I − UUᵀ)y with the largest a" for S-AdaGrad's c = 0, generalised to any H.
 - box, diagonal: clipping (below) is also the limit for h_i = 0.
 - simplex (diagonal) and the dense path: the zero eigenvalues of H are replaced by ε = 10⁻⁹·λ⁺_min
   (λ⁺_min the smallest non-zero one), the others kept. The Tikhonov path is analytic in ε, so this moves the
   answer by O(10⁻⁹) relative to the limit (and the optimality condition in H by as much); the least-squares
   matrix H^{1/2} then has condition number ≤ 3·10⁴·√(λ_max/λ⁺_min), well within bvls' reach. A machine-level ε (≈ N·ε_mach·λ_max) does *not* work: the term
   ε‖x − y‖² that selects the limit then sits below the rounding of ‖x − y‖²_H, and the solver returns an
   arbitrary minimiser (measured: 0.11 away from the limit on a 2×3 Kronecker box case). H = 0 gives Π_K(y).

**Box, diagonal H.** ½‖x − y‖²_H = ½Σ_i h_i(x_i − y_i)² and the box is a product of intervals, so the problem
separates into min_{lo≤x_i≤hi} h_i(x_i − y_i)²: for h_i > 0 the convex parabola's minimiser y_i moved to the
nearest end, clip(y_i, lo, hi); for h_i = 0 every point minimises and the Euclidean-nearest is the same clip.
Hence Π_box^{diag(h)}(y) = clip(y, lo, hi) for every h ≥ 0, independent of h.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import brentq, lsq_linear
from torch import Tensor

from memopt_theory.metric import Dense, Diagonal, Kronecker, LowRankPlusScaled, Metric, RowSpanLowRank

__all__ = ["project", "DENSE_MAX_N"]

DENSE_MAX_N = 2048  # H.dense() is N² floats: 32 MiB in float64 at this size


def _unsupported(domain, H: Metric) -> ValueError:
    return ValueError(
        f"{domain.name}.project: cannot project in the H-norm of a {type(H).__name__} metric; this domain "
        f"supports {_SUPPORT[domain.name]}"
    )


_SUPPORT = {
    "unconstrained": "every Metric",
    "l2_ball": "Identity, Diagonal, Dense, LowRankPlusScaled, Kronecker",
    "box": "Identity, Diagonal, and Dense/LowRankPlusScaled/Kronecker for N <= 2048",
    "simplex": "Identity, Diagonal, and Dense/LowRankPlusScaled/Kronecker for N <= 2048",
    "nuclear_ball": "Identity only (Euclidean)",
}


def project(domain, y: Tensor, H: Metric) -> Tensor:
    """Π_K^H(y) for y of shape B + S; dispatch by domain and Metric class (module table)."""
    name = domain.name
    if name == "unconstrained":
        return y
    known = (Diagonal, Dense, LowRankPlusScaled, RowSpanLowRank, Kronecker)
    if name == "nuclear_ball" or not isinstance(H, known):
        raise _unsupported(domain, H)
    if name == "l2_ball":
        return _ball(domain, y, H)
    if isinstance(H, Diagonal):
        h = H.h.to(y.dtype).expand(y.shape).clamp_min(0)  # round-off negatives are 0 (§0)
        if name == "box":
            return y.clamp(domain.lo, domain.hi)  # separable; see the module docstring
        return _simplex_diagonal(domain, y, h)
    if domain.n > DENSE_MAX_N:
        raise ValueError(
            f"{name}.project: the {type(H).__name__} H-norm projection goes through H.dense(), limited to "
            f"N <= {DENSE_MAX_N}; got N = {domain.n}"
        )
    return _dense_qp(domain, y, H)


# --- ℓ2 ball: eigen-reduction and the secular equation --------------------------------------------------------
def _mode_product(x: Tensor, mats: list[Tensor], nb: int, transpose: bool) -> Tensor:
    """x ×_i M_i over the parameter axes (M_iᵀ if transpose): the Kronecker (⊗M_i) applied to row-major vec x."""
    p = len(mats)
    for i, M in enumerate(mats):
        Mt = M if transpose else M.transpose(-1, -2)  # y_i ← M y_i along axis i means y @ Mᵀ
        x = x.movedim(nb + i, -1).unsqueeze(-2)  # B + (other axes) + (1, n_i): a row vector per fibre
        x = (x @ Mt.reshape(*M.shape[:-2], *([1] * (p - 1)), *M.shape[-2:])).squeeze(-2)
        x = x.movedim(-1, nb + i)
    return x


def _eigen_parts(y: Tensor, H: Metric, nb: int):
    """(λ, coef, rebuild): H's eigenvalues λ (B + (M,)), |components of y| coef (B + (M,)) along orthogonal
    pieces whose λ-weighted sum is H, and rebuild(f) = Σ_i f_i·(piece i of y), shape B + S."""
    B = tuple(y.shape[:nb])
    if isinstance(H, Diagonal):
        lam = H.h.to(y.dtype).expand(y.shape).flatten(start_dim=nb)
        z = y.flatten(start_dim=nb)
        return lam, z, lambda f: (f * z).reshape(y.shape)
    if isinstance(H, Dense):
        lam, Q = torch.linalg.eigh(H.H.to(y.dtype))
        lam, Q = lam.expand(*B, lam.shape[-1]), Q.expand(*B, *Q.shape[-2:])
        z = (Q.transpose(-1, -2) @ y.flatten(start_dim=nb).unsqueeze(-1)).squeeze(-1)
        return lam, z, lambda f: (Q @ (f * z).unsqueeze(-1)).squeeze(-1).reshape(y.shape)
    if isinstance(H, LowRankPlusScaled):
        U = H.U.to(y.dtype).expand(*B, *H.U.shape[-2:])
        v = y.flatten(start_dim=nb)
        zU = (U.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)  # coordinates on the columns of U
        r = v - (U @ zU.unsqueeze(-1)).squeeze(-1)  # the part in range(I − UUᵀ), where H = c·I
        rn = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
        c = H.c.to(y.dtype).expand(B).unsqueeze(-1)
        lam = torch.cat([H.s.to(y.dtype).expand(*B, U.shape[-1]), c], -1)
        coef = torch.cat([zU, rn], -1)

        def rebuild(f: Tensor) -> Tensor:
            fU, fc = f[..., :-1], f[..., -1:]
            return ((U @ (fU * zU).unsqueeze(-1)).squeeze(-1) + fc * r).reshape(y.shape)

        return lam, coef, rebuild
    if isinstance(H, RowSpanLowRank):  # the same eigen-split, V = RᵀM applied through the rows: O(Nr)
        v = y.flatten(start_dim=nb)
        zV = H.coords(v)
        r = v - H.span(zV, v)
        rn = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
        c = H.c.to(y.dtype).expand(B).unsqueeze(-1)
        lam = torch.cat([H.s.to(y.dtype).expand(*B, zV.shape[-1]), c], -1)
        coef = torch.cat([zV, rn], -1)
        return lam, coef, lambda f: (H.span(f[..., :-1] * zV, v) + f[..., -1:] * r).reshape(y.shape)
    if isinstance(H, Kronecker):
        eig = [torch.linalg.eigh(F.to(y.dtype)) for F in H.factors]
        lam = eig[0].eigenvalues
        for e in eig[1:]:  # eigenvalues of ⊗F_i: all products, row-major like vec
            lam = (lam.unsqueeze(-1) * e.eigenvalues.unsqueeze(-2)).flatten(start_dim=-2)
        lam = lam.expand(*B, lam.shape[-1])
        Qs = [e.eigenvectors for e in eig]
        z = _mode_product(y, Qs, nb, transpose=True)  # (⊗Q_i)ᵀ vec y
        return (
            lam,
            z.flatten(start_dim=nb),
            lambda f: _mode_product(f.reshape(z.shape) * z, Qs, nb, transpose=False),
        )
    raise TypeError(type(H).__name__)


def _ball_mu(lam: Tensor, c2: Tensor, R: float) -> Tensor:
    """μ ≥ 0 per seed with Σ_i c2_i λ_i²/(λ_i + μ)² = R² (rows where λ_i = 0 carry c2_i = 0), batched.

    Newton on ψ(μ) = 1/φ(μ) − 1/R from μ = 0, where ψ(0) < 0: φ(μ) = ‖(Λ + μI)^{-1}Λz‖ is the trust-region
    secular function, 1/φ is concave and increasing (Moré & Sorensen 1983), so every tangent lies above ψ and
    Newton climbs monotonically to the root, quadratically at the end. Written out rather than
    scipy.optimize.newton because its array mode has only an absolute tolerance, and μ spans many magnitudes
    (it scales with H); here a seed stops when its step is ≤ 8ε·μ or |ψ|·R ≤ 4ε (rounding level; measured:
    4–7 steps on adagrad_full metrics, d = 64)."""
    w = c2 * lam**2
    mu = torch.zeros(lam.shape[:-1], dtype=lam.dtype, device=lam.device)
    eps = torch.finfo(lam.dtype).eps
    for _ in range(100):
        q = lam + mu.unsqueeze(-1)
        q = torch.where(w > 0, q, torch.ones_like(q))  # rows with w = 0 drop out (no 0/0)
        n2 = (w / q**2).sum(-1)
        dn2 = (w / q**3).sum(-1)
        psi = n2.rsqrt() - 1.0 / R
        step = -psi / (n2.pow(-1.5) * dn2)
        step = torch.where(torch.isfinite(step), step, torch.zeros_like(step))
        mu_new = (mu + step).clamp_min(0)
        # at the root ψ and the step sit at rounding level and may alternate in sign: stop on either
        done = ((mu_new - mu).abs() <= 8 * eps * mu_new) | (psi.abs() * R <= 4 * eps)
        mu = mu_new
        if bool(done.all()):
            break
    return mu


def _ball(domain, y: Tensor, H: Metric) -> Tensor:
    R = domain.radius
    nb = y.ndim - len(domain.shape)
    if nb == 0:
        return _ball(domain, y.unsqueeze(0), _add_batch(H, y)).squeeze(0)
    yf = y.flatten(start_dim=nb)
    if bool(((yf**2).sum(-1) <= R * R).all()):  # every seed inside: x = y, no eigendecomposition needed
        return y
    lam, coef, rebuild = _eigen_parts(y, H, nb)
    lam = lam.clamp_min(0)
    lam_max = lam.max(-1, keepdim=True).values
    on = lam > lam.shape[-1] * torch.finfo(y.dtype).eps * lam_max  # numerically non-zero eigenvalues (§0)
    c2 = torch.where(on, coef**2, torch.zeros_like(coef))
    ny2 = (yf**2).sum(-1)
    sr = c2.sum(-1)  # ‖y_r‖², the part H sees
    root = (ny2 > R * R) & (sr > R * R)
    mu = _ball_mu(lam, torch.where(root.unsqueeze(-1), c2, torch.zeros_like(c2)), R)
    f_root = torch.where(
        on, lam / (lam + mu.unsqueeze(-1)).clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(lam)
    )
    # no root (‖y_r‖ ≤ R < ‖y‖): keep the range part, shrink the null part onto the sphere (Tikhonov limit)
    a = ((R * R - sr).clamp_min(0) / (ny2 - sr).clamp_min(torch.finfo(y.dtype).tiny)).sqrt()
    f_null = torch.where(on, torch.ones_like(lam), a.unsqueeze(-1).expand_as(lam))
    f = torch.where(root.unsqueeze(-1), f_root, f_null)
    x = rebuild(f)
    inside = (ny2 <= R * R).reshape(*ny2.shape, *([1] * len(domain.shape)))
    return torch.where(inside, y, x)


def _add_batch(H: Metric, y: Tensor) -> Metric:
    """The same H with one leading batch axis of size 1 (so unbatched calls share the batched code)."""
    if isinstance(H, Diagonal):
        return Diagonal(H.h.unsqueeze(0), H.shape)
    if isinstance(H, Dense):
        return Dense(H.H.unsqueeze(0), H.shape)
    if isinstance(H, LowRankPlusScaled):
        return LowRankPlusScaled(H.U.unsqueeze(0), H.s.unsqueeze(0), H.c.unsqueeze(0), H.shape)
    if isinstance(H, RowSpanLowRank):
        rows = tuple(r.unsqueeze(0) for r in H.rows)
        return RowSpanLowRank(rows, H.M.unsqueeze(0), H.s.unsqueeze(0), H.c.unsqueeze(0), H.shape)
    if isinstance(H, Kronecker):
        return Kronecker(tuple(F.unsqueeze(0) for F in H.factors), H.shape)
    raise TypeError(f"_add_batch: no batched form for metric {type(H).__name__}")


# --- simplex with diagonal H ----------------------------------------------------------------------------------
NULL_FILL = 1e-9  # zero eigenvalues become NULL_FILL·λ⁺_min (module docstring, "Singular H")


def _fill_null(lam: np.ndarray) -> np.ndarray | None:
    """λ with its numerically-zero entries (≤ n·ε_mach·λ_max, §0) set to NULL_FILL·λ⁺_min; None if λ = 0."""
    lam = np.maximum(lam, 0.0)
    lam_max = float(lam.max())
    if lam_max == 0:
        return None
    on = lam > lam.size * np.finfo(float).eps * lam_max
    return np.where(on, lam, NULL_FILL * float(lam[on].min()))


def _simplex_diagonal(domain, y: Tensor, h: Tensor) -> Tensor:
    """KKT of min Σ_i h_i(x_i − y_i)² s.t. x ≥ 0, Σx = R: h_i(x_i − y_i) + ν − κ_i = 0, κ_i ≥ 0, κ_i x_i = 0,
    so x_i(ν) = max(0, y_i − ν/h_i); Σ_i x_i(ν) decreases in ν, is ≥ R at ν_lo = max_i h_i(y_i − R) and 0 at
    ν_hi = max_i h_i·y_i (the bracket for brentq). Once the support S = {x_i > 0} is known, ν is exact:
    ν = (Σ_S y_i − R)/Σ_S h_i^{-1}, so Σx = R holds to rounding."""
    R = domain.radius
    yv = y.reshape(-1, domain.n).cpu().double().numpy()
    hv = h.reshape(-1, domain.n).cpu().double().numpy()
    out = np.empty_like(yv)
    for b in range(yv.shape[0]):
        he = _fill_null(hv[b])
        if he is None:  # H = 0: the limit is the Euclidean projection
            out[b] = _euclid(domain, yv[b])
            continue
        yb = yv[b]

        def excess(nu: float, yb=yb, he=he) -> float:
            return float(np.maximum(yb - nu / he, 0.0).sum()) - R

        lo, hi = float(np.max(he * (yb - R))), float(np.max(he * yb))
        nu = (
            lo
            if excess(lo) <= 0
            else brentq(excess, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
        )
        S = yb - nu / he > 0
        nu = (float(yb[S].sum()) - R) / float((1 / he[S]).sum())
        out[b] = np.where(S, np.maximum(yb - nu / he, 0.0), 0.0)
    return torch.from_numpy(out).to(dtype=y.dtype, device=y.device).reshape(y.shape)


def _euclid(domain, v: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(v)).reshape(domain.shape)
    return domain._project_euclid(t).reshape(-1).numpy()


# --- box and simplex with a dense H (small N) -----------------------------------------------------------------
def _dense_qp(domain, y: Tensor, H: Metric) -> Tensor:
    """min ½‖A(x − y)‖² over K with A = H^{1/2} (null eigenvalues filled, module docstring): box by bounded
    least squares (bvls); simplex by the Lagrangian of Σx = R: x(ν) = argmin_{x≥0} ½‖A(x − y)‖² + ν·Σx
    = argmin_{x≥0} ½‖Ax − (Ay − νA^{-1}1)‖² (A symmetric), Σx(ν) non-increasing in ν, the root Σx(ν) = R by
    brentq on a doubling bracket; then the KKT system on the support S, [H_SS 1; 1ᵀ 0][x_S; ν] = [(Hy)_S; R],
    makes Σx = R exact to rounding."""
    nb = y.ndim - len(domain.shape)
    n = domain.n
    Hd = H.dense().to(torch.float64).cpu().expand(*y.shape[:nb], n, n).reshape(-1, n, n).numpy()
    yv = y.reshape(-1, n).cpu().double().numpy()
    out = np.empty_like(yv)
    for b in range(yv.shape[0]):
        eig, Q = np.linalg.eigh(Hd[b])
        lam = _fill_null(eig)
        yb = yv[b]
        if lam is None:  # H = 0: the limit is the Euclidean projection
            out[b] = _euclid(domain, yb)
            continue
        A = (Q * np.sqrt(lam)) @ Q.T
        Ay = A @ yb
        if domain.name == "box":
            out[b] = lsq_linear(A, Ay, bounds=(domain.lo, domain.hi), method="bvls", tol=1e-15).x
            continue
        R = domain.radius
        Ainv1 = (Q / np.sqrt(lam)) @ (Q.T @ np.ones(n))

        def x_of(nu: float, A=A, Ay=Ay, Ainv1=Ainv1) -> np.ndarray:
            return lsq_linear(A, Ay - nu * Ainv1, bounds=(0.0, np.inf), method="bvls", tol=1e-15).x

        def excess(nu: float, x_of=x_of, R=R) -> float:
            return float(x_of(nu).sum()) - R

        hi = 1.0 + abs(float((A @ Ay).max()))  # ν ≥ max_i (Hy)_i: x = 0 satisfies the KKT conditions
        lo = -1.0
        while excess(lo) < 0:
            lo *= 2
        while excess(hi) > 0:
            hi *= 2
        x = x_of(brentq(excess, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))
        S = np.flatnonzero(x > 1e-12 * R)  # entries at rounding level belong to the zero set
        Hr = A @ A
        sc = float(np.abs(Hr).max())  # the constraint row scaled like H_SS, else lstsq loses ~1e-10 in Σx
        K = np.block(
            [[Hr[np.ix_(S, S)], np.full((S.size, 1), sc)], [np.full((1, S.size), sc), np.zeros((1, 1))]]
        )
        sol = np.linalg.lstsq(K, np.concatenate([(Hr @ yb)[S], [sc * R]]), rcond=None)[0]
        if np.all(sol[:-1] >= -1e-9 * R):  # the support is right (up to entries at rounding level near 0)
            x = np.zeros(n)
            x[S] = np.maximum(sol[:-1], 0.0)
        S = np.flatnonzero(x > 0)
        x[S] += (R - x.sum()) / S.size  # Σx = R to rounding; the shift is at the solver's accuracy level
        out[b] = x
    return torch.from_numpy(out).to(dtype=y.dtype, device=y.device).reshape(y.shape)
