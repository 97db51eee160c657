"""spectra.snapshots: exact and top-k eigensolvers against a known spectrum, and the snapshot cadence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra import metrics
from spectra.snapshots import Decomposition, Snapshotter, decompose
from spectra.store import SnapshotStore

EPS = np.finfo(np.float64).eps


def _factor(d: int, lam: np.ndarray, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """F = Q diag(λ) Qᵀ with Q Haar-random: the spectrum is known exactly, independently of any eigensolver."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam_t = torch.as_tensor(lam, dtype=torch.float64)
    order = np.argsort(-lam, kind="stable")
    return (Q * lam_t) @ Q.T, np.asarray(lam)[order], Q.numpy()[:, order]


def _gapped(d: int = 300, k: int = 6, seed: int = 0):
    """Top k eigenvalues spread over [100, 200], the other d − k in [0, 1): gap λ_{k+1}/λ_k ≤ 1/100."""
    rng = np.random.default_rng(seed)
    lam = np.concatenate([np.linspace(200, 100, k), rng.uniform(0, 1, d - k)])
    return _factor(d, lam, seed)


def _align(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    return V * np.sign(np.sum(V * W, axis=0))  # eigenvectors are defined up to sign


def test_exact_eigh_recovers_known_spectrum():
    d = 50
    lam = np.random.default_rng(1).exponential(size=d)
    F, lam_sorted, Q = _factor(d, lam, seed=1)
    dec = decompose(F)
    assert dec.exact and dec.dim == d and dec.eigvals.shape == (d,) and dec.eigvecs.shape == (d, d)
    # backward-stable eigh: |λ̂ − λ| ≤ ~d·ε·‖F‖ (Weyl); the matrix product forming F adds the same order
    np.testing.assert_allclose(dec.eigvals, lam_sorted, rtol=0, atol=10 * d * EPS * lam_sorted[0])
    assert dec.trace == pytest.approx(float(np.trace(F.numpy())), rel=1e-15)
    assert np.all(np.diff(dec.eigvals) <= 0) and dec.eigvals.min() >= 0
    # a fixed sign: each column's largest-magnitude entry is positive
    assert np.all(dec.eigvecs[np.abs(dec.eigvecs).argmax(0), np.arange(d)] > 0)
    np.testing.assert_allclose(
        F.numpy() @ dec.eigvecs, dec.eigvecs * dec.eigvals, atol=10 * d * EPS * lam_sorted[0]
    )


@pytest.mark.parametrize("method", ["randomized", "lobpcg"])
def test_top_k_against_exact_on_a_gapped_spectrum(method):
    """Top-k solvers vs exact eigh on a gap λ_{k+1}/λ_k ≤ 1/100; eigenvalues of the top k differ by ≥ 20.

    randomized: 7 power iterations shrink the subspace error like (1/100)^15, so only round-off is left;
      Ritz values are then off by ≤ λ_1·sin²Θ + d·ε·λ_1.
    lobpcg: stops at residual ‖r_i‖ ≤ tol·(‖F‖ + λ_i), tol = √ε ≈ 1.5e-8, i.e. ‖r_i‖ ≤ 6e-6; Davis–Kahan over
      the neighbour distance δ_i ≥ 20 gives sin θ_i ≤ 3e-7 per vector, and eigenvalue error ≤ ‖r_i‖²/δ_i ≈ 2e-12.
    """
    d, k = 300, 6
    F, lam, Q = _gapped(d, k)
    exact = decompose(F)
    dec = decompose(F, k=k, method=method)
    assert not dec.exact and dec.eigvals.shape == (k,) and dec.eigvecs.shape == (d, k)
    assert dec.trace == exact.trace  # computed exactly either way, not from the eigenvalues
    vec_tol = 1e-12 if method == "randomized" else 1e-6  # ≥ √2·sin θ_i from the bounds above
    np.testing.assert_allclose(dec.eigvals, exact.eigvals[:k], rtol=1e-12)
    np.testing.assert_allclose(_align(dec.eigvecs, exact.eigvecs[:, :k]), exact.eigvecs[:, :k], atol=vec_tol)
    np.testing.assert_allclose(dec.eigvals, lam[:k], rtol=1e-12)  # and the spectrum built in
    assert metrics.subspace_overlap(dec.eigvecs, Q[:, :k]) == pytest.approx(1.0, abs=1e-12)
    # head-and-total metrics of the truncated decomposition equal the exact ones
    assert metrics.top_k_mass(dec.eigvals, k, total=dec.trace) == pytest.approx(
        metrics.top_k_mass(exact.eigvals, k), rel=1e-12
    )


@settings(max_examples=15, deadline=None)
@given(
    d=st.integers(15, 60),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    method=st.sampled_from(["randomized", "lobpcg"]),
)
def test_top_k_against_exact_random_instances(d, k, seed, method):
    """The same gap as above (λ_{k+1}/λ_k ≤ 1/100, top k spaced ≥ 25 apart), random d, k, basis and seed:
    the tolerances derived there hold on every instance."""
    F, _, _ = _gapped(d, k, seed=seed)
    exact, dec = decompose(F), decompose(F, k=k, method=method, seed=seed % 1000)
    np.testing.assert_allclose(dec.eigvals, exact.eigvals[:k], rtol=1e-12)
    vec_tol = 1e-12 if method == "randomized" else 1e-6
    np.testing.assert_allclose(_align(dec.eigvecs, exact.eigvecs[:, :k]), exact.eigvecs[:, :k], atol=vec_tol)


def test_exact_with_k_keeps_every_eigenvalue_and_the_top_k_vectors():
    """k < d under eigh: the whole spectrum (metrics need it) but only the leading k vectors are kept."""
    d, k = 120, 5
    F, lam, _ = _gapped(d, k, seed=5)
    full, part = decompose(F), decompose(F, k=k)
    assert part.exact and part.eigvals.shape == (d,) and part.eigvecs.shape == (d, k)
    np.testing.assert_allclose(
        part.eigvals, full.eigvals, rtol=0, atol=10 * d * EPS * lam[0]
    )  # two eigh: round-off
    # eigenvalues ≥ 20 apart over ‖F‖ = 200: eigenvectors agree to ~d·ε·200/20
    np.testing.assert_allclose(_align(part.eigvecs, full.eigvecs[:, :k]), full.eigvecs[:, :k], atol=1e-11)
    assert np.all(part.eigvecs[np.abs(part.eigvecs).argmax(0), np.arange(k)] > 0)


def test_auto_switches_at_exact_max_dim():
    F, _, _ = _gapped(60, 3)
    assert decompose(F, k=3, exact_max_dim=60).exact
    dec = decompose(F, k=3, exact_max_dim=59)
    assert not dec.exact and dec.eigvals.shape == (3,)


def test_randomized_ritz_values_are_lower_bounds_without_a_gap():
    """No gap (flat-ish spectrum): Ritz values still interlace, θ_i ≤ λ_i (Cauchy), so a truncated top-k mass
    never overstates concentration."""
    d, k = 200, 10
    F, lam, _ = _factor(d, np.random.default_rng(3).uniform(1, 2, d), seed=3)
    dec = decompose(F, k=k, method="randomized")
    assert np.all(dec.eigvals <= lam[:k] + 10 * d * EPS * lam[0])  # + the round-off of forming F


@pytest.mark.parametrize("method", ["eigh", "randomized", "lobpcg"])
def test_same_seed_same_numbers_and_float32_input(method):
    F, _, _ = _gapped(90, 4, seed=2)
    a, b = decompose(F, k=4, method=method, seed=7), decompose(F, k=4, method=method, seed=7)
    assert np.array_equal(a.eigvals, b.eigvals) and np.array_equal(a.eigvecs, b.eigvecs)  # bitwise
    c = decompose(F.float(), k=4, method=method)
    # float32 storage of F perturbs it by ≤ ε32·‖F‖ per entry, so λ by ≤ d·ε32·λ_1 (Weyl) ≈ 1e-5·λ_1
    np.testing.assert_allclose(
        c.eigvals[:4], a.eigvals[:4], rtol=0, atol=90 * np.finfo(np.float32).eps * a.eigvals[0]
    )
    assert c.eigvals.dtype == np.float64


def test_round_off_negative_eigenvalues_are_clamped_and_real_ones_refused():
    G = torch.randn(40, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    dec = decompose(G @ G.T)  # rank 3: 37 eigenvalues at ±round-off
    assert dec.eigvals.min() >= 0
    F = torch.diag(torch.tensor([2.0, 1.0, -0.5], dtype=torch.float64))
    with pytest.raises(
        ValueError, match=r"F must be positive semidefinite; its smallest computed eigenvalue is -0.5"
    ):
        decompose(F)
    # top-k solvers never see the negative eigenvalues: the exact trace gives them away
    lam = np.concatenate([[10.0, 9.0], np.full(58, -0.5)])
    F, _, _ = _factor(60, lam, seed=6)
    for method in ("randomized", "lobpcg"):
        with pytest.raises(ValueError, match=r"tr F = -10 is below the sum of its top 2 eigenvalues 19,"):
            decompose(F, k=2, method=method)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"F": torch.ones(3, 4)}, ValueError, r"F must be a square matrix \(d, d\); got shape \(3, 4\)"),
        ({"F": torch.tensor([[1.0, float("nan")], [0.0, 1.0]])}, ValueError, r"F must be finite"),
        ({"F": torch.eye(3, dtype=torch.int64)}, TypeError, r"F must have a floating dtype"),
        ({"F": [[1.0]]}, TypeError, r"F must be a torch.Tensor"),
        ({"F": torch.eye(4), "k": 5}, ValueError, r"k must be an int in \[1, 4\].*got 5"),
        ({"F": torch.eye(4), "k": 0}, ValueError, r"k must be an int in \[1, 4\].*got 0"),
        ({"F": torch.eye(4), "method": "svd"}, ValueError, r"method must be one of .*got 'svd'"),
        (
            {"F": torch.eye(4), "method": "randomized"},
            ValueError,
            r"k is required for method='randomized', which finds the top k",
        ),
        ({"F": torch.eye(8), "k": 3, "method": "lobpcg"}, ValueError, r"needs d >= 3k; got d=8, k=3"),
        ({"F": torch.eye(4), "exact_max_dim": 0}, ValueError, r"exact_max_dim must be an int >= 1; got 0"),
        ({"F": torch.eye(4), "seed": -1}, ValueError, r"seed must be an int >= 0; got -1"),
    ],
)
def test_decompose_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        decompose(**kwargs)


