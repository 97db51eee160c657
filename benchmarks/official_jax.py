r"""The official Sketchy OCO testbed's ADA, S_ADA and ADA_FD loops, written in JAX from the testbed's
specification (the logistic protocol and the sketched step as documented for the project), whole loop jitted
with ``lax.scan`` as the official code runs it. Only used to time the official per-step cost beside memopt's
(``benchmarks.step_overhead --official``); JAX is the optional ``bench`` extra.

Protocol, per row (x_t, y_t), y ∈ {0, 1}: p = ⟨w, x_t⟩, loss y·softplus(−p) + (1 − y)·softplus(p) (measured
before the update), g = (σ(p) − y)·x_t, then the learner's step.

* ADA: h ← h + g² (h_0 = δ·1), w ← w − lr·g/√h (√h read as 1 where h = 0).
* Sketched (ℓ rows P, their weights e, the escaped mass α, α_0 = δ; constants (c_α) = 1 for S_ADA, 0 for
  ADA_FD): B = diag(e)P with its last row replaced by g; thin SVD B = W diag(σ) V; r = σ_ℓ;
  s = (σ − r)(σ + r); P ← V, e ← √s, α ← α + c_α·r². Direction, reading x^{−1/2} and 1/x as 0 for x ≤ 0:
  S_ADA u = Pᵀ[(α + s)^{−1/2} ⊙ Pg] + α^{−1/2}(g − PᵀPg); ADA_FD u = α^{−1}(g − Pᵀ[(e/(α + e)) ⊙ Pg]).
  w ← w − lr·u.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402


def _jax():
    try:
        import jax
    except ImportError:
        raise SystemExit("the official-testbed timing needs JAX: pip install 'memopt[bench]'") from None
    jax.config.update("jax_enable_x64", True)
    return jax


def make_loop(variant: str, d: int, *, lr: float, delta: float, ell: int):
    """A jitted f(X, y) -> (cumulative loss, final w) running the testbed learner over the rows of X."""
    jax = _jax()
    jnp = jax.numpy

    def inv_sqrt(x):
        return jnp.where(x > 0, 1.0 / jnp.sqrt(jnp.where(x > 0, x, 1.0)), 0.0)

    def inv(x):
        return jnp.where(x > 0, 1.0 / jnp.where(x > 0, x, 1.0), 0.0)

    def loss_grad(w, x, y):
        p = x @ w
        loss = y * jax.nn.softplus(-p) + (1 - y) * jax.nn.softplus(p)
        return loss, (jax.nn.sigmoid(p) - y) * x

    if variant == "ADA":

        def step(carry, row):
            w, h, cum = carry
            loss, g = loss_grad(w, *row)
            h = h + g * g
            sq = jnp.where(h > 0, jnp.sqrt(h), 1.0)
            return (w - lr * g / sq, h, cum + loss), None

        init = (jnp.zeros(d), jnp.full(d, delta), jnp.zeros(()))
    elif variant in ("S_ADA", "ADA_FD"):
        c_alpha = 1.0 if variant == "S_ADA" else 0.0

        def step(carry, row):
            w, P, e, alpha, cum = carry
            loss, g = loss_grad(w, *row)
            B = (e[:, None] * P).at[-1].set(g)
            _, sig, V = jnp.linalg.svd(B, full_matrices=False)
            r = sig[-1]
            s = (sig - r) * (sig + r)
            P, e, alpha = V, jnp.sqrt(s), alpha + c_alpha * r * r
            Pg = P @ g
            if variant == "S_ADA":
                u = P.T @ (inv_sqrt(alpha + s) * Pg) + inv_sqrt(alpha) * (g - P.T @ Pg)
            else:
                u = inv(alpha) * (g - P.T @ ((e / (alpha + e)) * Pg))
            return (w - lr * u, P, e, alpha, cum + loss), None

        init = (jnp.zeros(d), jnp.zeros((ell, d)), jnp.zeros(ell), jnp.asarray(delta), jnp.zeros(()))
    else:
        raise ValueError(f"make_loop: variant must be 'ADA', 'S_ADA' or 'ADA_FD'; got {variant!r}")

    @jax.jit
    def run(X, y):
        carry, _ = jax.lax.scan(step, init, (X, y))
        return carry[-1], carry[0]

    return run


def per_step_seconds(variant: str, X: np.ndarray, y: np.ndarray, *, lr, delta, ell, repeats=9):
    """(median seconds per step of the jitted loop over ``repeats`` calls, compile excluded; final w)."""
    jax = _jax()
    run = make_loop(variant, X.shape[1], lr=lr, delta=delta, ell=ell)
    Xj, yj = jax.numpy.asarray(X), jax.numpy.asarray(y)
    out = run(Xj, yj)  # compile
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(Xj, yj))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / X.shape[0], np.asarray(out[1])
