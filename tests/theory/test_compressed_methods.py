"""GGT, M-FAC and EFCP against brute-force float64 linear algebra (ALGORITHMS.md §D3–D5)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memopt_theory import methods
from memopt_theory.compressors import densify
from memopt_theory.methods.mfac import woodbury_coefficients, woodbury_setup
from tests.theory.test_battery import _assert_same, _clone


def _grads(T, shape, seed):
    return torch.randn((T, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _feed(name, cfg, G, *, param=None):
    m = methods.get(name)
    st_ = m.init(tuple(G.shape[1:]), cfg)
    outs = []
    for g in G:
        u, st_ = m.update(g, st_, cfg, param=param)
        outs.append(u)
    return torch.stack(outs), st_


def _dd_ggt(window_rows, m, eps):
    """((WᵀW)^{1/2} + εI)^{−1}m by a d×d eigh; round-off eigenvalues (≤ d·ε_mach·λ_1) zeroed as §0 says."""
    S = window_rows.T @ window_rows
    lam, V = torch.linalg.eigh(S)
    lam = torch.where(lam > S.shape[0] * torch.finfo(S.dtype).eps * lam[-1], lam, 0)
    return V @ ((V.T @ m) / (lam.sqrt() + eps))


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 7),
    r=st.integers(1, 5),
    T=st.integers(1, 9),
    beta1=st.sampled_from([0.0, 0.5, 0.9]),
    beta2=st.sampled_from([0.5, 0.9, 1.0]),
    eps=st.sampled_from([1e-3, 1e-1, 1.0]),
    seed=st.integers(0, 50),
)
def test_ggt_eigen_trick_equals_d_by_d(d, r, T, beta1, beta2, eps, seed):
    """GGT's r×r computation = ((WᵀW)^{1/2} + εI)^{−1}m_t from the N×N matrix, every step (§D3 step 4)."""
    G = _grads(T, (d,), seed)
    cfg = methods.get("ggt").Config(window=r, beta1=beta1, beta2=beta2, eps=eps)
    U, _ = _feed("ggt", cfg, G)
    m = torch.zeros(d, dtype=torch.float64)
    for t in range(T):
        m = beta1 * m + (1 - beta1) * G[t] if beta1 > 0 else G[t]
        rows = torch.stack([beta2**i * G[t - i] for i in range(min(r, t + 1))])
        want = _dd_ggt(rows, m, eps)
        # the d×d root and the r×r Gram resolve eigenvalues to ~ε_mach·λ_1 in different places; both are
        # then divided by ≥ ε ≥ 1e-3, so agreement to 1e-9 relative (spec measured 6e-13)
        torch.testing.assert_close(U[t], want, rtol=1e-9, atol=1e-9 * float(want.abs().max() + 1))


def test_ggt_full_window_no_decay_is_full_matrix_adagrad_delta_outside():
    """§D3 reduction: r ≥ T, β2 = 1, β1 = 0 ⇒ u_t = (δI + G_t^{1/2})^{−1}g_t with δ = ε (adagrad_full, outside)."""
    G = _grads(8, (5,), 3)
    a, _ = _feed("ggt", methods.get("ggt").Config(window=8, beta1=0.0, beta2=1.0, eps=0.1), G)
    b, _ = _feed("adagrad_full", methods.get("adagrad_full").Config(delta=0.1, delta_mode="outside"), G)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)  # two eigh routes, float64 round-off ~1e-14


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 8), m=st.integers(1, 6), T=st.integers(1, 14), seed=st.integers(0, 50))
def test_mfac_dynamic_inverse_equals_brute_force(d, m, T, seed):
    """u_t = solve(λI + (1/m)Σ_ring g gᵀ, g_t) with the window of the last min(t, m) gradients (divided by m)."""
    damp = 0.3
    G = _grads(T, (d,), seed)
    U, _ = _feed("mfac", methods.get("mfac").Config(window=m, damp=damp), G)
    for t in range(T):
        W = G[max(0, t - m + 1) : t + 1]
        F = damp * torch.eye(d, dtype=torch.float64) + W.T @ W / m
        want = torch.linalg.solve(F, G[t])
        # cond(F) ≤ 1 + ‖g‖²/(mλ) ≲ 1e2 here; Cholesky + m eliminations in float64: ≪ 1e-10 relative
        torch.testing.assert_close(U[t], want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))


