r"""Where an OCO step's time goes, per learner, and memopt against the official JAX testbed.

    python -m benchmarks.step_overhead                       # profile at d ∈ {32, 128, 512} + official table
    python -m benchmarks.step_overhead --dims 128 --methods s_adagrad,ada_fd --skip-official
    python -m benchmarks.step_overhead --skip-profile        # only the five-row official table
    python -m benchmarks.step_overhead --device cuda

**Profile.** Each learner (the OCO learners with a theory step size, on the unit ℓ2 ball, projected in the
H_t-norm as the theorems need; linear losses of the ``low_rank_noise`` stream) runs the simulator's loop
(online_convex.simulate.run: loss, gradient, Σ⟨g, x⟩, Σg per round, Σg² for adagrad_diag's bound, Σggᵀ for
adagrad_full's and s_adagrad's in bulk at checkpoints; learner step; checkpoint records)
once for one seed and once for ``--seeds`` seeds batched. The loop is instrumented: "update" is the method's
``update``, "projection" is the rest of the learner's step (x − ηu, the containment test, H_t and the
H-norm projection when x − ηu leaves the ball), "bookkeeping" is the per-round loss/regret accumulation, and
"rest" is the loop's wall time minus those three (Python glue, checkpoint records, the timers). Each cell
runs until ``--budget`` seconds or T rounds, whichever comes first (at least 5 rounds), and prints µs per
round (the whole batch) and per seed-round.

**Official table.** The testbed protocol (logistic loss on rows x_t, y ∈ {0, 1}, w ← w − lr·u) at d = 128,
T = 500, 1 thread, the same stream on both sides: the official loops (benchmarks.official_jax, whole loop
jitted with ``lax.scan``, compile excluded, median of ``--repeats``) against memopt's ``update`` loop, one run
and ``--seeds`` seeds batched (time per seed-step), with the targets of issue 15 beside them: one run ≤ 1.5×
the official per-step time (S_ADA, ADA_FD), batched per seed-step ≤ 1× (all five rows). memopt's one-run final
w is compared with the official one (they implement the same update; the largest relative difference is
printed). Ratios are measured in one run; nproc, threads and the load average are printed beside them. No
timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from benchmarks._device import resolve_device, sync
from memopt_theory import methods
from online_convex.domains import make_domain
from online_convex.learners import Learner, theory_eta_methods
from online_convex.problems import get_problem
from online_convex.streams import make_stream

OFFICIAL_ROWS = [("ADA", "adagrad_diag", 0), ("S_ADA", "s_adagrad", 8), ("S_ADA", "s_adagrad", 16)]
OFFICIAL_ROWS += [("ADA_FD", "ada_fd", 8), ("ADA_FD", "ada_fd", 16)]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", default="32,128,512")
    p.add_argument(
        "--methods", default=",".join(theory_eta_methods()), help="comma-separated learners to profile"
    )
    p.add_argument("--T", type=int, default=500)
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--budget", type=float, default=3.0, help="seconds per profile cell (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="medians over this many runs (official table)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--skip-official", action="store_true")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def _config(name: str):
    if name in ("s_adagrad", "ada_fd", "s_shampoo"):
        return methods.get(name).Config(ell=8)
    if name == "sm3":
        return methods.get(name).Config(variant="I")  # SM3-I: the variant with a metric (H-norm projection)
    return None


def profile_cell(name: str, d: int, seeds: int, a, device) -> dict:
    """Instrumented simulator loop (module docstring): µs per round of each part."""
    data, prob_name = make_stream(
        "low_rank_noise", shape=(d,), T=a.T, seeds=seeds, rank=min(8, d), device=device
    )
    prob = get_problem(prob_name)
    L = Learner(name, _config(name), domain=make_domain("l2_ball", (d,), radius=1.0))
    B, S = data.batch, data.shape
    state = L.init(S, B, dtype=data.a.dtype, device=device)
    L = L.resolve(prob, data)
    x = L.initial_point(B, data.a.dtype, device)
    cum = torch.zeros(B, dtype=x.dtype, device=device)
    lin, gsum, sum_sq = cum.clone(), torch.zeros_like(x), torch.zeros_like(x)
    need_sq, dense = name == "adagrad_diag", name in ("adagrad_full", "s_adagrad")  # as simulate.run's bounds
    G = torch.zeros(B + (d, d), dtype=x.dtype, device=device) if dense else None
    pending, cap = [], max(1, 4_000_000 // (seeds * d))
    ck = set(np.unique(np.geomspace(1, a.T, 30).round().astype(int)).tolist())
    parts = dict(update=0.0, projection=0.0, bookkeeping=0.0)
    rec = []
    clock = time.perf_counter
    sync(device)
    start = clock()
    rounds = 0
    with torch.no_grad():
        for s in range(a.T):
            t0 = clock()
            a_s, y_s = data.a[s], data.y[s]
            cum = cum + prob.loss(x, a_s, y_s)
            g = prob.grad(x, a_s, y_s)
            lin = lin + (g * x).flatten(start_dim=len(B)).sum(-1)
            gsum = gsum + g
            if need_sq:
                sum_sq = sum_sq + g * g
            if dense:  # Σ g gᵀ in bulk at checkpoints, as simulate.run
                pending.append(g)
                if s + 1 in ck or len(pending) >= cap:
                    X = torch.stack(pending, dim=-2).reshape(-1, len(pending), d)
                    pending.clear()
                    G.view(-1, d, d).baddbmm_(X.transpose(-1, -2), X)
            sync(device)
            t1 = clock()
            u, state = L.spec.update(g, state, L.config, param=x)
            sync(device)
            t2 = clock()
            x = L.move(x, u, state)
            sync(device)
            t3 = clock()
            parts["bookkeeping"] += t1 - t0
            parts["update"] += t2 - t1
            parts["projection"] += t3 - t2
            rounds += 1
            if s + 1 in ck:
                rec.append(cum.cpu().numpy())
            if rounds >= 5 and clock() - start > a.budget:
                break
    sync(device)
    total = clock() - start
    out = {k: 1e6 * v / rounds for k, v in parts.items()}
    out["total"] = 1e6 * total / rounds
    out["rest"] = out["total"] - sum(out[k] for k in parts)
    out["rounds"] = rounds
    return out


def profile(a, device) -> None:
    names = [m.strip() for m in a.methods.split(",") if m.strip()]
    dims = [int(x) for x in a.dims.split(",")]
    head = f"{'learner':>18} {'d':>4} {'seeds':>5} {'rounds':>6} | {'µs/round':>9} {'update':>9} "
    head += f"{'project':>9} {'bookkeep':>9} {'rest':>8} | {'µs/seed-round':>13}"
    print(head)
    for name in names:
        for d in dims:
            for seeds in (1, a.seeds):
                try:
                    r = profile_cell(name, d, seeds, a, device)
                except ValueError as e:
                    print(f"{name:>18} {d:>4} {seeds:>5}  skipped: {e}")
                    continue
                print(
                    f"{name:>18} {d:>4} {seeds:>5} {r['rounds']:>6} | {r['total']:9.1f} {r['update']:9.1f} "
                    f"{r['projection']:9.1f} {r['bookkeeping']:9.1f} {r['rest']:8.1f} | {r['total'] / seeds:13.2f}"
                )


def _testbed_stream(T: int, d: int, seeds: int, seed: int = 0):
    """Rows x_t ~ N(0, I) with a ones column last, labels from a hidden teacher with 10 % flips; (T, seeds, d)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, seeds, d)) / np.sqrt(d)
    X[..., -1] = 1.0
    w_star = rng.standard_normal(d)
    y = ((X @ w_star > 0) ^ (rng.random((T, seeds)) < 0.1)).astype(np.float64)
    return X, y


