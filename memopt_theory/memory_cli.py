"""``memopt memory``: state memory of every registered method, closed form (§E.2) beside counted tensors."""

from __future__ import annotations

import argparse

from memopt_theory import methods
from memopt_theory.memory import memory_row


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.lower().replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is ints separated by 'x' or ',' (e.g. 1024 or 256x128); got {text!r}") from None
    if not shape or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"a shape needs ints >= 1; got {text!r}")
    return shape


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", type=_shape, action="append", help="parameter shape, e.g. 1024 or 256x128 (repeatable)")
    p.add_argument("--methods", default="", help="comma-separated method names (default: all)")
    p.add_argument("--no-count", action="store_true", help="closed form only (skip building states: huge shapes)")


def run(args: argparse.Namespace) -> int:
    shapes = args.shape or [(1024,)]
    names = [n.strip() for n in args.methods.split(",") if n.strip()] or methods.names()
    bad = 0
    for shape in shapes:
        print(f"shape {'x'.join(map(str, shape))}")
        print(f"  {'method':<18} {'model scalars':>14} {'counted':>14} {'model bits':>12} {'counted bits':>12} {'fp32 bytes':>12}  agree")
        for n in names:
            m = methods.get(n)
            try:
                m.Config()
            except TypeError:
                print(f"  {n:<18} needs a configuration; skipped (use the Python API)")
                continue
            r = memory_row(n, shape, count=not args.no_count)
            ok = "-" if args.no_count else ("yes" if r.agrees else "NO")
            bad += ok == "NO"
            print(f"  {n:<18} {r.model_scalars:>14,} {r.counted_scalars:>14,} {r.model_bits:>12,} {r.counted_bits:>12,} "
                  f"{r.bytes_float32:>12,}  {ok}")
    return 1 if bad else 0
