"""memopt_theory.linalg against brute force: scipy's Schur-based sqrtm / fractional_matrix_power, numpy's pinv and
the SVD of a factor (docs/theory/bounds.md §0: PSD powers through eigh in float64, pseudo-inverse below τ = n·ε·λ_1).

Tolerances: matrices are n ≤ 6 with entries ≤ 10 and, where invertible, smallest eigenvalue ≥ 0.1 (SPD draws are
M Mᵀ + 0.1·I), so condition numbers are ≲ 1e4; both sides are backward stable, so powers with |p| ≤ 2 agree to
~cond^{|p|}·n·ε ≲ 1e-7 relative at worst; assertions use 1e-7 relative to the largest entry.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from memopt_theory.linalg import (
    default_rtol,
    is_psd,
    min_eigenvalue,
    pinv_power_values,
    psd_inv_root,
    psd_power,
    sym_eigh,
)

REL = 1e-7
_ent = st.floats(-3, 3, allow_nan=False, allow_subnormal=False)


@st.composite
def spd(draw, max_n=6):
    n = draw(st.integers(1, max_n))
    M = draw(arrays(np.float64, (n, n), elements=_ent))
    return M @ M.T + 0.1 * np.eye(n)


@st.composite
def low_rank_psd(draw, max_n=6):
    """A = B Bᵀ with B of shape (n, r), r < n, and B's singular values ≥ 0.3 (well separated from 0)."""
    n = draw(st.integers(2, max_n))
    r = draw(st.integers(1, n - 1))
    Q, _ = np.linalg.qr(draw(arrays(np.float64, (n, n), elements=_ent)) + 5 * np.eye(n))
    s = np.array(draw(st.lists(st.floats(0.3, 3), min_size=r, max_size=r)))
    B = Q[:, :r] * s
    return B


def _assert_close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=0, atol=REL * max(1.0, np.abs(b).max()))


@settings(max_examples=50, deadline=None)
@given(spd(), st.sampled_from([0.5, -0.5, -0.25, 1 / 3, 2.0, -1.0]))
def test_power_matches_scipy(A, p):
    got = psd_power(torch.from_numpy(A), p).numpy()
    ref = scipy.linalg.fractional_matrix_power(A, p).real
    _assert_close(got, ref)


@settings(max_examples=40, deadline=None)
@given(spd(), st.floats(0.0, 2.0))
def test_eps_regularisation(A, eps):
    """(A + εI)^{−1/2} with ε added to every eigenvalue equals scipy on A + εI."""
    got = psd_power(torch.from_numpy(A), -0.5, eps=eps).numpy()
    _assert_close(got, scipy.linalg.fractional_matrix_power(A + eps * np.eye(len(A)), -0.5).real)


@settings(max_examples=40, deadline=None)
@given(spd(), st.sampled_from([1, 2, 4]))
def test_inverse_root_inverts(A, root):
    """X = A^{−1/root} satisfies X^root·A = I (independent of any reference implementation)."""
    X = psd_inv_root(torch.from_numpy(A), root).numpy()
    _assert_close(np.linalg.matrix_power(X, root) @ A, np.eye(len(A)))


@settings(max_examples=50, deadline=None)
@given(low_rank_psd(), st.sampled_from([-1.0, -0.5, -0.25, 0.5]))
def test_pseudo_inverse_powers_of_singular_matrices(B, p):
    """A = BBᵀ singular: A^p on range A, 0 on its null space, from the SVD of B (A = WΣ²Wᵀ, no squaring);
    p = −1 also equals numpy's pinv. Round-off null eigenvalues (~ε·λ_1 ≤ τλ_1) must be dropped, not inverted."""
    A = B @ B.T
    W, S, _ = np.linalg.svd(B, full_matrices=False)
    ref = (W * S ** (2 * p)) @ W.T
    got = psd_power(torch.from_numpy(A), p).numpy()
    _assert_close(got, ref)
    if p == -1.0:
        _assert_close(got, np.linalg.pinv(A, rcond=1e-10, hermitian=True))


