r"""Full-matrix AdaGrad: the incremental solver against the eigh reference, one run and 64 batched seeds.

    python -m benchmarks.adagrad_full_solvers                      # d = 1024, T = 2000; d = 64, 64 seeds
    python -m benchmarks.adagrad_full_solvers --T 200 --skip-batched
    python -m benchmarks.adagrad_full_solvers --device cuda        # batched eigh on the GPU

Both solvers see the same gradients: a_t of the ``low_rank_noise`` stream (rank 8 + noise 0.1; linear losses,
so a_t is the gradient). Part 1 (one run, d): the mean time of ``update`` per step of each solver over all T
steps, their ratio, and the largest relative difference ‖u_inc − u_eigh‖/‖u_eigh‖ over all T directions
(target: ≥ 10× at d = 1024, directions within 1e-9). Part 2 (``--seeds`` seeds at ``--batched-d``): the
incremental solver batched against ``--seeds`` sequential one-seed runs (target: sequential/batched ≥ 8×, the
batching gain), and batched eigh against batched incremental. Times are medians over ``--repeats`` passes
where a pass is cheap (part 2); part 1 is timed once. Threads: 1 (``--threads``); nproc and the load average
are printed beside the numbers. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks._device import resolve_device, sync
from memopt_theory import methods
from online_convex.streams import make_stream

M = methods.get("adagrad_full")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--T", type=int, default=2000)
    p.add_argument("--delta", type=float, default=1e-3, help="δ inside, (S + δI)^(1/2) (default 1e-3)")
    p.add_argument("--refresh", type=int, default=32)
    p.add_argument("--batched-d", type=int, default=64)
    p.add_argument("--batched-T", type=int, default=500)
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--batched-refresh", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-single", action="store_true")
    p.add_argument("--skip-batched", action="store_true")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def _grads(d: int, T: int, seeds: int, device) -> torch.Tensor:
    data, _ = make_stream("low_rank_noise", shape=(d,), T=T, seeds=seeds, rank=min(8, d))
    return data.a.to(device)  # (T, seeds, d)


def _loop(cfg, G: torch.Tensor, device, keep: bool = False):
    """Seconds for T updates on G (T, *B, d), and the directions if ``keep``."""
    st = M.init(G.shape[-1:], cfg, batch=tuple(G.shape[1:-1]), device=device)
    out = []
    sync(device)
    t0 = time.perf_counter()
    for g in G:
        u, st = M.update(g, st, cfg)
        if keep:
            out.append(u)
    sync(device)
    return time.perf_counter() - t0, (torch.stack(out) if keep else None)


def single(a, device) -> None:
    G = _grads(a.d, a.T, 1, device)[:, 0]
    ce = M.Config(delta=a.delta)
    ci = M.Config(delta=a.delta, solver="incremental", refresh=a.refresh)
    t_i, u_i = _loop(ci, G, device, keep=True)
    t_e, u_e = _loop(ce, G, device, keep=True)
    rel = ((u_i - u_e).norm(dim=-1) / u_e.norm(dim=-1)).max().item()
    print(
        f"one run, d={a.d}, T={a.T}, delta={a.delta:g}, refresh={a.refresh}: eigh {1e3 * t_e / a.T:8.2f} ms/step, "
        f"incremental {1e3 * t_i / a.T:8.2f} ms/step, eigh / incremental = {t_e / t_i:5.1f}x (target >= 10x); "
        f"max relative direction difference {rel:.2e} (target <= 1e-9)"
    )


def batched(a, device) -> None:
    G = _grads(a.batched_d, a.batched_T, a.seeds, device)
    ce = M.Config(delta=a.delta)
    ci = M.Config(delta=a.delta, solver="incremental", refresh=a.batched_refresh)
    t_ib = statistics.median(_loop(ci, G, device)[0] for _ in range(a.repeats))
    t_eb = statistics.median(_loop(ce, G, device)[0] for _ in range(a.repeats))
    t_is = statistics.median(
        sum(_loop(ci, G[:, i], device)[0] for i in range(a.seeds)) for _ in range(max(1, a.repeats // 3))
    )
    _, u_b = _loop(ci, G, device, keep=True)
    _, u_s = _loop(ci, G[:, :1], device, keep=True)
    rel = ((u_b[:, :1] - u_s).norm(dim=-1) / u_s.norm(dim=-1)).max().item()
    print(
        f"{a.seeds} seeds, d={a.batched_d}, T={a.batched_T}, refresh={a.batched_refresh}: incremental batched "
        f"{t_ib:.2f} s, {a.seeds} sequential {t_is:.2f} s, sequential / batched = {t_is / t_ib:5.1f}x (target >= 8x); "
        f"eigh batched {t_eb:.2f} s, eigh batched / incremental batched = {t_eb / t_ib:5.1f}x; "
        f"seed 0 batched vs alone: {rel:.1e} relative"
    )


def main(argv=None) -> None:
    a = parse_args(argv)
    device = resolve_device(a.device)
    torch.set_num_threads(a.threads)
    print(
        f"device={device}, nproc={os.cpu_count()}, torch threads={torch.get_num_threads()}, "
        f"loadavg={open('/proc/loadavg').read().split()[:3]}"
    )
    if not a.skip_single:
        single(a, device)
    if not a.skip_batched:
        batched(a, device)
    print(f"loadavg after={open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
