"""Reductions, hand-derived cases and bad input for the tensored family (docs/theory/tensored.md §C1–C5, docs/theory/sketching.md §B5).

Every comparison is against an independent computation: another registered method (full-matrix or diagonal
AdaGrad, Adam), a brute-force float64 formula written here with scipy/numpy, or a case derived by hand in the
test's docstring. Tolerances: float64 runs of ≤ 12 steps through eigh/SVD lose ~1e-14 relative; 1e-10 leaves
four orders of margin and still catches any wrong exponent (which errs by O(1)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memopt_theory import methods
from memopt_theory.tensoring import (
    check_mode_sizes,
    default_mode_sizes,
    from_tensor,
    integer_root_ceil,
    mode_gram,
    mode_product,
    to_tensor,
    unfold,
)

RTOL = 1e-10  # see module docstring


def _grads(shape, T, seed, batch=()):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((T, *batch, *shape), generator=gen, dtype=torch.float64)


def _run(name, cfg, G, param=None):
    m = methods.get(name)
    st_ = m.init(tuple(G.shape[1:]), cfg)
    out = []
    for g in G:
        u, st_ = m.update(g, st_, cfg, param=param)
        out.append(u)
    return torch.stack(out), st_


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=RTOL, atol=RTOL * float(b.abs().max()))


def _mpow(A, p):
    """Independent PSD power (scipy, eigenvalues clamped at 0; A must be nonsingular for p < 0)."""
    w, V = scipy.linalg.eigh(A)
    return (V * np.clip(w, 0, None) ** p) @ V.T


# ---------------------------------------------------------------- tensoring.py


@given(r=st.integers(1, 10**7), k=st.integers(1, 6))
@settings(max_examples=200, deadline=None)
def test_integer_root_ceil_is_the_least_root(r, k):
    d = integer_root_ceil(r, k)
    assert d**k >= r and (d == 1 or (d - 1) ** k < r)


def test_default_mode_sizes_examples_derived_by_hand():
    """r_1 = N, d_i = ⌈r_i^{1/(p+1−i)}⌉, r_{i+1} = ⌈r_i/d_i⌉ (§C2): 1000 = 10³; 1001 → d_1 = 11 (10³ < 1001 ≤ 11³),
    r_2 = ⌈1001/11⌉ = 91, d_2 = ⌈√91⌉ = 10, r_3 = ⌈91/10⌉ = 10; 2^20 → 102 (101³ < 2^20 ≤ 102³), r_2 = 10281,
    d_2 = 102 (101² = 10201 < 10281), r_3 = ⌈10281/102⌉ = 101."""
    assert default_mode_sizes(1000, 3) == (10, 10, 10)
    assert default_mode_sizes(1001, 3) == (11, 10, 10)
    assert default_mode_sizes(2**20, 3) == (102, 102, 101)
    assert default_mode_sizes(7, 1) == (7,)


@given(N=st.integers(2, 10**6), p=st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_default_mode_sizes_cover_N(N, p):
    if 2**p > N:
        with pytest.raises(ValueError, match="order must be in"):
            default_mode_sizes(N, p)
        return
    sizes = default_mode_sizes(N, p)
    assert len(sizes) == p and math.prod(sizes) >= N and min(sizes) >= 1


def test_zero_padding_roundtrip_and_unfold():
    x = torch.arange(7.0, dtype=torch.float64).reshape(1, 7)
    y = to_tensor(x, (2, 2, 2), 1)  # 7 elements in a 2×2×2 tensor: one padded zero, last in row-major order
    assert y.shape == (1, 2, 2, 2) and float(y[0, 1, 1, 1]) == 0.0
    assert torch.equal(from_tensor(y, (7,), 1), x)
    X = _grads((2, 3, 4), 1, 0)[0]
    # mat_i and X ×_i A against numpy's tensordot (an independent definition)
    for i in range(3):
        A = _grads((5, X.shape[i]), 1, i + 1)[0]
        ref = np.moveaxis(np.tensordot(A.numpy(), X.numpy(), axes=([1], [i])), 0, i)
        np.testing.assert_allclose(mode_product(X, A, i, 3).numpy(), ref, rtol=1e-13, atol=1e-13)
        M = unfold(X, i, 3).numpy()
        np.testing.assert_allclose(M @ M.T, mode_gram(X, i, 3).numpy(), rtol=1e-13)
        others = [k for k in range(3) if k != i]
        np.testing.assert_allclose(
            mode_gram(X, i, 3).numpy(), np.tensordot(X.numpy(), X.numpy(), axes=(others, others)), rtol=1e-13
        )


# ---------------------------------------------------------------- Shampoo (§C1)


@pytest.mark.parametrize("eps", [0.0, 1e-2])
def test_shampoo_order_1_is_full_matrix_adagrad_delta_inside(eps):
    """A vector is an order-1 tensor: H^1_t = εI + Σ g gᵀ, exponent −1/(2·1) = −1/2 ⇒ full AdaGrad, δ = ε inside
    (ε = 0: both pseudo-inverses with the §0 cutoff on the eigenvalues of S_t, singular for t < d)."""
    G = _grads((5,), 9, 0)
    a, _ = _run("shampoo", methods.get("shampoo").Config(eps=eps), G)
    b, _ = _run("adagrad_full", methods.get("adagrad_full").Config(delta=eps), G)
    _close(a, b)


def test_shampoo_order_1_eps_0_is_the_exact_pseudo_inverse_root():
    """ε = 0, t < d: S_t = Σ g gᵀ is singular and u_t = (S_t^{1/2})^+ g_t. Oracle: the SVD of the stacked gradients
    A_t = [g_1 … g_t]ᵀ = WΣVᵀ gives S_t^{+1/2} = V diag(1/σ) Vᵀ over σ > 0 (exact rank t, gradients in general
    position)."""
    G = _grads((5,), 4, 0)
    a, _ = _run("shampoo", methods.get("shampoo").Config(), G)
    for t in range(4):
        _, s, Vt = np.linalg.svd(G[: t + 1].numpy(), full_matrices=False)
        ref = Vt.T @ ((Vt @ G[t].numpy()) / s)
        np.testing.assert_allclose(a[t].numpy(), ref, rtol=1e-9)


@pytest.mark.parametrize("column", [True, False])
def test_shampoo_on_d_by_1_is_not_adagrad_but_its_quarter_root(column):
    """A vector stored as d×1: L_t = εI_d + Σ g gᵀ, R_t = ε + Σ‖g‖² (1×1), so u_t = L_t^{−1/4} g_t·R_t^{−1/4}
    — exponent 1/4 on L, not AdaGrad's 1/2 (§C1 oracles). Stored 1×d: u_t = L_t^{−1/4} g_t R_t^{−1/4} with
    L_t = ε + Σ‖g‖² scalar and R_t = εI + Σ g gᵀ. Brute force with scipy; and it differs from full AdaGrad."""
    eps, d, T = 0.1, 4, 6
    shape = (d, 1) if column else (1, d)
    G = _grads(shape, T, 1)
    u, _ = _run("shampoo", methods.get("shampoo").Config(eps=eps), G)
    S, s = eps * np.eye(d), eps
    for t in range(T):
        g = G[t].reshape(d).numpy()
        S, s = S + np.outer(g, g), s + g @ g
        ref = _mpow(S, -0.25) @ g * s**-0.25
        np.testing.assert_allclose(u[t].reshape(d).numpy(), ref, rtol=RTOL)
    ada, _ = _run("adagrad_full", methods.get("adagrad_full").Config(delta=eps), G.reshape(T, d))
    assert float((u.reshape(T, d) - ada).abs().max()) > 1e-2 * float(ada.abs().max())


def test_shampoo_exponent_pinned_by_multiples_of_identity_matrix():
    """G_t = a_t P_t with P_t orthogonal (3×3) ⇒ G_tG_tᵀ = G_tᵀG_t = a_t² I, so with ε = 0 L_t = R_t = (Σ a²) I and
    u_t = L_t^{−1/4} G_t R_t^{−1/4} = a_t P_t/(Σ_{s≤t} a_s²)^{1/2}. With a = (3, 4): u_1 = P_1, u_2 = (4/5)P_2. The wrong
    exponent −1/p = −1/2 (a common bug) would give u_2 = (4/25)P_2."""
    P1 = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    Q, _ = torch.linalg.qr(_grads((3, 3), 1, 2)[0])
    G = torch.stack([3 * P1, 4 * Q])
    u, _ = _run("shampoo", methods.get("shampoo").Config(), G)
    _close(u[0], P1)
    _close(u[1], 0.8 * Q)


def test_shampoo_exponent_pinned_order_3():
    """Order 3, 2×2×2 tensor T[i,j,k] = 1 if i + j + k is even: each unfolding has orthogonal rows of squared norm 2,
    so mat_i(T)mat_i(T)ᵀ = 2I for every mode. With G_1 = T, ε = 0: H^i_1 = 2I and u_1 = T·(2^{−1/6})³ = T/√2.
    Exponent −1/p = −1/3 would give T/2."""
    T = torch.tensor([[[1.0, 0], [0, 1]], [[0, 1], [1, 0]]], dtype=torch.float64)
    u, _ = _run("shampoo", methods.get("shampoo").Config(), T.unsqueeze(0))
    _close(u[0], T / math.sqrt(2))


def test_shampoo_diagonal_gradients_are_diagonal_adagrad():
    """Diagonal G_t (m = n): G_tG_tᵀ = G_tᵀG_t = diag(g_ii²), so L_t = R_t = diag(ε + Σ g_ii²) and
    u_t = diag(g_ii/(L_ii R_ii)^{1/4}) = diag(g_ii/(ε + Σ g_ii²)^{1/2}): diagonal AdaGrad (δ = ε inside) on the diagonal."""
    eps, n, T = 1e-3, 4, 8
    g = _grads((n,), T, 3)
    u, _ = _run("shampoo", methods.get("shampoo").Config(eps=eps), torch.diag_embed(g))
    ref, _ = _run("adagrad_diag", methods.get("adagrad_diag").Config(delta=eps), g)
    _close(u, torch.diag_embed(ref))


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2)])
def test_shampoo_brute_force_order_p(shape):
    """u_t = G_t ×_i (H^i_t)^{−1/(2p)} against scipy powers applied to numpy's tensordot, and the metric:
    H_t u_t = g_t with H_t = ⊗(H^i)^{1/(2p)} (vec row-major, so the Kronecker product is np.kron in mode order)."""
    eps, T, p = 1e-2, 5, len(shape)
    G = _grads(shape, T, 4)
    m, cfg = methods.get("shampoo"), methods.get("shampoo").Config(eps=eps)
    u, st_ = _run("shampoo", cfg, G)
    H = [eps * np.eye(n) for n in shape]
    for t in range(T):
        X = G[t].numpy()
        ref = X
        for i in range(p):
            others = [k for k in range(p) if k != i]
            H[i] = H[i] + np.tensordot(X, X, axes=(others, others))
            ref = np.moveaxis(np.tensordot(_mpow(H[i], -1 / (2 * p)), ref, axes=([1], [i])), 0, i)
        np.testing.assert_allclose(u[t].numpy(), ref, rtol=1e-9, atol=1e-12)
    K = H[0] ** 0
    K = _mpow(H[0], 1 / (2 * p))
    for Hi in H[1:]:
        K = np.kron(K, _mpow(Hi, 1 / (2 * p)))
    np.testing.assert_allclose(m.metric(st_, cfg).dense().numpy(), K, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        K @ u[-1].numpy().reshape(-1), G[-1].numpy().reshape(-1), rtol=1e-9, atol=1e-12
    )


# ---------------------------------------------------------------- S-Shampoo (§B5)


@pytest.mark.parametrize("ell", [4, 5, 9])
@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_s_shampoo_with_ell_at_least_both_dims_is_shampoo(ell, eps):
    """ℓ ≥ m and ℓ ≥ n ⇒ H̃ = H̄ + (ε + ρ)I equals Shampoo's factor (ℓ > n: exact sketch, ρ = 0; ℓ = n: every
    eigenvalue shifts by ρ_t, which is added back, §B2 oracles) ⇒ identical directions. Here (m, n) = (4, 3)."""
    G = _grads((4, 3), 10, 5)
    a, _ = _run("s_shampoo", methods.get("s_shampoo").Config(ell=ell, eps=eps), G)
    b, _ = _run("shampoo", methods.get("shampoo").Config(eps=eps), G)
    _close(a, b)


def test_s_shampoo_metric_inverts_its_direction():
    """H_t u_t = g_t for H_t = ⊗(H̃^i)^{1/(2p)} (ε > 0 makes H̃ invertible): the direction and the projection
    norm are the same operator, as Lemma L1 requires."""
    cfg = methods.get("s_shampoo").Config(ell=2, eps=1e-2)
    G = _grads((4, 3), 6, 6)
    u, st_ = _run("s_shampoo", cfg, G)
    H = methods.get("s_shampoo").metric(st_, cfg)
    _close((H.dense() @ u[-1].reshape(-1)).reshape(4, 3), G[-1])
    _close(H.apply(u[-1]), G[-1])  # the operator form the projections use (mode products, no N×N matrix)


# ---------------------------------------------------------------- Extreme Tensoring (§C2)


@given(seed=st.integers(0, 10**6), d=st.integers(1, 9), eps=st.sampled_from([0.0, 1e-3, 1.0]))
@settings(max_examples=25, deadline=None)
def test_extreme_tensoring_order_1_is_diagonal_adagrad(seed, d, eps):
    """p = 1: h^{(1)} = ε1 + Σ g², u = g/h^{1/2} ⇒ diagonal AdaGrad with s_0 = ε1 (δ = ε inside)."""
    G = _grads((d,), 5, seed)
    a, _ = _run("extreme_tensoring", methods.get("extreme_tensoring").Config(order=1, eps=eps), G)
    b, _ = _run("adagrad_diag", methods.get("adagrad_diag").Config(delta=eps), G)
    _close(a, b)


def test_extreme_tensoring_order_2_is_shampoo_with_diagonal_factors():
    """p = 2 on a 3×4 matrix: h^{(1)} = diag(L_t), h^{(2)} = diag(R_t) of Shampoo's factors and
    u_ij = g_ij/(h^{(1)}_i h^{(2)}_j)^{1/4}: Shampoo with L, R replaced by their diagonals (§C2 oracles)."""
    eps, T = 1e-3, 6
    G = _grads((3, 4), T, 7)
    u, st_ = _run("extreme_tensoring", methods.get("extreme_tensoring").Config(mode_sizes=(3, 4), eps=eps), G)
    L, R = eps * np.eye(3), eps * np.eye(4)
    for t in range(T):
        X = G[t].numpy()
        L, R = L + X @ X.T, R + X.T @ X
        ref = X / np.outer(np.diag(L), np.diag(R)) ** 0.25
        np.testing.assert_allclose(u[t].numpy(), ref, rtol=RTOL)


def test_extreme_tensoring_zero_padding_brute_force():
    """N = 7 (prime) as 2×2×2: one padded zero whose gradient is 0. Accumulators = brute-force sums over the
    padded tensor (numpy); the padded slot never contributes; the direction has the parameter's shape."""
    G = _grads((7,), 4, 8)
    cfg = methods.get("extreme_tensoring").Config(mode_sizes=(2, 2, 2))
    u, st_ = _run("extreme_tensoring", cfg, G)
    assert tuple(st_.sizes) == (2, 2, 2) and u.shape == (4, 7)
    X2 = np.pad(G.numpy() ** 2, ((0, 0), (0, 1))).reshape(4, 2, 2, 2).sum(0)
    np.testing.assert_allclose(st_.h[0].numpy(), X2.sum((1, 2)), rtol=1e-13)
    np.testing.assert_allclose(st_.h[1].numpy(), X2.sum((0, 2)), rtol=1e-13)
    np.testing.assert_allclose(st_.h[2].numpy(), X2.sum((0, 1)), rtol=1e-13)
    diag = np.einsum("i,j,k->ijk", *[h.numpy() ** (1 / 6) for h in st_.h]).reshape(-1)[:7]
    np.testing.assert_allclose(u[-1].numpy(), G[-1].numpy() / diag, rtol=RTOL)


