"""``memopt verify``: the table of theorem checks (memopt_theory.verify)."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from memopt_theory.errors import MemoptError
from memopt_theory.verify import all_checks, run_check


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--instances", type=int, default=None, help="random instances per check (default: each check's own)"
    )
    p.add_argument("--fast", action="store_true", help="small instances (what CI and MEMOPT_FAST use)")
    p.add_argument("--seed", type=int, default=0, help="first instance seed")
    p.add_argument("--filter", default="", help="only checks whose name contains this text")


def run(args: argparse.Namespace) -> int:
    if args.instances is not None and args.instances < 1:
        raise MemoptError(f"--instances must be >= 1; got {args.instances}")
    checks = [c for c in all_checks() if args.filter.lower() in c.name.lower()]
    if not checks:
        raise MemoptError(f"--filter {args.filter!r} matches no check")
    rows = []
    for c in tqdm(checks, desc="verify", unit="check", leave=False):
        rows.append(run_check(c, instances=args.instances, fast=args.fast, seed0=args.seed))
    w = max(len(r.check.name) for r in rows)
    print(f"{'check':<{w}}  instances  worst measured     worst bound  measured/bound  holds")
    for r in rows:
        print(
            f"{r.check.name:<{w}}  {r.instances:>9}  {r.worst_measured:>14.6g}  {r.worst_bound:>14.6g}  "
            f"{r.worst_ratio:>14.6f}  {'yes' if r.holds else 'NO'}"
        )
    bad = [r for r in rows if not r.holds]
    print(
        f"{len(rows) - len(bad)} of {len(rows)} checks hold (worst ratio {max(r.worst_ratio for r in rows):.6f})"
    )
    return 1 if bad else 0


HELP = "run every theorem check on random instances; print worst measured/bound"  # one-line help of this `memopt` subcommand
