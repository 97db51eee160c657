"""The sketched AdaGrad family against independent float64 references (docs/theory/sketching.md §B3, §B4, §B6, §B7).

* the official OCO testbed step, re-implemented here from B4's text alone (numpy, ℓ×d SVD of diag(e)P with the
  last row overwritten), run in closed loop on a logistic stream: memopt's methods follow it to 1e-8;
* Algorithm 2 written with dense eigendecompositions (no SVD, no sketch layout) for S-AdaGrad;
* exact reductions: ℓ ≥ d ⇒ full-matrix AdaGrad δ-inside; rank G_t ≤ ℓ − 1 ⇒ full-matrix AdaGrad;
  Ada-FD with ℓ > d ⇒ full-matrix AdaGrad δ-outside;
* H_t u_t = g_t for the metric each method reports, and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit

from memopt_theory import methods
from memopt_theory.sketches import sketchy_covariance

# ---------------------------------------------------------------------------------------------------------
# Independent reference: the official testbed's sketched step, from docs/theory/sketching.md §B4 (float64 numpy)

VARIANTS = {  # name: (c_sk(t, lr), c_alpha, eta_eff(lr))
    "S_ADA": (lambda t, lr: 1.0, 1.0, lambda lr: lr),
    "ADA_FD": (lambda t, lr: 1.0, 0.0, lambda lr: lr),
    "FD_SON": (lambda t, lr: (lr * np.sqrt(t)) ** -0.5, 0.0, lambda lr: 1.0),
    "RFD_SON": (lambda t, lr: (lr * t) ** -0.5, 0.5, lambda lr: 1.0),
}


def _inv(x, p):
    """x^p with "x ≤ 0 becomes 0" (B4 step 5)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, np.abs(x) ** p, 0.0)


def logistic_stream(T: int, d: int, seed: int, rank: int | None = None):
    """Rows x_t (last coordinate a ones column, as the testbed's data sets) and labels y ∈ {0, 1}."""
    rng = np.random.default_rng(seed)
    if rank is None:
        X = rng.standard_normal((T, d - 1))
    else:  # rows in a fixed (rank − 1)-dimensional subspace, plus the ones column: rank G_t ≤ rank
        X = rng.standard_normal((T, rank - 1)) @ rng.standard_normal((rank - 1, d - 1))
    X = np.hstack([X, np.ones((T, 1))])
    w_true = rng.standard_normal(d)
    y = (X @ w_true + 0.5 * rng.standard_normal(T) > 0).astype(np.float64)
    return X, y


def _grad(w, x, y):
    return (expit(w @ x) - y) * x  # (σ(p) − y)x_t, σ without overflow


def reference_testbed_run(X, y, variant: str, *, lr: float, delta: float, ell: int) -> np.ndarray:
    """Iterates w_1..w_{T+1} of the testbed's sketched learner (B4 steps 1–6)."""
    c_sk, c_alpha, eta_eff = VARIANTS[variant]
    d = X.shape[1]
    P, e, alpha, t = np.zeros((ell, d)), np.zeros(ell), delta, 0
    w = np.zeros(d)
    out = [w.copy()]
    for x, yy in zip(X, y):
        g = _grad(w, x, yy)
        t += 1
        gh = c_sk(t, lr) * g
        B = e[:, None] * P
        B[-1] = gh
        _, sig, V = np.linalg.svd(B, full_matrices=False)
        r = sig[-1]
        s = (sig - r) * (sig + r)
        P, e, alpha = V, np.sqrt(s), alpha + c_alpha * r**2
        Pg = P @ g
        if variant == "S_ADA":
            u = P.T @ (_inv(alpha + s, -0.5) * Pg) + _inv(alpha, -0.5) * (g - P.T @ Pg)
        elif variant == "ADA_FD":
            u = _inv(alpha, -1.0) * (g - P.T @ ((e / (alpha + e)) * Pg))
        else:
            u = P.T @ (_inv(alpha + s, -1.0) * Pg) + _inv(alpha, -1.0) * (g - P.T @ Pg)
        w = w - eta_eff(lr) * u
        out.append(w.copy())
    return np.array(out)


def memopt_run(name: str, config, X, y, *, eta: float = 1.0) -> np.ndarray:
    """The same closed loop through memopt's method: w ← w − η·u (or − u for full-step methods)."""
    m = methods.get(name)
    d = X.shape[1]
    st = m.init((d,), config)
    w = torch.zeros(d, dtype=torch.float64)
    out = [w.numpy().copy()]
    for x, yy in zip(X, y):
        g = torch.from_numpy(_grad(w.numpy(), x, yy))
        u, st = m.update(g, st, config, param=w)
        w = w - (u if m.full_step else eta * u)
        out.append(w.numpy().copy())
    return np.array(out)


