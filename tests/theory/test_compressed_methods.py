"""GGT, M-FAC and EFCP against brute-force float64 linear algebra (docs/theory/compressed.md §D3–D5); bad input (item 9).

SMMF, LDAdam, GaLore and MicroAdam: tests/theory/test_moment_compression.py."""

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


@pytest.mark.parametrize("m", [1, 2, 7])
def test_mfac_setup_rows_are_the_explicit_recursion(m):
    """Rows of B: H_{i−1}g_i = Σ_j B_ij g_j with H_0 = λ^{−1}I, H_i = H_{i−1} − (H_{i−1}g_i)(H_{i−1}g_i)ᵀ/(m + g_iᵀH_{i−1}g_i)
    built as explicit d×d matrices (§D4 oracle); D_ij = g_iᵀH_{i−1}g_j (i ≤ j), den_i = m + D_ii; and the IHVP
    coefficients give H_m x. Float64, m ≤ 7 rank-one updates of a well-conditioned H: 1e-12 relative."""
    d, lam = 5, 0.4
    Gm = _grads(m, (d,), 21)
    x = _grads(1, (d,), 22)[0]
    D, B, den = woodbury_setup(Gm @ Gm.T, lam)
    H = torch.eye(d, dtype=torch.float64) / lam
    for i in range(m):
        Hg = H @ Gm[i]
        torch.testing.assert_close(B[i] @ Gm, Hg, rtol=1e-12, atol=1e-12 * float(Hg.abs().max()))
        torch.testing.assert_close(D[i, i:], Gm[i:] @ Hg, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(den[i], m + Gm[i] @ Hg, rtol=1e-12, atol=0)
        H = H - torch.outer(Hg, Hg) / (m + Gm[i] @ Hg)
    assert torch.equal(torch.triu(B, diagonal=1), torch.zeros_like(B))
    got = x / lam - woodbury_coefficients(Gm @ x, D, B, den, lam) @ Gm
    torch.testing.assert_close(got, H @ x, rtol=1e-12, atol=1e-12 * float((H @ x).abs().max()))


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


def test_sparse_window_saving_is_real_bytes():
    """Counted from the tensors of float32 states (N = 10⁴, m = 16): the dense M-FAC window holds 4mN bytes, the
    1 %-density EF-M-FAC window mk fp32 values + mk int32 indices = 8mk = 8m(N/100) bytes: exactly 50× less."""
    from memopt_theory.memory import state_bytes

    mf, ef = methods.get("mfac"), methods.get("ef_mfac")
    g = _grads(1, (100, 100), 19)[0].float()
    dense = mf.update(
        g, mf.init((100, 100), mf.Config(window=16), dtype=torch.float32), mf.Config(window=16)
    )[1]
    cfg = ef.Config(window=16, density=0.01)
    sparse = ef.update(g, ef.init((100, 100), cfg, dtype=torch.float32), cfg)[1]
    window = state_bytes((sparse.ring.values, sparse.ring.indices))
    assert sparse.ring.indices.dtype == torch.int32 and state_bytes(dense.G) == 4 * 16 * 10_000
    assert state_bytes(dense.G) == 50 * window