# --- Snapshotter ---------------------------------------------------------------------------------------------


def _factors(step: int) -> dict[str, torch.Tensor]:
    """Two factors whose leading eigenspace rotates with the step, so overlaps are below 1.

    Rank 3 plus 0.01·I: the top 3 eigenvectors are well defined, the 4th (inside a multiple eigenvalue) is not,
    so the Snapshotters below keep k_top = 3."""
    out = {}
    for i, (name, d) in enumerate([("fc1:shampoo_L", 12), ("fc1:kfac_A", 20)]):
        g = torch.Generator().manual_seed(100 * step + i)
        G = torch.randn(d, 3, generator=g, dtype=torch.float64)
        out[name] = G @ G.T + 0.01 * torch.eye(d, dtype=torch.float64)
    return out


def test_snapshot_cadence_files_and_movement_metrics(tmp_path):
    store = SnapshotStore(tmp_path / "s", {"run": "cadence"})
    snap = Snapshotter(store, every=3, k_top=3)
    taken = [snap.maybe_snapshot(step, _factors(step)) for step in range(8)]
    assert taken == [s % 3 == 0 for s in range(8)]
    assert store.steps() == [0, 3, 6] and store.names() == ["fc1:kfac_A", "fc1:shampoo_L"]
    assert len(list((tmp_path / "s" / "snapshots").glob("*.npz"))) == 6  # one file per factor per snapshot
    for step in (0, 3, 6):
        for name, F in _factors(step).items():
            dec = store.load(step, name)
            assert dec.exact and dec.eigvecs.shape == (F.shape[0], 3)
            np.testing.assert_allclose(dec.eigvals, np.linalg.eigvalsh(F.numpy())[::-1], atol=1e-12)
    # movement metrics against a direct computation from the factors themselves
    tab = store.table()
    for name in ("fc1:shampoo_L", "fc1:kfac_A"):
        U3 = np.linalg.eigh(_factors(3)[name].numpy())[1][:, ::-1][:, :3]
        F6 = _factors(6)[name].numpy()
        U6 = np.linalg.eigh(F6)[1][:, ::-1][:, :3]
        layer, factor = name.split(":")
        row = tab[(tab.step == 6) & (tab.layer == layer) & (tab.factor == factor)].set_index("metric").value
        # two eigh calls on well-separated top-3 eigenvalues: agreement to ~1e-12
        assert row["overlap_prev"] == pytest.approx(metrics.subspace_overlap(U3, U6), abs=1e-10)
        assert row["stale_capture_prev"] == pytest.approx(np.trace(U3.T @ F6 @ U3) / np.trace(F6), abs=1e-10)
        assert row["prev_step"] == 3.0
        assert row["overlap_prev"] < 0.99  # the factors were built to move
        assert "overlap_prev" not in tab[(tab.step == 0) & (tab.layer == layer)].metric.values


