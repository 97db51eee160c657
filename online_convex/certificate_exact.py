r"""The comparator's final evaluation in exact arithmetic: an upper end that is F_t at a feasible point and a
lower end that is a dual bound, both proven including rounding.

Every float64 number is a dyadic rational, so the data a_s, y_s, a candidate x̂ and a dual point α are exact
rationals. Sums and products of them are computed exactly (Python integers with a common power-of-two scale,
numpy object arrays for the t×N products); only three things are not rational, and each is bounded in the
safe direction:

- square roots (the ball's ‖v‖, a Gram matrix's top eigenvalue): ⌈√q⌉ from ``math.isqrt`` on an integer
  scaled to ≥ 2²⁰⁰, so the relative slack is ≤ 2⁻¹⁰⁰;
- σ_max(V) for the nuclear ball's min_{‖X‖_*≤R}⟨V, X⟩ = −R·σ_max(V): a float estimate λ̂ of λ_max(VVᵀ) is
  certified from above by an exact LDLᵀ factorisation showing cI − VVᵀ ≻ 0 for c slightly above λ̂ (falling
  back to c = ‖V‖_F², always valid);
- the logistic loss and its conjugate (logs and exps): evaluated in float64 at inputs rounded from their exact
  values, each term plus a slack of 2⁻⁴⁶·(|term| + 1) — at least 64 ulps, which covers the platform's
  exp/log1p/log (documented ≤ 1–2 ulps) and the input's rounding (|x·f'(x)| ≤ |f(x)| + 1 for softplus and
  for the binary entropy's terms); the terms are summed exactly (``math.fsum`` plus its half ulp). This one
  step rests on the stated accuracy of the math library rather than on exact arithmetic.

The results are rounded outward to the data's dtype (value up, lower down), so
lower ≤ min_K F_t ≤ value holds as real numbers, not only up to rounding.

**Feasibility.** The upper end must be F_t at a point of K. x̂ is used as it is when it lies in K exactly;
otherwise (a projection onto the ball or simplex leaves it outside by an ulp) the nearest cheap feasible point
in exact arithmetic: the ball: x̂·R/⌈‖x̂‖⌉; the box: x̂ clipped; the simplex: max(x̂, 0)·R/Σmax(x̂, 0); the
nuclear ball: x̂·R/u with u ≥ ‖x̂‖_* from Σ_j ‖x̂ q_j‖ over an exactly orthogonal basis q_j (a product of
Householder reflections with rational vectors taken from a float SVD; ‖X‖_* ≤ Σ_j ‖X q_j‖ for any
orthonormal basis, with equality at the right singular vectors).

**Unconstrained K.** min_{R^S}⟨v, x⟩ is 0 if v = Σ α_s a_s is exactly 0 and −∞ otherwise, and a float α never
has v = 0 exactly. α is therefore first projected orthogonally, in exact rationals, onto {Σ α_s a_s = 0}: α_F ← α_F − A_{F,C}w
with (A_{F,C}ᵀA_{F,C})w = A_Cᵀα solved by integer (Bareiss) elimination, C independent columns, the other
columns' equations checked exactly. Allowed rows: all for least squares;
for logistic and hinge the multipliers u_s = −y_sα_s strictly inside (0, 1), then only those at least
τ = 10⁻¹², 10⁻⁸, 10⁻⁴ from the ends, until the corrected u stays in [0, 1]. If none does, the bound is D(0) (0 for least squares, logistic, hinge; −∞ for linear).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import scipy.linalg
import torch
from scipy import special
from torch import Tensor

__all__ = ["exact_value", "exact_lower"]


# --- exact numbers ----------------------------------------------------------------------------------------
def _ints(arr: np.ndarray) -> tuple[np.ndarray, Fraction]:
    """arr (float64) = ints·scale exactly: ints an object array of Python ints, scale a power of two."""
    arr = np.asarray(arr, dtype=np.float64)
    m, e = np.frexp(arr)  # arr = m·2^e, m ∈ [0.5, 1)
    mant = (m * 2.0**53).astype(np.int64)  # exact: 53 significant bits
    e = e.astype(np.int64) - 53
    nz = mant != 0
    e0 = int(e[nz].min()) if nz.any() else 0
    shift = np.where(nz, e - e0, 0)
    # object arrays of Python ints: numpy's elementwise << then runs Python's exact int shift in its C loop
    ints = np.left_shift(
        np.array(mant.tolist(), dtype=object).reshape(arr.shape),
        np.array(shift.tolist(), dtype=object).reshape(arr.shape),
    )
    return ints, Fraction(2) ** e0


def _sqrt_up(q: Fraction) -> Fraction:
    """A rational ≥ √q (q ≥ 0), within a relative 2⁻¹⁰⁰."""
    if q <= 0:
        return Fraction(0)
    n, d = q.numerator, q.denominator
    k = max(0, (400 - n.bit_length() + d.bit_length()) // 2 + 1)
    num = n * d * 4**k  # √(n/d) = √(n·d)/d
    r = math.isqrt(num)
    if r * r < num:
        r += 1
    return Fraction(r, d * 2**k)


def _round(q: Fraction | float, dtype: torch.dtype, up: bool) -> float:
    """The nearest value of ``dtype`` on the safe side of q (±inf pass through)."""
    if isinstance(q, float):
        return q
    f = float(q)
    if up and Fraction(f) < q:
        f = math.nextafter(f, math.inf)
    if not up and Fraction(f) > q:
        f = math.nextafter(f, -math.inf)
    if dtype != torch.float64:  # to the narrower type, again outward
        g = torch.tensor(f, dtype=torch.float64).to(dtype)
        gf = float(g)
        if up and gf < f:
            gf = float(torch.nextafter(g, torch.tensor(math.inf, dtype=dtype)))
        if not up and gf > f:
            gf = float(torch.nextafter(g, torch.tensor(-math.inf, dtype=dtype)))
        f = gf
    return f


def _lambda_max_up(G: list[list[Fraction]]) -> Fraction:
    """c ≥ λ_max(G) for a symmetric PSD rational G: c slightly above a float estimate, certified by an exact
    LDLᵀ of cI − G with every pivot > 0 (then cI − G ≻ 0); else tr G (≥ λ_max as G ⪰ 0)."""
    k = len(G)
    trace = sum((G[i][i] for i in range(k)), Fraction(0))
    if trace == 0:
        return Fraction(0)
    est = float(np.linalg.eigvalsh(np.array([[float(v) for v in row] for row in G])).max())
    for rel in (1e-12, 1e-8, 1e-4):
        c = Fraction(est) * (1 + Fraction(rel)) + trace * Fraction(rel)
        if c >= trace:
            break
        M = [[(c if i == j else 0) - G[i][j] for j in range(k)] for i in range(k)]
        ok = True
        for j in range(k):  # symmetric Gaussian elimination without pivoting: pivots of the LDLᵀ
            if M[j][j] <= 0:
                ok = False
                break
            for i in range(j + 1, k):
                f = M[i][j] / M[j][j]
                if f:
                    M[i] = [mi - f * mj for mi, mj in zip(M[i], M[j])]
        if ok:
            return c
    return trace


def _gram(V: list[list[Fraction]]) -> list[list[Fraction]]:
    """V Vᵀ (rows of V), exact."""
    return [[sum((a * b for a, b in zip(r1, r2)), Fraction(0)) for r2 in V] for r1 in V]


def _householder_basis(X: np.ndarray) -> list[list[Fraction]]:
    """An exactly orthogonal rational n×n matrix (columns returned as lists) close to X's right singular
    vectors: the product of Householder reflections I − 2vvᵀ/vᵀv with v from a float QR of them."""
    n = X.shape[1]
    Vt = np.linalg.svd(X)[2]
    h, tau = np.linalg.qr(Vt.T, mode="raw")  # LAPACK geqrf: reflector j is 1 at j, h[j, j+1:] below
    h = h.T  # raw mode returns the transpose (Fortran order)
    Q = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]  # rows
    for j in reversed(range(n)):
        if tau[j] == 0:
            continue
        v = [Fraction(0)] * j + [Fraction(1)] + [Fraction(float(h[i, j])) for i in range(j + 1, n)]
        vv = sum((vi * vi for vi in v), Fraction(0))
        # Q ← H_j Q with H_j = I − 2vvᵀ/vᵀv (exactly orthogonal for any rational v ≠ 0)
        for c in range(n):
            s = sum((v[i] * Q[i][c] for i in range(j, n)), Fraction(0)) * 2 / vv
            if s:
                for i in range(j, n):
                    Q[i][c] -= s * v[i]
    return [[Q[i][c] for i in range(n)] for c in range(n)]


# --- the upper end ----------------------------------------------------------------------------------------
def _feasible_scale(domain, x: np.ndarray, xs: np.ndarray, sx: Fraction) -> tuple[np.ndarray, Fraction, bool]:
    """(ints, scale, moved) of a point of K at or next to x (module docstring, Feasibility)."""
    name = domain.name
    if name == "unconstrained":
        return xs, sx, False
    if name == "box":
        c = np.clip(x, domain.lo, domain.hi)  # exact in floating point
        if np.array_equal(c, x):
            return xs, sx, False
        ints, s = _ints(c)
        return ints, s, True
    R = Fraction(domain.radius)
    if name == "l2_ball":
        n2 = sum((int(v) * int(v) for v in xs), 0) * sx * sx
        if n2 <= R * R:
            return xs, sx, False
        return xs, sx * R / _sqrt_up(n2), True
    if name == "simplex":
        if (x >= 0).all() and sum((int(v) for v in xs), 0) * sx == R:
            return xs, sx, False
        pos, s = _ints(np.maximum(x, 0.0))
        tot = sum((int(v) for v in pos), 0) * s
        if tot == 0:  # every coordinate ≤ 0: the vertex R·e_0
            e = np.zeros_like(x)
            e[0] = 1.0
            pos, s, tot = *_ints(e), Fraction(1)
        return pos, s * R / tot, True
    if name == "nuclear_ball":
        m, n = domain.shape
        X = x.reshape(m, n)
        Xf = [[Fraction(float(v)) for v in row] for row in X]
        bound = Fraction(0)
        for q in _householder_basis(X):
            col = [sum((a * b for a, b in zip(row, q)), Fraction(0)) for row in Xf]
            bound += _sqrt_up(sum((c * c for c in col), Fraction(0)))
        if bound <= R:
            return xs, sx, False
        return xs, sx * R / bound, True
    raise ValueError(f"exact_value: no exact feasibility rule for domain {name!r}")


# relative and absolute slack per term of a float64 evaluation of softplus or the binary entropy at a float64
# input next to the exact one: ≥ 64 ulps, covering the platform's exp/log1p/log (≤ 1–2 ulps in glibc and
# numpy's own loops) and the rounding of the input (|x·f'(x)| ≤ |f(x)| + 1 for both functions)
_FLOAT_SLACK = Fraction(1, 2**46)


def _float_sum_up(terms: np.ndarray) -> Fraction:
    """A rational ≥ Σ_s f_s for terms computed in float64 with per-term error ≤ _FLOAT_SLACK·(|f_s| + 1):
    the exactly rounded sum (math.fsum) plus its half-ulp, plus the per-term slack."""
    tot = math.fsum(terms.tolist())
    absum = math.fsum(np.abs(terms).tolist())
    return (
        Fraction(tot)
        + Fraction(math.ulp(tot))
        + _FLOAT_SLACK * (Fraction(absum) + Fraction(1) * 2 * terms.size)
    )


def exact_value(problem, data, t_end: int, domain, x: Tensor) -> tuple[Tensor, Tensor]:
    """(value, moved), shape B: value ≥ F_t(x') exactly (rounded up to the dtype), x' = x̂ if x̂ ∈ K exactly,
    else a feasible point next to it; ``moved`` says which seeds needed x' ≠ x̂. Linear, least squares and hinge
    losses are exact rational sums; the logistic loss is a float64 evaluation at the exactly computed margins
    plus the slack _FLOAT_SLACK per term."""
    k = len(data.shape)
    B = data.batch
    At = data.a[:t_end].flatten(start_dim=data.a.ndim - k).movedim(0, -2).reshape(-1, t_end, domain.n)
    Yt = data.y[:t_end].movedim(0, -1).reshape(-1, t_end)
    Xt = x.reshape(-1, domain.n)
    A, Y, X = (v.detach().cpu().double().numpy() for v in (At, Yt, Xt))
    name = problem.name
    vals, moved = [], []
    for b in range(A.shape[0]):
        ai, sa = _ints(A[b])
        xi, sx = _ints(X[b])
        xi, sx, mv = _feasible_scale(domain, X[b], xi, sx)
        P = ai.dot(xi) if t_end else np.zeros(0, dtype=object)  # ⟨a_s, x'⟩ = P_s·S exactly
        S = sa * sx
        sn, sd = S.numerator, S.denominator
        if name == "linear":
            tot = Fraction(int(sum(P))) * S
        elif name == "least_squares":
            yi, sy = _ints(Y[b])
            yn, yd = sy.numerator, sy.denominator
            Q = P * (sn * yd) - yi * (yn * sd)  # (p_s − y_s)·sd·yd
            tot = Fraction(int(sum(Q * Q)), 2 * (sd * yd) ** 2)
        else:
            ys = np.array([1 if v > 0 else -1 for v in Y[b]], dtype=object)  # labels ±1 (checked upstream)
            M = ys * P * sn  # y_s p_s = M_s / sd
            if name == "hinge":
                H = sd - M  # (1 − y_s p_s)·sd
                tot = Fraction(int(sum(h for h in H if h > 0)), sd)
            elif name == "logistic":
                m = np.array([int(v) / sd for v in M], dtype=np.float64)  # int/int: correctly rounded
                tot = _float_sum_up(np.logaddexp(0.0, -m))
            else:
                raise ValueError(f"exact_value: no exact loss for problem {name!r}")
        vals.append(_round(tot, data.a.dtype, up=True))
        moved.append(mv)
    to = dict(dtype=data.a.dtype, device=data.a.device)
    return torch.tensor(vals, **to).reshape(B), torch.tensor(moved, device=data.a.device).reshape(B)


# --- the lower end ----------------------------------------------------------------------------------------
def _conjugate_sum(name: str, al: np.ndarray, S: Fraction, Y: np.ndarray) -> Fraction | None:
    """A rational ≥ Σ_s φ*(α_s, y_s) for α_s = al_s·S (al Python ints, S > 0), None outside dom φ*; exact
    for linear, least squares and hinge, the binary entropy in float64 plus slack for logistic."""
    if name == "linear":
        return Fraction(0) if all(a * S == 1 for a in al) else None
    if name == "least_squares":
        yi, sy = _ints(Y)
        return S * S / 2 * int(sum(al * al)) + S * sy * int(sum(al * yi))
    ys = np.array([1 if v > 0 else -1 for v in Y], dtype=object)
    U = -ys * al  # u_s = U_s·S must lie in [0, 1]
    sn, sd = S.numerator, S.denominator
    if any(u < 0 or u * sn > sd for u in U):
        return None
    if name == "hinge":
        return -S * int(sum(U))
    if name == "logistic":
        u = np.array([int(v) * sn / sd for v in U], dtype=np.float64)
        w = np.array([(sd - int(v) * sn) / sd for v in U], dtype=np.float64)  # 1 − u from the exact value
        h = special.xlogy(u, u) + special.xlogy(w, w)  # 0·log 0 = 0
        return _float_sum_up(h)
    raise ValueError(f"exact_lower: no conjugate for problem {name!r}")


def _min_linear(domain, v: list[Fraction]) -> Fraction | None:
    """A rational ≤ min_{x∈K} ⟨v, x⟩; None for −∞ (unbounded K, v ≠ 0)."""
    name = domain.name
    if name == "unconstrained":
        return Fraction(0) if all(c == 0 for c in v) else None
    if name == "box":
        lo, hi = Fraction(domain.lo), Fraction(domain.hi)
        return sum((min(lo * c, hi * c) for c in v), Fraction(0))
    R = Fraction(domain.radius)
    if name == "l2_ball":
        return -R * _sqrt_up(sum((c * c for c in v), Fraction(0)))
    if name == "simplex":
        return R * min(v)
    if name == "nuclear_ball":
        m, n = domain.shape
        V = [v[i * n : (i + 1) * n] for i in range(m)]
        if m > n:
            V = [list(col) for col in zip(*V)]
        return -R * _sqrt_up(_lambda_max_up(_gram(V)))
    raise ValueError(f"exact_lower: no linear minimisation for domain {name!r}")


def _bareiss_solve(M: list[list[int]], r: list[int]) -> list[Fraction] | None:
    """The solution of the square integer system M z = r in rationals (fraction-free Gaussian elimination,
    Bareiss 1968), None if M is singular."""
    n = len(M)
    A = [row[:] + [ri] for row, ri in zip(M, r)]
    prev = 1
    for k in range(n):
        p = next((i for i in range(k, n) if A[i][k] != 0), None)
        if p is None:
            return None
        A[k], A[p] = A[p], A[k]
        for i in range(k + 1, n):
            for j in range(k + 1, n + 1):
                A[i][j] = (A[i][j] * A[k][k] - A[i][k] * A[k][j]) // prev  # exact division (Bareiss)
            A[i][k] = 0
        prev = A[k][k]
    z = [Fraction(0)] * n
    for i in reversed(range(n)):
        acc = Fraction(A[i][n]) - sum((A[i][j] * z[j] for j in range(i + 1, n)), Fraction(0))
        z[i] = acc / A[i][i]
    return z


def _project_null(
    A: np.ndarray, alpha: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, Fraction] | None:
    """(al, S) with α'_s = al_s·S the exact orthogonal projection of α onto {Σ_s α'_s a_s = 0} moving only the
    ``allowed`` rows F: α'_F = α_F − A_{F,C} w with (A_{F,C}ᵀA_{F,C}) w = A_Cᵀα solved exactly (integer Bareiss),
    C a set of independent columns (pivoted QR of the float A_F); the remaining columns' equations are checked
    exactly. None when they fail (A_F does not span Aᵀα's space). The orthogonal projection moves α by its
    float residual's worth only (a basis-row correction would amplify it by that basis' conditioning)."""
    ai, sa = _ints(A)
    al, s_al = _ints(alpha)
    R = ai.T.dot(al)  # Aᵀα = R·sa·s_al
    if all(v == 0 for v in R):
        return al, s_al
    rows = np.flatnonzero(allowed)
    if rows.size == 0:
        return None
    _, Rf, piv = scipy.linalg.qr(A[rows], mode="economic", pivoting=True)
    diag = np.abs(np.diag(Rf))
    if not diag.size or diag[0] == 0:
        return None
    rank = int((diag > diag[0] * max(A.shape) * np.finfo(float).eps * 8).sum())
    cols = piv[:rank]
    aFC = ai[rows][:, cols]  # ints, scale sa
    G = aFC.T.dot(aFC)  # A_{F,C}ᵀA_{F,C} = G·sa²;  G (w·sa) = R_C·s_al  ⇒  w = z·s_al/sa
    z = _bareiss_solve([[int(v) for v in row] for row in G], [int(R[c]) for c in cols])
    if z is None:
        return None
    den = math.lcm(*(c.denominator for c in z))
    zi = np.array([int(c * den) for c in z], dtype=object)
    out = al * den
    out[rows] = out[rows] - aFC.dot(zi)  # α'·den/s_al
    if any(v != 0 for v in ai.T.dot(out)):
        return None  # a column outside C is not exactly in the span: no exact correction here
    return out, s_al / den


def exact_lower(problem, data, t_end: int, domain, alpha: Tensor) -> Tensor:
    """max(D(α), D(0)) ≤ min_K F_t, rounded down to the dtype, shape B; −inf where no bound exists.

    D(α) = −Σ_s φ*(α_s, y_s) + min_{x∈K}⟨Σ_s α_s a_s, x⟩ (Fenchel weak duality; comparator module docstring).
    """
    k = len(data.shape)
    B = data.batch
    At = data.a[:t_end].flatten(start_dim=data.a.ndim - k).movedim(0, -2).reshape(-1, t_end, domain.n)
    Yt = data.y[:t_end].movedim(0, -1).reshape(-1, t_end)
    ALt = alpha.movedim(0, -1).reshape(-1, t_end)
    A, Y, AL = (v.detach().cpu().double().numpy() for v in (At, Yt, ALt))
    name = problem.name
    out = []
    for b in range(A.shape[0]):
        best: Fraction | None = None
        a_ints: tuple[np.ndarray, Fraction] | None = None  # _ints(A[b]), computed once when first needed
        cands = [AL[b]] if name == "linear" else [AL[b], np.zeros(t_end)]  # D(0): α = 0 is always feasible
        for j, a_ in enumerate(cands):
            if domain.name == "unconstrained" and j == 0 and name != "linear":
                # move only multipliers u_s = −y_sα_s strictly inside (0, 1), first all of them, then those at
                # least τ from the ends (a u that underflowed to 1e-200 must not be pushed below 0)
                u = -Y[b] * a_
                proj = None
                for tau in (0.0, 1e-12, 1e-8, 1e-4) if name != "least_squares" else (None,):
                    allowed = np.ones(t_end, bool) if tau is None else (u > tau) & (u < 1 - tau)
                    proj = _project_null(A[b], a_, allowed)
                    if proj is not None and _conjugate_sum(name, *proj, Y[b]) is not None:
                        break
                    proj = None
                if proj is None:
                    continue
                al, S = proj
                v = [Fraction(0)] * domain.n  # exactly 0 by construction
            else:
                al, S = _ints(a_)
                if a_ints is None:
                    a_ints = _ints(A[b])
                ai, sa = a_ints
                v = [Fraction(int(c)) * sa * S for c in al.dot(ai)] if t_end else [Fraction(0)] * domain.n
            conj = _conjugate_sum(name, al, S, Y[b])
            lin = _min_linear(domain, v)
            if conj is None or lin is None:
                continue
            d = -conj + lin
            best = d if best is None or d > best else best
        out.append(-math.inf if best is None else _round(best, data.a.dtype, up=False))
    return torch.tensor(out, dtype=data.a.dtype, device=data.a.device).reshape(B)