def test_mfac_window_one_closed_form_and_ring_permutation():
    """m = 1: F̂^{−1} = λ^{−1}(I − ggᵀ/(λ + ‖g‖²)); permuting ring rows leaves F̂^{−1}x unchanged."""
    g = _grads(1, (6,), 1)[0]
    u, _ = _feed("mfac", methods.get("mfac").Config(window=1, damp=0.7), g[None])
    want = (g - g * (g @ g) / (0.7 + g @ g)) / 0.7
    torch.testing.assert_close(u[0], want, rtol=1e-13, atol=1e-13)
    Gm = _grads(5, (9,), 2)
    x = _grads(1, (9,), 3)[0]
    outs = []
    for perm in (torch.arange(5), torch.tensor([3, 0, 4, 1, 2])):
        Gp = Gm[perm]
        D, B, den = woodbury_setup(Gp @ Gp.T, 0.2)
        outs.append(x / 0.2 - woodbury_coefficients(Gp @ x, D, B, den, 0.2) @ Gp)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-11, atol=1e-11 * float(outs[0].abs().max()))


def test_smfac_density_one_is_dense_mfac():
    """density 1 ⇒ e ≡ 0 and S-MFAC ≡ M-FAC (μ = 0, wd = 0, lr = 1)."""
    G = _grads(9, (3, 4), 4)
    a, st_ = _feed("ef_mfac", methods.get("ef_mfac").Config(window=4, damp=0.3, density=1.0, lr=1.0), G)
    b, _ = _feed("mfac", methods.get("mfac").Config(window=4, damp=0.3), G)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))
    assert torch.equal(st_.ring.e, torch.zeros(12, dtype=torch.float64))


@pytest.mark.parametrize("density", [0.1, 0.3])
def test_smfac_sparse_ihvp_equals_dense_ihvp_of_densified_window_and_ef_identity(density):
    """The direction is lr·solve(λI + CᵀC/m, c_t) with C the densified window; Σ_t c_t = Σ_t g_t − e (T ≤ m)."""
    T, d, m, damp, lr = 6, 20, 8, 0.2, 0.5
    G = _grads(T, (d,), 5)
    cfg = methods.get("ef_mfac").Config(window=m, damp=damp, density=density, lr=lr)
    mod = methods.get("ef_mfac")
    st_ = mod.init((d,), cfg)
    for t in range(T):
        u, st_ = mod.update(G[t], st_, cfg)
        C = densify(st_.ring.values, st_.ring.indices.long(), d)
        c_t = C[t]
        assert int((c_t != 0).sum()) <= int(density * d)
        want = lr * torch.linalg.solve(damp * torch.eye(d, dtype=torch.float64) + C.T @ C / m, c_t)
        torch.testing.assert_close(u, want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))
    torch.testing.assert_close(C.sum(0), G.sum(0) - st_.ring.e, rtol=0, atol=1e-12)  # 6 additions' round-off


def test_ef_ggt_density_one_is_ggt():
    G = _grads(7, (6,), 6)
    a, _ = _feed("ef_ggt", methods.get("ef_ggt").Config(window=3, density=1.0, eps=0.05), G)
    b, _ = _feed("ggt", methods.get("ggt").Config(window=3, beta1=0.0, beta2=1.0, eps=0.05), G)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * float(b.abs().max()))


