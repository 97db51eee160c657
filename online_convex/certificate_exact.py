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
- the logistic loss and its conjugate (logs and exps): mpmath interval arithmetic (``mpmath.iv``), whose
  endpoints enclose the exact value; the relevant endpoint is taken.

The results are rounded outward to the data's dtype (value up, lower down), so
lower ≤ min_K F_t ≤ value holds as real numbers, not only up to rounding.

**Feasibility.** The upper end must be F_t at a point of K. x̂ is used as it is when it lies in K exactly;
otherwise (a projection onto the ball or simplex leaves it outside by an ulp) the nearest cheap feasible point
in exact arithmetic: the ball: x̂·R/⌈‖x̂‖⌉; the box: x̂ clipped; the simplex: max(x̂, 0)·R/Σmax(x̂, 0); the
nuclear ball: x̂·R/u with u ≥ ‖x̂‖_* from Σ_j ‖x̂ q_j‖ over an exactly orthogonal basis q_j (a product of
Householder reflections with rational vectors taken from a float SVD; ‖X‖_* ≤ Σ_j ‖X q_j‖ for any
orthonormal basis, with equality at the right singular vectors).

**Unconstrained K.** min_{R^S}⟨v, x⟩ is 0 if v = Σ α_s a_s is exactly 0 and −∞ otherwise, and a float α never
has v = 0 exactly. α is therefore first projected, in exact rationals, onto {Σ α_s a_s = 0}: α_F ← α_F − A_F w
with (A_FᵀA_F) w = Aᵀα solved exactly, F the coordinates allowed to move: all for least squares; for logistic and
hinge the multipliers u_s = −y_sα_s strictly inside (0, 1), then only those at least τ = 10⁻¹², 10⁻⁸, 10⁻⁴
from the ends, until the projected u stays in [0, 1]. If none does, the bound is D(0) (0 for least squares, logistic, hinge; −∞ for linear).
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import mpmath
import numpy as np
import torch
from torch import Tensor

__all__ = ["exact_value", "exact_lower"]

_IV = mpmath.iv
_PREC = 160  # bits for the interval evaluations: enclosures far tighter than one float64 ulp


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
    ints = np.empty(arr.shape, dtype=object)
    flat_m, flat_s, out = mant.reshape(-1), shift.reshape(-1), ints.reshape(-1)
    for i in range(flat_m.size):
        out[i] = int(flat_m[i]) << int(flat_s[i])
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


@contextlib.contextmanager
def _prec():
    """mpmath.iv at _PREC bits (its context has no workprec), restored afterwards."""
    old = _IV.prec
    _IV.prec = _PREC
    try:
        yield
    finally:
        _IV.prec = old


def _iv(q: Fraction):
    with _prec():
        return _IV.mpf(q.numerator) / _IV.mpf(q.denominator)


def _upper(v) -> Fraction:
    """The exact upper endpoint of an mpmath interval (its raw (sign, mantissa, exponent, bits) tuple)."""
    sign, man, exp, _ = v._mpi_[1]
    if not man and exp:  # ±inf or nan
        raise ValueError(f"exact evaluation: non-finite interval endpoint {v!r}")
    q = Fraction(man) * Fraction(2) ** exp
    return -q if sign else q


def _solve_exact(G: list[list[Fraction]], b: list[Fraction]) -> list[Fraction] | None:
    """A solution z of G z = b (free variables 0) by Gauss–Jordan in rationals, or None if inconsistent."""
    n, m = len(G), len(G[0]) if G else 0
    M = [row[:] + [bi] for row, bi in zip(G, b)]
    piv_cols, r = [], 0
    for c in range(m):
        p = next((i for i in range(r, n) if M[i][c] != 0), None)
        if p is None:
            continue
        M[r], M[p] = M[p], M[r]
        inv = 1 / M[r][c]
        M[r] = [v * inv for v in M[r]]
        for i in range(n):
            if i != r and M[i][c] != 0:
                f = M[i][c]
                M[i] = [vi - f * vr for vi, vr in zip(M[i], M[r])]
        piv_cols.append(c)
        r += 1
        if r == n:
            break
    if any(M[i][m] != 0 for i in range(r, n)):
        return None
    z = [Fraction(0)] * m
    for i, c in enumerate(piv_cols):
        z[c] = M[i][m]
    return z


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


def exact_value(problem, data, t_end: int, domain, x: Tensor) -> tuple[Tensor, Tensor]:
    """(value, moved), shape B: value ≥ F_t(x') exactly (rounded up to the dtype), x' = x̂ if x̂ ∈ K exactly,
    else a feasible point next to it; ``moved`` says which seeds needed x' ≠ x̂."""
    k = len(data.shape)
    B = data.batch
    A = data.a[:t_end].flatten(start_dim=data.a.ndim - k).movedim(0, -2).reshape(-1, t_end, domain.n)
    Y = data.y[:t_end].movedim(0, -1).reshape(-1, t_end)
    X = x.reshape(-1, domain.n)
    A, Y, X = (v.detach().cpu().double().numpy() for v in (A, Y, X))
    vals, moved = [], []
    for b in range(A.shape[0]):
        ai, sa = _ints(A[b])
        xi, sx = _ints(X[b])
        xi, sx, mv = _feasible_scale(domain, X[b], xi, sx)
        p = [Fraction(int(v)) * sa * sx for v in ai.dot(xi)]  # ⟨a_s, x'⟩ exactly
        y = [Fraction(float(v)) for v in Y[b]]
        name = problem.name
        if name == "linear":
            tot = sum(p, Fraction(0))
        elif name == "least_squares":
            tot = sum(((pi - yi) ** 2 for pi, yi in zip(p, y)), Fraction(0)) / 2
        elif name == "hinge":
            tot = sum((max(Fraction(0), 1 - yi * pi) for pi, yi in zip(p, y)), Fraction(0))
        elif name == "logistic":
            with _prec():
                acc = _IV.mpf(0)
                for pi, yi in zip(p, y):
                    acc += _IV.log(1 + _IV.exp(-_iv(yi * pi)))
                tot = _upper(acc)
        else:
            raise ValueError(f"exact_value: no exact loss for problem {name!r}")
        vals.append(_round(tot, data.a.dtype, up=True))
        moved.append(mv)
    to = dict(dtype=data.a.dtype, device=data.a.device)
    return torch.tensor(vals, **to).reshape(B), torch.tensor(moved, device=data.a.device).reshape(B)


