"""The baselines (docs/theory/baselines.md §A1–A4) against independent float64 references, and their bad input.

* ``ogd`` and ``adagrad_diag`` in closed loop against the official testbed's unsketched learners OGD and ADA,
  re-implemented here in numpy from §B4's text (w ← w − lr·g/√(t + δ); h ← h + g², h_0 = δ1,
  w ← w − lr·g/√h with √h := 1 where h = 0);
* ``adagrad_full`` against (S_t + δI)^{−1/2}g and (δI + S_t^{1/2})^{−1}g from ``scipy.linalg.sqrtm`` and a
  linear solve (no eigendecomposition), and its pseudo-inverse on a rank-deficient stream against the SVD of
  the gradient rows;
* ``adam`` against ``torch.optim.AdamW`` (decoupled decay) and the "hat" ε placement against its formula.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.special import expit

from memopt_theory import methods


def logistic_stream(T: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((T, d - 1)), np.ones((T, 1))])
    y = (X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(T) > 0).astype(np.float64)
    return X, y


def _grad(w, x, y):
    return (expit(w @ x) - y) * x  # the testbed's logistic gradient (σ(p) − y)x_t


def reference_unsketched(X, y, variant: str, *, lr: float, delta: float) -> np.ndarray:
    """Iterates of the testbed's OGD / ADA (B4, "Unsketched"), unconstrained, from w = 0."""
    w, t, h = np.zeros(X.shape[1]), 0, np.full(X.shape[1], delta)
    out = [w.copy()]
    for x, yy in zip(X, y):
        g = _grad(w, x, yy)
        if variant == "OGD":
            t += 1
            w = w - lr * g / np.sqrt(t + delta)
        else:
            h = h + g * g
            w = w - lr * g / np.where(h == 0, 1.0, np.sqrt(h))
        out.append(w.copy())
    return np.array(out)


def memopt_closed_loop(name: str, config, X, y, *, eta: float) -> np.ndarray:
    m = methods.get(name)
    st = m.init((X.shape[1],), config)
    w = torch.zeros(X.shape[1], dtype=torch.float64)
    out = [w.numpy().copy()]
    for x, yy in zip(X, y):
        u, st = m.update(torch.from_numpy(_grad(w.numpy(), x, yy)), st, config)
        w = w - eta * u
        out.append(w.numpy().copy())
    return np.array(out)


@pytest.mark.parametrize("delta", [0.0, 0.5])
@pytest.mark.parametrize(
    "name,variant,make",
    [
        ("ogd", "OGD", lambda d: methods.get("ogd").Config(delta=d)),
        ("adagrad_diag", "ADA", lambda d: methods.get("adagrad_diag").Config(delta=d)),
    ],
    ids=["ogd", "adagrad_diag"],
)
def test_matches_the_testbeds_unsketched_learner(name, variant, make, delta):
    """200 logistic rounds, d = 12, lr = 0.4: the same elementwise arithmetic in another order, so the iterates
    agree to a few ulps per step; 1e-12 relative leaves room for 200 steps of it (seen 3e-16)."""
    X, y = logistic_stream(200, 12, seed=1)
    X[:, 3] = 0.0  # a feature that never fires: ADA's h stays 0 there at δ = 0 (√h := 1, g = 0: no move)
    ref = reference_unsketched(X, y, variant, lr=0.4, delta=delta)
    got = memopt_closed_loop(name, make(delta), X, y, eta=0.4)
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * scale)
    assert scale > 1e-2 and np.all(got[:, 3] == 0)


@pytest.mark.parametrize("mode", ["inside", "outside"])
def test_adagrad_full_against_sqrtm(mode):
    """u_t = (S_t + δI)^{−1/2}g_t ("inside") or (δI + S_t^{1/2})^{−1}g_t ("outside"), S_t = Σ_{s≤t} g_sg_sᵀ, then a
    solve. Inside: scipy's Schur-based sqrtm of S_t + δI. Outside: S_t^{1/2} = V diag(σ) Vᵀ from the SVD of the
    gradient rows (S_t is singular for t < d, where sqrtm is inaccurate). δ = 0.05 keeps H_t's condition number
    ≤ ~1e2 over the 30 steps, so independent float64 routes agree to ~1e-13; tolerance 1e-10 relative."""
    d, delta = 6, 0.05
    G = np.random.default_rng(2).standard_normal((30, d))
    m = methods.get("adagrad_full")
    cfg = m.Config(delta=delta, delta_mode=mode)
    st = m.init((d,), cfg)
    S = np.zeros((d, d))
    for t, g in enumerate(G, start=1):
        u, st = m.update(torch.from_numpy(g), st, cfg)
        S += np.outer(g, g)
        if mode == "inside":
            H = np.real(scipy.linalg.sqrtm(S + delta * np.eye(d)))
        else:
            _, sig, Vt = np.linalg.svd(G[:t], full_matrices=False)
            H = delta * np.eye(d) + (Vt.T * sig) @ Vt
        want = np.linalg.solve(H, g)
        np.testing.assert_allclose(u.numpy(), want, rtol=0, atol=1e-10 * np.abs(want).max())