def test_snapshotter_resumes_without_recomputing(tmp_path):
    """A run killed after step 3 and restarted gives the same table as one that never stopped."""
    full = SnapshotStore(tmp_path / "full", {"run": "r"})
    s = Snapshotter(full, every=3, k_top=3)
    for step in range(7):
        s.maybe_snapshot(step, _factors(step))
    part = SnapshotStore(tmp_path / "part", {"run": "r"})
    s = Snapshotter(part, every=3, k_top=3)
    for step in range(4):
        s.maybe_snapshot(step, _factors(step))
    resumed = SnapshotStore(tmp_path / "part", {"run": "r"})
    s = Snapshotter(resumed, every=3, k_top=3)
    for step in range(7):  # replays 0 and 3 (already stored: skipped), computes 6 from the stored basis of 3
        s.maybe_snapshot(
            step,
            _factors(step)
            if step > 3
            else {k: torch.full_like(v, float("nan")) for k, v in _factors(step).items()},
        )
    # NaN factors at steps 0 and 3 would raise if they were decomposed again
    assert resumed.table().equals(full.table())


def test_snapshotter_top_k_path_and_zero_factor(tmp_path):
    store = SnapshotStore(tmp_path, {"run": "topk"})
    s = Snapshotter(store, every=1, k_top=3, exact_max_dim=10)
    F, lam, _ = _gapped(40, 3)
    s.maybe_snapshot(0, {"a:kfac_G": torch.zeros(40, 40, dtype=torch.float64)})
    s.maybe_snapshot(1, {"a:kfac_G": F})
    dec = store.load(1, "a:kfac_G")
    assert not dec.exact and dec.eigvals.shape == (3,)
    tab = store.table().set_index(["step", "metric"]).value
    assert tab[(0, "trace")] == 0.0 and (0, "top_mass@0.25") not in tab.index  # nothing accumulated yet
    assert tab[(1, "top_mass@0.05")] == pytest.approx(lam[:2].sum() / lam.sum(), rel=1e-12)  # ⌈0.05·40⌉ = 2
    assert "effective_rank" not in tab.loc[1].index  # needs the whole spectrum
    assert "overlap_prev" not in tab.loc[1].index  # the zero factor has no basis to compare with