CLOSED_LOOP = [
    ("s_adagrad", "S_ADA", lambda ell, lr, dl: methods.get("s_adagrad").Config(ell=ell, delta=dl)),
    ("ada_fd", "ADA_FD", lambda ell, lr, dl: methods.get("ada_fd").Config(ell=ell, delta=dl)),
    ("fd_son", "FD_SON", lambda ell, lr, dl: methods.get("fd_son").Config(ell=ell, lr=lr, delta=dl)),
    ("rfd_son", "RFD_SON", lambda ell, lr, dl: methods.get("rfd_son").Config(ell=ell, lr=lr, delta=dl)),
]


@pytest.mark.parametrize("name,variant,make", CLOSED_LOOP, ids=[c[0] for c in CLOSED_LOOP])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_official_testbed_closed_loop(name, variant, make, seed):
    """200 logistic rounds, d = 16, ℓ = 5: memopt's iterates equal the testbed's to 1e-8 (B4's claim).

    The two differ only in SVD layout (d×ℓ of [U√s, g] vs ℓ×d of diag(e)P), in the B2 threshold (it drops
    singular values ≤ 16·ε·σ_1, whose effect on a direction with δ ≥ 1e-4 is ≲ 1e-12) and in round-off;
    single steps agree to ~1e-13 and the closed loop amplifies that mildly (logistic gradients are 1/4-Lipschitz).
    """
    T, d, ell, lr, delta = 200, 16, 5, 0.3, 1e-4
    X, y = logistic_stream(T, d, seed)
    ref = reference_testbed_run(X, y, variant, lr=lr, delta=delta, ell=ell)
    got = memopt_run(name, make(ell, lr, delta), X, y, eta=lr)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8 * scale)
    assert np.abs(ref[-1]).max() > 1e-3  # the learner moved: the comparison is not between two zeros


def eigh_algorithm2(G_rows: np.ndarray, ell: int, delta: float) -> np.ndarray:
    """S-AdaGrad (Alg. 2) with dense eigendecompositions: Ḡ_t from eigh(Ḡ_{t−1} + ggᵀ), then G̃_t^{−1/2}g via eigh."""
    d = G_rows.shape[1]
    Gbar, rho, out = np.zeros((d, d)), 0.0, []
    for g in G_rows:
        lam, Q = np.linalg.eigh(Gbar + np.outer(g, g))
        lam, Q = lam[::-1].clip(min=0), Q[:, ::-1]
        rho_t = lam[ell - 1] if ell <= d else 0.0
        k = min(ell - 1, d)
        Gbar = (Q[:, :k] * (lam[:k] - rho_t)) @ Q[:, :k].T
        rho += rho_t
        mu, V = np.linalg.eigh(Gbar + (delta + rho) * np.eye(d))
        out.append(V @ (mu.clip(min=0) ** -0.5 * (V.T @ g)))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_s_adagrad_equals_eigh_algorithm2(seed):
    """Directions of 120 steps (d = 12, ℓ = 4, δ = 1e-6) equal the eigh-based Algorithm 2.

    Tolerance 1e-7 relative: the eigh reference squares nothing itself but works on Ḡ + ggᵀ, so eigenvalues
    carry absolute errors ~d·ε·λ_1 ≈ 3e-15·λ_1; the inverse root at δ + ρ_{1:t} (ρ_{1:t} ≳ 1e-2·λ_1 after the
    first shrinks, δ for t < ℓ) turns that into ≲ 1e-9 relative per step, accumulating over 120 steps.
    """
    rng = np.random.default_rng(seed)
    G_rows = rng.standard_normal((120, 12)) * np.linspace(3, 0.2, 12)
    ref = eigh_algorithm2(G_rows, ell=4, delta=1e-6)
    cfg = methods.get("s_adagrad").Config(ell=4, delta=1e-6)
    m = methods.get("s_adagrad")
    st, got = m.init((12,), cfg), []
    for g in torch.from_numpy(G_rows):
        u, st = m.update(g, st, cfg)
        got.append(u.numpy())
    np.testing.assert_allclose(np.array(got), ref, rtol=1e-7, atol=1e-7 * np.abs(ref).max())


def _directions(name, cfg, G, shape):
    m = methods.get(name)
    st, out = m.init(shape, cfg), []
    for g in G:
        u, st = m.update(g, st, cfg)
        out.append(u)
    return torch.stack(out), st