def test_adagrad_full_pseudo_inverse_on_a_low_rank_stream():
    """δ = 0, gradients in a 3-dim subspace of R^8: H_t = S_t^{1/2} is singular and u_t = (S_t^{1/2})^+g_t. With
    the rows' SVD S_t = V diag(σ²) Vᵀ this is V diag(1/σ) Vᵀg_t, and u_t stays in the span. eigh returns the
    null eigenvalues as ≈ ε·λ_1, which adagrad_full's §0 cutoff zeroes before the root; what is left is the
    round-off of the kept eigenpairs, tolerance 1e-9 relative (seen 5e-15)."""
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.standard_normal((8, 3)))[0]
    G = rng.standard_normal((12, 3)) @ basis.T
    m = methods.get("adagrad_full")
    cfg = m.Config()
    st = m.init((8,), cfg)
    for t, g in enumerate(G, start=1):
        u, st = m.update(torch.from_numpy(g), st, cfg)
        _, sig, Vt = np.linalg.svd(G[:t], full_matrices=False)
        keep = sig > 8 * np.finfo(float).eps * sig[0]
        want = Vt[keep].T @ ((Vt[keep] @ g) / sig[keep])
        np.testing.assert_allclose(u.numpy(), want, rtol=0, atol=1e-9 * np.abs(want).max())
        assert np.linalg.norm(u.numpy() - basis @ (basis.T @ u.numpy())) <= 1e-9 * np.linalg.norm(u.numpy())


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_equals_torch_adamw(wd):
    """memopt's whole step (lr·wd·x + lr·m̂/(√v̂ + ε), subtracted by the caller) against torch.optim.AdamW on the
    same gradients, 25 steps, float64. The two compute the same expression in a different order (torch
    divides √v by √(1−β2^t) and folds 1/(1−β1^t) into the step size): ~1e-16 per step; tolerance 1e-12."""
    m = methods.get("adam")
    cfg = m.Config(lr=0.05, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=wd)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(7, generator=gen, dtype=torch.float64)
    p = torch.nn.Parameter(x0.clone())
    opt = torch.optim.AdamW([p], lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    x, st = x0.clone(), m.init((7,), cfg)
    for _ in range(25):
        g = torch.randn(7, generator=gen, dtype=torch.float64)
        step, st = m.update(g, st, cfg, param=x)
        x = x - step
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(x, p.detach(), rtol=0, atol=1e-12)
    assert float((x - x0).abs().max()) > 0.1


def test_adam_hat_mode_is_its_formula():
    """eps_mode "hat" (HF/GaLore AdamW): step = lr·(√(1−β2^t)/(1−β1^t))·m/(√v + ε), written out in numpy."""
    m = methods.get("adam")
    cfg = m.Config(lr=0.1, eps=1e-3, eps_mode="hat")
    st = m.init((5,), cfg)
    G = np.random.default_rng(9).standard_normal((6, 5))
    mm, vv = np.zeros(5), np.zeros(5)
    for t, g in enumerate(G, start=1):
        step, st = m.update(torch.from_numpy(g), st, cfg)
        mm = 0.9 * mm + 0.1 * g
        vv = 0.999 * vv + 0.001 * g * g
        want = 0.1 * (np.sqrt(1 - 0.999**t) / (1 - 0.9**t)) * mm / (np.sqrt(vv) + 1e-3)
        np.testing.assert_allclose(step.numpy(), want, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "name,kwargs,exc,match",
    [
        ("ogd", {"delta": -0.1}, ValueError, r"ogd\.Config: delta must be in \[0.0, inf\]; got -0.1"),
        ("ogd", {"delta": float("nan")}, ValueError, r"ogd\.Config: delta must be finite; got nan"),
        (
            "ogd",
            {"schedule": "linear"},
            ValueError,
            r"schedule must be one of 'sqrt', 'constant'; got 'linear'",
        ),
        (
            "adagrad_diag",
            {"delta": -1e-8},
            ValueError,
            r"adagrad_diag\.Config: delta must be in \[0.0, inf\]",
        ),
        (
            "adagrad_diag",
            {"delta_mode": "both"},
            ValueError,
            r"delta_mode must be one of 'inside', 'outside'",
        ),
        (
            "adagrad_full",
            {"delta": -1e-8},
            ValueError,
            r"adagrad_full\.Config: delta must be in \[0.0, inf\]",
        ),
        ("adagrad_full", {"delta": "0.1"}, TypeError, r"delta must be a real number; got '0.1'"),
        ("adam", {"eps": -1e-8}, ValueError, r"adam\.Config: eps must be in \[0.0, inf\]; got -1e-08"),
        ("adam", {"lr": 0.0}, ValueError, r"adam\.Config: lr must be in \(0.0, inf\]; got 0.0"),
        ("adam", {"beta1": 1.0}, ValueError, r"beta1 must be in \[0.0, 1.0\); got 1.0"),
        ("adam", {"beta2": -0.5}, ValueError, r"beta2 must be in \[0.0, 1.0\); got -0.5"),
        ("adam", {"weight_decay": -1.0}, ValueError, r"weight_decay must be in \[0.0, inf\]"),
    ],
)
def test_bad_config_names_field_value_and_range(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        methods.get(name).Config(**kwargs)


@pytest.mark.parametrize("name", ["ogd", "adagrad_diag", "adagrad_full", "adam"])
def test_bad_shape_and_dtype_at_init(name):
    m = methods.get(name)
    with pytest.raises(ValueError, match=rf"{name}\.init: shape must hold ints >= 1; got \(0,\)"):
        m.init((0,), m.Config())
    with pytest.raises(TypeError, match=rf"{name}\.init: dtype must be a floating torch.dtype"):
        m.init((3,), m.Config(), dtype=torch.int32)


def test_adam_weight_decay_needs_the_iterate():
    m = methods.get("adam")
    cfg = m.Config(weight_decay=0.1)
    with pytest.raises(ValueError, match=r"adam\.update: param \(the current iterate\) is required"):
        m.update(torch.ones(3, dtype=torch.float64), m.init((3,), cfg), cfg)
