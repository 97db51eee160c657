"""Independent float64 re-derivations where an audit found no test a wrong line would fail: CAME's factored
path and its decoupled weight decay, S-Shampoo with β2 < 1 (exponentially weighted FD per factor), SM3 on
slice covers (explicit index sets), and the Extreme Tensoring / SM3 bounds at η = None.

Each reference is written from the paper's equations with explicit loops over coordinates or dense
eigendecompositions, not from memopt's helpers. Tolerance RTOL = 1e-10: the references and memopt do the same
arithmetic in different orders over ≤ 10 steps, so they agree to ~1e-14 relative; a wrong line (a sign, an
axis, a missing factor) changes the results at order 1e-3 or more.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from memopt_theory import bounds, methods

RTOL = 1e-10


def _grads(shape, T, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((T, *shape), generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ CAME
def came_reference(G: np.ndarray, theta0: np.ndarray, lr, b1, b2, b3, e1, e2, d, wd) -> list[np.ndarray]:
    """CAME (Luo et al. 2023, Algorithm 1; the official code's decoupled decay θ ← θ − η·wd·θ before the update)
    on a parameter of shape (…, n, m), every statistic by explicit loops. Returns θ_t after each step."""
    shape = G.shape[1:]
    lead = list(itertools.product(*[range(s) for s in shape[:-2]])) if len(shape) > 2 else [()]
    fact = len(shape) >= 2
    theta = theta0.copy()
    m = np.zeros(shape)
    if fact:
        n, mm = shape[-2], shape[-1]
        r = {a: np.zeros(n) for a in lead}
        c = {a: np.zeros(mm) for a in lead}
        R = {a: np.zeros(n) for a in lead}
        C = {a: np.zeros(mm) for a in lead}
    else:
        v = np.zeros(shape)
    out = []
    for g in G:
        U = np.zeros(shape)
        if fact:
            for a in lead:
                ga = g[a]
                for i in range(n):
                    r[a][i] = b2 * r[a][i] + (1 - b2) * sum(ga[i, j] ** 2 + e1 for j in range(mm)) / mm
                for j in range(mm):
                    c[a][j] = b2 * c[a][j] + (1 - b2) * sum(ga[i, j] ** 2 + e1 for i in range(n)) / n
                rmean = sum(r[a]) / n
                for i in range(n):
                    for j in range(mm):
                        U[a + (i, j)] = ga[i, j] / math.sqrt(r[a][i] * c[a][j] / rmean)
        else:
            for i in range(shape[0]):
                v[i] = b2 * v[i] + (1 - b2) * (g[i] ** 2 + e1)
                U[i] = g[i] / math.sqrt(v[i])
        rms = math.sqrt(float((U**2).mean()))
        U = U / max(1.0, rms / d)
        m = b1 * m + (1 - b1) * U
        if fact:
            upd = np.zeros(shape)
            for a in lead:
                res = (U[a] - m[a]) ** 2 + e2
                for i in range(n):
                    R[a][i] = b3 * R[a][i] + (1 - b3) * sum(res[i, j] for j in range(mm)) / mm
                for j in range(mm):
                    C[a][j] = b3 * C[a][j] + (1 - b3) * sum(res[i, j] for i in range(n)) / n
                Rmean = sum(R[a]) / n
                for i in range(n):
                    for j in range(mm):
                        upd[a + (i, j)] = m[a + (i, j)] / math.sqrt(R[a][i] * C[a][j] / Rmean)
        else:
            upd = m
        theta = theta - lr * wd * theta  # decoupled decay shrinks θ towards 0
        theta = theta - lr * upd
        out.append(theta.copy())
    return out


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (6,)], ids=str)
def test_came_matches_paper_rederivation_with_weight_decay(shape):
    """θ_t of memopt's CAME (θ ← θ − step) equals the loop re-derivation for 8 steps, factored (matrix and
    order 3) and vector paths, with weight decay on and a clip threshold that is active at step 1 (RMS(U) ≈
    1/√(1 − β2) ≫ d). The decay must shrink θ: with the sign flipped the trajectories part at step 1."""
    cfg = methods.get("came").Config(
        lr=0.05, beta1=0.8, beta2=0.95, beta3=0.9, eps1=1e-6, eps2=1e-8, clip_threshold=1.5, weight_decay=0.3
    )
    G = _grads(shape, 8, seed=len(shape) + 40)
    theta0 = _grads(shape, 1, seed=99)[0]
    ref = came_reference(G.numpy(), theta0.numpy(), 0.05, 0.8, 0.95, 0.9, 1e-6, 1e-8, 1.5, 0.3)
    cm = methods.get("came")
    st, theta = cm.init(shape, cfg), theta0.clone()
    for t in range(8):
        step, st = cm.update(G[t], st, cfg, param=theta)
        theta = theta - step
        np.testing.assert_allclose(theta.numpy(), ref[t], rtol=RTOL, atol=1e-13)


# ------------------------------------------------------------------------------------------- S-Shampoo
def ew_fd_reference(mats: list[np.ndarray], ell: int, beta: float) -> tuple[np.ndarray, float]:
    """Exponentially weighted FD on dense matrices: M = β·H̄_{t−1} + A_tA_tᵀ, λ desc with eigenvectors V,
    ρ_t = λ_ℓ (1-based; 0 if ℓ > n), H̄_t = V diag((λ − ρ_t)⁺) Vᵀ, and the escaped mass ρ_{1:t} = β·ρ_{1:t−1} + ρ_t."""
    n = mats[0].shape[0]
    H, rho = np.zeros((n, n)), 0.0
    for A in mats:
        lam, V = np.linalg.eigh(beta * H + A @ A.T)
        lam, V = lam[::-1], V[:, ::-1]
        rt = lam[ell - 1] if ell <= n else 0.0
        H = (V * np.maximum(lam - rt, 0.0)) @ V.T
        rho = beta * rho + rt
    return H, rho


def _inv_root(M: np.ndarray, e: float) -> np.ndarray:
    lam, V = np.linalg.eigh(M)
    return (V * lam ** (-e)) @ V.T


@pytest.mark.parametrize("ell", [2, 3, 6])
def test_s_shampoo_beta2_below_one_against_dense_ew_fd(ell):
    """β2 = 0.7 on a 4×5 parameter: each factor is H̃^i_t = H̄^i_t + (ε + ρ^i_{1:t})I with H̄ the exponentially
    weighted FD sketch of mat_i(G_t)mat_i(G_t)ᵀ (ℓ = 6 > both sides: no sketching, H̄ = Σ β^{t−s}GGᵀ), and
    u_t = (H̃^L_t)^{−1/4} G_t (H̃^R_t)^{−1/4}. Checked: the dense factors, the escaped mass, and u_t, for 6 steps."""
    cfg = methods.get("s_shampoo").Config(ell=ell, eps=1e-3, beta2=0.7)
    sm = methods.get("s_shampoo")
    from memopt_theory.methods.s_shampoo import factors

    G = _grads((4, 5), 6, seed=ell)
    st = sm.init((4, 5), cfg)
    for t in range(6):
        u, st = sm.update(G[t], st, cfg)
        Gs = [G[s].numpy() for s in range(t + 1)]
        HL, rL = ew_fd_reference(Gs, ell, 0.7)
        HR, rR = ew_fd_reference([g.T for g in Gs], ell, 0.7)
        L = HL + (1e-3 + rL) * np.eye(4)
        R = HR + (1e-3 + rR) * np.eye(5)
        FL, FR = factors(st, cfg, 1.0)
        np.testing.assert_allclose(FL.numpy(), L, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(FR.numpy(), R, rtol=1e-9, atol=1e-11)
        ref = _inv_root(L, 0.25) @ Gs[-1] @ _inv_root(R, 0.25)
        # 1e-8: the FD sketch drops directions below a relative SVD cutoff (~1e-13·σ_1), and inverse quarter
        # roots amplify that by ≤ (λ_1/λ_min)^{1/4} ≈ 10 here
        np.testing.assert_allclose(u.numpy(), ref, rtol=1e-8, atol=1e-10)
    if ell == 6:
        assert rL == 0.0 and rR == 0.0  # no sketching
    else:
        assert rL > 0 and rR > 0  # the sketch was active: the test exercises the escaped mass with β < 1


# ------------------------------------------------------------------------------------------------- SM3
def sm3_slices_reference(G: np.ndarray, variant: str, eps: float = 0.0) -> list[np.ndarray]:
    """SM3 with the co-dimension-1 slice cover of an n_1×…×n_p tensor, written over explicit index sets:
    S_(k, a) = {j : j_k = a}; SM3-I μ_t(r) = μ_{t−1}(r) + max_{j∈S_r} g(j)², ν(i) = min_{r∋i} μ_t(r); SM3-II
    ν'(i) = min_{r∋i} μ'_{t−1}(r) + g(i)², μ'_t(r) = max_{j∈S_r} ν'(j); u(i) = g(i)/√(ν(i) + ε) (0 if 0)."""
    shape = G.shape[1:]
    sets = [(k, a) for k in range(len(shape)) for a in range(shape[k])]
    mu = {r: 0.0 for r in sets}
    idx = list(itertools.product(*[range(s) for s in shape]))
    out = []
    for g in G:
        u = np.zeros(shape)
        if variant == "I":
            for k, a in sets:
                mu[(k, a)] += max(g[j] ** 2 for j in idx if j[k] == a)
            nu = {i: min(mu[(k, i[k])] for k in range(len(shape))) for i in idx}
        else:
            nu = {i: min(mu[(k, i[k])] for k in range(len(shape))) + g[i] ** 2 for i in idx}
            for k, a in sets:
                mu[(k, a)] = max(nu[j] for j in idx if j[k] == a)
        for i in idx:
            den = nu[i] + eps
            u[i] = g[i] / math.sqrt(den) if den > 0 else 0.0
        out.append(u)
    return out


@pytest.mark.parametrize("variant", ["I", "II"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2)], ids=str)
def test_sm3_slices_against_index_set_recomputation(variant, shape):
    """Every direction u_t of SM3 on the slice cover equals the index-set recomputation (8 steps; a row of the
    gradient zeroed at step 2 so a slice max and a min over covers differ from the dense neighbours)."""
    G = _grads(shape, 8, seed=7).numpy()
    G[2][(0,) * (len(shape) - 1)] = 0.0
    cfg = methods.get("sm3").Config(variant=variant, cover="slices", eps=1e-12)
    sm = methods.get("sm3")
    st = sm.init(shape, cfg)
    ref = sm3_slices_reference(G, variant, eps=1e-12)
    for t in range(8):
        u, st = sm.update(torch.from_numpy(G[t]), st, cfg)
        np.testing.assert_allclose(u.numpy(), ref[t], rtol=RTOL, atol=1e-14)


# -------------------------------------------------------------------------------- bounds at η = None
def test_extreme_tensoring_and_sm3_bounds_at_eta_none():
    """η = None is the theorem's step η = D_∞/√2, where D_∞²/(2η) + η = √2·D_∞: the bounds must equal
    √2·D_∞·Π_i Σ_k h_i[k]^{1/(2p)} (Extreme Tensoring) and √2·D_∞·Σ_i √ν_i (SM3), computed by hand, and the same
    bound with the explicit η = D_∞/√2. D_∞ = 3 tells D from D² (√2·9 vs √2·3)."""
    g = torch.Generator().manual_seed(3)
    h = tuple(torch.rand(2, n, generator=g, dtype=torch.float64) + 0.1 for n in (3, 4, 2))  # batch 2, p = 3
    D = 3.0
    want = math.sqrt(2) * D * np.prod([(hi.numpy() ** (1 / 6)).sum(-1) for hi in h], axis=0)
    got = bounds.extreme_tensoring_regret_bound(h, D)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13)
    np.testing.assert_allclose(
        bounds.extreme_tensoring_regret_bound(h, D, eta=D / math.sqrt(2)).numpy(), want, rtol=1e-13
    )
    nu = torch.rand(2, 3, 4, generator=g, dtype=torch.float64)
    want_sm3 = math.sqrt(2) * D * np.sqrt(nu.numpy()).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(bounds.sm3_regret_bound(nu, D, nbatch=1).numpy(), want_sm3, rtol=1e-13)


# ------------------------------------------------------------------------------------ EF sparse windows
@pytest.mark.parametrize("name", ["ef_ggt", "ef_mfac"])
def test_ef_sparse_window_rows_and_residual_against_recomputation(name):
    """EFCP's error feedback (Frantar et al. 2022): a_t = e_t + g_t, c_t = top-k of a_t by magnitude (ties to the
    lowest index), e_{t+1} = a_t − c_t, e_1 = 0; the window keeps c_t in slot (t − 1) mod w. Recomputed with
    numpy over 7 steps (window 3 wraps twice): the stored residual and every stored row must match exactly in
    value (same float64 additions)."""
    m = methods.get(name)
    kw = {"damp": 1.0, "lr": 0.1} if name == "ef_mfac" else {"eps": 1e-2}
    cfg = m.Config(window=3, density=0.3, **kw)
    G = _grads((10,), 7, seed=21)
    st = m.init((10,), cfg)
    k = max(1, int(0.3 * 10))
    e = np.zeros(10)
    rows = {}
    for t in range(7):
        _, st = m.update(G[t], st, cfg, param=torch.zeros(10, dtype=torch.float64))
        a = e + G[t].numpy()
        keep = np.argsort(-np.abs(a), kind="stable")[:k]
        c = np.zeros(10)
        c[keep] = a[keep]
        e = a - c
        rows[t % 3] = c
        ring = st.ring
        np.testing.assert_array_equal(ring.e.numpy(), e)
        dense = np.zeros((3, 10))
        np.put_along_axis(dense, ring.indices.numpy().astype(np.int64), ring.values.numpy(), axis=-1)
        for slot, c_ref in rows.items():
            np.testing.assert_array_equal(dense[slot], c_ref)
