"""``memopt memory``: state memory of every registered method, closed form beside counted tensors.

The closed form needs no tensors, so it is printed for any shape. Counting builds the state (float64) and
takes one step, so it is done only where that state fits under ``--count-limit-mb`` (closed form in float64
bytes); the other rows say they were not counted and why, instead of attempting e.g. the 80 GB of
full-matrix AdaGrad at d = 100 000. The column ``ℓ/rank`` is the sketch size ℓ (or the rank) the row used, and ``rec. lr`` the method's recommended lr (``Method.default_lr``;
"relative": Adafactor's relative step, make_optimizer(lr=None)).
"""

from __future__ import annotations

import argparse
import dataclasses

from memopt_theory import methods
from memopt_theory.errors import MemoptError, user_input
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
        "--count-limit-mb",
        type=float,
        default=COUNT_LIMIT_MB,
        help=f"count a state's tensors only when its closed-form size in float64 is at most this many MB "
        f"(default {COUNT_LIMIT_MB:g}); larger rows print the closed form only and say so",
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
COUNT_LIMIT_MB = 256.0  # counting peaks at ~4.5x the state (mfac at d = 1e5: 805 MB state, 3.7 GB peak)


def _rank(cfg) -> str:
    """The sketch size ℓ or rank a Config uses, '-' if it has neither."""
    for name in ("ell", "rank"):
        if hasattr(cfg, name):
            return str(getattr(cfg, name))
    return "-"


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
            raise MemoptError(f"{m.name}.Config needs {f.name}; use the Python API")
    return m.Config(**kwargs)


def run(args: argparse.Namespace) -> int:
    if args.ell is not None and args.ell < 1:
        raise MemoptError(f"--ell must be >= 1; got {args.ell}")
    if args.lr is not None and not args.lr > 0:
        raise MemoptError(f"--lr must be > 0; got {args.lr}")
    if not args.count_limit_mb >= 0:
        raise MemoptError(f"--count-limit-mb must be a number >= 0; got {args.count_limit_mb}")
    shapes = args.shape or [(1024,)]
    names = [n.strip() for n in args.methods.split(",") if n.strip()] or methods.names()
    with user_input("--methods"):
        ms = [methods.get(n) for n in names]
    bad = 0
    for shape in shapes:
        print(f"shape {'x'.join(map(str, shape))}")
        print(
            f"  {'method':<18} {'model scalars':>14} {'counted':>14} {'model bits':>12} {'counted bits':>12} "
            f"{'fp32 bytes':>12} {'ℓ/rank':>7}  agree  rec. lr"
        )
        skipped = []
        for n, m in zip(names, ms):
            try:
                cfg = _config(m, args)
                closed = memory_row(n, shape, cfg, count=False)  # closed form only: no tensors
            except ValueError as e:  # e.g. a default rank larger than this shape allows: say so, row by row
                print(f"  {n:<18} default Config does not fit this shape: {e}")
                bad += 1
                continue
            f64_mb = (8 * closed.model_scalars + closed.model_bits / 8) / 2**20
            count = not args.no_count and f64_mb <= args.count_limit_mb
            r = memory_row(n, shape, cfg, count=True) if count else closed
            if not args.no_count and not count:
                skipped.append(f"{n} ({f64_mb:,.0f} MB)")
            ok = "yes" if count and r.agrees else ("NO" if count else "-")
            bad += ok == "NO"
            cs = f"{r.counted_scalars:,}" if count else "-"
            cb = f"{r.counted_bits:,}" if count else "-"
            print(
                f"  {n:<18} {r.model_scalars:>14,} {cs:>14} {r.model_bits:>12,} {cb:>12} {r.bytes_float32:>12,} "
                f"{_rank(cfg):>7}  {ok:<5}  {'relative' if m.default_lr is None else f'{m.default_lr:g}'}"
            )
        if skipped:
            print(
                f"  not counted (float64 state over --count-limit-mb {args.count_limit_mb:g}; closed form "
                f"shown): {', '.join(skipped)}"
            )
    return 1 if bad else 0


HELP = "state memory of every method for given shapes, closed form beside counted"  # one-line help of this `memopt` subcommand
