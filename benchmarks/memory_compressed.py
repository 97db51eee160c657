"""Memory of the compressed family on real layer shapes (docs/theory/bounds.md §E.2, docs/theory/compressed.md §D5–D6; issue 6 item 8).

    python -m benchmarks.memory_compressed [--count]

Two comparisons, from the closed forms ``memory``/``bits`` (equal to the counted tensors: tested by the
battery, and re-counted here with ``--count`` where the state is small enough):

1. SMMF against Adam, Adafactor, SM3 and CAME on the CNN and Transformer shapes of benchmarks/memory_table.py
   (SMMF's paper claims up to 96 % below them): float32 bytes (4·scalars + bits/8; SMMF's sign as packed bits,
   and as the official torch.bool, 8 bits a sign, in brackets), and SMMF's saving 1 − SMMF/other.
2. EF-M-FAC at 1 % density (99 % sparsity) against dense M-FAC, window m = 1024: the window alone (4mN bytes
   dense vs 4mk values + 4mk int32 indices) and the whole state (+ K, D, B, den, EF buffer). Target ≥ 30×.
"""

from __future__ import annotations

import argparse
import math

from benchmarks.memory_table import SHAPES, config_for, count
from memopt_theory import methods
from memopt_theory.compressors import k_of_density

# SMMF keeps a first moment, so the fair comparison is with the momentum variants of Adafactor (β1 = 0.9) and
# SM3 (momentum 0.9); their momentum-free defaults are printed too
OTHER_CONFIGS = {
    "adam": None,
    "adafactor": None,
    "adafactor b1=0.9": ("adafactor", {"beta1": 0.9}),
    "sm3": None,
    "sm3 mom=0.9": ("sm3", {"momentum": 0.9}),
    "came": None,
}
OTHERS = tuple(OTHER_CONFIGS)
LAYERS = [k for k in SHAPES if not k.startswith("vector")]


def fp32_bytes(name: str, shape) -> int:
    spec = OTHER_CONFIGS.get(name)
    if spec is not None:
        name, kw = spec
        m, cfg = methods.get(name), methods.get(name).Config(**{**vars(config_for(name)), **kw})
    else:
        m, cfg = methods.get(name), config_for(name)
    return 4 * int(m.memory(shape, cfg)) + (int(m.bits(shape, cfg)) + 7) // 8


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--count", action="store_true", help="re-count tensors for states up to --count-limit scalars"
    )
    p.add_argument("--count-limit", type=float, default=3e6)
    a = p.parse_args(argv)
    bad = 0
    print("1. SMMF vs Adam / Adafactor / SM3 / CAME (float32 bytes; saving = 1 - SMMF/other)")
    print(f"  {'layer':<26} {'SMMF B (bool sign)':>22} " + " ".join(f"{o:>18} {'saving':>7}" for o in OTHERS))
    for label in LAYERS:
        shape = SHAPES[label]
        N = math.prod(shape)
        smmf = fp32_bytes("smmf", shape)
        smmf_bool = smmf - (N + 7) // 8 + N  # the official code's torch.bool sign: one byte per sign
        cells = []
        for o in OTHERS:
            b = fp32_bytes(o, shape)
            cells.append(f"{b:>18,} {100 * (1 - smmf / b):>6.1f}%")
        print(f"  {label:<26} {smmf:>11,} ({smmf_bool:>9,}) " + " ".join(cells))
        if a.count and N <= a.count_limit:
            m, cfg = methods.get("smmf"), config_for("smmf")
            ok = count("smmf", shape, cfg) == (m.memory(shape, cfg), m.bits(shape, cfg))
            bad += not ok
            print(f"  {'':<26} counted = closed form: {'yes' if ok else 'NO'}")
    print("\n2. EF-M-FAC at density 0.01 vs dense M-FAC, window m = 1024 (float32 bytes)")
    print(
        f"  {'layer':<26} {'k':>7} {'dense window':>16} {'sparse window':>14} {'ratio':>7} {'dense state':>16} "
        f"{'EF state':>14} {'ratio':>7}"
    )
    m_ = 1024
    for label in LAYERS:
        shape = SHAPES[label]
        N = math.prod(shape)
        k = k_of_density(0.01, N, where="memory_compressed")
        dense_w, sparse_w = (
            4 * m_ * N,
            4 * m_ * k + methods.get("ef_mfac").bits(shape, config_for("ef_mfac")) // 8,
        )
        dense_s, ef_s = fp32_bytes("mfac", shape), fp32_bytes("ef_mfac", shape)
        print(
            f"  {label:<26} {k:>7,} {dense_w:>16,} {sparse_w:>14,} {dense_w / sparse_w:>6.1f}x {dense_s:>16,} "
            f"{ef_s:>14,} {dense_s / ef_s:>6.1f}x"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
