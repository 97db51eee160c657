"""simulate.run's bound bookkeeping: Σ g gᵀ is accumulated in bulk (one GEMM per checkpoint or per held
chunk), Σ g² only where a bound reads it. The traces' bounds must equal the theorems' bounds evaluated on the
brute-force float64 sums of the gradients the learner actually received (re-derived here from its iterates)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memopt_theory import bounds
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import get_problem
from online_convex.streams import make_stream


def _gradients(L, prob, data):
    """g_1..g_T of one closed-loop run (T, B, N), replayed step by step with the same learner."""
    B, S = data.batch, data.shape
    st, L = L.init(S, B), L.resolve(prob, data)
    x, out = L.initial_point(B), []
    for s in range(data.T):
        g = prob.grad(x, data.a[s], data.y[s])
        out.append(g.reshape(*B, -1))
        x, st = L.step(g, x, st)
    return torch.stack(out), L


@pytest.mark.parametrize("cap_rounds", [None, 3])  # None: the default chunking; 3: a flush every 3 rounds too
@pytest.mark.parametrize("method", ["adagrad_full", "adagrad_diag"])
def test_bounds_equal_brute_force_sums(method, cap_rounds, monkeypatch):
    """d = 6, T = 40, 2 seeds, logistic losses on the unit ball: trace.bound at each checkpoint t equals
    √2·D·tr(Σ_{s≤t} g gᵀ)^{1/2} (adagrad_full) or √2·D_∞·Σ_i ‖g_{1:t,i}‖ (adagrad_diag) from np.einsum sums;
    only the order of the float64 additions differs. Σ g² has no cancellation: 1e-12 relative. Σ g gᵀ is
    singular early on (t < d), and summation order moves each eigenvalue by ≤ d·ε·λ_max (Weyl), which the
    square root turns into ≤ √(d·ε·λ_max) per eigenvalue (|√a − √b| ≤ √|a − b|): the trace may move by
    d·√(d·ε·λ_max), times √2·D; that is the adagrad_full tolerance (plus 1e-12 relative)."""
    d, T, seeds = 6, 40, 2
    if cap_rounds is not None:
        monkeypatch.setattr(simulate, "BULK_NUMBERS", cap_rounds * seeds * d)
    data, _ = make_stream("low_rank_noise", shape=(d,), T=T, seeds=seeds, rank=2, problem="logistic")
    prob = get_problem("logistic")
    L = Learner(method, domain=make_domain("l2_ball", (d,), radius=1.0))
    ck = np.array([1, 2, 5, 11, 23, 40])
    tr = simulate.run(L, prob, data, checkpoints=ck)
    G, Lr = _gradients(L, prob, data)
    Gn = G.numpy()
    for i, t in enumerate(ck):
        if method == "adagrad_full":
            S = torch.from_numpy(np.einsum("tbi,tbj->bij", Gn[:t], Gn[:t]))
            want = bounds.adagrad_full_regret_bound(S, 2.0, Lr.eta)
            lam_max = np.linalg.eigvalsh(S.numpy())[:, -1]
            eps = np.finfo(float).eps
            atol = np.sqrt(2) * 2.0 * d * np.sqrt(d * eps * lam_max)
            assert np.all(np.abs(tr.bound[i] - want.numpy()) <= atol + 1e-12 * want.numpy()), (t, atol)
            continue
        else:
            s2 = torch.from_numpy(np.einsum("tbi,tbi->bi", Gn[:t], Gn[:t]))
            want = bounds.adagrad_diag_regret_bound(s2, float(L.domain.diameter_inf), Lr.eta)
        np.testing.assert_allclose(tr.bound[i], want.numpy(), rtol=1e-12)