def test_snapshotter_bad_input(tmp_path):
    store = SnapshotStore(tmp_path, {"run": "bad"})
    with pytest.raises(ValueError, match=r"every must be an int >= 1; got 0"):
        Snapshotter(store, every=0)
    with pytest.raises(ValueError, match=r"k_top must be an int >= 1; got 0"):
        Snapshotter(store, every=1, k_top=0)
    with pytest.raises(ValueError, match=r"method must be one of"):
        Snapshotter(store, every=1, method="qr")
    s = Snapshotter(store, every=1)
    with pytest.raises(ValueError, match=r"step must be an int >= 0; got -1"):
        s.maybe_snapshot(-1, {})
    with pytest.raises(ValueError, match=r"factor 'x:kfac_A'.*square"):
        s.maybe_snapshot(0, {"x:kfac_A": torch.ones(2, 3)})
    assert isinstance(decompose(torch.eye(2)), Decomposition)


def test_unconverged_lobpcg_is_reported(monkeypatch):
    """torch.lobpcg returns at its iteration cap without a signal; decompose checks the residual itself."""
    F, lam, Q = _gapped(60, 3)
    wrong = torch.from_numpy(np.ascontiguousarray(Q[:, 3:6]))  # orthonormal, but not the top eigenvectors

    def stalled(A, k, X, largest):
        return torch.as_tensor(lam[:3]), wrong

    monkeypatch.setattr(torch, "lobpcg", stalled)
    with pytest.raises(RuntimeError, match=r"lobpcg did not converge \(residual .* d=60, k=3\)"):
        decompose(F, k=3, method="lobpcg")
