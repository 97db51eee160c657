r"""64 seeds in one batched loop vs 64 sequential one-seed runs of the same learner on the same data.

    python -m benchmarks.batched_seeds                       # d = 64, T = 2000, 64 seeds
    python -m benchmarks.batched_seeds --methods ogd --T 500

Both sides run ``simulate.run`` on identical data (the sequential side slices seed i out of the batched
stream), with the comparator certified once beforehand and shared, so the ratio measures the simulator's
loop: batched learner steps and losses against per-seed ones. Each line prints the two wall times and their
ratio, measured in this run; the sequential side's final cumulative losses are checked equal to the
batched ones (to 1e-9 relative) so that both sides did the same work. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from memopt_theory import methods
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import RoundData
from online_convex.streams import make_stream


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--T", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument(
        "--methods", default="ogd,adagrad_diag,s_adagrad", help="comma-separated (s_adagrad at ℓ = 8)"
    )
    p.add_argument("--domain", default="l2_ball", help="l2_ball (radius 1) or unconstrained (η = 0.1)")
    p.add_argument("--device", default="cpu")
    return p.parse_args()


def main() -> None:
    a = parse_args()
    torch.set_num_threads(1)  # one core for both sides: the ratio is about batching, not threads
    data, prob = make_stream(
        "low_rank_noise", shape=(a.d,), T=a.T, seeds=a.seeds, rank=min(8, a.d), device=a.device
    )
    if a.domain == "unconstrained":
        dom, eta = make_domain("unconstrained", (a.d,)), 0.1
    else:
        dom, eta = make_domain("l2_ball", (a.d,), radius=1.0), "theory"
    ck = simulate.geometric_checkpoints(a.T, 20)
    comp = (
        simulate.comparator_bounds(prob, data, dom, ck)
        if dom.bounded
        else (np.zeros((len(ck), a.seeds)), np.zeros((len(ck), a.seeds)))
    )
    print(f"d={a.d} T={a.T} seeds={a.seeds} domain={dom.name} device={a.device} (1 thread)")
    for name in [m.strip() for m in a.methods.split(",") if m.strip()]:
        cfg = methods.get(name).Config(ell=8) if name == "s_adagrad" else None
        L = Learner(name, cfg, eta=eta, domain=dom)
        t0 = time.perf_counter()
        batched = simulate.run(L, prob, data, checkpoints=ck, comparator=comp)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        finals = []
        for i in range(a.seeds):
            one = RoundData(a=data.a[:, i : i + 1], y=data.y[:, i : i + 1])
            r = simulate.run(
                L, prob, one, checkpoints=ck, comparator=(comp[0][:, i : i + 1], comp[1][:, i : i + 1])
            )
            finals.append(r.cum_loss[-1, 0])
        t_seq = time.perf_counter() - t0
        np.testing.assert_allclose(finals, batched.cum_loss[-1], rtol=1e-9, atol=1e-9)
        print(
            f"{name:>13}: batched {t_batched:7.2f} s, {a.seeds} sequential {t_seq:7.2f} s, "
            f"sequential / batched = {t_seq / t_batched:5.1f}x"
        )


if __name__ == "__main__":
    main()
