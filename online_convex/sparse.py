r"""High-dimensional sparse OCO: streams with sparse rounds a_t, run end to end without a T×d or d×d array.

A round's vector a_t ∈ R^d has few non-zeros (text features, one-hot categoricals), so a stream of T rounds
for B seeds is stored as padded (indices, values) rows, :class:`SparseRoundData`: ``idx`` and ``val`` of shape
(T, *B, m), m the largest non-zero count of a row, padding entries (0, 0.0). Everything the simulator needs is
O(m) per round from this form:

* margin p_t = ⟨a_t, x⟩ = Σ_j val_j·x[idx_j] (a gather), loss φ(p_t, y_t) (online_convex.problems);
* gradient g_t = φ'(p_t, y_t)·a_t, scattered into a dense d-vector per seed (the learners take dense
  gradients; one round's B×d array is O(Bd), never T×d);
* the learners themselves keep O(dℓ) states (``s_adagrad``/``ada_fd`` with ``sketch="buffer"`` are the ones
  that stay fast at d = 2¹⁸; ``adagrad_full`` refuses a d×d statistic above its memory limit);
* the comparator: :func:`sparse_comparator_bounds` minimises F_t = Σ_{s≤t} f_s over K by FISTA on a
  scipy CSR matrix (O(nnz) per iteration) and certifies the result by Fenchel weak duality, exactly as
  online_convex.comparator does for dense data: with α_s = φ'(p_s) at x̂,
      min_K F_t ≥ −Σ_s φ*(α_s, y_s) + min_{x∈K} ⟨Σ_s α_s a_s, x⟩ =: lower,
  which for smooth φ is F_t(x̂) minus the Frank–Wolfe gap (zero exactly at the minimiser); α = 0 is also
  dual feasible and gives lower ≥ 0 for logistic and least squares. value = F_t(x̂) ≥ min_K F_t ≥ lower.

Streams (:func:`make_sparse_stream`, :data:`SPARSE_STREAMS`): ``zipf_sparse`` (synthetic; feature j occurs
with probability ∝ (j+1)^{−s}, like the long-tailed features of a9a/rcv1), ``pydoc_ngrams`` (the pydoc topic
texts that ship with Python, paragraphs hashed into d = 2¹⁸ word 1–2-gram features by scikit-learn's
HashingVectorizer, label = which half of the topics the paragraph comes from; no download) and
``libsvm_sparse`` (a LIBSVM file read sparse by scikit-learn's ``load_svmlight_file``).
"""

from __future__ import annotations

import math
import re
import time
import zlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from memopt_theory.validation import check_int, check_real
from online_convex.problems import RoundData, get_problem

__all__ = [
    "SparseRoundData",
    "SPARSE_STREAMS",
    "make_sparse_stream",
    "csr_to_rounds",
    "sparse_comparator_bounds",
    "run_sparse",
]

SPARSE_STREAMS = ("zipf_sparse", "pydoc_ngrams", "libsvm_sparse")


