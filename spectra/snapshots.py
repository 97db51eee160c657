r"""Eigendecompositions of Kronecker factors, on a cadence separate from the accumulation cadence.

A factor F ⪰ 0 (d × d; Shampoo L or R, K-FAC A or G) is decomposed in float64, on the CPU unless asked
otherwise, into its eigenvalues λ_1 ≥ … ≥ λ_d ≥ 0 and leading eigenvectors:

* ``eigh`` (exact) for d ≤ ``exact_max_dim``: every eigenvalue, so every metric of ``spectra.metrics``;
* above the limit, the top k only, with the trace tr F computed exactly so that mass fractions stay exact:
  ``randomized`` — a randomized range finder (Halko, Martinsson & Tropp 2011, Alg. 4.4; scikit-learn's
  ``randomized_svd``: q = k + 10 columns, 7 power iterations) followed by Rayleigh–Ritz on F; or
  ``lobpcg`` — ``torch.lobpcg`` (Knyazev 2001), which needs d ≥ 3k.

Accuracy above the limit. With a gap λ_{k+1}/λ_k = γ < 1, the range finder's subspace error decays like
γ^{2q+1} in the number q of power iterations, and Rayleigh–Ritz values θ_i interlace, 0 ≤ θ_i ≤ λ_i
(Cauchy), with λ_i − θ_i = O(λ_1 · sin² Θ). Where no gap exists the top-k eigenvalues are still
lower bounds, so a top-k mass computed from them never overstates the concentration.

A posteriori error, stated per snapshot (:func:`ritz_error_bound`). For the orthonormal Ritz basis V (d × k),
Θ = VᵀFV and residual R = FV − VΘ, write F in the basis [V, V⊥]: F = [[Θ, Bᵀ], [B, C]] with ‖B‖₂ = ‖R‖₂ and
C = V⊥ᵀFV⊥ ⪰ 0, so λ_max(C) ≤ c := min(‖C‖_F, tr C) with tr C = tr F − Σ_i θ_i and ‖C‖_F = ‖PFP‖_F for the
projector P = I − VVᵀ (the Frobenius norm is the sharper one when the trace outside V is spread thin). Weyl's inequality for F = diag(Θ, C) + (off-diagonal
part of norm ‖R‖₂) gives, for every i ≤ k,

    θ_i ≤ λ_i(F) ≤ max(θ_i, c) + ‖R‖₂,

the lower end by interlacing. So every top-k eigenvalue is pinned to within ‖R‖₂ once the Ritz values
exceed the trace left outside the basis, and the top-k mass to within k·‖R‖₂/tr F. Snapshots above the exact
limit store ``ritz_resid`` = ‖R‖₂ and ``ritz_rest`` = c in their table rows; a snapshot of an FD-sketched factor
(``spectra.sketched``) stores ``fd_rho`` = ρ, with s_i ≤ λ_i ≤ s_i + ρ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from spectra import metrics
from spectra.sketched import FactorSketch, sketch_decomposition
from spectra.store import Decomposition, SnapshotStore  # Decomposition lives with its file format

__all__ = ["Decomposition", "decompose", "ritz_error_bound", "Snapshotter", "METHODS"]

METHODS = ("auto", "eigh", "lobpcg", "randomized")


def _fix_signs(V: Tensor) -> Tensor:
    idx = V.abs().argmax(dim=0)
    s = torch.sign(V.gather(0, idx[None, :]))
    return V * torch.where(s == 0, torch.ones_like(s), s)


def _check_factor(F, where: str) -> Tensor:
    if isinstance(F, np.ndarray):
        F = torch.from_numpy(F)
    if not isinstance(F, Tensor):
        raise TypeError(f"{where}: F must be a torch.Tensor (or ndarray); got {type(F).__name__}")
    if F.ndim != 2 or F.shape[0] != F.shape[1] or F.shape[0] < 1:
        raise ValueError(f"{where}: F must be a square matrix (d, d); got shape {tuple(F.shape)}")
    if not torch.is_floating_point(F):
        raise TypeError(f"{where}: F must have a floating dtype; got {F.dtype}")
    if not torch.isfinite(F).all():
        raise ValueError(f"{where}: F must be finite; it has NaN/inf entries")
    return F


def decompose(
    F: Tensor,
    *,
    k: int | None = None,
    exact_max_dim: int = 2048,
    method: str = "auto",
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Decomposition:
    r"""Eigendecomposition of a PSD factor F, exact up to ``exact_max_dim``, top-k above it.

    Parameters
    ----------
    F : Tensor (d, d), symmetric PSD up to round-off; any float dtype and device
    k : int in [1, d], optional — eigenvectors to keep (and eigenvalues, when not exact); None = all (exact only)
    exact_max_dim : int ≥ 1 — ``method="auto"`` uses ``eigh`` for d ≤ this, ``randomized`` above it
    method : "auto" | "eigh" | "lobpcg" | "randomized"
    seed : int — the random start of ``randomized`` / ``lobpcg``: same seed, same numbers
    device : where the float64 solve runs (CPU by default: a GPU's float64 throughput is often poor)

    Raises
    ------
    ValueError if F has an eigenvalue below −τ, τ = 10·d·ε·‖F‖ with ε the machine epsilon of F's dtype (the
    round-off a symmetric F of that precision can carry); values in [−τ, 0) are set to 0.
    """
    where = "decompose"
    F = _check_factor(F, where)
    d = int(F.shape[0])
    if type(exact_max_dim) is not int or exact_max_dim < 1:
        raise ValueError(f"{where}: exact_max_dim must be an int >= 1; got {exact_max_dim!r}")
    if method not in METHODS:
        raise ValueError(f"{where}: method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if type(seed) is not int or seed < 0:
        raise ValueError(f"{where}: seed must be an int >= 0; got {seed!r}")
    if method == "auto":
        method = "eigh" if d <= exact_max_dim else "randomized"
    if k is None and method != "eigh":
        raise ValueError(
            f"{where}: k is required for method={method!r}, which finds the top k eigenpairs only "
            f"(d={d}, exact_max_dim={exact_max_dim})"
        )
    if k is not None and (type(k) is not int or not 1 <= k <= d):
        raise ValueError(f"{where}: k must be an int in [1, {d}] (d = F.shape[0]); got {k!r}")
    kk = d if k is None else k
    if method == "lobpcg" and d < 3 * kk:
        raise ValueError(
            f"{where}: method='lobpcg' needs d >= 3k; got d={d}, k={kk} (use 'randomized' or 'eigh')"
        )

    eps_in = torch.finfo(F.dtype).eps
    F64 = F.detach().to(device=device, dtype=torch.float64)
    F64 = 0.5 * (F64 + F64.T)  # eigh reads one triangle: give it the matrix the caller meant
    trace = float(torch.trace(F64))
    if method == "eigh":
        lam, V = torch.linalg.eigh(F64)
        lam, V = lam.flip(0), V.flip(1)[:, :kk]
    elif method == "lobpcg":
        g = torch.Generator(device="cpu").manual_seed(seed)
        X0 = torch.randn(d, kk, generator=g, dtype=torch.float64).to(F64.device)
        lam, V = torch.lobpcg(F64, k=kk, X=X0, largest=True)
        order = torch.argsort(lam, descending=True)
        lam, V = lam[order], V[:, order]
        # lobpcg returns after its iteration cap without saying so; it stops at ‖r_i‖ ≤ √ε(‖F‖ + |λ_i|), so a
        # residual 30× above that means it did not converge
        res = float(torch.linalg.vector_norm(F64 @ V - V * lam, dim=0).max())
        if res > 30 * torch.finfo(torch.float64).eps ** 0.5 * 2 * float(lam.abs().max()):
            raise RuntimeError(
                f"{where}: lobpcg did not converge (residual {res:.3g} for d={d}, k={kk}); use method='randomized'"
            )
    else:
        from sklearn.utils.extmath import randomized_svd  # heavy import, only for d > exact_max_dim

        Q, _, _ = randomized_svd(
            F64.cpu().numpy(), n_components=kk, n_oversamples=10, n_iter=7, random_state=seed, flip_sign=False
        )
        Q = torch.from_numpy(np.ascontiguousarray(Q)).to(F64.device)
        # Rayleigh–Ritz on the found range: Ritz values interlace (θ_i ≤ λ_i), and a negative one flags a non-PSD F
        theta, W = torch.linalg.eigh(Q.T @ F64 @ Q)
        lam, V = theta.flip(0), Q @ W.flip(1)
    scale = float(lam.abs().max()) if lam.numel() else 0.0
    tau = 10 * d * eps_in * scale
    if lam.numel() and float(lam.min()) < -tau:
        raise ValueError(
            f"{where}: F must be positive semidefinite; its smallest computed eigenvalue is {float(lam.min())!r} "
            f"< -{tau:.3g} (10·d·ε·‖F‖, the round-off allowed for {F.dtype})"
        )
    if method != "eigh" and trace < float(lam.sum()) - d * tau:
        # the d − k eigenvalues not found sum to tr F − Σ_{i≤k} λ_i, which round-off keeps above −d·τ for PSD F
        raise ValueError(
            f"{where}: F must be positive semidefinite; tr F = {trace:.6g} is below the sum of its top {kk} "
            f"eigenvalues {float(lam.sum()):.6g}, so the others sum to a negative number"
        )
    V = _fix_signs(V)
    return Decomposition(
        eigvals=lam.clamp_min(0).cpu().numpy(),
        eigvecs=V.cpu().numpy(),
        exact=method == "eigh",
        trace=max(trace, 0.0),
        dim=d,
    )


def ritz_error_bound(F: Tensor, dec: Decomposition) -> tuple[float, float]:
    """(‖R‖₂, c) for the top-k pairs of ``dec``: θ_i ≤ λ_i(F) ≤ max(θ_i, c) + ‖R‖₂ (module docstring).

    R = FV − V(VᵀFV) for V = ``dec.eigvecs``; c = min(‖PFP‖_F, tr F − Σ θ_i) ≥ λ_max(V⊥ᵀFV⊥), P = I − VVᵀ,
    θ = ``dec.eigvals``; all in float64, O(d²k). PFP is formed term by term (no ‖F‖²_F − 2‖FV‖²_F + …
    cancellation) and its norm padded by d·ε·‖F‖_F for the rounding of those products.
    """
    F64 = _check_factor(F, "ritz_error_bound").detach().to("cpu", torch.float64)
    F64 = 0.5 * (F64 + F64.T)
    V = torch.from_numpy(np.asarray(dec.eigvecs, dtype=np.float64))
    theta = torch.from_numpy(np.asarray(dec.eigvals, dtype=np.float64))[: V.shape[1]]
    # VᵀFV is diagonal only up to round-off: project with the full matrix, not diag(θ)
    FV = F64 @ V
    R = FV - V @ (V.T @ FV)
    resid = float(torch.linalg.matrix_norm(R, ord=2)) if R.numel() else 0.0
    VtF = FV.T
    C = F64 - V @ VtF - FV @ V.T + V @ (VtF @ V) @ V.T  # P F P, P = I − VVᵀ
    d = F64.shape[0]
    frob = float(torch.linalg.matrix_norm(C)) + d * torch.finfo(torch.float64).eps * float(
        torch.linalg.matrix_norm(F64)
    )
    rest_trace = max(float(torch.trace(F64)) - float(theta.sum()), 0.0)
    return resid, min(frob, rest_trace)


class Snapshotter:
    """Decompose every recorded factor every ``every`` steps and write one file per factor per snapshot.

    Accumulation (the recorder's ``every``) and eigendecomposition (this ``every``) are separate cadences:
    factors may accumulate each step while the O(d³) solve runs every 100.

    Besides the spectrum each snapshot stores, as scalars in the table, how far the leading basis moved since
    the previous snapshot of the same factor: ``overlap_prev`` = subspace overlap of the top-k bases and
    ``stale_capture_prev`` = fraction of the new tr F captured by the old top-k basis (``spectra.metrics``).

    Parameters
    ----------
    store : SnapshotStore
    every : int ≥ 1 — snapshot at steps with step % every == 0
    k_top : int ≥ 1 — eigenvectors kept per factor (min(k_top, d)); also k of the overlap metrics
    exact_max_dim, method, seed : passed to ``decompose``
    background : bool — decompose and write on a worker thread, so training does not stall on the O(d³)
        solves and the fsyncs: ``maybe_snapshot`` copies the factors and returns at once (one snapshot in
        flight at a time: the next waits for it, so memory stays one copy of the factors). ``wait()`` (or
        ``close()``, or leaving the ``with`` block) blocks until everything is on disk and re-raises any
        error of the worker; results are the same numbers as in the foreground.
    """

    def __init__(
        self,
        store: SnapshotStore,
        *,
        every: int,
        k_top: int = 64,
        exact_max_dim: int = 2048,
        method: str = "auto",
        seed: int = 0,
        background: bool = False,
    ) -> None:
        where = "Snapshotter"
        if type(every) is not int or every < 1:
            raise ValueError(f"{where}: every must be an int >= 1; got {every!r}")
        if type(k_top) is not int or k_top < 1:
            raise ValueError(f"{where}: k_top must be an int >= 1; got {k_top!r}")
        if type(exact_max_dim) is not int or exact_max_dim < 1:
            raise ValueError(f"{where}: exact_max_dim must be an int >= 1; got {exact_max_dim!r}")
        if method not in METHODS:
            raise ValueError(
                f"{where}: method must be one of {', '.join(map(repr, METHODS))}; got {method!r}"
            )
        self.store, self.every, self.k_top = store, every, k_top
        self.exact_max_dim, self.method, self.seed = exact_max_dim, method, seed
        self._prev: dict[str, tuple[int, np.ndarray]] = {}
        self.background = bool(background)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def __enter__(self) -> Snapshotter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait(self) -> None:
        """Block until the snapshot in flight (``background``) is written; re-raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """``wait()``, then stop the worker thread."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _previous_basis(self, step: int, name: str) -> tuple[int, np.ndarray] | None:
        if name in self._prev and self._prev[name][0] < step:
            return self._prev[name]
        for s in reversed(
            [s for s in self.store.steps(name) if s < step]
        ):  # resumed run: the basis is on disk
            dec = self.store.load(s, name)
            if dec.trace > 0:  # an all-zero factor has no leading basis
                return s, dec.eigvecs
        return None

    def maybe_snapshot(self, step: int, factors: Mapping[str, Tensor | FactorSketch]) -> bool:
        """Write a snapshot of every factor if ``step`` is on the cadence; True if it is.

        A factor already stored for this step (a resumed run) is not recomputed. An all-zero factor (nothing
        accumulated yet) is stored with trace 0 and no metrics. A value may be a dense factor (d, d) or a
        ``spectra.sketched.FactorSketch`` (``FactorRecorder(sketch=ℓ).sketches()``), whose snapshot is the
        sketch's own eigenpairs with ``fd_rho`` = ρ beside them. Inexact (top-k) solves store ``ritz_resid``
        and ``ritz_rest`` (``ritz_error_bound``).
        """
        if type(step) is not int or step < 0:
            raise ValueError(f"Snapshotter.maybe_snapshot: step must be an int >= 0; got {step!r}")
        if not isinstance(factors, Mapping):
            raise TypeError(
                f"Snapshotter.maybe_snapshot: factors must be a dict name -> Tensor; got {type(factors).__name__}"
            )
        if step % self.every:
            return False
        if not self.background:
            self._snapshot(step, factors)
            return True
        self.wait()  # one in flight: bounded memory, and errors surface at the next call
        # the caller's tensors may change under the worker (a recorder accumulates in place): copy them
        owned = {n: v if isinstance(v, FactorSketch) else v.detach().clone() for n, v in factors.items()}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memopt-snapshot")
        self._pending = self._pool.submit(self._snapshot, step, owned)
        return True

    def _snapshot(self, step: int, factors: Mapping[str, Tensor | FactorSketch]) -> None:
        for name in sorted(factors):
            if self.store.has(step, name):
                continue
            extra: dict[str, float] = {}
            value = factors[name]
            F: Tensor | None
            if isinstance(value, FactorSketch):
                dec, extra["fd_rho"] = sketch_decomposition(value, self.k_top)
                d, k, F = dec.dim, min(self.k_top, dec.dim), None
            else:
                F = _check_factor(value, f"Snapshotter.maybe_snapshot (factor {name!r})")
                d = int(F.shape[0])
                k = min(self.k_top, d)
                dec = decompose(F, k=k, exact_max_dim=self.exact_max_dim, method=self.method, seed=self.seed)
                if not dec.exact:
                    extra["ritz_resid"], extra["ritz_rest"] = ritz_error_bound(F, dec)
            prev = self._previous_basis(step, name)
            if prev is not None and dec.trace > 0 and prev[1].shape[0] == d:
                kp = min(k, prev[1].shape[1], dec.eigvecs.shape[1])
                extra["prev_step"] = float(prev[0])
                extra["overlap_prev"] = metrics.subspace_overlap(prev[1][:, :kp], dec.eigvecs[:, :kp])
                if F is not None:  # a sketch has no dense F to measure the stale basis on
                    F64 = F.detach().to("cpu", torch.float64).numpy()
                    extra["stale_capture_prev"] = metrics.stale_basis_capture(
                        prev[1], 0.5 * (F64 + F64.T), kp
                    )
            self.store.write(step, name, dec, extra=extra)
            if dec.trace > 0 and math.isfinite(dec.trace):
                self._prev[name] = (step, dec.eigvecs)
