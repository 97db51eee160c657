r"""State memory relative to Adam for real layer shapes (docs/theory/bounds.md §E.2; issue 5 item 5).

    python -m benchmarks.memory_table                # every registered method, the shapes below
    python -m benchmarks.memory_table --count        # also build and step each state that fits, to show
                                                     # that the closed form equals the counted tensors

The full table (no ``--methods``) ends with benchmarks/memory_compressed.py: SMMF against Adam, Adafactor, SM3
and CAME, and EF-M-FAC at 1 % density against the dense M-FAC window.

For each shape and method: persistent floating scalars from the method's closed form ``memory(shape, cfg)``
(= counted tensors, tested by the battery for small shapes), bits of integer/bool storage, and the ratio
Adam ÷ method of float32 bytes (4·scalars + bits/8), so "1000×" means the state is a thousandth of Adam's.
Methods registered later appear automatically: with their default Config, or with the entry in CONFIGS
(memopt_theory.layers.layer_configs: methods whose Config needs arguments, or whose default is not the
sensible one for a layer, go there).
A full-matrix method on these shapes needs N² scalars; the table prints it — that is the point of the table.
"""

from __future__ import annotations

import argparse
import math

import torch

from memopt_theory import methods
from memopt_theory.layers import LAYER_SHAPES, layer_config, layer_configs
from memopt_theory.memory import counted_bits, counted_scalars

# The shapes and configurations live in the library (memopt_theory.layers); these names are kept for callers.
SHAPES = LAYER_SHAPES
CONFIGS: dict[str, object] = layer_configs()
config_for = layer_config


def count(name: str, shape: tuple[int, ...], cfg) -> tuple[int, int]:
    """Scalars and bits counted from a float32 state after one update (windows and sketches are allocated)."""
    m = methods.get(name)
    st = m.init(shape, cfg, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(shape, generator=gen, dtype=torch.float32)
    w = torch.randn(shape, generator=gen, dtype=torch.float32)
    _, st = m.update(g, st, cfg, param=w)
    return counted_scalars(st), counted_bits(st)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="", help="comma-separated names (default: every registered method)")
    p.add_argument("--count", action="store_true", help="also count tensors where the state is small enough")
    p.add_argument("--count-limit", type=float, default=2e6, help="largest state (scalars) and N to count")
    a = p.parse_args(argv)
    names = [n.strip() for n in a.methods.split(",") if n.strip()] or methods.names()
    adam = methods.get("adam")
    failures = 0
    for label, shape in SHAPES.items():
        N = math.prod(shape)
        adam_bytes = 4 * adam.memory(shape, adam.Config())
        print(f"\n{label}: shape {'x'.join(map(str, shape))}, N = {N:,}; Adam state {adam_bytes:,} B (fp32)")
        print(
            f"  {'method':<18} {'scalars':>16} {'bits':>12} {'fp32 bytes':>16} {'Adam / method':>14}  counted"
        )
        for name in names:
            cfg = config_for(name)
            if cfg is None:
                print(f"  {name:<18} needs a configuration: add it to benchmarks/memory_table.py CONFIGS")
                continue
            m = methods.get(name)
            try:
                scal, bits = int(m.memory(shape, cfg)), int(m.bits(shape, cfg))
            except ValueError as e:  # a configuration that does not fit this shape
                print(f"  {name:<18} n/a: {e}")
                continue
            nbytes = 4 * scal + (bits + 7) // 8
            ratio = adam_bytes / nbytes if nbytes else math.inf
            counted = "-"
            if a.count and scal <= a.count_limit and N <= a.count_limit:
                cs, cb = count(name, shape, cfg)
                counted = "yes" if (cs, cb) == (scal, bits) else f"NO ({cs:,}, {cb:,})"
                failures += counted != "yes"
            print(f"  {name:<18} {scal:>16,} {bits:>12,} {nbytes:>16,} {ratio:>13,.4g}x  {counted}")
    if not a.methods:  # the full table also prints the compressed family's comparisons (issue 6 item 8)
        from benchmarks import memory_compressed

        print("\n== compressed family (benchmarks/memory_compressed.py)")
        failures += memory_compressed.main(["--count"] if a.count else [])
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