# --- the lower end ----------------------------------------------------------------------------------------
def _conjugate_sum(name: str, alpha: list[Fraction], y: list[Fraction]) -> Fraction | None:
    """Σ_s φ*(α_s, y_s) exactly (an upper bound for logistic), None outside dom φ*."""
    if name == "linear":
        return Fraction(0) if all(a == 1 for a in alpha) else None
    if name == "least_squares":
        return sum((a * a / 2 + a * yi for a, yi in zip(alpha, y)), Fraction(0))
    u = [-yi * a for a, yi in zip(alpha, y)]
    if any(ui < 0 or ui > 1 for ui in u):
        return None
    if name == "hinge":
        return -sum(u, Fraction(0))
    if name == "logistic":
        with _prec():
            acc = _IV.mpf(0)
            for ui in u:
                if 0 < ui < 1:  # 0·log 0 = 0 at the ends
                    w = _iv(ui)
                    acc += w * _IV.log(w) + (1 - w) * _IV.log(1 - w)
            return _upper(acc)
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


def _project_null(A: np.ndarray, alpha: list[Fraction], free: list[int]) -> list[Fraction] | None:
    """α − δ with δ supported on ``free`` and Σ_s (α_s − δ_s) a_s = 0 exactly (A: t×N float64 rows a_s):
    δ_F = A_F w with (A_FᵀA_F) w = Aᵀα solved in rationals; None when Aᵀα ∉ range(A_Fᵀ)."""
    ai, sa = _ints(A)
    den = math.lcm(*(a.denominator for a in alpha)) if alpha else 1
    al = np.array([int(a * den) for a in alpha], dtype=object)  # α = al/den exactly
    r = [Fraction(int(c)) * sa / den for c in al.dot(ai)]  # Aᵀα
    if all(c == 0 for c in r):
        return alpha
    if not free:
        return None
    aF = ai[free]
    G = [[Fraction(int(c)) * sa * sa for c in row] for row in aF.T.dot(aF)]
    w = _solve_exact(G, r)
    if w is None:
        return None
    wden = math.lcm(*(c.denominator for c in w))
    wi = np.array([int(c * wden) for c in w], dtype=object)
    corr = aF.dot(wi)  # δ_F·wden/sa
    out = list(alpha)
    for s, c in zip(free, corr):
        out[s] -= Fraction(int(c)) * sa / wden
    return out


def exact_lower(problem, data, t_end: int, domain, alpha: Tensor) -> Tensor:
    """max(D(α), D(0)) ≤ min_K F_t exactly (rounded down to the dtype), shape B; −inf where no bound exists.

    D(α) = −Σ_s φ*(α_s, y_s) + min_{x∈K}⟨Σ_s α_s a_s, x⟩ (Fenchel weak duality; comparator module docstring).
    """
    k = len(data.shape)
    B = data.batch
    A = data.a[:t_end].flatten(start_dim=data.a.ndim - k).movedim(0, -2).reshape(-1, t_end, domain.n)
    Y = data.y[:t_end].movedim(0, -1).reshape(-1, t_end)
    AL = alpha.movedim(0, -1).reshape(-1, t_end)
    A, Y, AL = (v.detach().cpu().double().numpy() for v in (A, Y, AL))
    name = problem.name
    out = []
    for b in range(A.shape[0]):
        y = [Fraction(float(v)) for v in Y[b]]
        al = [Fraction(float(v)) for v in AL[b]]
        best: Fraction | None = None
        cands = [al] if name == "linear" else [al, [Fraction(0)] * t_end]  # D(0): α = 0 is always feasible
        for j, a_ in enumerate(cands):
            if domain.name == "unconstrained" and j == 0 and name != "linear":
                # move only the multipliers u_s = −y_s α_s strictly inside (0, 1), first all of them, then
                # those at least τ from the ends (a u that underflowed to 1e-200 must not be pushed below 0)
                u = [-y[s] * a_[s] for s in range(t_end)]
                for tau in (0.0, 1e-12, 1e-8, 1e-4) if name != "least_squares" else (None,):
                    free = (
                        list(range(t_end))
                        if tau is None
                        else [s for s in range(t_end) if tau < u[s] < 1 - tau]
                    )
                    proj = _project_null(A[b], a_, free)
                    if proj is not None and _conjugate_sum(name, proj, y) is not None:
                        break
                if proj is None:
                    continue
                a_ = proj
                v = [Fraction(0)] * domain.n  # exactly 0 by construction
            else:
                ai, sa = _ints(A[b])
                alint, salpha = _ints(np.array([float(c) for c in a_]))
                v = [Fraction(int(c)) * sa * salpha for c in alint.dot(ai)] if t_end else [Fraction(0)]
            conj = _conjugate_sum(name, a_, y)
            lin = _min_linear(domain, v)
            if conj is None or lin is None:
                continue
            d = -conj + lin
            best = d if best is None or d > best else best
        out.append(-math.inf if best is None else _round(best, data.a.dtype, up=False))
    return torch.tensor(out, dtype=data.a.dtype, device=data.a.device).reshape(B)