def test_batched_equals_loop_and_keeps_dtype():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    A = M @ M.transpose(-1, -2) + 0.1 * torch.eye(4, dtype=torch.float64)
    batched = psd_power(A, -0.5)
    for i in range(3):
        torch.testing.assert_close(batched[i], psd_power(A[i], -0.5), rtol=1e-12, atol=1e-12)
    out32 = psd_power(A.float(), 0.5)
    assert out32.dtype == torch.float32
    # computed in float64 and rounded once: float32 output within float32 rounding of the float64 result
    torch.testing.assert_close(out32.double(), psd_power(A, 0.5), rtol=1e-6, atol=1e-6)


def test_negative_round_off_eigenvalues_are_clamped():
    """A PSD matrix whose computed eigenvalue is slightly negative: the square root stays real and PSD."""
    v = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    A = np.outer(v, v) - 1e-17 * np.eye(3)  # eigenvalues 1, −1e-17, −1e-17: round-off negatives
    R = psd_power(torch.from_numpy(A), 0.5)
    _assert_close(R.numpy(), np.outer(v, v))


def test_sym_eigh_symmetrises_and_min_eigenvalue():
    A = np.array([[2.0, 1.0 + 1e-9], [1.0 - 1e-9, 2.0]])  # asymmetric by round-off: eigh sees (A + Aᵀ)/2
    lam, _ = sym_eigh(torch.from_numpy(A))
    np.testing.assert_allclose(lam.numpy(), [1.0, 3.0], atol=1e-12)
    assert abs(float(min_eigenvalue(torch.from_numpy(A))) - 1.0) < 1e-12


def test_is_psd():
    assert is_psd(torch.eye(3, dtype=torch.float64))
    assert is_psd(torch.zeros(2, 2, dtype=torch.float64))
    assert not is_psd(torch.diag(torch.tensor([1.0, -1e-3], dtype=torch.float64)))
    assert is_psd(torch.diag(torch.tensor([1.0, -1e-3], dtype=torch.float64)), atol=1e-2)


def test_pinv_power_values_cutoff():
    """Values ≤ τ·max count as 0 (τ = n·ε by default); negatives are clamped; positive powers unaffected."""
    n = 3
    tau = default_rtol(n)
    lam = torch.tensor([1.0, 0.5 * tau, -1e-20], dtype=torch.float64)
    out = pinv_power_values(lam, -0.5)
    assert out.tolist() == [1.0, 0.0, 0.0]
    assert pinv_power_values(lam, 0.5)[2] == 0.0
    assert pinv_power_values(torch.tensor([4.0, 1e-3], dtype=torch.float64), -0.5, rtol=1e-2).tolist() == [
        0.5,
        0.0,
    ]


def test_bad_input():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., n, n\)"):
        psd_power(torch.ones(2, 3, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="finite"):
        psd_power(torch.tensor([[float("nan")]], dtype=torch.float64), 0.5)
    with pytest.raises(TypeError, match="floating"):
        psd_power(torch.ones(2, 2, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="eps must be >= 0; got -0.1"):
        psd_power(torch.eye(2, dtype=torch.float64), -0.5, eps=-0.1)
    with pytest.raises(ValueError, match="root must be an int >= 1; got 0"):
        psd_inv_root(torch.eye(2, dtype=torch.float64), 0)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        psd_power(np.eye(2), 0.5)


def test_sym_eigh_falls_back_when_lapack_fails(monkeypatch):
    """If torch's eigh raises (syevd not converging, seen on a 4096² AdaGrad statistic of sparse gradients),
    sym_eigh answers through scipy's syevr: the same decomposition, A = QΛQᵀ to 1e-12 and Λ ascending."""
    import torch

    from memopt_theory.linalg import sym_eigh

    gen = torch.Generator().manual_seed(0)
    G = torch.randn(2, 30, 6, generator=gen, dtype=torch.float64)
    A = G.transpose(-1, -2) @ G  # rank ≤ 6 of 6: fine; pad to many repeated zeros below
    A = torch.block_diag(A[0], torch.zeros(20, 20, dtype=torch.float64)).expand(3, 26, 26)
    ref = torch.linalg.eigvalsh(A)

    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", broken)
    lam, Q = sym_eigh(A)
    assert lam.shape == (3, 26) and Q.shape == (3, 26, 26)
    assert torch.allclose(lam, ref, atol=1e-12 * float(ref.abs().max()))
    assert torch.allclose(
        (Q * lam.unsqueeze(-2)) @ Q.transpose(-1, -2), A, atol=1e-11 * float(ref.abs().max())
    )
