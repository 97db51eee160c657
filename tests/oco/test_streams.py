"""Streams: seeding, the spectra each synthetic stream promises, real data sets against scikit-learn, LIBSVM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import datasets

from online_convex.streams import SYNTHETIC, make_stream, stream_names, stream_params
from online_convex.streams_real import read_libsvm

SYNTH = ["power_law", "low_rank_noise", "rotating", "adversarial_signs", "observation2"]


def _cov_eigs(a: torch.Tensor) -> np.ndarray:
    """Descending eigenvalues of the (uncentred) sample second moment (1/T) Σ a_t a_tᵀ of one seed."""
    A = a.reshape(a.shape[0], -1).numpy()
    return np.linalg.eigvalsh(A.T @ A / A.shape[0])[::-1]


@pytest.mark.parametrize("name", SYNTH)
def test_same_seed_same_numbers_and_seed_i_independent_of_seed_count(name):
    d1, p1 = make_stream(name, shape=(6,), T=40, seeds=3, entropy=7)
    d2, p2 = make_stream(name, shape=(6,), T=40, seeds=3, entropy=7)
    d3, _ = make_stream(name, shape=(6,), T=40, seeds=2, entropy=7)
    assert torch.equal(d1.a, d2.a) and torch.equal(d1.y, d2.y) and p1 == p2 == "linear"
    # SeedSequence.spawn: seed i's stream is the same whether 2 or 3 seeds were asked for
    assert torch.equal(d1.a[:, :2], d3.a)
    d4, _ = make_stream(name, shape=(6,), T=40, seeds=3, entropy=8)
    assert not torch.equal(d1.a, d4.a)
    assert d1.a.dtype == torch.float64 and d1.a.shape == (40, 3, 6) and d1.y.shape == (40, 3)


def test_power_law_spectrum():
    """E[a aᵀ] = Q diag(λ) Qᵀ with λ_i = scale·i^{−α}: sample eigenvalues match within sampling error."""
    T, alpha = 40_000, 1.5
    data, _ = make_stream("power_law", shape=(4,), T=T, seeds=1, alpha=alpha, scale=2.0)
    lam = 2.0 * np.arange(1, 5) ** -alpha
    # each sample eigenvalue has relative s.d. ≈ √(2/T) = 0.7 %; 5 % is > 5 s.d.
    np.testing.assert_allclose(_cov_eigs(data.a[:, 0]), lam, rtol=0.05)


def test_low_rank_noise_spectrum():
    """E[a aᵀ] = UUᵀ + σ²I: eigenvalues 1 + σ² (r of them), σ² (the rest)."""
    T, sigma = 40_000, 0.3
    data, _ = make_stream("low_rank_noise", shape=(6,), T=T, seeds=1, rank=2, noise=sigma)
    want = np.array([1 + sigma**2] * 2 + [sigma**2] * 4)
    np.testing.assert_allclose(_cov_eigs(data.a[:, 0]), want, rtol=0.05)  # 5 % > 5 s.d. as above


def test_rotating_subspace():
    """Noise-free: rate 0 keeps a_t in one r-dim subspace; rate > 0 sweeps span(U, V), dimension 2r."""
    still, _ = make_stream("rotating", shape=(8,), T=200, seeds=1, rank=2, rate=0.0, noise=0.0)
    moving, _ = make_stream("rotating", shape=(8,), T=200, seeds=1, rank=2, rate=0.05, noise=0.0)
    assert np.linalg.matrix_rank(still.a[:, 0].numpy(), tol=1e-9) == 2
    assert np.linalg.matrix_rank(moving.a[:, 0].numpy(), tol=1e-9) == 4
    # the instantaneous subspace at t is spanned by U cos ωt + V sin ωt: two windows far apart differ
    early, late = moving.a[:20, 0].numpy(), moving.a[-20:, 0].numpy()
    P = np.linalg.svd(early, full_matrices=False)[2][:2]
    resid = late - late @ P.T @ P
    assert np.linalg.norm(resid) > 0.1 * np.linalg.norm(late)


def test_adversarial_signs_pattern():
    """|a_{t,i}| = i^{−decay}; the doubling pattern flips each sign at most ⌊log2(T + offset)⌋ + 1 times."""
    T = 300
    data, _ = make_stream("adversarial_signs", shape=(5,), T=T, seeds=2, decay=0.5)
    a = data.a.numpy()
    np.testing.assert_allclose(np.abs(a), np.broadcast_to(np.arange(1, 6) ** -0.5, a.shape), rtol=0, atol=0)
    flips = (np.diff(np.sign(a), axis=0) != 0).sum(axis=0)
    assert flips.max() <= np.log2(2 * T) + 1  # offsets are < T, so t + offset < 2T
    alt, _ = make_stream("adversarial_signs", shape=(3,), T=T, seeds=1, pattern="alternating")
    assert (np.diff(np.sign(alt.a.numpy()), axis=0) != 0).all()


def test_observation2_draws_from_r_orthonormal_vectors():
    data, _ = make_stream("observation2", shape=(6,), T=500, seeds=1, rank=3)
    rows = np.unique(data.a[:, 0].numpy().round(12), axis=0)
    assert rows.shape[0] == 3  # every one of the r vectors appears in 500 uniform draws (P(miss) < 1e-80)
    np.testing.assert_allclose(rows @ rows.T, np.eye(3), atol=1e-12)


def test_kron_power_law_left_factor_spectrum():
    """A_t = L^{1/2} Z R^{1/2}: E[A Aᵀ] = tr(R)·L, so its eigenvalue ratios are i^{−α}."""
    data, _ = make_stream("kron_power_law", shape=(3, 4), T=20_000, seeds=1, alpha=1.0)
    A = data.a[:, 0].numpy()
    M = np.einsum("tij,tkj->ik", A, A) / A.shape[0]
    lam = np.linalg.eigvalsh(M)[::-1]
    np.testing.assert_allclose(lam / lam[0], 1.0 / np.arange(1, 4), rtol=0.05)  # ≈ 1 % s.d.; 5 % margin


@pytest.mark.parametrize("problem", ["logistic", "hinge", "least_squares"])
def test_synthetic_features_with_labels(problem):
    data, p = make_stream("power_law", shape=(5,), T=100, seeds=2, problem=problem, label_noise=0.0)
    assert p == problem
    if problem == "least_squares":
        # y = ⟨a, w*⟩ exactly without noise: y lies in the column space of a (per seed)
        A, y = data.a[:, 0].numpy(), data.y[:, 0].numpy()
        w, res, *_ = np.linalg.lstsq(A, y, rcond=None)
        assert np.allclose(A @ w, y, atol=1e-10) and abs(np.linalg.norm(w) - 1) < 1e-8
    else:
        assert set(np.unique(data.y.numpy())) <= {-1.0, 1.0}


@pytest.mark.parametrize(
    ("name", "loader", "problem"),
    [
        ("breast_cancer", datasets.load_breast_cancer, "logistic"),
        ("wine", datasets.load_wine, "logistic"),
        ("digits", datasets.load_digits, "logistic"),
        ("diabetes", datasets.load_diabetes, "least_squares"),
    ],
)
def test_real_stream_single_pass_matches_sklearn(name, loader, problem):
    X, y = loader(return_X_y=True)
    n, f = X.shape
    data, p = make_stream(name, shape=(f + 1,), T=n, seeds=2, shuffle=False)
    assert p == problem and data.a.shape == (n, 2, f + 1)
    a = data.a[:, 0].numpy()
    assert torch.equal(data.a[:, 0], data.a[:, 1])  # single pass in file order: every seed the same
    np.testing.assert_array_equal(a[:, -1], 1.0)  # bias column last
    Z = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)  # standardisation by hand
    np.testing.assert_allclose(a[:, :-1], Z, atol=1e-10)
    if problem == "logistic":
        positive = np.unique(y)[1] if name == "breast_cancer" else np.unique(y)[0]
        np.testing.assert_array_equal(data.y[:, 0].numpy(), np.where(y == positive, 1.0, -1.0))


def test_real_stream_shuffles_are_seeded_permutations_and_extra_passes():
    X, _ = datasets.load_wine(return_X_y=True)
    n = X.shape[0]
    data, _ = make_stream("wine", shape=None, T=2 * n + 5, seeds=2, positive=1)
    a = data.a.numpy()
    for s in range(2):
        first = a[:n, s]
        ref = a[:n, s][np.lexsort(first.T)]
        second = a[n : 2 * n, s]
        np.testing.assert_array_equal(second[np.lexsort(second.T)], ref)  # each pass is a permutation
    assert not np.array_equal(a[:n, 0], a[:n, 1])  # two seeds, two orders
    again, _ = make_stream("wine", shape=None, T=2 * n + 5, seeds=2, positive=1)
    assert torch.equal(again.a, data.a)


LIBSVM_TEXT = "+1 1:0.5 3:-2\n-1 2:1.5\n# a comment line\n1 1:1 2:2 3:3 4:4\n"


def test_libsvm_reader_on_a_small_file(tmp_path):
    path = tmp_path / "tiny.svm"
    path.write_text(LIBSVM_TEXT)
    X, y = read_libsvm(path)
    want = np.array([[0.5, 0, -2, 0], [0, 1.5, 0, 0], [1, 2, 3, 4]])
    np.testing.assert_array_equal(X, want)
    np.testing.assert_array_equal(y, [1, -1, 1])
    data, p = make_stream(
        "libsvm", shape=(5,), T=3, seeds=1, path=str(path), shuffle=False, standardize=False
    )
    assert p == "logistic"
    np.testing.assert_array_equal(data.a[:, 0].numpy(), np.hstack([want, np.ones((3, 1))]))
    np.testing.assert_array_equal(data.y[:, 0].numpy(), [1, -1, 1])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("+1 1:0.5\n-1 2:1.5\n+1 1:x\n", 3),  # a value that is not a number
        ("+1 1:0.5\n-1 2:1.5\n+1 1:", 3),  # truncated mid-entry
        ("+1 1:0.5\nabc 2:1\n", 2),  # a label that is not a number
        ("+1 1:0.5\n-1 2:1.5\n+1 1:1 2:nan\n", 3),  # the parser itself accepts "nan" as a value
        ("+1 1:0.5\ninf 2:1\n", 2),  # and "inf" as a label
    ],
)
def test_corrupt_libsvm_file_names_the_line(tmp_path, text, line):
    path = tmp_path / "bad.svm"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"line {line}\b"):
        read_libsvm(path)
    with pytest.raises(ValueError, match=rf"line {line}\b"):
        make_stream("libsvm", shape=None, T=2, seeds=1, path=str(path))


def test_libsvm_index_beyond_n_features_names_the_line(tmp_path):
    path = tmp_path / "wide.svm"
    path.write_text("+1 1:0.5 3:1\n-1 2:1.5\n+1 1:1 5:2\n")
    assert read_libsvm(path, n_features=5)[0].shape == (3, 5)
    with pytest.raises(ValueError, match=r"line 3: entry '5:2': index 5 exceeds n_features = 4"):
        read_libsvm(path, n_features=4)


def test_missing_libsvm_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_libsvm(tmp_path / "absent.svm")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"name": "power_law", "T": 0}, ValueError, "T must be >= 1"),
        ({"name": "power_law", "T": -3}, ValueError, "T must be >= 1"),
        ({"name": "power_law", "seeds": 0}, ValueError, "seeds must be >= 1"),
        ({"name": "nope"}, ValueError, "unknown stream 'nope'; known: "),
        ({"name": "power_law", "alpha": -1.0}, ValueError, "alpha must be in"),
        ({"name": "power_law", "colour": 1}, TypeError, r"unknown parameter\(s\) \['colour'\]"),
        ({"name": "low_rank_noise", "rank": 7}, ValueError, "rank must be <= 6"),
        ({"name": "rotating", "rank": 4}, ValueError, "rank must be <= N/2 = 3"),
        ({"name": "kron_power_law"}, ValueError, r"shape must be a matrix shape \(m, n\)"),
        ({"name": "power_law", "problem": "poisson"}, ValueError, "problem must be one of"),
        ({"name": "breast_cancer"}, ValueError, r"shape \(6,\) does not match the data set: 30 features"),
        (
            {"name": "digits", "shape": None, "positive": 11},
            ValueError,
            "positive must be one of the classes",
        ),
        ({"name": "libsvm", "shape": None}, ValueError, "needs path="),
        (
            {"name": "diabetes", "shape": None, "positive": 1},
            TypeError,
            r"unknown parameter\(s\) \['positive'\]; allowed: shuffle, standardize, problem$",
        ),
    ],
)
def test_bad_input(kwargs, exc, match):
    kw = {"shape": (6,), "T": 5, "seeds": 1, **kwargs}
    name = kw.pop("name")
    with pytest.raises(exc, match=match):
        make_stream(name, **kw)


def test_stream_names_cover_the_issue():
    need = {"power_law", "low_rank_noise", "rotating", "adversarial_signs", "observation2"}
    need |= {"breast_cancer", "digits", "wine", "diabetes", "libsvm", "kron_power_law"}
    assert need <= set(stream_names())


@pytest.mark.parametrize("name", stream_names())
def test_stream_params_are_exactly_what_make_stream_takes(name, tmp_path):
    """``stream_params`` (what RunSpec checks sweep files against) lists every parameter make_stream accepts,
    each passed here at a default value, and nothing it refuses: an extra name is refused naming that list."""
    path = tmp_path / "tiny.svm"
    path.write_text(LIBSVM_TEXT)
    values = {"problem": "logistic", "label_noise": 0.1, "positive": None, "shuffle": True}
    values |= {"standardize": True, "path": str(path), "n_features": None}
    if name in SYNTHETIC:
        values |= SYNTHETIC[name].__kwdefaults__
    if name == "diabetes":
        values["problem"] = "least_squares"
    shape = (2, 3) if name == "kron_power_law" else (6,) if name in SYNTHETIC else None
    params = {p: values[p] for p in stream_params(name)}
    make_stream(name, shape=shape, T=3, seeds=1, **params)
    with pytest.raises(
        TypeError, match=rf"unknown parameter\(s\) \['colour'\]; allowed: {', '.join(params)}$"
    ):
        make_stream(name, shape=shape, T=3, seeds=1, **params, colour=1)
