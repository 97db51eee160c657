"""``memopt memory``: state memory of every registered method, closed form (§E.2) beside counted tensors, and the
method's recommended lr (``Method.default_lr``; "relative": Adafactor's relative step, make_optimizer(lr=None))."""

from __future__ import annotations

import argparse
import dataclasses

from memopt_theory import methods
from memopt_theory.memory import memory_row


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.lower().replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a shape is ints separated by 'x' or ',' (e.g. 1024 or 256x128); got {text!r}"
        ) from None
    if not shape or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(f"a shape needs ints >= 1; got {text!r}")
    return shape


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shape", type=_shape, action="append", help="parameter shape, e.g. 1024 or 256x128 (repeatable)"
    )
    p.add_argument("--methods", default="", help="comma-separated method names (default: all)")
    p.add_argument(
        "--no-count", action="store_true", help="closed form only (skip building states: huge shapes)"
    )
    p.add_argument(
        "--ell",
        type=int,
        default=None,
        help=f"sketch size ℓ of every method with one (default: each Config's own, {DEFAULTS['ell']} where it has none)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"lr of every method with one (default: each Config's own, {DEFAULTS['lr']:g} where it has none)",
    )


DEFAULTS = {"ell": 16, "lr": 1e-3}  # for Config fields that have no default of their own


def _config(m, args: argparse.Namespace):
    """The method's Config: a field given on the command line (--ell, --lr) is set wherever the Config has it;
    required fields (no default) not given take DEFAULTS; everything else keeps the Config's default."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    kwargs = {}
    for f in dataclasses.fields(m.Config):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name in given:
            kwargs[f.name] = given[f.name]
        elif required and f.name in DEFAULTS:
            kwargs[f.name] = DEFAULTS[f.name]
        elif required:
            raise ValueError(f"{m.name}.Config needs {f.name}; use the Python API")
    return m.Config(**kwargs)


def run(args: argparse.Namespace) -> int:
    if args.ell is not None and args.ell < 1:
        raise ValueError(f"--ell must be >= 1; got {args.ell}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be > 0; got {args.lr}")
    shapes = args.shape or [(1024,)]
    names = [n.strip() for n in args.methods.split(",") if n.strip()] or methods.names()
    bad = 0
    for shape in shapes:
        print(f"shape {'x'.join(map(str, shape))}")
        print(
            f"  {'method':<18} {'model scalars':>14} {'counted':>14} {'model bits':>12} {'counted bits':>12} {'fp32 bytes':>12}  agree"
            "  rec. lr"
        )
        for n in names:
            m = methods.get(n)
            try:
                r = memory_row(n, shape, _config(m, args), count=not args.no_count)
            except ValueError as e:  # e.g. a default rank larger than this shape allows: say so, row by row
                print(f"  {n:<18} default Config does not fit this shape: {e}")
                bad += 1
                continue
            ok = "-" if args.no_count else ("yes" if r.agrees else "NO")
            bad += ok == "NO"
            cs = "-" if args.no_count else f"{r.counted_scalars:,}"
            cb = "-" if args.no_count else f"{r.counted_bits:,}"
            print(
                f"  {n:<18} {r.model_scalars:>14,} {cs:>14} {r.model_bits:>12,} {cb:>12} {r.bytes_float32:>12,}  {ok:<5}"
                f"  {'relative' if m.default_lr is None else f'{m.default_lr:g}'}"  # Method.default_lr
            )
    return 1 if bad else 0