def test_ef_ggt_sparse_equals_d_by_d_on_compressed_window():
    G = _grads(5, (12,), 7)
    cfg = methods.get("ef_ggt").Config(window=3, density=0.25, eps=0.05)
    mod = methods.get("ef_ggt")
    st_ = mod.init((12,), cfg)
    for t in range(5):
        u, st_ = mod.update(G[t], st_, cfg)
        C = densify(st_.ring.values, st_.ring.indices.long(), 12)
        c_t = C[t % 3]
        want = _dd_ggt(C, c_t, 0.05)
        torch.testing.assert_close(u, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))


# ---- bad input (issue item 9) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, field, value, match",
    [
        ("ef_mfac", "density", 0.0, r"density must be in \(0.0, 1.0\]"),
        ("ef_mfac", "density", 1.01, r"density must be in \(0.0, 1.0\]"),
        ("ef_ggt", "density", -0.5, r"density must be in \(0.0, 1.0\]"),
        ("ggt", "window", 0, "window must be >= 1"),
        ("mfac", "window", -1, "window must be >= 1"),
        ("ef_mfac", "window", 0, "window must be >= 1"),
        ("mfac", "damp", 0.0, r"damp must be in \(0.0, inf\]"),
        ("ef_mfac", "damp", -1e-3, r"damp must be in \(0.0, inf\]"),
        ("ggt", "eps", 0.0, r"eps must be in \(0.0, inf\]"),
        ("ef_mfac", "wd_mode", "l2", "wd_mode must be one of"),
    ],
)
def test_bad_config_is_refused_naming_the_argument(name, field, value, match):
    with pytest.raises(ValueError, match=match):
        methods.get(name).Config(**{field: value})


@pytest.mark.parametrize("name", ["ggt", "mfac", "ef_mfac", "ef_ggt"])
@pytest.mark.parametrize("bad", ["sparse", "nan"])
def test_bad_gradient_is_refused_and_state_unchanged(name, bad):
    from tests.theory.cases import CASES

    mod, cfg = methods.get(name), CASES[name].config
    w = torch.zeros(6, dtype=torch.float64)
    st_ = mod.init((6,), cfg)
    _, st_ = mod.update(_grads(1, (6,), 0)[0], st_, cfg, param=w)
    before = _clone(st_)
    g = _grads(1, (6,), 1)[0]
    if bad == "sparse":
        g = g.to_sparse()
        match = "dense tensor"
    else:
        g[2] = float("nan")
        match = "grad must be finite"
    with pytest.raises(ValueError, match=match):
        mod.update(g, st_, cfg, param=w)
    _assert_same(st_, before)


# ---- SMMF (§D6) --------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from([(6,), (3, 4), (2, 3, 4), (12, 5), (1,), (7,)]),
    T=st.integers(1, 8),
    gamma=st.sampled_from([-0.5, -0.8, -1.0]),
    seed=st.integers(0, 50),
)
def test_smmf_second_moment_is_factored_estimate_of_dense_ema(shape, T, gamma, seed):
    """r_Vc_Vᵀ after step t = (V1)(1ᵀV)/(1ᵀV1) with V the dense β2,t-EMA of Ĝ² on the square matricization
    (Adafactor's V̂ with ε1 = 0; derivation in memopt_theory.methods.smmf)."""
    from memopt_theory.factorization import square_shape

    mod = methods.get("smmf")
    cfg = mod.Config(decay_rate=gamma)
    G = _grads(T, shape, seed)
    n, m = square_shape(G[0].numel())
    st_ = mod.init(shape, cfg)
    V = torch.zeros(n, m, dtype=torch.float64)
    for t in range(1, T + 1):
        _, st_ = mod.update(G[t - 1], st_, cfg)
        b2 = 1 - t**gamma
        V = b2 * V + (1 - b2) * G[t - 1].reshape(n, m) ** 2
        want = torch.outer(V.sum(1), V.sum(0)) / V.sum()
        # row/column sums carried through t steps: relative round-off ~ t·(n + m)·ε_mach ≪ 1e-12
        torch.testing.assert_close(
            torch.outer(st_.r_V, st_.c_V), want, rtol=1e-12, atol=1e-14 * float(V.sum())
        )


