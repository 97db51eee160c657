"""Every method's ``memory(shape, config)`` against the design's closed-form memory table, written out here
independently of the methods' code (tests/theory/test_memory_model.py checks memory() against the counted
tensors; this pins the formula itself, so a memory() and a state that drift together still fail).

Notation: N = numel(shape); a matrix-like shape (…, m, n) has A = Π of the leading axes; w = window; ℓ = the
paper's sketch size; k = max(1, ⌊density·N⌋). Deliberate deviations from the table, each asserted as such:

- ggt: the table counts r·d + d + r (window, momentum, eigenvalues); memopt stores the window (rN), the
  momentum only when β1 > 0 (N·[β1 > 0]) and one step counter (+1), and recomputes the r×r eigenpairs each
  step (transient): rN + N·[β1 > 0] + 1.
- ef_ggt: the table's rk + d + r² plus one step counter (+1).
- ef_mfac / ef_ggt with the low-rank compressor (not in the table): each window row is a rank-ρ pair P (a×ρ),
  Q (b×ρ) of the (a, b) = (shape[0], N/shape[0]) view, and the error-feedback buffer is a×b = N:
  w·ρ(a + b) + N in place of wk + N.
- smmf on its dense path (vector_reshape=False and a single non-unit axis, not in the table): the plain
  moments, N (+N with momentum) + 1.
- Extreme Tensoring: Σ d_i over the method's own mode sizes (the table's "Σ d_i of the reshape"; the sizes
  come from ``mode_sizes``, which tests/theory/test_tensored_methods.py derives by hand).
- galore / ldadam: the rank used is r = min(rank, m, n), as the official GaLore projector keeps at most min(m, n)
  singular vectors (so the default rank runs on small layers).
- adagrad_full with solver="incremental": besides S (N²), the last eigenbasis Q (N²), Λ (N), the gradients since it
  Z (N·refresh), the bordered inverses C_j^{−1} (nodes·refresh²), the nodes (2·nodes) and 5 bookkeeping scalars.
"""

from __future__ import annotations

import math
import re

import pytest

from memopt_theory import methods
from memopt_theory.methods.extreme_tensoring import mode_sizes
from tests.theory.cases import CASES

SHAPES = [(1,), (2,), (7,), (13,), (64,), (2, 5), (6, 4), (1, 9), (9, 1), (3, 2, 4), (2, 1, 3, 5)]
REFUSALS = re.compile(r"rank must be <= min|order must be in")


def _kdens(density: float, n: int) -> int:
    return max(1, int(density * n))


def _square(N: int) -> tuple[int, int]:
    """SMMF's square matricization: n̂ the largest divisor of N with n̂ ≤ √N, m̂ = N/n̂."""
    n = max(d for d in range(1, math.isqrt(N) + 1) if N % d == 0)
    return n, N // n


def table(name: str, shape: tuple[int, ...], c) -> int:
    """The design table's closed form (module docstring for the deviations)."""
    N = math.prod(shape)
    mat = len(shape) >= 2
    A = math.prod(shape[:-2]) if mat else 1
    if name == "ogd":
        return 1
    if name == "adagrad_diag":
        return N
    if name == "adagrad_full":
        if (
            c.solver == "incremental"
        ):  # deviation: S and Q (N² each), Λ, Z (N·refresh), C_j^{−1}, nodes, 5 scalars
            return 2 * N * N + N + N * c.refresh + c.nodes * c.refresh**2 + 2 * c.nodes + 5
        return N * N
    if name == "adam":
        return 2 * N + 1
    if name == "s_adagrad":
        return min(c.ell - 1, N) * (N + 1) + 1
    if name in ("ada_fd", "fd_son", "rfd_son"):
        return min(c.ell, N) * (N + 1) + 2
    if name == "s_shampoo":
        return sum(min(c.ell - 1, n) * (n + 1) + 1 for n in shape)
    if name == "shampoo":
        return sum(n * n for n in shape)
    if name == "extreme_tensoring":
        return sum(mode_sizes(shape, c))
    if name == "adafactor":
        stats = A * (shape[-2] + shape[-1]) if mat else N
        return stats + 1 + (N if c.beta1 > 0 else 0)
    if name == "sm3":
        acc = {"slices": sum(shape), "singletons": N, "all": 1}[c.cover]
        return acc + (N if c.momentum > 0 else 0)
    if name == "came":
        return N + 2 * A * (shape[-2] + shape[-1]) if mat else 2 * N
    if name == "ggt":
        return c.window * N + (N if c.beta1 > 0 else 0) + 1  # deviation: rN + N·[β1 > 0] + 1
    if name == "mfac":
        w = c.window
        return w * N + 3 * w * w + w + 1 + (N if c.momentum > 0 else 0)
    if name in ("ef_mfac", "ef_ggt"):
        w = c.window
        if c.compressor == "topk":
            ring = w * _kdens(c.density, N) + N
        else:  # deviation: low-rank rows
            a, b = (1, N) if len(shape) <= 1 else (shape[0], N // shape[0])
            rho = 1 if len(shape) <= 1 else c.rank
            ring = w * rho * (a + b) + a * b
        if name == "ef_mfac":
            return ring + 3 * w * w + w + 1 + (N if c.momentum > 0 else 0)
        return ring + w * w + 1  # deviation: + 1 step counter
    if name == "smmf":
        mom = c.beta1 is not None
        if not c.vector_reshape and sum(s > 1 for s in shape) == 1:  # deviation: dense path
            return (2 * N if mom else N) + 1
        n, m = _square(N)
        return (2 if mom else 1) * (n + m) + 1
    if name == "ldadam":
        if len(shape) != 2:
            return 2 * N + 1
        r = min(
            c.rank, *shape
        )  # deviation: the rank used is min(rank, dims), as the official GaLore projector
        return 2 * r * max(shape) + r * min(shape) + 1 + (N if c.error_feedback else 0)
    if name == "galore":
        if len(shape) != 2:
            return 2 * N + 1
        r = min(
            c.rank, *shape
        )  # deviation: the rank used is min(rank, dims), as the official GaLore projector
        return 2 * r * max(shape) + r * min(shape) + 1
    if name == "microadam":
        B = min(c.topk_block, N)
        k = -(-N // B) * max(1, int(c.density * B))  # k per block of B_topk entries, ⌈N/B⌉ blocks
        return c.window * k + 2 * -(-N // c.quant_block) + 1
    raise KeyError(name)


@pytest.mark.parametrize("name", methods.names())
def test_memory_equals_the_design_table(name):
    m, case = methods.get(name), CASES[name]
    checked = 0
    for cfg in (case.config, *case.extra_configs):
        for shape in SHAPES:
            try:
                got = m.memory(shape, cfg)
            except ValueError as e:
                assert REFUSALS.search(str(e)), (shape, cfg, str(e))
                continue
            assert got == table(name, shape, cfg), (name, shape, cfg, got, table(name, shape, cfg))
            checked += 1
    assert checked >= len(SHAPES)  # at least one config's worth of shapes per method
