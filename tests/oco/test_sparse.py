"""Sparse OCO (online_convex.sparse): the same traces as the dense simulator, certified comparators, streams.

The dense simulator (online_convex.simulate) is the independent reference: on a stream small enough to
densify, run_sparse must reproduce its cumulative losses, linearised regret and bounds to rounding (the only
difference is the order of a sum over a row's non-zeros: ≤ 1e-10 relative over T ≤ 300 rounds), and the
sparse comparator's interval must overlap the dense comparator's (both are certified).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from memopt_theory import methods
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.sparse import (
    SparseRoundData,
    csr_to_rounds,
    make_sparse_stream,
    run_sparse,
    sparse_comparator_bounds,
)


@pytest.fixture(scope="module")
def small():
    data, problem = make_sparse_stream("zipf_sparse", d=40, T=300, seeds=3, nnz=5)
    dom = make_domain("l2_ball", (40,), radius=1.0)
    ck = simulate.geometric_checkpoints(300, 8)
    return data, problem, dom, ck, sparse_comparator_bounds(problem, data, dom, ck)


def test_comparator_intervals_are_certified_and_agree_with_dense(small):
    """sparse lower ≤ dense value and dense lower ≤ sparse value (both bracket min_K F_t); gaps ≤ 1e-6·F."""
    data, problem, dom, ck, (value, lower) = small
    dv, dl = simulate.comparator_bounds(problem, data.dense(), dom, ck)
    assert (lower <= value).all()
    assert (lower <= dv + 1e-9).all() and (dl <= value + 1e-9).all()  # 1e-9: float64 sums of ≤ 300 terms
    assert ((value - lower) <= 1e-6 * np.maximum(1, value)).all()  # the solver's stopping rule


@pytest.mark.parametrize(
    "name,cfg",
    [
        ("s_adagrad", {"ell": 4}),
        ("s_adagrad", {"ell": 4, "sketch": "buffer"}),
        ("ada_fd", {"ell": 4, "sketch": "buffer"}),
        ("adagrad_diag", {}),
        ("ogd", {}),
    ],
)
def test_run_sparse_equals_dense_simulator(small, name, cfg):
    data, problem, dom, ck, comp = small
    L = Learner(name, methods.get(name).Config(**cfg), eta="theory", domain=dom)
    a = run_sparse(L, problem, data, checkpoints=ck, comparator=comp)
    b = simulate.run(L, problem, data.dense(), checkpoints=ck, comparator=comp)
    np.testing.assert_allclose(a.cum_loss, b.cum_loss, rtol=1e-10)
    np.testing.assert_allclose(a.linear_regret_upper, b.linear_regret_upper, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(a.eta, b.eta, rtol=1e-12)
    assert (a.bound is None) == (name not in ("adagrad_diag", "ogd"))
    if a.bound is not None:
        np.testing.assert_allclose(a.bound, b.bound, rtol=1e-10)
        assert (a.regret_upper <= a.bound).all()  # the theorem (regret ≤ linearised regret ≤ bound)


def test_csr_round_trip_and_duplicates():
    """Padded rows = the CSR rows (duplicate (row, col) entries summed); padding contributes nothing."""
    M = sp.csr_matrix(
        (np.array([1.0, 2.0, 3.0, -1.0]), (np.array([0, 0, 0, 2]), np.array([3, 3, 1, 0]))), shape=(3, 5)
    )
    data = csr_to_rounds([M, 2 * M], [np.ones(3), -np.ones(3)])
    dense = data.dense().a
    np.testing.assert_array_equal(dense[:, 0].numpy(), M.toarray())
    np.testing.assert_array_equal(dense[:, 1].numpy(), 2 * M.toarray())
    np.testing.assert_array_equal(data.csr(1).toarray(), 2 * M.toarray())
    x = torch.randn(2, 5, dtype=torch.float64)
    for t in range(3):
        np.testing.assert_allclose(data.margins(x, t), (dense[t] * x).sum(-1), rtol=1e-15)


def test_zipf_feature_frequencies():
    """Feature j appears in a row with probability 1 − (1 − p_j)^nnz, p_j ∝ (j+1)^{−s}: the observed counts of
    the 50 most frequent features lie within 5 binomial standard deviations of T·that (a 5σ band: a wrong
    exponent s = 0.8 instead of 1.1 moves the top counts by > 20σ)."""
    T, d, nnz, s = 4000, 2**12, 20, 1.1
    data, _ = make_sparse_stream("zipf_sparse", d=d, T=T, seeds=1, nnz=nnz, s=s)
    counts = np.asarray((data.csr(0) != 0).sum(0)).ravel()
    p = np.arange(1, d + 1, dtype=float) ** -s
    p /= p.sum()
    q = 1 - (1 - p[:50]) ** nnz
    assert (np.abs(counts[:50] - T * q) <= 5 * np.sqrt(T * q * (1 - q))).all()
    norms = data.val.square().sum(-1).sqrt()
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-12)


def test_pydoc_ngrams_stream():
    """d = 2¹⁸ hashed features of real text: unit rows, both labels, same seed → same stream, and a learnable
    task (the best fixed point's loss at T is below the chance loss T·log 2)."""
    a, problem = make_sparse_stream("pydoc_ngrams", T=400, seeds=2, entropy=3)
    b, _ = make_sparse_stream("pydoc_ngrams", T=400, seeds=2, entropy=3)
    assert a.d == 2**18 and problem == "logistic"
    assert torch.equal(a.idx, b.idx) and torch.equal(a.val, b.val) and torch.equal(a.y, b.y)
    assert set(a.y.unique().tolist()) == {-1.0, 1.0}
    norms = a.val.square().sum(-1).sqrt()
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-12)
    dom = make_domain("l2_ball", (2**18,), radius=10.0)
    value, lower = sparse_comparator_bounds(problem, a, dom, [400])
    assert (value < 400 * np.log(2) * 0.9).all() and (lower <= value).all()