@dataclass(frozen=True)
class SparseRoundData:
    """T rounds for seeds B in padded sparse form: idx (T, *B, m) int64 in [0, d), val and y floating.

    a_t for seed b is Σ_j val[t, b, j]·e_{idx[t, b, j]}; padding entries have val 0 (any idx). Indices within
    a row should be distinct (:func:`csr_to_rounds` makes them so); repeated ones add up, consistently in
    every computation here.
    """

    idx: Tensor
    val: Tensor
    y: Tensor
    d: int

    def __post_init__(self) -> None:
        where = "SparseRoundData"
        check_int(self.d, "d", where=where, low=1)
        if not isinstance(self.idx, Tensor) or self.idx.dtype != torch.int64:
            raise TypeError(
                f"{where}: idx must be an int64 tensor; got {getattr(self.idx, 'dtype', self.idx)}"
            )
        for name, v in (("val", self.val), ("y", self.y)):
            if not isinstance(v, Tensor) or not torch.is_floating_point(v):
                raise TypeError(f"{where}: {name} must be a floating tensor")
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{where}: {name} must be finite; it has NaN/inf entries")
        if self.idx.shape != self.val.shape or self.idx.ndim != self.y.ndim + 1:
            raise ValueError(
                f"{where}: idx and val must have shape (T, *B, m) and y (T, *B); got idx {tuple(self.idx.shape)}, "
                f"val {tuple(self.val.shape)}, y {tuple(self.y.shape)}"
            )
        if tuple(self.idx.shape[:-1]) != tuple(self.y.shape) or self.y.shape[0] < 1:
            raise ValueError(f"{where}: y's shape {tuple(self.y.shape)} must be idx's leading axes, T >= 1")
        if self.idx.numel() and (int(self.idx.min()) < 0 or int(self.idx.max()) >= self.d):
            raise ValueError(
                f"{where}: idx must lie in [0, d) = [0, {self.d}); got {int(self.idx.min())}..{int(self.idx.max())}"
            )

    @property
    def T(self) -> int:
        return int(self.y.shape[0])

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.y.shape[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.d,)

    def nbytes(self) -> int:
        """Bytes of the stored stream (idx, val, y)."""
        return sum(t.numel() * t.element_size() for t in (self.idx, self.val, self.y))

    def to(self, device) -> SparseRoundData:
        return SparseRoundData(self.idx.to(device), self.val.to(device), self.y.to(device), self.d)

    def csr(self, seed: int) -> sp.csr_matrix:
        """Seed ``seed`` (B flattened row-major) as a T × d scipy CSR matrix (float64, duplicates summed)."""
        nb = max(math.prod(self.batch), 1)
        idx = self.idx.reshape(self.T, nb, -1)[:, seed].cpu().numpy()
        val = self.val.reshape(self.T, nb, -1)[:, seed].cpu().numpy().astype(np.float64)
        rows = np.repeat(np.arange(self.T), idx.shape[1])
        return sp.csr_matrix((val.ravel(), (rows, idx.ravel())), shape=(self.T, self.d))

    def dense(self) -> RoundData:
        """The same stream as a dense RoundData, (T, *B, d): only for small T·d (tests compare with it)."""
        a = torch.zeros(self.y.shape + (self.d,), dtype=self.val.dtype, device=self.val.device)
        a.scatter_add_(-1, self.idx, self.val)
        return RoundData(a=a, y=self.y.clone())

    def margins(self, x: Tensor, t: int) -> Tensor:
        """p_t = ⟨a_t, x⟩ for x of shape B + (d,): shape B."""
        return (self.val[t] * torch.gather(x, -1, self.idx[t])).sum(-1)

    def scatter(self, coef: Tensor, t: int) -> Tensor:
        """coef·a_t as a dense B + (d,) tensor (coef of shape B)."""
        g = torch.zeros(self.batch + (self.d,), dtype=self.val.dtype, device=self.val.device)
        return g.scatter_add_(-1, self.idx[t], coef.unsqueeze(-1) * self.val[t])


def csr_to_rounds(mats: list[sp.csr_matrix], ys: list[np.ndarray], *, dtype=torch.float64) -> SparseRoundData:
    """One T × d CSR matrix and T labels per seed → :class:`SparseRoundData` with batch (len(mats),)."""
    if not mats or len(mats) != len(ys):
        raise ValueError(f"csr_to_rounds: need one label vector per matrix; got {len(mats)} and {len(ys)}")
    T, d = mats[0].shape
    if any(M.shape != (T, d) for M in mats) or any(np.shape(y) != (T,) for y in ys):
        raise ValueError(f"csr_to_rounds: every matrix must be {T} × {d} with {T} labels")
    mats = [sp.csr_matrix(M) for M in mats]
    for M in mats:
        M.sum_duplicates()
    m = max(1, max(int(np.diff(M.indptr).max()) for M in mats))
    idx = np.zeros((T, len(mats), m), dtype=np.int64)
    val = np.zeros((T, len(mats), m), dtype=np.float64)
    for b, M in enumerate(mats):
        cnt = np.diff(M.indptr)
        pos = np.arange(M.nnz) - np.repeat(M.indptr[:-1], cnt)
        rows = np.repeat(np.arange(T), cnt)
        idx[rows, b, pos] = M.indices
        val[rows, b, pos] = M.data
    y = np.stack([np.asarray(v, dtype=np.float64) for v in ys], axis=1)
    return SparseRoundData(
        idx=torch.from_numpy(idx), val=torch.from_numpy(val).to(dtype), y=torch.from_numpy(y).to(dtype), d=d
    )