def test_extreme_tensoring_memory_of_requested_sizes():
    """Σ d_i of the requested (padded) sizes, counted from the tensors: 2×2×2 for N = 7 holds 6 scalars."""
    m = methods.get("extreme_tensoring")
    cfg = m.Config(mode_sizes=(2, 2, 2))
    st_ = m.update(_grads((7,), 1, 0)[0], m.init((7,), cfg), cfg)[1]
    assert sum(h.numel() for h in st_.h) == m.memory((7,), cfg) == 6


# ---------------------------------------------------------------- SM3 (§C4)


@pytest.mark.parametrize("variant", ["I", "II"])
@pytest.mark.parametrize("cover,shape", [("singletons", (3, 4)), ("slices", (6,))])
def test_sm3_singleton_cover_is_diagonal_adagrad(variant, cover, shape):
    """Singleton sets (explicitly, or the co-dimension-1 slices of a vector) ⇒ ν_t = ν'_t = Σ_s g_s² ⇒ diagonal AdaGrad."""
    G = _grads(shape, 7, 9)
    a, _ = _run("sm3", methods.get("sm3").Config(variant=variant, cover=cover), G)
    b, _ = _run("adagrad_diag", methods.get("adagrad_diag").Config(), G)
    _close(a, b)


def test_sm3_cover_all_brute_force():
    """Cover {[d]}: SM3-I keeps one scalar μ_t = Σ_s max_j g_s(j)², u = g/√μ_t; SM3-II: ν'_t = μ'_{t−1} + g², μ'_t = max ν'_t."""
    G = _grads((5,), 6, 10).numpy()
    uI, _ = _run("sm3", methods.get("sm3").Config(variant="I", cover="all"), torch.from_numpy(G))
    uII, _ = _run("sm3", methods.get("sm3").Config(variant="II", cover="all"), torch.from_numpy(G))
    mu, mu2 = 0.0, 0.0
    for t, g in enumerate(G):
        mu += (g**2).max()
        np.testing.assert_allclose(uI[t].numpy(), g / np.sqrt(mu), rtol=RTOL)
        nu = mu2 + g**2
        np.testing.assert_allclose(uII[t].numpy(), g / np.sqrt(nu), rtol=RTOL)
        mu2 = nu.max()