def test_smmf_first_step_oracle():
    """Step 1, wd = 0: θ_2 = θ_1 − η(1−β1)Ĝ/(|Ĝ| + ε) (β2,1 = 0, so V = Ĝ²; M = (1−β1)Ĝ)."""
    mod = methods.get("smmf")
    cfg = mod.Config(lr=0.3, beta1=0.9, eps=1e-3)
    g = _grads(1, (4, 6), 0)[0]
    step, _ = mod.update(g, mod.init((4, 6), cfg), cfg)
    torch.testing.assert_close(step, 0.3 * 0.1 * g / (g.abs() + 1e-3), rtol=1e-14, atol=0)


def test_smmf_prime_size_is_dense_adam_without_bias_correction():
    """N prime ⇒ (N, 1), NNMF exact: M_t = β1,tM_{t−1} + (1−β1,t)g, V_t = β2,tV_{t−1} + (1−β2,t)g², step
    η·M/(√V + ε) (decoupled decay η·wd·θ)."""
    mod = methods.get("smmf")
    cfg = mod.Config(lr=0.05, beta1=0.8, eps=1e-6, weight_decay=0.1, decay_rate=-0.8, growth_rate=0.9)
    G = _grads(10, (13,), 1)
    w = _grads(1, (13,), 2)[0]
    st_ = mod.init((13,), cfg)
    M = torch.zeros(13, dtype=torch.float64)
    V = torch.zeros(13, dtype=torch.float64)
    for t in range(1, 11):
        step, st_ = mod.update(G[t - 1], st_, cfg, param=w)
        b1, b2 = 0.8 * 0.9 ** (t - 1), 1 - t**-0.8
        M = b1 * M + (1 - b1) * G[t - 1]
        V = b2 * V + (1 - b2) * G[t - 1] ** 2
        torch.testing.assert_close(
            step, 0.05 * M / (V.sqrt() + 1e-6) + 0.05 * 0.1 * w, rtol=1e-12, atol=1e-15
        )
        w = w - step


def test_smmf_adagrad_reduction():
    """γ = −1, β1 = 0, ε = 0, step η/√t ⇒ diagonal AdaGrad with step η: V_t = (1/t)Σg², so
    (η/√t)·g/√V_t = η·g/√(Σg²)."""
    mod = methods.get("smmf")
    cfg = mod.Config(lr=1.0, beta1=0.0, eps=0.0, decay_rate=-1.0)
    G = _grads(6, (11,), 3)
    a, _ = _feed("smmf", cfg, G)
    b, _ = _feed("adagrad_diag", methods.get("adagrad_diag").Config(), G)
    scale = torch.arange(1, 7, dtype=torch.float64).rsqrt().unsqueeze(-1)
    torch.testing.assert_close(scale * a, b, rtol=1e-12, atol=1e-14)


def test_smmf_sign_is_packed_bits():
    mod = methods.get("smmf")
    cfg = mod.Config()
    st_ = mod.init((256, 128, 3, 3), cfg)
    assert st_.r_V.shape == (576,) and st_.c_V.shape == (512,) and st_.sign.dtype == torch.uint8
    assert st_.sign.numel() == 256 * 128 * 9 // 8


