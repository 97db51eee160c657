"""EF-compressed learners (ef_ggt, ef_mfac) in the OCO simulator (issue 6, item 7).

The regret figures at 90 %/99 % sparsity and low rank are printed by benchmarks/compressed_regret.py; no theorem
bounds them (§D5: none beyond D2), so the tests check what is exact: density 1 reproduces the dense learner's
trajectory, every compressed learner yields a certified regret interval, and the simulator's memory is the
method's closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memopt_theory import methods
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.streams import make_stream

SHAPE = (3, 3)


@pytest.fixture(scope="module")
def stream():
    data, _ = make_stream("power_law", shape=SHAPE, T=40, seeds=2, problem="least_squares")
    # from t = N = 9 on F_t is strongly convex on R^9 and the comparator is certified (earlier: refused)
    ck = np.array([12, 20, 40])
    comp = simulate.comparator_bounds("least_squares", data, make_domain("unconstrained", SHAPE), ck)
    return data, ck, comp


def _run(name, cfg, eta, stream):
    data, ck, comp = stream
    L = Learner(name, cfg, eta=eta, domain=make_domain("unconstrained", SHAPE))
    return simulate.run(L, "least_squares", data, checkpoints=ck, comparator=comp)


def test_density_one_reproduces_the_dense_learners(stream):
    """density 1 ⇒ e ≡ 0: ef_ggt ≡ ggt (β1 = 0, β2 = 1) and ef_mfac (lr = η, μ = 0) ≡ mfac with step η; the
    cumulative losses agree to the round-off of the two (identical) linear-algebra routes, 1e-9 relative."""
    pairs = [
        (
            ("ggt", methods.get("ggt").Config(window=4, beta1=0.0, beta2=1.0, eps=1e-2), 0.1),
            ("ef_ggt", methods.get("ef_ggt").Config(window=4, density=1.0, eps=1e-2), 0.1),
        ),
        (
            ("mfac", methods.get("mfac").Config(window=4, damp=1.0), 0.2),
            ("ef_mfac", methods.get("ef_mfac").Config(window=4, damp=1.0, density=1.0, lr=0.2), 1.0),
        ),
    ]
    for dense, compressed in pairs:
        a, b = _run(*dense, stream), _run(*compressed, stream)
        np.testing.assert_allclose(b.cum_loss, a.cum_loss, rtol=1e-9)


@pytest.mark.parametrize(
    "name, variant",
    [
        ("ef_ggt", {"density": 0.1}),
        ("ef_ggt", {"density": 0.01}),
        ("ef_ggt", {"compressor": "lowrank", "rank": 1}),
        ("ef_mfac", {"density": 0.1}),
        ("ef_mfac", {"density": 0.01}),
        ("ef_mfac", {"compressor": "lowrank", "rank": 2}),
    ],
)
def test_compressed_learners_give_certified_regret_and_counted_memory(name, variant, stream):
    m = methods.get(name)
    cfg = m.Config(window=4, **({"damp": 1.0, "lr": 0.2} if name == "ef_mfac" else {"eps": 1e-2}), **variant)
    eta = 0.1 if name == "ef_ggt" else 1.0
    tr = _run(name, cfg, eta, stream)
    # replay: the learner's play by hand (x_1 = 0; x_{t+1} = x_t − η·u_t, or x_t − u_t for a full-step method,
    # u_t = the method's direction after absorbing g_t = a_t(⟨a_t, x_t⟩ − y_t)), loss ½(⟨a_t, x_t⟩ − y_t)²
    # summed; the simulator's cumulative loss must equal it at every checkpoint (same arithmetic, 1e-12)
    data, ck, (value, lower) = stream
    x = torch.zeros(2, *SHAPE, dtype=torch.float64)
    st = m.init(SHAPE, cfg, batch=(2,))
    cum, want = torch.zeros(2, dtype=torch.float64), []
    for t in range(int(ck[-1])):
        r = (data.a[t] * x).sum((-1, -2)) - data.y[t]
        cum = cum + 0.5 * r**2
        u, st = m.update(data.a[t] * r[:, None, None], st, cfg, param=x)
        x = x - (u if m.full_step else eta * u)
        if t + 1 in ck:
            want.append(cum.numpy().copy())
    np.testing.assert_allclose(tr.cum_loss, np.stack(want), rtol=1e-12)
    np.testing.assert_allclose(tr.regret_upper, np.stack(want) - lower, rtol=1e-12)
    assert (tr.regret_lower <= tr.regret_upper).all() and (tr.comparator_gap >= 0).all()
    assert tr.memory_scalars == m.memory(SHAPE, cfg) and tr.memory_bits == m.bits(SHAPE, cfg)


def test_benchmark_digits_matrix_stream_keeps_the_losses():
    """The benchmark's 8×8 digits stream: ⟨a_t, X⟩_F on the reshaped rows = the vector stream's loss without
    the bias coordinate (Frobenius product of a reshape = dot product)."""
    from benchmarks.compressed_regret import digits_matrix_stream

    dig = digits_matrix_stream(30, 2, "cpu")
    vec, _ = make_stream("digits", shape=None, T=30, seeds=2, problem="least_squares")
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p_mat = (dig.a * x.reshape(2, 8, 8)).sum((-1, -2))
    p_vec = (vec.a[..., :64] * x).sum(-1)
    torch.testing.assert_close(p_mat, p_vec, rtol=1e-14, atol=1e-14)
    assert torch.equal(dig.y, vec.y)
