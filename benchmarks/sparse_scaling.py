r"""Scaling of the sketched learners on the sparse Zipf stream: regret at T, state memory and time per step vs d.

For each d (ascending) every learner runs the same ``zipf_sparse`` logistic stream (online_convex.sparse) in
the unit ℓ2 ball at its theorem's step size; the comparator is certified once per d. Full-matrix AdaGrad runs
while its d×d state is allowed (memopt_theory.methods.adagrad_full refuses above its memory limit) and while
its projected time for the next d (time per step × (d_next/d)³, its eigh per step) fits ``full_budget_s``, and
while LAPACK's eigh of its statistic converges (on this sparse stream the d×d sum of a few hundred sparse
rank-one terms has thousands of exactly repeated zero eigenvalues, and syevd can fail on it): the largest d at
which it ran is reported, with the reason it stopped. Used by notebooks/05_scaling.py; ``python -m benchmarks.sparse_scaling``
prints the table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from memopt_theory import methods
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.sparse import make_sparse_stream, run_sparse, sparse_comparator_bounds


def learners(domain, ell: int) -> dict[str, Learner]:
    return {
        "adagrad_full": Learner(
            "adagrad_full", methods.get("adagrad_full").Config(), eta="theory", domain=domain
        ),
        f"s_adagrad ℓ={ell}": Learner(
            "s_adagrad",
            methods.get("s_adagrad").Config(ell=ell, sketch="buffer"),
            eta="theory",
            domain=domain,
        ),
        f"ada_fd ℓ={ell}": Learner(
            "ada_fd", methods.get("ada_fd").Config(ell=ell, sketch="buffer"), eta="theory", domain=domain
        ),
        "adagrad_diag": Learner(
            "adagrad_diag", methods.get("adagrad_diag").Config(), eta="theory", domain=domain
        ),
        "ogd": Learner("ogd", methods.get("ogd").Config(), eta="theory", domain=domain),
    }


def scaling_rows(dims, *, T: int, seeds: int, ell: int = 16, nnz: int = 20, full_budget_s: float = 60.0):
    """One dict per (d, method): regret_upper/lower at T (mean over seeds), memory scalars, seconds per step."""
    rows, full_ok = [], True
    for d in dims:
        data, problem = make_sparse_stream("zipf_sparse", d=d, T=T, seeds=seeds, nnz=min(nnz, d))
        dom = make_domain("l2_ball", (d,), radius=1.0)
        ck = np.array([T])
        comp = sparse_comparator_bounds(problem, data, dom, ck)
        for name, L in learners(dom, ell).items():
            if name == "adagrad_full" and not full_ok:
                rows.append({"d": d, "method": name, "ran": False, "why": "stopped at a smaller d"})
                continue
            try:
                t0 = time.perf_counter()
                tr = run_sparse(L, problem, data, checkpoints=ck, comparator=comp)
                wall = time.perf_counter() - t0
            except (MemoryError, torch.linalg.LinAlgError) as e:
                # refused (memory limit) or LAPACK's eigh failing on the huge, mostly-zero d×d statistic
                rows.append(
                    {"d": d, "method": name, "ran": False, "why": f"{type(e).__name__}: {str(e)[:80]}"}
                )
                if name == "adagrad_full":
                    full_ok = False
                continue
            rows.append(
                {
                    "d": d,
                    "method": name,
                    "ran": True,
                    "regret_upper": float(tr.regret_upper[-1].mean()),
                    "regret_lower": float(tr.regret_lower[-1].mean()),
                    "memory": tr.memory_scalars,
                    "sec_per_step": wall / T,
                }
            )
            if name == "adagrad_full" and wall / T * T * 8.0 > full_budget_s:  # next d doubles: eigh ×8
                full_ok = False
    return rows


def gap_rows(dims, ells, *, T: int, seeds: int, nnz: int = 20):
    """S-AdaGrad − full AdaGrad regret (upper ends, per seed) against S-AdaGrad's escaped mass ρ_{1:T} = Δ_T and
    its a-priori bound's √(d(d−ℓ)Δ_T) term, on streams where both run."""
    from memopt_theory.methods import s_adagrad

    out = []
    for d in dims:
        data, problem = make_sparse_stream("zipf_sparse", d=d, T=T, seeds=seeds, nnz=min(nnz, d))
        dom = make_domain("l2_ball", (d,), radius=1.0)
        ck = np.array([T])
        comp = sparse_comparator_bounds(problem, data, dom, ck)
        full = run_sparse(learners(dom, 2)["adagrad_full"], problem, data, checkpoints=ck, comparator=comp)
        for ell in ells:
            cfg = s_adagrad.Config(ell=ell, sketch="buffer")
            L = Learner("s_adagrad", cfg, eta="theory", domain=dom)
            tr = run_sparse(L, problem, data, checkpoints=ck, comparator=comp)
            rho = np.asarray(tr.extra["rho"])
            gap = tr.regret_upper[-1] - full.regret_upper[-1]
            for b in range(len(rho)):
                out.append({"d": d, "ell": ell, "rho": float(rho[b]), "gap": float(gap[b]), "seed": b})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dmax", type=int, default=18, help="largest log2 d (default 18)")
    p.add_argument("--T", type=int, default=500)
    p.add_argument("--seeds", type=int, default=2)
    a = p.parse_args(argv)
    rows = scaling_rows([2**k for k in range(6, a.dmax + 1, 2)], T=a.T, seeds=a.seeds)
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
