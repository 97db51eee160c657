"""Wide factors: FD-sketched recording (spectra.sketched) and the stated error of top-k solves.

Both are checked against the exact dense factor, eigendecomposed in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from memopt_theory.sketches import sketch_covariance
from spectra import metrics
from spectra.recorder import FactorRecorder
from spectra.sketched import compress_columns, sketch_decomposition, sketch_init, sketch_update
from spectra.snapshots import Snapshotter, decompose, ritz_error_bound
from spectra.store import SnapshotStore

EPS = float(np.finfo(np.float64).eps)


def test_compress_columns_keeps_the_gram_matrix():
    """C' C'ᵀ = C Cᵀ with C' of min(r, d) columns (QR of Cᵀ); r ≤ d returns C itself."""
    g = torch.Generator().manual_seed(0)
    C = torch.randn(7, 30, generator=g, dtype=torch.float64)
    Cp = compress_columns(C)
    assert Cp.shape == (7, 7)
    # Householder QR is backward stable: ‖RᵀR − CᵀC‖ ≤ c·r·ε·‖C‖², r = 30 rows of Cᵀ
    torch.testing.assert_close(Cp @ Cp.T, C @ C.T, rtol=0, atol=100 * 30 * EPS * float(C.square().sum()))
    small = torch.randn(7, 3, generator=g, dtype=torch.float64)
    assert compress_columns(small) is small


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 24), nn.Tanh(), nn.Linear(24, 9)).double()