def full_adagrad_by_svd(rows: np.ndarray) -> np.ndarray:
    """G_t^{+1/2}g_t from the thin SVD of the rows g_1..g_t (G_t = AᵀA = VΣ²Vᵀ ⇒ G_t^{+1/2} = VΣ^{−1}Vᵀ on the
    range): full-matrix AdaGrad (δ = 0) without forming G_t, so its null space is exact (singular values
    ≤ t·ε·σ_1 are rank deficiency)."""
    out = []
    for t in range(1, len(rows) + 1):
        _, S, Vt = np.linalg.svd(rows[:t], full_matrices=False)
        keep = S > t * np.finfo(float).eps * S[0]
        out.append(Vt[keep].T @ ((Vt[keep] @ rows[t - 1]) / S[keep]))
    return np.array(out)


@pytest.mark.parametrize("ell_extra", [0, 2])
@pytest.mark.parametrize("delta", [0.0, 1e-3])
def test_s_adagrad_with_ell_at_least_d_is_full_adagrad_inside(ell_extra, delta):
    """ℓ ≥ d ⇒ G̃_t = G_t + δI exactly (ℓ = d: every eigenvalue shifts by ρ_t and ρ is added back; ℓ > d: no
    shrink), so the directions equal adagrad_full δ-inside. 40 steps, d = 6 (docs/theory/sketching.md §B3 measured 7e-15).
    Tolerance 1e-9 relative: two different factorizations (SVD of [U√s, g] vs eigh of G_t) of matrices with
    condition number ≲ 1e3 over 40 steps differ by ~1e3·40·ε ≈ 1e-11.

    δ = 0: for t < d, G_t is singular and adagrad_full's eigh of G_t returns the null eigenvalues as ≈ε·λ_1,
    whose roots ≈√ε·√λ_1 pass its pseudo-inverse cutoff on H: its first d − 1 directions carry ~1e-8 relative
    error (measured 4e-8 against the SVD reference). Those steps are compared with the exact SVD reference
    instead, at 1e-10; the full-rank steps t ≥ d with adagrad_full at 1e-9."""
    d = 6
    G = np.random.default_rng(7).standard_normal((40, d))
    a, _ = _directions(
        "s_adagrad",
        methods.get("s_adagrad").Config(ell=d + ell_extra, delta=delta),
        torch.from_numpy(G),
        (d,),
    )
    b, _ = _directions(
        "adagrad_full", methods.get("adagrad_full").Config(delta=delta), torch.from_numpy(G), (d,)
    )
    first = 0 if delta > 0 else d - 1
    torch.testing.assert_close(a[first:], b[first:], rtol=1e-9, atol=1e-9 * float(b.abs().max()))
    if delta == 0:
        ref = torch.from_numpy(full_adagrad_by_svd(G[: d - 1]))
        torch.testing.assert_close(a[: d - 1], ref, rtol=1e-10, atol=1e-10 * float(ref.abs().max()))


def memopt_full_adagrad_svd_loop(X, y, eta):
    """Closed-loop full-matrix AdaGrad (δ = 0) through :func:`full_adagrad_by_svd` on the gradients seen so far."""
    w, rows, out = np.zeros(X.shape[1]), [], []
    out.append(w.copy())
    for x, yy in zip(X, y):
        rows.append(_grad(w, x, yy))
        w = w - eta * full_adagrad_by_svd(np.array(rows))[-1]
        out.append(w.copy())
    return np.array(out)


def test_s_adagrad_low_rank_stream_is_full_adagrad_closed_loop():
    """While rank G_t ≤ ℓ − 1 nothing escapes (ρ_t = 0) and Ḡ_t = G_t: the iterates equal full-matrix AdaGrad's
    (δ = 0, pseudo-inverse) on a logistic stream of rank 4 ≤ ℓ − 1 = 4 in d = 10, for all 60 rounds.
    Reference: full AdaGrad by SVD of the gradient rows (exact null space); tolerance 1e-9 (single steps agree
    to ~1e-15, the loop adds little). adagrad_full (eigh of the singular G_t) is off by ~√ε there (see the
    ℓ ≥ d test), so it is compared at 1e-6 only, which is that documented round-off, not the sketch."""
    X, y = logistic_stream(60, 10, seed=3, rank=4)
    a = memopt_run("s_adagrad", methods.get("s_adagrad").Config(ell=5), X, y, eta=0.5)
    ref = memopt_full_adagrad_svd_loop(X, y, eta=0.5)
    scale = max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(a, ref, rtol=0, atol=1e-9 * scale)
    b = memopt_run("adagrad_full", methods.get("adagrad_full").Config(), X, y, eta=0.5)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * scale)
    assert np.abs(ref[-1]).max() > 1e-2


def test_s_adagrad_first_steps_are_full_adagrad():
    """General-position gradients: the first ℓ − 1 steps have rank G_t = t ≤ ℓ − 1, so they equal full AdaGrad
    (SVD reference, exact null space; seen 1.5e-15 relative)."""
    d, ell = 9, 5
    G = np.random.default_rng(4).standard_normal((ell - 1, d))
    a, st = _directions("s_adagrad", methods.get("s_adagrad").Config(ell=ell), torch.from_numpy(G), (d,))
    ref = torch.from_numpy(full_adagrad_by_svd(G))
    assert float(st.sketch.rho) == 0.0  # nothing escaped yet: ρ_t = λ_ℓ = 0 for rank ≤ ℓ − 1
    torch.testing.assert_close(a, ref, rtol=1e-10, atol=1e-10 * float(ref.abs().max()))