# --- streams --------------------------------------------------------------------------------------------------
def _normalize_rows(M: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(M.multiply(M).sum(1)).ravel())
    return sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ M


def _zipf(rng: np.random.Generator, T: int, d: int, *, nnz: int, s: float, label_noise: float):
    """T rows with ``nnz`` draws of feature j ∝ (j+1)^{−s} (duplicates merged), unit rows, labels of a dense w*."""
    p = np.arange(1, d + 1, dtype=np.float64) ** -s
    cdf = np.cumsum(p / p.sum())
    cols = np.minimum(np.searchsorted(cdf, rng.random(T * nnz)), d - 1)
    rows = np.repeat(np.arange(T), nnz)
    M = sp.csr_matrix((np.ones(T * nnz), (rows, cols)), shape=(T, d))
    M.sum_duplicates()
    M = _normalize_rows(M)
    w = rng.standard_normal(d)
    y = np.where(M @ w >= 0, 1.0, -1.0)
    flip = rng.random(T) < label_noise
    return M, np.where(flip, -y, y)


def _pydoc_corpus(min_words: int = 8) -> tuple[list[str], np.ndarray]:
    """Paragraphs of the pydoc topics (sorted topics), label +1/−1 by the parity of crc32(topic name)."""
    from pydoc_data.topics import topics

    texts, labels = [], []
    for name in sorted(topics):
        lab = 1.0 if zlib.crc32(name.encode()) & 1 else -1.0
        for para in re.split(r"\n\s*\n", topics[name]):
            if len(para.split()) >= min_words:
                texts.append(para)
                labels.append(lab)
    return texts, np.asarray(labels)