# ---- LDAdam (§D7) ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 6), (6, 4)])
def test_ldadam_identity_basis_is_adamw(shape):
    """r = min(n, c) with P ≡ I ⇒ AdamW (C = I makes steps 5–7 identities and e ≡ 0). Not bitwise: step 7
    computes b2·(v/b2), a relative round-off of 1e-16 per step."""
    lda, adam = methods.get("ldadam"), methods.get("adam")
    kw = dict(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.01)
    c1 = lda.Config(rank=min(shape), projection="identity", rho=0.5, **kw)
    c2 = adam.Config(**kw)
    G = _grads(8, shape, 4)
    w1 = w2 = _grads(1, shape, 5)[0]
    s1, s2 = lda.init(shape, c1), adam.init(shape, c2)
    for g in G:
        u1, s1 = lda.update(g, s1, c1, param=w1)
        u2, s2 = adam.update(g, s2, c2, param=w2)
        torch.testing.assert_close(u1, u2, rtol=1e-12, atol=1e-14)
        w1, w2 = w1 - u1, w2 - u2
        assert float(s1.e.abs().max()) == 0.0


def test_ldadam_full_rank_rotated_basis_keeps_first_moment_but_not_adam():
    """r = n, power-iteration basis (orthogonal, not I): e ≡ 0 and P_km_k = Adam's m_k, yet the steps differ
    from Adam's (v is not rotation-equivariant)."""
    lda = methods.get("ldadam")
    cfg = lda.Config(lr=0.1, rank=4, rho=0.5)
    G = _grads(8, (4, 6), 6)
    s = lda.init((4, 6), cfg)
    m = torch.zeros(4, 6, dtype=torch.float64)
    a_st = methods.get("adam").init((4, 6), methods.get("adam").Config(beta1=0.908, beta2=0.99))
    differs = []
    for g in G:
        u, s = lda.update(g, s, cfg)
        ua, a_st = methods.get("adam").update(
            g, a_st, methods.get("adam").Config(lr=0.1, beta1=0.908, beta2=0.99)
        )
        m = 0.908 * m + 0.092 * g
        assert not torch.allclose(s.P.abs(), torch.eye(4, dtype=torch.float64))  # the basis really rotates
        torch.testing.assert_close(s.P @ s.m, m, rtol=1e-10, atol=1e-12)  # 8 QRs of round-off
        assert float(s.e.abs().max()) < 1e-12 * float(g.abs().max())
        differs.append(float((u - ua).abs().max()) / float(ua.abs().max()))
    assert max(differs) > 1e-3  # not Adam: far beyond round-off


def test_ldadam_error_feedback_identity_and_nonnegative_v():
    """e_{k+1} = (I − P_kP_kᵀ)(a_k + (β1/(1−β1))P_{k−1}m_{k−1}), a_k = g_k + e_k; ṽ ≥ 0 so v ≥ 0."""
    lda = methods.get("ldadam")
    cfg = lda.Config(rank=2)
    G = _grads(10, (6, 5), 7)  # n > c: right projection, all in the transposed frame
    s = lda.init((6, 5), cfg)
    for k, g in enumerate(G):
        prev = s
        _, s = lda.update(g, s, cfg)
        a = g.T + prev.e
        inner = a + (0.908 / 0.092) * (prev.P @ prev.m) if k > 0 else a
        want = inner - s.P @ (s.P.T @ inner)
        torch.testing.assert_close(s.e, want, rtol=1e-10, atol=1e-12 * float(inner.abs().max()))
        assert float(s.v.min()) >= 0


def test_ldadam_late_first_gradient_and_bad_rank():
    """A parameter that first gets a gradient late starts its own k = 0; rank > min(n, c) is refused."""
    lda = methods.get("ldadam")
    with pytest.raises(ValueError, match=r"rank must be <= min\(n, c\) = 3"):
        lda.init((3, 8), lda.Config(rank=4))
    with pytest.raises(ValueError, match="rank must be >= 1"):
        lda.Config(rank=0)
    s = lda.init((3, 8), lda.Config(rank=2))
    u, s = lda.update(_grads(1, (3, 8), 0)[0], s, lda.Config(rank=2))
    assert torch.isfinite(u).all() and float(s.t) == 1.0