def _train_both(ell: int, beta: float, steps: int = 25, seed: int = 0):
    """One model, one training loop, a dense and a sketched recorder on the same gradients and activations."""
    model = _model(seed)
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(256, 12, generator=g, dtype=torch.float64)
    W = torch.randn(12, 9, generator=g, dtype=torch.float64)
    Y = torch.tanh(X @ W) + 0.1 * torch.randn(256, 9, generator=g, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    dense = FactorRecorder(model, beta=beta, dtype=torch.float64)
    sk = FactorRecorder(model, beta=beta, dtype=torch.float64, sketch=ell)
    with dense, sk:
        for _t in range(steps):
            i = torch.randint(256, (32,), generator=g)
            loss = ((model(X[i]) - Y[i]) ** 2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            dense.step()
            sk.step()
            opt.step()
    return dense.factors(), sk.sketches()


@pytest.mark.parametrize("beta", [1.0, 0.9])
def test_sketched_recorder_sandwiches_the_exact_factor(beta):
    """FD sandwich on a real training run: F̄ ⪯ F ⪯ F̄ + ρI for every recorded factor (Shampoo L, R; K-FAC A, G).

    F is the dense recorder's factor on the same steps, F̄ = U diag(s) Uᵀ and ρ the sketch's (β-discounted)
    escaped mass; tr F is kept exactly. ℓ = 5 is below every factor's dimension (9..25), so ρ > 0 and the
    upper end is exercised: the test also asserts that the interval is attained at its top (λ_max(F − F̄)
    close to ρ would be an accident; ρ ≤ λ_ℓ-type slack is what FD gives), and that it is not vacuous.
    """
    ell = 5
    factors, sketches = _train_both(ell, beta)
    assert set(factors) == set(sketches) and len(factors) == 8
    for name, F in factors.items():
        sk = sketches[name]
        Fbar = sketch_covariance(sk.fd)
        rho = float(sk.fd.rho)
        E = torch.linalg.eigvalsh(F - Fbar)
        scale = float(torch.linalg.matrix_norm(F, ord=2))
        # round-off of T SVDs of d × (k + r) and of the dense sums: ~T·d·ε·‖F‖, far below 1e-10·‖F‖
        tol = 1e-10 * scale
        assert float(E.min()) >= -tol, (name, float(E.min()))
        assert float(E.max()) <= rho + tol, (name, float(E.max()), rho)
        assert rho > 1e-6 * scale, (name, rho)  # not a vacuous case: the sketch did drop mass
        assert float(sk.trace) == pytest.approx(float(torch.trace(F)), rel=1e-12)
        # Weyl: s_i ≤ λ_i(F) ≤ s_i + ρ for the sketch's k directions (s_i = 0 beyond)
        lam = torch.linalg.eigvalsh(F).flip(0)
        dec, rho2 = sketch_decomposition(sk)
        s = np.zeros(lam.numel())
        s[: dec.eigvals.size] = dec.eigvals
        assert rho2 == rho
        assert np.all(s <= lam.numpy() + tol) and np.all(lam.numpy() <= s + rho + tol), name


def test_sketch_with_ell_above_d_is_the_exact_factor():
    """ℓ > d: FD keeps every direction, ρ = 0 and F̄ = F (Sketchy FD reduces to the exact sum)."""
    factors, sketches = _train_both(ell=40, beta=0.95, steps=10)
    for name, F in factors.items():
        sk = sketches[name]
        assert float(sk.fd.rho) == 0.0
        torch.testing.assert_close(sketch_covariance(sk.fd), F, rtol=0, atol=1e-11 * float(F.abs().max()))


def test_sketch_update_matches_the_discounted_sum():
    """sketch_update with β: exact trace and, with ℓ > d, F̄ = Σ_t β^{T−t} C_t C_tᵀ (columns > d compressed)."""
    g = torch.Generator().manual_seed(3)
    d, beta = 6, 0.8
    sk = sketch_init(d, 10, dtype=torch.float64, device="cpu")
    F = torch.zeros(d, d, dtype=torch.float64)
    for r in (2, 9, 4):  # 9 > d columns: compressed by QR first
        C = torch.randn(d, r, generator=g, dtype=torch.float64)
        sk = sketch_update(sk, C, beta)
        F = beta * F + C @ C.T
    torch.testing.assert_close(sketch_covariance(sk.fd), F, rtol=0, atol=1e-12 * float(F.abs().max()))
    assert float(sk.trace) == pytest.approx(float(torch.trace(F)), rel=1e-13)


def test_sketched_snapshot_mass_is_a_lower_bound_within_k_rho(tmp_path):
    """A sketched snapshot's top-k mass ≤ the exact factor's ≤ it + k·ρ/tr F, and fd_rho is stored."""
    ell = 5
    factors, sketches = _train_both(ell, 0.95)
    store = SnapshotStore(tmp_path / "s", {"run": "test"})
    Snapshotter(store, every=1, k_top=8).maybe_snapshot(1, sketches)
    table = store.table()
    for name, F in factors.items():
        dec = store.load(1, name)
        k = dec.eigvals.size
        lam = np.linalg.eigvalsh(F.numpy())[::-1]
        exact = metrics.top_k_mass(lam, k)
        sketched = metrics.top_k_mass(dec.eigvals, k, total=dec.trace)
        rho = float(sketches[name].fd.rho)
        layer, factor = name.split(":")
        stored = table[(table.layer == layer) & (table.factor == factor) & (table.metric == "fd_rho")]
        assert float(stored.value.iloc[0]) == rho
        assert sketched <= exact + 1e-12
        assert exact <= sketched + k * rho / dec.trace + 1e-12


def test_sketched_recorder_refuses_dense_reads_and_bad_sketch():
    model = _model()
    with pytest.raises(ValueError, match="sketch must be"):
        FactorRecorder(model, sketch=1)
    rec = FactorRecorder(model, sketch=4)
    with pytest.raises(ValueError, match="use sketches"):
        rec.factors()
    with pytest.raises(ValueError, match="use factors"):
        FactorRecorder(model).sketches()


def _power_law_factor(d: int, seed: int, power: float) -> tuple[torch.Tensor, np.ndarray]:
    """F = Q diag(λ) Qᵀ, λ_i = i^{-power}, Q Haar-random: a known spectrum with no gap."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = torch.arange(1, d + 1, dtype=torch.float64) ** -power
    return (Q * lam) @ Q.T, lam.numpy()


def _ritz(F: torch.Tensor, V: torch.Tensor):
    """Rayleigh–Ritz on the range of V: (θ descending, Ritz vectors) as a Decomposition-like pair."""
    V, _ = torch.linalg.qr(V)
    theta, W = torch.linalg.eigh(V.T @ F @ V)
    from spectra.store import Decomposition

    return Decomposition(
        theta.flip(0).numpy(), (V @ W.flip(1)).numpy(), False, float(torch.trace(F)), F.shape[0]
    )


def test_ritz_error_bound_holds_and_is_exercised_on_a_perturbed_basis():
    """θ_i ≤ λ_i(F) ≤ max(θ_i, c) + ‖R‖₂ (spectra.snapshots docstring: Weyl on the split F = diag(Θ, C) + B).

    The basis is the exact top-k eigenvectors plus noise of norm ≈ 0.05 per column, so the Ritz values sit visibly below the true
    eigenvalues; on the leading ones (θ_i ≥ c) the upper end θ_i + ‖R‖₂ is the active bound, and dropping
    ‖R‖₂ from it would fail this test. λ_i = i^{-3}: concentrated, like the recorded factors.
    """
    d, k = 300, 12
    F, lam = _power_law_factor(d, seed=5, power=3.0)
    top = torch.linalg.eigh(F).eigenvectors.flip(1)[:, :k]
    g = torch.Generator().manual_seed(6)
    dec = _ritz(F, top + 0.003 * torch.randn(d, k, generator=g, dtype=torch.float64))
    resid, rest = ritz_error_bound(F, dec)
    theta, tol = dec.eigvals, d * EPS * lam[0]
    assert np.all(theta <= lam[:k] + tol)
    assert np.all(lam[:k] <= np.maximum(theta, rest) + resid + tol)
    active = theta >= rest
    assert active[:3].all()  # the leading Ritz values exceed the trace outside the basis
    gap = lam[:k][active] - theta[active]
    assert gap.max() > 1e3 * tol  # exercised: θ_i is below λ_i by far more than round-off
    assert np.any(lam[:k][active] > theta[active] + 0.5 * gap.max())  # an upper end without ‖R‖₂ would fail


@pytest.mark.slow
@pytest.mark.parametrize("k", [16, 64])
def test_randomized_top_k_at_1024_within_its_stated_error(k):
    """Randomized top-k at d = 1024 vs exact eigh: θ_i ≤ λ_i ≤ max(θ_i, c) + ‖R‖₂ for every i ≤ k.

    λ_i = i^{-2} (concentrated, no gap). The stated error is informative: the leading eigenvalues (θ_i ≥ c) are
    pinned to within ‖R‖₂ ≤ 1e-3·λ_1. Tolerance: d·ε·λ_1 for the float64 products.
    """
    d = 1024
    F, lam = _power_law_factor(d, seed=k, power=2.0)
    dec = decompose(F, k=k, method="randomized", seed=0)
    resid, rest = ritz_error_bound(F, dec)
    theta = dec.eigvals
    tol = d * EPS * lam[0]
    assert np.all(theta <= lam[:k] + tol)
    assert np.all(lam[:k] <= np.maximum(theta, rest) + resid + tol)
    assert (theta >= rest).sum() >= 3 and resid < 1e-3 * lam[0]
