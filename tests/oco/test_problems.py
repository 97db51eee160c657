"""online_convex.problems: values against the formulas, gradients against torch.autograd and finite
differences, totals against explicit loops, batch axes against per-seed calls, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from online_convex.problems import PROBLEM_NAMES, RoundData, get_problem

SHAPES = [(5,), (3, 4), (2, 2, 3)]  # vector, matrix, order-3 tensor: one code path


def make_data(name: str, T: int, batch: tuple[int, ...], shape: tuple[int, ...], seed: int) -> RoundData:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(T, *batch, *shape, generator=g, dtype=torch.float64)
    if name in ("logistic", "hinge"):
        y = torch.randint(0, 2, (T, *batch), generator=g).double() * 2 - 1
    elif name == "least_squares":
        y = torch.randn(T, *batch, generator=g, dtype=torch.float64)
    else:
        y = torch.zeros(T, *batch, dtype=torch.float64)
    return RoundData(a, y)


@pytest.mark.parametrize("name", PROBLEM_NAMES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_grad_matches_autograd(name, shape):
    """∇f from φ'(p)·a equals torch.autograd of the value, for every family and shape (B = (3,))."""
    data = make_data(name, 1, (3,), shape, seed=1)
    pb = get_problem(name)
    x = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    xr = x.clone().requires_grad_(True)
    pb.loss(xr, data.a[0], data.y[0]).sum().backward()
    # the same float64 operations in a different order: agreement to ~1e-15 relative; 1e-12 leaves margin
    torch.testing.assert_close(pb.grad(x, data.a[0], data.y[0]), xr.grad, rtol=1e-12, atol=1e-12)
    xr.grad = None
    pb.total_loss(xr, data, 1).sum().backward()
    torch.testing.assert_close(pb.total_grad(x, data, 1), xr.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["least_squares", "logistic"])
@pytest.mark.parametrize("shape", [(4,), (2, 3)], ids=str)
def test_gradient_and_hessian_by_finite_differences(name, shape):
    """Central differences of F_t (step h = 1e-5) agree with total_grad and total_hessian."""
    data = make_data(name, 7, (), shape, seed=3)
    pb = get_problem(name)
    x = 0.3 * torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    n, h = x.numel(), 1e-5
    fd_g = torch.zeros(n, dtype=torch.float64)
    fd_H = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        e = torch.zeros(n, dtype=torch.float64)
        e[i] = h
        e = e.reshape(shape)
        fd_g[i] = (pb.total_loss(x + e, data, 7) - pb.total_loss(x - e, data, 7)) / (2 * h)
        fd_H[i] = ((pb.total_grad(x + e, data, 7) - pb.total_grad(x - e, data, 7)) / (2 * h)).flatten()
    # central differences: truncation O(h²·|f'''|) ≈ 1e-10·7, round-off O(ε·|F|/h) ≈ 1e-10; 1e-7 is safe
    torch.testing.assert_close(pb.total_grad(x, data, 7).flatten(), fd_g, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(pb.total_hessian(x, data, 7), fd_H, rtol=1e-7, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(PROBLEM_NAMES),
    T=st.integers(1, 6),
    t_end=st.integers(0, 6),
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**16),
)
def test_totals_equal_explicit_loops_and_per_seed_calls(name, T, t_end, shape, seed):
    """F_t(x) = Σ_{s<t} φ(⟨a_s, x⟩, y_s) written out with numpy per seed; the batch axis changes nothing."""
    t_end = min(t_end, T)
    data = make_data(name, T, (2,), shape, seed)
    pb = get_problem(name)
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    A, Y, X = data.a.numpy(), data.y.numpy(), x.numpy()
    formulas = {
        "linear": lambda p, y: p,
        "least_squares": lambda p, y: 0.5 * (p - y) ** 2,
        "logistic": lambda p, y: np.log1p(np.exp(-y * p)),
        "hinge": lambda p, y: max(0.0, 1 - y * p),
    }
    for b in range(2):
        want = sum(formulas[name](float((A[s, b] * X[b]).sum()), float(Y[s, b])) for s in range(t_end))
        # sums of ≤ 6 terms of size O(10) in float64: ~1e-14 absolute; 1e-12 leaves margin
        assert abs(float(pb.total_loss(x, data, t_end)[b]) - want) <= 1e-12 * (1 + abs(want))
        one = RoundData(data.a[:, b], data.y[:, b])
        torch.testing.assert_close(
            pb.total_grad(x[b], one, t_end), pb.total_grad(x, data, t_end)[b], rtol=1e-13, atol=1e-13
        )