@pytest.mark.parametrize("name", ["smmf", "ldadam"])
def test_full_step_bad_gradient_state_unchanged(name):
    from tests.theory.cases import CASES

    mod, case = methods.get(name), CASES[name]
    w = torch.zeros(case.shape, dtype=torch.float64)
    st_ = mod.init(case.shape, case.config)
    _, st_ = mod.update(_grads(1, case.shape, 0)[0], st_, case.config, param=w)
    before = _clone(st_)
    for g in (
        _grads(1, case.shape, 1)[0].to_sparse(),
        torch.full(case.shape, float("inf"), dtype=torch.float64),
    ):
        with pytest.raises(ValueError, match="dense tensor|grad must be finite"):
            mod.update(g, st_, case.config, param=w)
        _assert_same(st_, before)


# ---- low-rank EFCP (LR-MFAC, §D5) --------------------------------------------------------------------


def _lowrank_window(ring):
    """The dense window rows P_jQ_jᵀ, flattened: (m, N)."""
    return (ring.P @ ring.Q.transpose(-1, -2)).reshape(ring.P.shape[0], -1)


@pytest.mark.parametrize("shape, rank", [((6, 5), 2), ((4, 3, 2), 1), ((7,), 3)])
def test_lr_mfac_equals_brute_force_on_its_window_and_ef_identity(shape, rank):
    """Direction = lr·solve(λI + CᵀC/m, c_t) with C the low-rank rows P_jQ_jᵀ; Σc = Σg − e (T ≤ m);
    a 1-D tensor (rows × rest = (1, N)) is compressed exactly, so e = 0."""
    T, m, damp, lr = 5, 6, 0.4, 0.3
    G = _grads(T, shape, 8)
    mod = methods.get("ef_mfac")
    cfg = mod.Config(window=m, damp=damp, lr=lr, compressor="lowrank", rank=rank)
    st_ = mod.init(shape, cfg)
    n = G[0].numel()
    for t in range(T):
        u, st_ = mod.update(G[t], st_, cfg)
        C = _lowrank_window(st_.ring)
        want = lr * torch.linalg.solve(damp * torch.eye(n, dtype=torch.float64) + C.T @ C / m, C[t])
        torch.testing.assert_close(u.reshape(-1), want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))
        assert int(torch.linalg.matrix_rank(C[t].reshape(st_.ring.e.shape))) <= rank
    e = st_.ring.e.reshape(-1)
    torch.testing.assert_close(C.sum(0), G.reshape(T, -1).sum(0) - e, rtol=0, atol=1e-12)
    if len(shape) == 1:
        assert float(e.abs().max()) < 1e-13


def test_lowrank_ef_ggt_equals_d_by_d_and_batch_equals_loop():
    mod = methods.get("ef_ggt")
    cfg = mod.Config(window=3, compressor="lowrank", rank=1, eps=0.05)
    G = _grads(5, (2, 4, 3), 9)  # seeds × (4, 3)
    st_ = mod.init((4, 3), cfg, batch=(2,))
    singles = [mod.init((4, 3), cfg) for _ in range(2)]
    for t in range(5):
        u, st_ = mod.update(G[t], st_, cfg)
        for i in range(2):
            ui, singles[i] = mod.update(G[t, i], singles[i], cfg)
            torch.testing.assert_close(u[i], ui, rtol=1e-10, atol=1e-12)  # batched BLAS order only
        C = _lowrank_window(type(st_.ring)(*(x[0] for x in st_.ring)))
        want = _dd_ggt(C, C[t % 3], 0.05)
        torch.testing.assert_close(u[0].reshape(-1), want, rtol=1e-9, atol=1e-9 * float(want.abs().max()))


def test_lowrank_rank_above_min_dimension_is_refused():
    mod = methods.get("ef_mfac")
    with pytest.raises(ValueError, match=r"rank must be <= min\(rows, rest\) = 3"):
        mod.init((3, 8), mod.Config(compressor="lowrank", rank=4))
    with pytest.raises(ValueError, match="compressor must be one of 'topk', 'lowrank'"):
        mod.Config(compressor="svd")


