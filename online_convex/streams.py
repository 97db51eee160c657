r"""Where the losses come from: synthetic gradient streams with a chosen spectrum, and real data streams.

Every loss is a generalised linear loss f_t(x) = φ(⟨a_t, x⟩, y_t) (online_convex.problems), so a stream is
the pair (a_t, y_t) for t = 1..T, for every seed at once:

>>> data, problem = make_stream("low_rank_noise", shape=(64,), T=2000, seeds=8, rank=8)
>>> tuple(data.a.shape), tuple(data.y.shape)        # (T, seeds, *shape), (T, seeds)
((2000, 8, 64), (2000, 8))

Seed i draws from ``numpy.random.SeedSequence(entropy).spawn(seeds)[i]``: common random numbers, so every
method run on the same stream and seed sees the same losses, and seed i's data do not depend on how many
seeds were asked for.

Synthetic streams (default problem "linear": a_t is the gradient g_t itself; with ``problem=`` the a_t are
features and labels come from a hidden teacher w*, see :func:`_labels`):

================== =====================================================================================
name               a_t (N = ΠS coordinates; drawn as vectors of R^N and reshaped to S row-major)
================== =====================================================================================
power_law          Q diag(√λ) z_t, λ_i = scale·i^{−α}, Q a random rotation (``rotate=False``: Q = I)
low_rank_noise     U z_t + σ ξ_t, U ∈ R^{N×r} orthonormal, z_t ~ N(0, I_r), ξ_t ~ N(0, I_N)
rotating           (U cos ωt + V sin ωt) z_t + σ ξ_t: the leading r-dim subspace turns at rate ω rad/step
adversarial_signs  c ⊙ s_t with sign patterns s_t,i ∈ {±1} that flip on a doubling schedule (or alternate)
observation2       Q e_{i_t}, i_t uniform on {1..r}: Sketchy's Observation 2 instance (linear losses)
kron_power_law     S = (m, n): L^{1/2} Z_t R^{1/2}, L, R with power-law spectra (Kronecker covariance)
================== =====================================================================================

Real streams (features standardised, a ones column appended last): breast_cancer, digits (one-vs-rest,
class ``positive``), wine (one-vs-rest), diabetes (least squares), libsvm (``path=``; online_convex.
streams_real). Single pass in file order (``shuffle=False``) or a seeded shuffle per seed; T larger than
the data set makes further passes (reshuffled).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import ortho_group

from memopt_theory.validation import check_int, check_real, check_shape
from online_convex.problems import RoundData

__all__ = ["make_stream", "stream_names", "stream_params", "seed_generators", "get", "names"]

LABELLED = ("linear", "least_squares", "logistic", "hinge")


def seed_generators(entropy: int, seeds: int) -> list[np.random.Generator]:
    """One independent generator per seed: ``SeedSequence(entropy).spawn(seeds)`` (common random numbers)."""
    check_int(entropy, "entropy", where="make_stream", low=0)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(seeds)]


def _rotation(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.eye(1) if n == 1 else ortho_group.rvs(n, random_state=rng)


def _orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """n×k with orthonormal columns (QR of a Gaussian matrix: Haar-distributed subspace)."""
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q


# ---- synthetic generators: (rng, N, T, shape, params) -> a of shape (T, N) ----------------------------------


def _power_law(rng, N, T, shape, *, alpha=1.0, scale=1.0, rotate=True):
    check_real(alpha, "alpha", where="make_stream('power_law')", low=0.0)
    check_real(scale, "scale", where="make_stream('power_law')", low=0.0, low_open=True)
    lam = scale * np.arange(1, N + 1, dtype=np.float64) ** (-float(alpha))
    z = rng.standard_normal((T, N)) * np.sqrt(lam)
    return z @ _rotation(rng, N).T if rotate else z


def _low_rank_noise(rng, N, T, shape, *, rank=None, noise=0.1, scale=1.0):
    rank = min(8, N) if rank is None else rank
    check_int(rank, "rank", where="make_stream('low_rank_noise')", low=1, high=N)
    check_real(noise, "noise", where="make_stream('low_rank_noise')", low=0.0)
    check_real(scale, "scale", where="make_stream('low_rank_noise')", low=0.0, low_open=True)
    U = _orthonormal(rng, N, rank)
    return scale * (rng.standard_normal((T, rank)) @ U.T) + noise * rng.standard_normal((T, N))


def _rotating(rng, N, T, shape, *, rank=None, rate=0.01, noise=0.1):
    where = "make_stream('rotating')"
    rank = max(1, min(4, N // 2)) if rank is None else rank
    check_int(rank, "rank", where=where, low=1)
    if 2 * rank > N:
        raise ValueError(
            f"{where}: rank must be <= N/2 = {N // 2} (the subspace turns into its complement); got {rank}"
        )
    check_real(rate, "rate", where=where)
    check_real(noise, "noise", where=where, low=0.0)
    W = _orthonormal(rng, N, 2 * rank)
    U, V = W[:, :rank], W[:, rank:]
    theta = float(rate) * np.arange(T, dtype=np.float64)
    z = rng.standard_normal((T, rank))
    # (U cos θ_t + V sin θ_t) z_t without building T bases
    lead = (z * np.cos(theta)[:, None]) @ U.T + (z * np.sin(theta)[:, None]) @ V.T
    return lead + noise * rng.standard_normal((T, N))


def _adversarial_signs(rng, N, T, shape, *, pattern="doubling", decay=0.5):
    """Signs that stay constant on blocks [2^k, 2^{k+1}) (shifted per coordinate) then flip, so a learner
    chasing the recent sign keeps overshooting; ``alternating`` flips every step; magnitudes c_i = i^{−decay}."""
    where = "make_stream('adversarial_signs')"
    if pattern not in ("doubling", "alternating"):
        raise ValueError(f"{where}: pattern must be one of 'doubling', 'alternating'; got {pattern!r}")
    check_real(decay, "decay", where=where, low=0.0)
    c = np.arange(1, N + 1, dtype=np.float64) ** (-float(decay))
    offset = rng.integers(0, max(T, 2), size=N)
    t = np.arange(1, T + 1)[:, None] + offset[None, :]
    k = np.floor(np.log2(t)) if pattern == "doubling" else t
    s = np.where(k.astype(np.int64) % 2 == 0, 1.0, -1.0) * rng.choice([-1.0, 1.0], size=N)
    return s * c


def _observation2(rng, N, T, shape, *, rank=None, signs=False):
    """g_t = v_{i_t}, i_t uniform on {1..r}, v_1..v_r orthonormal (Sketchy, Observation 2); ``signs``: ±v."""
    where = "make_stream('observation2')"
    rank = N if rank is None else rank
    check_int(rank, "rank", where=where, low=1, high=N)
    V = _orthonormal(rng, N, rank)
    idx = rng.integers(0, rank, size=T)
    a = V.T[idx]
    if signs:
        a = a * rng.choice([-1.0, 1.0], size=(T, 1))
    return a


def _kron_power_law(rng, N, T, shape, *, alpha=1.0, scale=1.0):
    where = "make_stream('kron_power_law')"
    if len(shape) != 2:
        raise ValueError(f"{where}: shape must be a matrix shape (m, n); got {shape!r}")
    check_real(alpha, "alpha", where=where, low=0.0)
    check_real(scale, "scale", where=where, low=0.0, low_open=True)
    m, n = shape
    lm = np.arange(1, m + 1, dtype=np.float64) ** (-float(alpha))
    ln = np.arange(1, n + 1, dtype=np.float64) ** (-float(alpha))
    Lh = _rotation(rng, m) * np.sqrt(lm)  # L^{1/2} up to a rotation on the right, which Z absorbs
    Rh = (_rotation(rng, n) * np.sqrt(ln)).T
    Z = rng.standard_normal((T, m, n))
    return math.sqrt(scale) * (Lh @ Z @ Rh).reshape(T, N)


SYNTHETIC: dict[str, Callable[..., np.ndarray]] = {
    "power_law": _power_law,
    "low_rank_noise": _low_rank_noise,
    "rotating": _rotating,
    "adversarial_signs": _adversarial_signs,
    "observation2": _observation2,
    "kron_power_law": _kron_power_law,
}


def _labels(rng, a: np.ndarray, problem: str, label_noise: float) -> np.ndarray:
    """y_t for features a_t (T, N): 0 for "linear"; ⟨a_t, w*⟩ + noise (least squares); the sign of ⟨a_t, w*⟩
    flipped with probability ``label_noise`` (logistic, hinge), w* a hidden unit-norm teacher."""
    T, N = a.shape
    if problem == "linear":
        return np.zeros(T)
    w = rng.standard_normal(N)
    w /= np.linalg.norm(w)
    p = a @ w
    if problem == "least_squares":
        return p + label_noise * rng.standard_normal(T)
    y = np.where(p >= 0, 1.0, -1.0)
    return np.where(rng.random(T) < label_noise, -y, y)


def stream_names() -> list[str]:
    from online_convex.streams_real import REAL

    return sorted(SYNTHETIC) + sorted(REAL)


def stream_params(name: str) -> tuple[str, ...]:
    """Keyword parameters ``make_stream(name, ...)`` takes besides shape, T, seeds, entropy, dtype and device.

    Lets a caller (``RunSpec``, a sweep file) refuse a misspelt parameter before any data are made.
    """
    from online_convex.streams_real import REAL, REAL_PARAMS

    if name in REAL:
        return REAL_PARAMS[name]
    if name not in SYNTHETIC:
        raise ValueError(f"make_stream: unknown stream {name!r}; known: {', '.join(stream_names())}")
    code = SYNTHETIC[name].__code__  # the generator's keyword-only arguments are the stream's parameters
    return (
        *code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount],
        "problem",
        "label_noise",
    )


def _to_round_data(a: list[np.ndarray], y: list[np.ndarray], shape, dtype, device) -> RoundData:
    A = np.stack(a, axis=1)  # (T, seeds, N)
    T, n_seeds = A.shape[:2]
    at = torch.as_tensor(A.reshape(T, n_seeds, *shape), dtype=dtype, device=device)
    yt = torch.as_tensor(np.stack(y, axis=1), dtype=dtype, device=device)
    return RoundData(a=at, y=yt)


def make_stream(
    name: str,
    *,
    shape: tuple[int, ...] | None,
    T: int,
    seeds: int,
    entropy: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    **params: Any,
) -> tuple[RoundData, str]:
    """The data a_t, y_t of rounds t = 1..T for ``seeds`` independent seeds, and the default problem name.

    Parameters
    ----------
    name : str                one of :func:`stream_names`
    shape : tuple of int      S, the shape of a_t and of the iterate x (real streams: (features + 1,), or
                              None to take it from the data set)
    T : int ≥ 1               rounds
    seeds : int ≥ 1           independent seeds, advanced together (batch axis B = (seeds,))
    entropy : int ≥ 0         root of the SeedSequence
    params                    the stream's own parameters (module docstring); synthetic streams also take
                              ``problem`` ("linear" default, "least_squares", "logistic", "hinge") and
                              ``label_noise`` (default 0.1)

    Returns
    -------
    data : RoundData          a of shape (T, seeds, *S), y of shape (T, seeds)
    problem : str             the problem these data are meant for
    """
    from online_convex.streams_real import REAL, make_real_stream

    check_int(T, "T", where="make_stream", low=1)
    check_int(seeds, "seeds", where="make_stream", low=1)
    rngs = seed_generators(entropy, seeds)
    if name in REAL:
        return make_real_stream(name, shape=shape, T=T, rngs=rngs, dtype=dtype, device=device, **params)
    if name not in SYNTHETIC:
        raise ValueError(f"make_stream: unknown stream {name!r}; known: {', '.join(stream_names())}")
    if shape is None:
        raise ValueError(f"make_stream({name!r}): shape is required for a synthetic stream; got None")
    shape = check_shape(shape, where=f"make_stream({name!r})", min_ndim=1)
    unknown = sorted(set(params) - set(stream_params(name)))
    if unknown:
        raise TypeError(
            f"make_stream({name!r}): unknown parameter(s) {unknown}; allowed: {', '.join(stream_params(name))}"
        )
    problem = params.pop("problem", "linear")
    if problem not in LABELLED:
        raise ValueError(
            f"make_stream({name!r}): problem must be one of {', '.join(LABELLED)}; got {problem!r}"
        )
    label_noise = check_real(
        params.pop("label_noise", 0.1), "label_noise", where=f"make_stream({name!r})", low=0.0
    )
    gen = SYNTHETIC[name]
    N = math.prod(shape)
    a, y = [], []
    for rng in rngs:
        ai = gen(rng, N, T, shape, **params)
        a.append(ai)
        y.append(_labels(rng, ai, problem, label_noise))
    return _to_round_data(a, y, shape, dtype, device), problem


# the registry idiom shared by methods, problems, domains, streams and checks
def names() -> list[str]:
    """Registered stream names (= :func:`stream_names`)."""
    return stream_names()


def get(name: str) -> Callable[..., tuple[RoundData, str]]:
    """A constructor ``(*, shape, T, seeds, ...) -> (RoundData, problem name)`` for stream ``name``
    (:func:`make_stream` with the name bound); unknown names raise listing the known ones."""
    if name not in stream_names():
        raise ValueError(f"make_stream: unknown stream {name!r}; known: {', '.join(stream_names())}")
    return functools.partial(make_stream, name)