def test_known_values_and_kink():
    """Hand values: logistic at p = 0 is log 2; hinge's subgradient is 0 at yp = 1 and −y·a inside the margin."""
    lg, hg = get_problem("logistic"), get_problem("hinge")
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    y = torch.tensor(1.0, dtype=torch.float64)
    assert abs(float(lg.loss(torch.zeros(2, dtype=torch.float64), a, y)) - np.log(2)) < 1e-15
    x_kink = torch.tensor([1.0, 0.0], dtype=torch.float64)  # p = 1 = 1/y
    assert torch.equal(hg.grad(x_kink, a, y), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(hg.grad(torch.zeros(2, dtype=torch.float64), a, y), -a)
    # logistic far out: softplus keeps log(1 + e^{800}) = 800 finite (a naive log1p(exp) overflows)
    assert float(lg.phi(torch.tensor(-800.0, dtype=torch.float64), y)) == pytest.approx(800.0, rel=1e-15)


def test_float32_and_dtype_kept():
    pb = get_problem("logistic")
    data = make_data("logistic", 4, (2,), (3,), seed=0)
    d32 = RoundData(data.a.float(), data.y.float())
    x = torch.zeros(2, 3)
    assert pb.total_grad(x, d32, 4).dtype == torch.float32
    # float32 rounding ~1e-7 relative on sums of 4 terms of size O(1)
    torch.testing.assert_close(
        pb.total_grad(x, d32, 4).double(), pb.total_grad(x.double(), data, 4), rtol=1e-5, atol=1e-6
    )


def test_bad_input():
    with pytest.raises(ValueError, match="unknown problem 'ridge'; known problems: linear, least_squares"):
        get_problem("ridge")
    a = torch.randn(3, 2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="leading axes"):
        RoundData(a, torch.zeros(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="must be finite"):
        RoundData(a, torch.full((3, 2), float("nan"), dtype=torch.float64))
    with pytest.raises(TypeError, match="floating dtype"):
        RoundData(a, torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="T .* must be >= 1"):
        RoundData(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    data = RoundData(a, torch.ones(3, 2, dtype=torch.float64))
    pb = get_problem("hinge")
    with pytest.raises(
        ValueError, match=r"x has shape \(2, 5\); the data's rounds have shape B \+ S = \(2, 4\)"
    ):
        pb.total_loss(torch.zeros(2, 5, dtype=torch.float64), data, 3)
    with pytest.raises(ValueError, match=r"t_end must be an int in \[0, T=3\]; got 4"):
        pb.total_loss(torch.zeros(2, 4, dtype=torch.float64), data, 4)
    with pytest.raises(ValueError, match="labels y must be -1 or \\+1"):
        pb.total_loss(
            torch.zeros(2, 4, dtype=torch.float64), RoundData(a, torch.zeros(3, 2, dtype=torch.float64)), 3
        )
    with pytest.raises(ValueError, match="a has shape"):
        pb.loss(
            torch.zeros(2, 4, dtype=torch.float64),
            torch.zeros(2, 3, dtype=torch.float64),
            torch.ones(2, dtype=torch.float64),
        )


def test_problems_serialise_by_reference():
    """Process pools and dask workers serialise what they ship: a Problem must serialise, its φ functions by
    module reference (lambdas would not). Only dumps: nothing in memopt loads a pickle."""
    import pickle

    for name in PROBLEM_NAMES:
        assert b"online_convex.problems" in pickle.dumps(get_problem(name))