@pytest.mark.parametrize("mode", ["wd", "reg", "both"])
def test_smfac_weight_decay_modes_and_heavy_ball_by_hand(mode):
    """m = 1, density 1: F̂^{−1}c = λ^{−1}(c − c(cᵀc)/(λ + ‖c‖²)); 'reg'/'both' add (wd/λ)w to u; heavy ball
    v = μv + u; the step is lr·v, plus wd·w (no lr) in modes 'wd'/'both' (§D5 steps 4–6)."""
    lam, wd, mu, lr = 0.5, 0.1, 0.7, 0.2
    mod = methods.get("ef_mfac")
    cfg = mod.Config(window=1, damp=lam, density=1.0, momentum=mu, lr=lr, weight_decay=wd, wd_mode=mode)
    G = _grads(3, (5,), 10)
    w = _grads(1, (5,), 11)[0]
    st_ = mod.init((5,), cfg)
    v = torch.zeros(5, dtype=torch.float64)
    for g in G:
        step, st_ = mod.update(g, st_, cfg, param=w)
        u = (g - g * (g @ g) / (lam + g @ g)) / lam
        if mode in ("reg", "both"):
            u = u + (wd / lam) * w
        v = mu * v + u
        want = lr * v + (wd * w if mode in ("wd", "both") else 0)
        torch.testing.assert_close(step, want, rtol=1e-12, atol=1e-14)
        w = w - step


# ---- GaLore (§D8, reference point) -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (3, 5)])
def test_galore_identity_projection_is_adam_hat(shape):
    """G_0 diagonal with decreasing entries ⇒ P_0 = I up to signs; rank = min(a, b), T_gap beyond the run ⇒
    back() undoes the signs and GaLore = Adam ('hat' ε) with lr ηα (wd = 0)."""
    gal, adam = methods.get("galore"), methods.get("adam")
    r = min(shape)
    c1 = gal.Config(lr=0.2, rank=r, update_proj_gap=1000, scale=0.25, eps=1e-6)
    c2 = adam.Config(lr=0.05, beta1=0.9, beta2=0.999, eps=1e-6, eps_mode="hat")
    G = _grads(6, shape, 12)
    G[0] = torch.zeros(shape, dtype=torch.float64)
    for i in range(r):
        G[0, i, i] = 3.0 - i
    s1, s2 = gal.init(shape, c1), adam.init(shape, c2)
    for g in G:
        u1, s1 = gal.update(g, s1, c1)
        u2, s2 = adam.update(g, s2, c2)
        torch.testing.assert_close(u1, u2, rtol=1e-12, atol=1e-14)  # products with ±1 entries: round-off only


def test_galore_refreshes_projection_every_gap_and_decays_updated_weights():
    """P is the SVD basis of the gradient at steps 0, T_gap, 2T_gap, … and constant in between; the decay acts on
    the updated W: step = s + η·wd·(W − s) with s the undecayed step."""
    gal = methods.get("galore")
    cfg = gal.Config(lr=0.1, rank=2, update_proj_gap=3)
    cfg_wd = gal.Config(lr=0.1, rank=2, update_proj_gap=3, weight_decay=0.3)
    G = _grads(7, (6, 4), 13)
    w = _grads(1, (6, 4), 14)[0]
    s, s_wd = gal.init((6, 4), cfg), gal.init((6, 4), cfg_wd)
    for t, g in enumerate(G):
        prev = s.P
        u, s = gal.update(g, s, cfg)
        u_wd, s_wd = gal.update(g, s_wd, cfg_wd, param=w)
        if t % 3 == 0:
            Vh = torch.linalg.svd(g, full_matrices=False).Vh[:2]
            torch.testing.assert_close(
                s.P.T @ s.P, Vh.T @ Vh, rtol=0, atol=1e-12
            )  # same row space (signs vary)
        else:
            assert torch.equal(s.P, prev)
        torch.testing.assert_close(u_wd, u + 0.1 * 0.3 * (w - u), rtol=1e-13, atol=1e-15)


