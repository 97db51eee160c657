"""Regret of the EF-compressed learners (EFCP, docs/theory/compressed.md §D5) against their dense methods, in the simulator.

    python -m benchmarks.compressed_regret [--T 2000] [--seeds 5] [--window 20] [--device cpu]

Streams (least squares, unconstrained, so the comparator min_x F_T(x) exists and is certified):
* ``power_law`` (synthetic, S = (16, 16), power-law spectrum, rotated);
* ``digits`` (real: scikit-learn's 8×8 digit images as 8×8 matrices, standardised, bias column dropped so the
  iterate keeps the image's shape; target ±1 for "is it a 0", one pass per seed in a seeded order).

Per stream and dense method (``ggt`` with β1 = 0, β2 = 1 and ``mfac``, both window m), η is chosen for the
dense method from a grid by its median final regret and then used unchanged for the compressed learners
(``ef_ggt``, ``ef_mfac`` with lr = η, μ = 0): top-k at 90 % and 99 % sparsity (density 0.1, 0.01; k =
max(1, ⌊density·N⌋)) and low rank r ∈ {1, 2} (PowerSGD, rows × rest). Printed: the upper end of the certified
regret interval at T (median over seeds, min–max in brackets), its ratio to the dense method's, and the
persistent state in scalars (+ index bits) of each learner. All numbers come from this one run.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from memopt_theory import methods
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.problems import RoundData
from online_convex.streams import make_stream

ETAS = (1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
VARIANTS = (
    ("top-k 90%", {"compressor": "topk", "density": 0.1}),
    ("top-k 99%", {"compressor": "topk", "density": 0.01}),
    ("low rank 1", {"compressor": "lowrank", "rank": 1}),
    ("low rank 2", {"compressor": "lowrank", "rank": 2}),
)


def digits_matrix_stream(T: int, seeds: int, device) -> RoundData:
    """scikit-learn's digits as 8×8 matrices (bias column dropped), least squares on "is it a 0" (±1)."""
    dig, _ = make_stream("digits", shape=None, T=T, seeds=seeds, problem="least_squares", device=device)
    return RoundData(a=dig.a[..., :64].reshape(*dig.a.shape[:2], 8, 8).contiguous(), y=dig.y)


def streams(T: int, seeds: int, device) -> dict[str, RoundData]:
    syn, _ = make_stream(
        "power_law", shape=(16, 16), T=T, seeds=seeds, problem="least_squares", device=device
    )
    return {"power_law (16x16)": syn, "digits (8x8)": digits_matrix_stream(T, seeds, device)}


def learner(name: str, eta: float, window: int, shape, variant: dict | None) -> Learner:
    dom = make_domain("unconstrained", shape)
    if name == "ggt":
        if variant is None:
            return Learner(
                "ggt", methods.get("ggt").Config(window=window, beta1=0.0, beta2=1.0, eps=1e-3), eta, dom
            )
        return Learner("ef_ggt", methods.get("ef_ggt").Config(window=window, eps=1e-3, **variant), eta, dom)
    if variant is None:
        return Learner("mfac", methods.get("mfac").Config(window=window, damp=1.0), eta, dom)
    return Learner(
        "ef_mfac", methods.get("ef_mfac").Config(window=window, damp=1.0, lr=eta, **variant), 1.0, dom
    )


def final_regret(L: Learner, data: RoundData, ck, comp) -> np.ndarray:
    tr = simulate.run(L, "least_squares", data, checkpoints=ck, comparator=comp)
    return tr.regret_upper[-1]


def fmt(r: np.ndarray) -> str:
    return f"{statistics.median(r.tolist()):10.3f} [{r.min():.3f}, {r.max():.3f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(1)
    for sname, data in streams(a.T, a.seeds, a.device).items():
        shape = data.shape
        ck = np.array([data.T])
        comp = simulate.comparator_bounds("least_squares", data, make_domain("unconstrained", shape), ck)
        print(
            f"\n== {sname}: T = {data.T}, {a.seeds} seeds, window m = {a.window}, N = {int(np.prod(shape))}"
        )
        for dense in ("ggt", "mfac"):
            regrets = {
                eta: final_regret(learner(dense, eta, a.window, shape, None), data, ck, comp) for eta in ETAS
            }
            eta = min(ETAS, key=lambda e: float(np.median(regrets[e])))
            base = regrets[eta]
            L = learner(dense, eta, a.window, shape, None)
            mem = L.spec.memory(shape, L.config)
            print(f"{dense:>5} dense      η={eta:<5} regret {fmt(base)}  ratio 1.000  memory {mem} scalars")
            for label, variant in VARIANTS:
                L = learner(dense, eta, a.window, shape, variant)
                r = final_regret(L, data, ck, comp)
                ratio = float(np.median(r)) / float(np.median(base))
                m, b = L.spec.memory(shape, L.config), L.spec.bits(shape, L.config)
                print(
                    f"{L.method:>7} {label:<10} η={eta:<5} regret {fmt(r)}  ratio {ratio:5.3f}  "
                    f"memory {m} scalars + {b} bits"
                )


if __name__ == "__main__":
    main()