def memopt_loop(name: str, cfg, X: torch.Tensor, y: torch.Tensor, lr: float, device):
    """The testbed protocol on memopt's update: (seconds, final w); X (T, *B, d), y (T, *B)."""
    m = methods.get(name)
    B, d = tuple(X.shape[1:-1]), X.shape[-1]
    st = m.init((d,), cfg, batch=B, device=device)
    w = torch.zeros(B + (d,), dtype=torch.float64, device=device)
    cum = torch.zeros(B, dtype=torch.float64, device=device)
    sp = torch.nn.functional.softplus
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for x, yt in zip(X, y):
            p = (x * w).sum(-1)
            cum = cum + yt * sp(-p) + (1 - yt) * sp(p)
            g = (torch.sigmoid(p) - yt).unsqueeze(-1) * x
            u, st = m.update(g, st, cfg)
            w = w - lr * u
    sync(device)
    return time.perf_counter() - t0, w


def official(a, device) -> None:
    from benchmarks.official_jax import per_step_seconds

    T, d, delta = 500, 128, 1e-4
    lrs = {"ADA": 0.1, "S_ADA": 0.1, "ADA_FD": 1e-3}  # ADA_FD steps α⁻¹·lr with α = δ: 0.1 would be chaotic
    X, y = _testbed_stream(T, d, a.seeds)
    Xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    print(
        f"official testbed table: d={d}, T={T}, lr={lrs}, delta={delta}, {a.seeds} seeds batched; "
        f"µs per step (batched: per seed-step), medians of {a.repeats}"
    )
    print(
        f"{'method':>14} | {'official':>9} | {'memopt 1 run':>12} {'÷ official':>10} {'target':>7} | "
        f"{'memopt batched':>14} {'÷ official':>10} {'target':>7} | {'max |Δw|/|w|':>12}"
    )
    for variant, name, ell in OFFICIAL_ROWS:
        m, lr = methods.get(name), lrs[variant]
        cfg = m.Config(delta=delta) if ell == 0 else m.Config(ell=ell, delta=delta)
        t_off, w_off = per_step_seconds(
            variant, X[:, 0], y[:, 0], lr=lr, delta=delta, ell=max(ell, 2), repeats=a.repeats
        )
        one = [memopt_loop(name, cfg, Xt[:, 0], yt[:, 0], lr, device) for _ in range(a.repeats)]
        t_one = statistics.median(t for t, _ in one) / T
        t_b = statistics.median(memopt_loop(name, cfg, Xt, yt, lr, device)[0] for _ in range(a.repeats)) / (
            T * a.seeds
        )
        w_one = one[0][1].cpu().numpy()
        diff = np.abs(w_one - w_off).max() / max(np.abs(w_off).max(), 1e-300)
        label = variant if ell == 0 else f"{variant} ℓ={ell}"
        tgt1 = "≤ 1.5" if ell else "-"
        print(
            f"{label:>14} | {1e6 * t_off:9.1f} | {1e6 * t_one:12.1f} {t_one / t_off:10.2f} {tgt1:>7} | "
            f"{1e6 * t_b:14.2f} {t_b / t_off:10.2f} {'≤ 1':>7} | {diff:12.1e}"
        )


def main(argv=None) -> None:
    a = parse_args(argv)
    device = resolve_device(a.device)
    torch.set_num_threads(a.threads)
    print(
        f"device={device}, nproc={os.cpu_count()}, torch threads={torch.get_num_threads()}, "
        f"loadavg={open('/proc/loadavg').read().split()[:3]}"
    )
    if not a.skip_profile:
        profile(a, device)
    if not a.skip_official:
        official(a, device)
    print(f"loadavg after={open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