def test_sm3_slices_dominate_adagrad_every_step():
    """γ_t(i) = Σ_{s≤t} g_s(i)² ≤ ν'_t(i) (SM3-II) ≤ ν_t(i) (SM3-I) at every step on a 3×4×2 tensor (the bound's
    hypothesis, §C4), read back from u = g/√ν; and SM3-I's metric is diag(√ν_t)."""
    G = _grads((3, 4, 2), 10, 11)
    cI, cII = methods.get("sm3").Config(variant="I"), methods.get("sm3").Config(variant="II")
    uI, stI = _run("sm3", cI, G)
    uII, _ = _run("sm3", cII, G)
    gamma = (G**2).cumsum(0)
    nuI, nuII = (G / uI) ** 2, (G / uII) ** 2
    tol = 1e-12 * float(gamma.max())  # ν recovered through g/u: a few ulps of relative error
    assert bool((gamma <= nuII + tol).all()) and bool((nuII <= nuI + tol).all())
    _close(methods.get("sm3").metric(stI, cI).h, nuI[-1].sqrt())


# ---------------------------------------------------------------- bad input (issue item 6)


@pytest.mark.parametrize(
    "name,kwargs,exc,match",
    [
        ("shampoo", {"eps": -1e-3}, ValueError, "eps must be in"),
        ("shampoo", {"exponent": 0.0}, ValueError, "exponent must be in"),
        ("shampoo", {"exponent": -0.25}, ValueError, "exponent must be in"),
        ("extreme_tensoring", {"eps": -1.0}, ValueError, "eps must be in"),
        ("extreme_tensoring", {"exponent": 0}, ValueError, "exponent must be in"),
        ("extreme_tensoring", {"order": 0}, ValueError, "order must be >= 1"),
        ("extreme_tensoring", {"order": 2.0}, TypeError, "order must be an int"),
        ("extreme_tensoring", {"order": 3, "mode_sizes": (4, 4)}, ValueError, "order must be None or len"),
        ("extreme_tensoring", {"mode_sizes": (4, 0)}, ValueError, "mode_sizes must be a non-empty tuple"),
        ("sm3", {"eps": -1e-8}, ValueError, "eps must be in"),
        ("sm3", {"cover": "rows"}, ValueError, "cover must be one of"),
        ("sm3", {"variant": "III"}, ValueError, "variant must be one of"),
        ("s_shampoo", {"ell": 0}, ValueError, "ell must be >= 1"),
        ("s_shampoo", {"ell": 3, "eps": -1.0}, ValueError, "eps must be in"),
        ("s_shampoo", {"ell": 3, "beta2": 0.0}, ValueError, "beta2 must be in"),
        ("adafactor", {"decay_rate": 0.0}, ValueError, "decay_rate must be in"),
        ("adafactor", {"eps1": -1.0}, ValueError, "eps1 must be in"),
        ("adafactor", {"lr": 0.0}, ValueError, "lr must be in"),
        ("came", {"lr": 1e-3, "eps2": -1.0}, ValueError, "eps2 must be in"),
        ("came", {"lr": 1e-3, "beta3": 1.0}, ValueError, "beta3 must be in"),
    ],
)
def test_bad_config_is_refused(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        methods.get(name).Config(**kwargs)


def test_came_needs_lr():
    with pytest.raises(TypeError, match="lr"):
        methods.get("came").Config()


def test_tensor_order_or_mode_sizes_that_do_not_fit_N():
    m = methods.get("extreme_tensoring")
    with pytest.raises(ValueError, match=r"order must be in \[1, 2\] .* N = 6"):
        m.init((6,), m.Config(order=3))  # 2^3 > 6: some mode would have one entry
    with pytest.raises(ValueError, match="fewer than the parameter's N = 12"):
        m.init((3, 4), m.Config(mode_sizes=(3, 3)))
    with pytest.raises(ValueError, match="a whole mode-1 slice"):
        m.init((3, 4), m.Config(mode_sizes=(4, 4)))  # 16 − 12 = 4 ≥ one 4-entry slice: d_1 could be 3
    with pytest.raises(ValueError, match="fewer than"):
        m.memory((3, 4), m.Config(mode_sizes=(2, 2)))
    assert check_mode_sizes(7, (2, 2, 2), where="t") == (2, 2, 2)


def test_param_required_where_read():
    """Adafactor's relative step reads RMS(X_{t−1}); CAME's decoupled decay reads θ: missing param is an error."""
    af = methods.get("adafactor")
    with pytest.raises(ValueError, match="param"):
        af.update(_grads((3, 4), 1, 0)[0], af.init((3, 4), af.Config()), af.Config())
    cm, cfg = methods.get("came"), methods.get("came").Config(lr=1e-3, weight_decay=0.1)
    with pytest.raises(ValueError, match="param"):
        cm.update(_grads((3, 4), 1, 0)[0], cm.init((3, 4), cfg), cfg)


@pytest.mark.parametrize("name", ["shampoo", "s_shampoo"])
def test_kronecker_methods_need_an_axis(name):
    m = methods.get(name)
    cfg = m.Config(ell=2) if name == "s_shampoo" else m.Config()
    with pytest.raises(ValueError, match="at least 1 axes"):
        m.init((), cfg)