def _pydoc(rng: np.random.Generator, T: int, d: int, *, ngram: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    texts, labels = _pydoc_corpus()
    hv = HashingVectorizer(n_features=d, ngram_range=(1, ngram), alternate_sign=True, norm="l2")
    X = hv.transform(texts).tocsr()
    order = rng.integers(0, len(texts), size=T)  # an i.i.d. sequence of paragraphs (T may exceed the corpus)
    return X[order], labels[order]


def _libsvm(rng: np.random.Generator, T: int, d: int | None, *, path: str):
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(str(path), n_features=d)
    vals = np.unique(y)
    if len(vals) != 2:
        raise ValueError(f"libsvm_sparse: {path} must have two classes for ±1 labels; it has {len(vals)}")
    y = np.where(y == vals.max(), 1.0, -1.0)
    order = rng.integers(0, X.shape[0], size=T)
    return _normalize_rows(X.tocsr()[order]), y[order]


def make_sparse_stream(
    name: str, *, d: int = 2**18, T: int, seeds: int, entropy: int = 0, dtype=torch.float64, **params
) -> tuple[SparseRoundData, str]:
    """(data, problem name) for a sparse stream; seed b's rows come from SeedSequence(entropy).spawn(seeds)[b].

    zipf_sparse: ``nnz`` draws per row (default 30), Zipf exponent ``s`` (default 1.1), ``label_noise``
    (default 0.05); pydoc_ngrams: ``ngram`` (default 2, word 1..ngram-grams); libsvm_sparse: ``path`` (d =
    the file's feature count unless given). All rows have unit ℓ2 norm; the problem is logistic.
    """
    check_int(T, "T", where="make_sparse_stream", low=1)
    check_int(seeds, "seeds", where="make_sparse_stream", low=1)
    if name not in SPARSE_STREAMS:
        raise ValueError(f"unknown sparse stream {name!r}; known: {', '.join(SPARSE_STREAMS)}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(seeds)]
    allowed = {
        "zipf_sparse": {"nnz", "s", "label_noise"},
        "pydoc_ngrams": {"ngram"},
        "libsvm_sparse": {"path"},
    }
    extra = set(params) - allowed[name]
    if extra:
        raise ValueError(
            f"{name}: unknown parameter(s) {sorted(extra)}; allowed: {', '.join(sorted(allowed[name])) or 'none'}"
        )
    out = []
    for rng in rngs:
        if name == "zipf_sparse":
            nnz = check_int(params.get("nnz", 30), "nnz", where=name, low=1)
            s = check_real(params.get("s", 1.1), "s", where=name, low=0.0)
            noise = check_real(params.get("label_noise", 0.05), "label_noise", where=name, low=0.0, high=1.0)
            check_int(d, "d", where=name, low=1)
            out.append(_zipf(rng, T, d, nnz=nnz, s=s, label_noise=noise))
        elif name == "pydoc_ngrams":
            check_int(d, "d", where=name, low=1)
            out.append(_pydoc(rng, T, d, ngram=check_int(params.get("ngram", 2), "ngram", where=name, low=1)))
        else:
            if "path" not in params:
                raise ValueError("libsvm_sparse: needs path=FILE (a LIBSVM/svmlight text file)")
            out.append(_libsvm(rng, T, d, path=params["path"]))
    return csr_to_rounds([m for m, _ in out], [y for _, y in out], dtype=dtype), "logistic"


# --- comparator -----------------------------------------------------------------------------------------------
_SMOOTH = {"logistic": 0.25, "least_squares": 1.0}  # sup φ'' : the curvature constant of F on each margin


def _certify(problem, A: sp.csr_matrix, y: np.ndarray, x: np.ndarray, domain, dt) -> tuple[float, float]:
    """(F(x̂), D(α)) with α = φ'(Ax̂): Fenchel weak duality, max with D(0) = 0 (see the module docstring)."""
    from online_convex.comparator import _conjugate

    p = torch.from_numpy(A @ x)
    yt = torch.from_numpy(y)
    value = float(problem.phi(p, yt).sum())
    alpha = problem.dphi(p, yt)
    conj = float(_conjugate(problem.name, alpha, yt).sum())
    v = torch.from_numpy(A.T @ alpha.numpy()).to(dt).unsqueeze(0)
    lin = float((v * domain.lmo(v)).sum())
    return value, min(max(-conj + lin, 0.0), value)


def _fista(problem, A, y, x0, domain, dt, *, rtol: float, max_iter: int):
    """Projected FISTA with backtracking on L, restarted when F rises; returns (x̂, value, lower)."""
    proj = lambda z: domain.project(torch.from_numpy(z).to(dt).unsqueeze(0))[0].numpy()  # noqa: E731
    yt = torch.from_numpy(y)
    f = lambda z: float(problem.phi(torch.from_numpy(A @ z), yt).sum())  # noqa: E731
    grad = lambda z: A.T @ problem.dphi(torch.from_numpy(A @ z), yt).numpy()  # noqa: E731
    x = proj(x0)
    best = (x, *_certify(problem, A, y, x, domain, dt))
    z, tk, L = x.copy(), 1.0, 1.0
    fx = f(x)
    for it in range(1, max_iter + 1):
        gz, fz = grad(z), f(z)
        while True:
            xn = proj(z - gz / L)
            diff = xn - z
            fn = f(xn)
            if fn <= fz + gz @ diff + 0.5 * L * (diff @ diff) + 1e-12 * abs(fz):
                break
            L *= 2.0
        tn = 0.5 * (1 + math.sqrt(1 + 4 * tk * tk))
        # F rose: restart the momentum (O'Donoghue & Candès 2015); if even a plain step from x rises, x is
        # optimal to rounding (no further descent to find): certify it and stop
        stuck = fn > fx and tk == 1.0
        if fn > fx:
            z, tk = x.copy(), 1.0
        else:
            z = xn + ((tk - 1) / tn) * (xn - x)
            x, fx, tk = xn, fn, tn
        if it % 10 == 0 or it == max_iter or stuck:
            v, lo = _certify(problem, A, y, x, domain, dt)
            if v - lo < best[1] - best[2]:
                best = (x, v, lo)
            if stuck or v - lo <= rtol * max(1.0, abs(v)):
                break
    return best


def sparse_comparator_bounds(
    problem, data: SparseRoundData, domain, checkpoints, *, rtol: float = 1e-6, max_iter: int = 3000
) -> tuple[np.ndarray, np.ndarray]:
    """(value, lower), each (n_ckpt, n_seeds): value_t = F_t(x̂_t) ≥ min_K F_t ≥ lower_t at every checkpoint.

    FISTA on the CSR rows a_1..a_t (warm-started from the previous checkpoint), stopped when the certified gap
    value − lower ≤ rtol·max(1, value) or after max_iter iterations (the gap is then whatever was certified —
    the interval is still valid, only wider). Linear losses: x̂ = lmo(Σa_s), exact. Needs a bounded domain.
    """
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not math.isfinite(float(domain.diameter)):
        raise ValueError(
            f"sparse comparator: domain {domain.name!r} is unbounded; use a ball, box or simplex"
        )
    if problem.name not in ("linear", *_SMOOTH):
        raise ValueError(
            f"sparse comparator: problem {problem.name!r} is not supported (linear, logistic, least_squares)"
        )
    ck = np.asarray(checkpoints, dtype=np.int64)
    nb = max(math.prod(data.batch), 1)
    dt = torch.float64
    value = np.zeros((len(ck), nb))
    lower = np.zeros((len(ck), nb))
    y_all = data.y.reshape(data.T, nb).cpu().numpy().astype(np.float64)
    for b in range(nb):
        A_all = data.csr(b)
        x = np.zeros(data.d)
        for i, t in enumerate(ck):
            A, y = A_all[: int(t)], y_all[: int(t), b]
            if problem.name == "linear":
                c = torch.from_numpy(np.asarray(A.sum(0)).ravel()).unsqueeze(0)
                if float(c.abs().max()) == 0:
                    continue  # F_t ≡ 0 on K: value = lower = 0
                v = float((c * domain.lmo(c)).sum())
                value[i, b] = lower[i, b] = v
                continue
            if domain.name == "l2_ball":
                # only the columns a_1..a_t touch matter: from x = 0 (= Π_K(0)) the gradient steps and the
                # ball's projection (a scaling) keep every other coordinate 0, and the certificate's LMO of
                # Σα_s a_s lives on the same columns; so solve in R^{cols} (exactly the same problem)
                from online_convex.domains import make_domain

                cols = np.unique(A.indices)
                if cols.size == 0:  # all rows 0: F_t ≡ Σφ(0, y_s) on K, exactly
                    zero = torch.zeros(int(t), dtype=dt)
                    value[i, b] = lower[i, b] = float(problem.phi(zero, torch.from_numpy(y)).sum())
                    continue
                dom_r = make_domain("l2_ball", (int(cols.size),), radius=float(domain.radius))
                xr, value[i, b], lower[i, b] = _fista(
                    problem, A[:, cols], y, x[cols], dom_r, dt, rtol=rtol, max_iter=max_iter
                )
                x = np.zeros(data.d)
                x[cols] = xr
                continue
            x, value[i, b], lower[i, b] = _fista(problem, A, y, x, domain, dt, rtol=rtol, max_iter=max_iter)
    return value, lower


# --- simulator ------------------------------------------------------------------------------------------------
def run_sparse(learner, problem, data: SparseRoundData, *, checkpoints, comparator, progress: bool = False):
    """Run ``learner`` on a sparse stream for every seed at once: a RegretTrace exactly like simulate.run's.

    Same protocol and records as online_convex.simulate.run (the dense simulator; tests check that both give
    the same trace on a small densified stream); the theorem bound is drawn for adagrad_diag and ogd (their
    bounds need O(d) per seed); S-AdaGrad's needs the spectrum of the d×d G_T and is not drawn here.
    """
    from online_convex import overlays
    from online_convex.simulate import RegretTrace, _config_dict, _min_linear

    problem = get_problem(problem) if isinstance(problem, str) else problem
    if not isinstance(data, SparseRoundData):
        raise TypeError(f"run_sparse: data must be a SparseRoundData; got {type(data).__name__}")
    T, B, S = data.T, data.batch, data.shape
    ck = np.asarray(checkpoints, dtype=np.int64)
    dt, dev = data.val.dtype, data.val.device
    eta_mode = "theory" if isinstance(learner.eta, str) else "given"
    state = learner.init(S, B, dtype=dt, device=dev)
    norms = data.val.square().sum(-1).sqrt()  # ‖a_t‖, (T, *B)
    grad_bound = norms.amax(0)  # G = max‖a_t‖ ≥ ‖∇f_t‖ for linear, logistic (|φ'| ≤ 1)
    g = learner.spec.guarantee
    if (
        eta_mode == "theory"
        and g is not None
        and "grad_bound" in g.needs
        and problem.name
        not in (
            "linear",
            "logistic",
            "hinge",
        )
    ):
        raise ValueError(
            f"run_sparse: {learner.method}'s theory step needs a gradient bound; none for {problem.name!r} "
            "(G = max‖a_t‖ holds for linear, logistic and hinge losses, |φ'| ≤ 1)"
        )
    dummy = RoundData(a=torch.zeros(1, *B, 1, dtype=dt, device=dev), y=data.y[:1])
    learner = learner.resolve(problem, dummy, grad_bound=grad_bound, T=T)
    domain = learner.domain
    bname = overlays.bound_name(learner, 2**62, eta_mode)  # a guarantee that needs the dense G: none here
    bounded = math.isfinite(float(domain.diameter))
    flat = lambda z: z  # noqa: E731  (S = (d,): already flat)
    x = learner.initial_point(B, dt, dev)
    cum = torch.zeros(B, dtype=dt, device=dev)
    lin = torch.zeros(B, dtype=dt, device=dev)
    gsum = torch.zeros(B + S, dtype=dt, device=dev)
    sum_sq = torch.zeros(B + S, dtype=dt, device=dev) if bname is not None else None
    rec: dict[str, list[np.ndarray]] = {"cum": [], "lin": [], "bound": []}
    want = set(int(t) for t in ck)
    steps = range(T)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=learner.method, unit="round", leave=False, mininterval=0.5)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in steps:
            p = data.margins(x, s)
            y_s = data.y[s]
            cum = cum + problem.phi(p, y_s)
            g = data.scatter(problem.dphi(p, y_s), s)
            lin = lin + (g * x).sum(-1)
            gsum = gsum + g
            if sum_sq is not None:
                sum_sq = sum_sq + g * g
            x, state = learner.step(g, x, state)
            t = s + 1
            if t in want:
                rec["cum"].append(cum.reshape(-1).cpu().numpy())
                if bounded:
                    rec["lin"].append((lin - _min_linear(domain, gsum, flat)).reshape(-1).cpu().numpy())
                else:
                    rec["lin"].append(np.full(cum.numel(), np.inf))
                if bname is not None:
                    assert sum_sq is not None  # allocated above exactly when bname is not None
                    b = overlays.bound_at(
                        learner, t, T, G=None, sum_sq=sum_sq, grad_bound=grad_bound, state=state
                    )
                    rec["bound"].append(b.reshape(-1).cpu().numpy())
    seconds = time.perf_counter() - t0
    value, lower = comparator
    cum_loss = np.stack(rec["cum"])
    if value.shape != cum_loss.shape:
        raise ValueError(f"run_sparse: comparator arrays have shape {value.shape}; expected {cum_loss.shape}")
    m = learner.spec
    return RegretTrace(
        method=learner.method,
        config=_config_dict(learner.config),
        eta=learner.eta.reshape(-1).cpu().numpy()
        if isinstance(learner.eta, Tensor)
        else np.full(cum.numel(), np.nan),
        eta_mode=eta_mode,
        checkpoints=ck,
        cum_loss=cum_loss,
        regret_lower=cum_loss - value,
        regret_upper=cum_loss - lower,
        comparator_gap=value - lower,
        linear_regret_upper=np.stack(rec["lin"]),
        bound=np.stack(rec["bound"]) if bname is not None else None,
        bound_name=bname,
        memory_scalars=int(m.memory(S, learner.config)),
        memory_bits=int(m.bits(S, learner.config)),
        D=float(domain.diameter),
        D_inf=float(domain.diameter_inf),
        problem=problem.name,
        domain=domain.name,
        shape=tuple(S),
        T=T,
        seconds=seconds,
        extra=_final_rho(state),
    )


def _final_rho(state) -> dict:
    """{"rho": [ρ_{1:T} per seed]} for a sketched state (the escaped mass the regret chain uses), else {}."""
    sk = getattr(state, "sketch", None)
    rho = getattr(sk, "rho", None)
    return {"rho": rho.reshape(-1).cpu().tolist()} if isinstance(rho, Tensor) else {}
