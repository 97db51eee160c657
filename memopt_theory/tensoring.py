r"""Reshape rules and mode-wise algebra shared by the tensored preconditioners (docs/theory/tensored.md §C1, §C2).

Two concepts live here, both about viewing a parameter as an order-p tensor:

1. **Extreme-tensoring reshape** (§C2). A parameter of N elements is flattened row-major, zero-padded to
   Π_i d_i ≥ N and viewed as a d_1×…×d_p tensor. The default mode sizes for order p are

       r_1 = N,   d_i = ⌈r_i^{1/(p+1−i)}⌉ (exact integer root),   r_{i+1} = ⌈r_i / d_i⌉,

   so d_1 ≥ … roughly equal and Π d_i ≥ N (each d_i·r_{i+1} ≥ r_i). **N that does not factor as asked**: the
   surplus Π d_i − N coordinates are zero padding; they always receive a zero gradient, so they never move
   and never change an accumulator, and the memory Σ d_i counts the padded sizes. Example: N = 1000, p = 3 gives
   (10, 10, 10); N = 1001, p = 3 gives (11, 10, 10) with 99 padded zeros; N = 2^20, p = 3 gives (102, 102, 101).
   Requested mode sizes must satisfy Π d_i ≥ N and leave less than one whole mode-1 slice of padding
   (Π d_i − N < Π_{i≥2} d_i): otherwise d_1 could shrink and part of the tensor would be nothing but padding.
   A requested order p must satisfy 2^p ≤ N (N ≥ 2), so that every default mode has at least two entries.

2. **Mode-i unfolding** (§C1, order-p Shampoo). For X of shape B + (n_1, …, n_p), mat_i(X) is the
   n_i × Π_{k≠i} n_k matrix whose rows are indexed by mode i (the other modes in their row-major order);
   mode_gram(X, i) = mat_i(X) mat_i(X)ᵀ contracts all modes but i, and mode_product(X, A, i) = X ×_i A
   multiplies mode i by A (mat_i(X ×_i A) = A·mat_i(X)).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memopt_theory.validation import check_int

__all__ = [
    "integer_root_ceil",
    "max_order",
    "default_mode_sizes",
    "check_mode_sizes",
    "to_tensor",
    "from_tensor",
    "unfold",
    "mode_gram",
    "mode_product",
]


def integer_root_ceil(r: int, k: int) -> int:
    """The smallest integer d ≥ 1 with d^k ≥ r (exact, no floating-point root at the boundary)."""
    check_int(r, "r", where="integer_root_ceil", low=1)
    check_int(k, "k", where="integer_root_ceil", low=1)
    d = max(1, int(round(r ** (1.0 / k))))
    while d**k < r:  # float root was low
        d += 1
    while d > 1 and (d - 1) ** k >= r:  # float root was high
        d -= 1
    return d


def max_order(N: int) -> int:
    """Largest order p with 2^p ≤ N (1 for N ≤ 3): beyond it a default mode would have size 1."""
    return max(1, N.bit_length() - 1)


def default_mode_sizes(N: int, p: int) -> tuple[int, ...]:
    r"""The §C2 default mode sizes (d_1, …, d_p) for N elements and order p (see the module docstring).

    Raises ValueError if p < 1 or 2^p > N (for N ≥ 2), naming the allowed range.
    """
    check_int(N, "N", where="default_mode_sizes", low=1)
    check_int(p, "order", where="default_mode_sizes", low=1)
    if p > max_order(N):
        raise ValueError(
            f"extreme tensoring: order must be in [1, {max_order(N)}] for a parameter of N = {N} elements "
            f"(2^order <= N, so that every mode has >= 2 entries); got order = {p}"
        )
    sizes, r = [], N
    for i in range(1, p + 1):
        d = integer_root_ceil(r, p + 1 - i)
        sizes.append(d)
        r = -(-r // d)
    return tuple(sizes)


def check_mode_sizes(N: int, sizes, *, where: str) -> tuple[int, ...]:
    """Validate requested mode sizes for N elements: ints ≥ 1, Π d_i ≥ N, padding < one mode-1 slice."""
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"{where}: mode_sizes must be a tuple of ints; got {sizes!r}") from None
    if not sizes or any(type(d) is not int or d < 1 for d in sizes):
        raise ValueError(f"{where}: mode_sizes must be a non-empty tuple of ints >= 1; got {sizes!r}")
    prod = math.prod(sizes)
    if prod < N:
        raise ValueError(
            f"{where}: mode_sizes {sizes} hold {prod} entries, fewer than the parameter's N = {N}; "
            "the product of the mode sizes must be >= N (the surplus is zero padding)"
        )
    slice_ = prod // sizes[0]
    if prod - N >= slice_:
        raise ValueError(
            f"{where}: mode_sizes {sizes} pad N = {N} with {prod - N} zeros, a whole mode-1 slice "
            f"({slice_} entries) or more; allowed: N <= prod(mode_sizes) < N + {slice_}"
        )
    return sizes


def to_tensor(x: Tensor, sizes: tuple[int, ...], nbatch: int) -> Tensor:
    """x of shape B + S (len B = nbatch) → B + sizes: row-major flatten, zero-pad to Π sizes, reshape."""
    flat = x.reshape(*x.shape[:nbatch], -1)
    pad = math.prod(sizes) - flat.shape[-1]
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    return flat.reshape(*x.shape[:nbatch], *sizes)


def from_tensor(y: Tensor, shape: tuple[int, ...], nbatch: int) -> Tensor:
    """Inverse of :func:`to_tensor`: drop the padding, reshape to B + shape."""
    flat = y.reshape(*y.shape[:nbatch], -1)
    return flat[..., : math.prod(shape)].reshape(tuple(y.shape[:nbatch]) + tuple(shape))  # shape () allowed


def unfold(X: Tensor, i: int, order: int) -> Tensor:
    """mat_i(X): X of shape B + (n_1..n_p) (p = order) → B + (n_i, Π_{k≠i} n_k), other modes row-major."""
    nb = X.ndim - order
    Y = X.movedim(nb + i, nb)
    return Y.reshape(*X.shape[:nb], X.shape[nb + i], -1)


def mode_gram(X: Tensor, i: int, order: int) -> Tensor:
    """mat_i(X) mat_i(X)ᵀ, shape B + (n_i, n_i): X contracted with itself over every mode except i."""
    M = unfold(X, i, order)
    return M @ M.transpose(-1, -2)


def mode_product(X: Tensor, A: Tensor, i: int, order: int) -> Tensor:
    """X ×_i A for A of shape B + (k, n_i): mat_i(X ×_i A) = A·mat_i(X); mode i becomes size k."""
    nb = X.ndim - order
    Y = X.movedim(nb + i, -1)  # B + (others…, n_i)
    A_b = A.reshape(*A.shape[:-2], *([1] * (order - 1)), *A.shape[-2:])
    Y = (Y.unsqueeze(-2) @ A_b.transpose(-1, -2)).squeeze(-2)
    return Y.movedim(-1, nb + i)
