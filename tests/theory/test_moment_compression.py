"""Adam-type methods with compressed optimiser states against their oracles (docs/theory/compressed.md §D6–D8):
SMMF (factored moments, packed signs), LDAdam (moving low-rank basis), GaLore and MicroAdam (reference points)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memopt_theory import methods
from tests.theory.test_battery import _assert_same, _clone
from tests.theory.test_compressed_methods import _feed, _grads

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
    """A parameter that first gets a gradient late starts its own k = 0; rank < 1 is refused (a rank above
    min(n, c) is used as min(n, c): tests/theory/test_method_defaults.py)."""
    lda = methods.get("ldadam")
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


def test_smmf_second_moment_equals_adafactor_implementation():
    """Cross-implementation: engineer D's ``adafactor`` (ε1 = 0, same β̂2t = 1 − t^γ) run on the square-matricized
    gradients keeps row/column statistics R, C with V̂ = RCᵀ/(1ᵀR); SMMF's r_Vc_Vᵀ must equal it (§D6 oracle)."""
    from memopt_theory.factorization import square_shape

    smmf, ada = methods.get("smmf"), methods.get("adafactor")
    shape = (4, 3, 5)
    n, m = square_shape(60)
    c1, c2 = smmf.Config(decay_rate=-0.8), ada.Config(eps1=0.0, decay_rate=-0.8)
    s1, s2 = smmf.init(shape, c1), ada.init((n, m), c2)
    w = torch.zeros(n, m, dtype=torch.float64)
    for g in _grads(6, shape, 18):
        _, s1 = smmf.update(g, s1, c1)
        step, s2 = ada.update(g.reshape(n, m), s2, c2, param=w)
        w = w - step
        V_hat = torch.outer(s2.R, s2.C) / s2.R.sum()
        # both are row/column-sum EMAs of Ĝ² in float64: agreement to round-off
        torch.testing.assert_close(torch.outer(s1.r_V, s1.c_V), V_hat, rtol=1e-12, atol=1e-15)