# ---- MicroAdam (§D8, reference point) ----------------------------------------------------------------


def test_microadam_density_one_within_window_is_adam():
    """density 1, t ≤ m ⇒ e ≡ 0 and MicroAdam = Adam (standard ε, decoupled decay), derivation in the module."""
    micro, adam = methods.get("microadam"), methods.get("adam")
    kw = dict(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.01)
    c1, c2 = micro.Config(window=8, density=1.0, quant_block=3, topk_block=4, **kw), adam.Config(**kw)
    G = _grads(8, (3, 5), 15)
    w1 = w2 = _grads(1, (3, 5), 16)[0]
    s1, s2 = micro.init((3, 5), c1), adam.init((3, 5), c2)
    for g in G:
        u1, s1 = micro.update(g, s1, c1, param=w1)
        u2, s2 = adam.update(g, s2, c2, param=w2)
        # the window sums Σβ^{age}g_s in another order than Adam's recursion: ~t·ε_mach relative
        torch.testing.assert_close(u1, u2, rtol=1e-12, atol=1e-14)
        w1, w2 = w1 - u1, w2 - u2
        assert torch.equal(s1.lo, torch.zeros_like(s1.lo)) and torch.equal(s1.hi, torch.zeros_like(s1.hi))


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 30), block=st.integers(1, 12), seed=st.integers(0, 100), const=st.booleans())
def test_four_bit_quantiser_error_at_most_half_a_step(N, block, seed, const):
    """|x − x̂| ≤ u/2, u = (max − min)/15 per block; constant blocks are exact (§D1)."""
    from memopt_theory.compressors import dequantize4, quantize4

    x = _grads(1, (2, N), seed)[0] if not const else torch.full((2, N), 1.5, dtype=torch.float64)
    codes, lo, hi = quantize4(x, block)
    assert codes.dtype == torch.uint8 and codes.shape == (2, (N + 1) // 2)
    xh = dequantize4(codes, lo, hi, N, block)
    u = ((hi - lo) / 15).repeat_interleave(block, -1)[..., :N]
    # one rounding in (x − min)/u and one in q·u + min: 4 ulps of the block's magnitude
    assert bool(((x - xh).abs() <= u / 2 + 4e-16 * (x.abs() + 1)).all())
    if const:
        assert torch.equal(xh, x)


def test_microadam_error_is_the_quantised_remainder():
    """After a step, Q^{−1}(e) = Q^{−1}(Q(a with its block top-k zeroed)): the kept entries are exactly those in
    the newest ring row; with t ≤ m, Σ rows + Q^{−1}(e) recovers Σg up to the quantisation errors (≤ u/2 each)."""
    from memopt_theory.compressors import dequantize4

    micro = methods.get("microadam")
    cfg = micro.Config(window=5, density=0.25, quant_block=4, topk_block=8)
    G = _grads(4, (16,), 17)
    s = micro.init((16,), cfg)
    slack = 0.0
    for g in G:
        s = micro.update(g, s, cfg)[1]
        slack += float(((s.hi - s.lo) / 30).max())  # u/2 of the worst block, per step
    # two top-k blocks of 8 with k_b = ⌊0.25·8⌋ = 2: block-relative indices of the second block are offset by 8
    offset = torch.tensor([0, 0, 8, 8])
    dense = torch.zeros(5, 16, dtype=torch.float64).scatter(-1, s.indices.long() + offset, s.values)
    e = dequantize4(s.codes, s.lo, s.hi, 16, 4)
    assert float((dense.sum(0) + e - G.sum(0)).abs().max()) <= slack + 1e-12
