r"""Per-step time of full-matrix AdaGrad, S-AdaGrad and the FD-update alone, as ratios measured in one run.

    OMP_NUM_THREADS=1 python -m benchmarks.fd_vs_full [--dims 256 1024 2048] [--ells 16 64] [--steps 5]
        [--repeats 3] [--device cpu]

float64, one parameter vector of size d. ``adagrad_full`` pays one d×d ``eigh`` a step (O(d³)); ``s_adagrad`` one
thin SVD of the d×ℓ matrix [U√s, g] plus O(dℓ) (docs/theory/sketching.md §B3). Sketches are warmed up past ℓ steps first
(untimed), so every timed step shrinks a full sketch. Within each repeat the three are timed back to back on the
same gradients, so load on the shared machine hits all of them; the printed figure is the median ratio over
``--repeats``. Target (issue 3): adagrad_full ÷ s_adagrad ≥ 50 at d = 2048, ℓ = 64. No assertion: numbers to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memopt_theory import methods
from memopt_theory.sketches import fd_init, fd_update


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _grads(n: int, d: int, device: torch.device, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scale = torch.arange(1, d + 1, dtype=torch.float64) ** -0.5  # decaying spectrum, as in the verify checks
    return (torch.randn(n, d, generator=gen, dtype=torch.float64) * scale).to(device)


def method_seconds(name: str, config, grads: torch.Tensor, warm: int) -> float:
    """Mean seconds per ``update`` over the gradients after the first ``warm`` (untimed) ones."""
    m = methods.get(name)
    st = m.init((grads.shape[1],), config, device=grads.device)
    for g in grads[:warm]:
        _, st = m.update(g, st, config)
    sync(grads.device)
    t0 = time.perf_counter()
    for g in grads[warm:]:
        _, st = m.update(g, st, config)
    sync(grads.device)
    return (time.perf_counter() - t0) / (len(grads) - warm)


def fd_seconds(ell: int, grads: torch.Tensor, warm: int) -> float:
    """Mean seconds per ``fd_update`` alone (the sketch S-AdaGrad maintains)."""
    st = fd_init(grads.shape[1], ell, device=grads.device)
    for g in grads[:warm]:
        st, _ = fd_update(st, g[:, None], ell)
    sync(grads.device)
    t0 = time.perf_counter()
    for g in grads[warm:]:
        st, _ = fd_update(st, g[:, None], ell)
    sync(grads.device)
    return (time.perf_counter() - t0) / (len(grads) - warm)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[256, 1024, 2048])
    p.add_argument("--ells", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--repeats", type=int, default=3, help="repeats; the median ratio is printed")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    print(
        f"float64, device {device}, torch threads {torch.get_num_threads()}, {a.steps} timed steps, "
        f"median of {a.repeats} repeats"
    )
    print(
        f"{'d':>6} {'ell':>5} {'full s/step':>12} {'s_adagrad s/step':>17} {'FD s/step':>10} "
        f"{'full/s_adagrad':>15} {'full/FD':>9} {'s_adagrad/FD':>13}"
    )
    full_cfg = methods.get("adagrad_full").Config()
    for d in a.dims:
        warm = max(a.ells) + 1
        grads = _grads(warm + a.steps, d, device, seed=d)
        rows = {ell: [] for ell in a.ells}
        for _ in range(a.repeats):
            # an eigh costs the same on any S_t: one untimed step, then the same last gradients as the others
            t_full = method_seconds("adagrad_full", full_cfg, grads[-(a.steps + 1) :], warm=1)
            for ell in a.ells:
                t_s = method_seconds("s_adagrad", methods.get("s_adagrad").Config(ell=ell), grads, warm)
                t_fd = fd_seconds(ell, grads, warm)
                rows[ell].append((t_full, t_s, t_fd))
        for ell in a.ells:
            r = rows[ell]
            med = [statistics.median(x[i] for x in r) for i in range(3)]
            q_s = statistics.median(x[0] / x[1] for x in r)
            q_fd = statistics.median(x[0] / x[2] for x in r)
            q_sfd = statistics.median(x[1] / x[2] for x in r)
            print(
                f"{d:>6} {ell:>5} {med[0]:>12.4g} {med[1]:>17.4g} {med[2]:>10.4g} "
                f"{q_s:>15.1f} {q_fd:>9.1f} {q_sfd:>13.2f}"
            )


if __name__ == "__main__":
    main()