@pytest.mark.parametrize("ell_extra", [1, 5])
def test_ada_fd_with_ell_above_d_is_full_adagrad_outside(ell_extra):
    """ℓ > d keeps all d directions (ρ_t = 0, Ḡ_t = G_t): (δI + G_t^{1/2})^{−1}g_t = adagrad_full δ-outside.
    Tolerance 1e-9 relative, as for the δ-inside reduction (two factorizations, 30 steps, condition ≲ 1e3)."""
    d, delta = 5, 0.05
    G = torch.from_numpy(np.random.default_rng(8).standard_normal((30, d)))
    a, _ = _directions("ada_fd", methods.get("ada_fd").Config(ell=d + ell_extra, delta=delta), G, (d,))
    b, _ = _directions(
        "adagrad_full", methods.get("adagrad_full").Config(delta=delta, delta_mode="outside"), G, (d,)
    )
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))


@pytest.mark.parametrize(
    "name,cfg",
    [
        ("s_adagrad", methods.get("s_adagrad").Config(ell=3)),
        ("s_adagrad", methods.get("s_adagrad").Config(ell=4, delta=0.01)),
        ("ada_fd", methods.get("ada_fd").Config(ell=3, delta=0.1)),
    ],
)
def test_metric_inverts_the_direction(name, cfg):
    """The reported H_t satisfies H_t u_t = g_t (u_t = H_t^{−1}g_t; with ρ_{1:t} > 0 H_t is invertible), and for
    S-AdaGrad H_t² = G̃_t = Ḡ_t + (δ + ρ_{1:t})I from the sketch. Shape (2, 3) flattens row-major; batch of 2."""
    m = methods.get(name)
    gen = torch.Generator().manual_seed(0)
    st = m.init((2, 3), cfg, batch=(2,))
    for _ in range(8):
        g = torch.randn((2, 2, 3), generator=gen, dtype=torch.float64)
        u, st = m.update(g, st, cfg)
    H = m.metric(st, cfg)
    torch.testing.assert_close(H.apply(u), g, rtol=1e-10, atol=1e-10)  # one O(Nℓ) solve: round-off ~1e-15
    if name == "s_adagrad":
        Hd = H.dense()
        torch.testing.assert_close(
            Hd @ Hd, sketchy_covariance(st.sketch, delta=cfg.delta), rtol=1e-10, atol=1e-10
        )


# ---------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("name", ["s_adagrad", "ada_fd", "fd_son", "rfd_son"])
@pytest.mark.parametrize("ell,exc", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_ell_is_refused(name, ell, exc):
    with pytest.raises(exc, match=rf"{name}\.Config: ell must be (an int|>= 1).*got"):
        methods.get(name).Config(ell=ell)


@pytest.mark.parametrize("name", ["s_adagrad", "ada_fd", "fd_son", "rfd_son"])
@pytest.mark.parametrize("delta", [-1e-3, float("nan"), float("inf")])
def test_bad_delta_is_refused(name, delta):
    with pytest.raises(ValueError, match="delta must be"):
        methods.get(name).Config(ell=3, delta=delta)


def test_ada_fd_needs_positive_delta():
    """The testbed's ADA_FD at δ = 0 is 0/0 on its zero row (B4), so memopt refuses it."""
    with pytest.raises(ValueError, match=r"delta must be in \(0.0, inf\]; got 0"):
        methods.get("ada_fd").Config(ell=3, delta=0.0)


@pytest.mark.parametrize("name", ["fd_son", "rfd_son"])
@pytest.mark.parametrize("field,value", [("lr", 0.0), ("lr", -1.0), ("weight_decay", -0.1)])
def test_son_bad_lr_and_decay_are_refused(name, field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        methods.get(name).Config(ell=3, **{field: value})


def test_son_weight_decay_needs_param():
    m = methods.get("fd_son")
    cfg = m.Config(ell=3, weight_decay=0.1)
    with pytest.raises(ValueError, match="param"):
        m.update(torch.ones(4, dtype=torch.float64), m.init((4,), cfg), cfg)


def test_ell_above_d_is_allowed_and_exact():
    """ℓ > d is allowed (B2 oracles: the sketch is exact); memory then counts min(ℓ − 1, d) = d directions."""
    m = methods.get("s_adagrad")
    cfg = m.Config(ell=50)
    assert m.memory((4,), cfg) == 4 * 5 + 1