def test_libsvm_sparse_reads_the_file(tmp_path):
    """libsvm_sparse rows = the file's rows (scikit-learn's reader), normalised, in the stream's order."""
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(0)
    X = sp.random(30, 50, density=0.1, random_state=1, format="csr")
    y = rng.integers(0, 2, 30) * 2 - 1
    path = tmp_path / "toy.svm"
    dump_svmlight_file(X, y, str(path))
    data, _ = make_sparse_stream("libsvm_sparse", d=50, T=100, seeds=1, path=str(path))
    A = data.csr(0).toarray()
    Xn = X.toarray() / np.maximum(np.linalg.norm(X.toarray(), axis=1, keepdims=True), 1e-300)
    # every streamed row is one of the file's normalised rows with its label
    for t in range(100):
        j = np.flatnonzero(np.all(np.abs(Xn - A[t]) < 1e-12, axis=1) & (y == data.y[t, 0].item()))
        assert j.size >= 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="idx must lie in"):
        SparseRoundData(
            torch.tensor([[[5]]]),
            torch.ones(1, 1, 1, dtype=torch.float64),
            torch.ones(1, 1, dtype=torch.float64),
            4,
        )
    with pytest.raises(ValueError, match="unknown parameter"):
        make_sparse_stream("zipf_sparse", d=8, T=4, seeds=1, rank=3)
    with pytest.raises(ValueError, match="unknown sparse stream"):
        make_sparse_stream("nope", T=4, seeds=1)
    with pytest.raises(ValueError, match="unbounded"):
        data, p = make_sparse_stream("zipf_sparse", d=8, T=4, seeds=1)
        sparse_comparator_bounds(p, data, make_domain("unconstrained", (8,)), [4])


def test_cli_sparse_stream_and_refused_full_adagrad(tmp_path, capsys, monkeypatch):
    """memopt regret on a sparse stream: the table, summary.json with the memory record, and adagrad_full
    refused with its memory (here a 1 kB limit) instead of a crash; the stored trace = a direct run."""
    from memopt_theory.cli import main

    monkeypatch.setenv("MEMOPT_MAX_STATE_BYTES", "1000")
    out = tmp_path / "r"
    argv = ["regret", "--stream", "zipf_sparse", "--d", "64", "--T", "60", "--seeds", "2", "--methods",
            "adagrad_full,s_adagrad,adagrad_diag", "--ranks", "4", "--config", "s_adagrad.sketch=buffer",
            "--checkpoints", "5", "--out", str(out), "--no-plot"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "adagrad_full: refused" in text and "32,768 bytes" in text  # 8·64² per seed
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["s_adagrad (ℓ=4) buffer", "adagrad_diag"]
    assert summary["memory"]["peak_rss_bytes"] > 0
    data, p = make_sparse_stream("zipf_sparse", d=64, T=60, seeds=2)
    dom = make_domain("l2_ball", (64,), radius=1.0)
    ck = simulate.geometric_checkpoints(60, 5)
    L = Learner("adagrad_diag", methods.get("adagrad_diag").Config(), eta="theory", domain=dom)
    tr = run_sparse(L, p, data, checkpoints=ck, comparator=sparse_comparator_bounds(p, data, dom, ck))
    assert summary["rows"][1]["regret_upper"] == pytest.approx(float(tr.regret_upper[-1].mean()), rel=1e-12)


def test_comparator_converges_when_the_optimum_is_reached_early():
    """Regression: on this stream FISTA reaches the optimum to rounding within ~15 iterations, after which every
    step is a momentum restart; the certificate must still be evaluated (the gap was 29 ≈ ‖∇F(0)‖ before,
    i.e. x̂ = 0 was returned). Now the gap meets the stopping rule rtol·max(1, value), rtol = 1e-6."""
    data, problem = make_sparse_stream("zipf_sparse", d=1024, T=100, seeds=1, nnz=20)
    value, lower = sparse_comparator_bounds(problem, data, make_domain("l2_ball", (1024,), radius=1.0), [100])
    assert float(value[0, 0] - lower[0, 0]) <= 1e-6 * max(1.0, float(value[0, 0]))
    assert float(value[0, 0]) < 100 * np.log(2) - 1  # x̂ moved off 0 (F(0) = T·log 2)
