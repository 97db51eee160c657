"""``memopt verify``: the table of theorem checks (memopt_theory.verify); ``--out DIR`` also writes
DIR/verify.json (one record per check) and DIR/verify.png (worst ratio and ratio at T per check)."""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

from tqdm import tqdm

from memopt_theory.errors import MemoptError
from memopt_theory.storage import write_atomic, write_json
from memopt_theory.verify import CheckResult, all_checks, run_check


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--instances", type=int, default=None, help="random instances per check (default: each check's own)"
    )
    p.add_argument("--fast", action="store_true", help="small instances (what CI and MEMOPT_FAST use)")
    p.add_argument("--seed", type=int, default=0, help="first instance seed")
    p.add_argument("--filter", default="", help="only checks whose name contains this text")
    p.add_argument("--out", default=None, help="directory for verify.json and verify.png")


def _fmt(v: float | None, spec: str) -> str:
    if v is None or not math.isfinite(v):
        return "-".rjust(int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 1))
    return format(v, spec)


def _figure(rows: list[CheckResult]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    y = range(len(rows))
    worst = [r.worst_ratio if math.isfinite(r.worst_ratio) else 0.0 for r in rows]
    at_T = [r.ratio_at_T if r.ratio_at_T is not None else math.nan for r in rows]
    ax.barh(list(y), worst, color=["tab:blue" if r.holds else "tab:red" for r in rows], label="worst ratio")
    ax.plot(at_T, list(y), "k|", markersize=10, label="ratio at T (regret)")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_yticks(list(y), [r.check.name for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("measured / bound")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


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
    print(
        f"{'check':<{w}}  instances  worst measured     worst bound  measured/bound  ratio at T    cap  holds"
    )
    for r in rows:
        inst = f"{r.informative}/{r.instances}" if r.informative >= 0 else str(r.instances)
        print(
            f"{r.check.name:<{w}}  {inst:>9}  {_fmt(r.worst_measured, '>14.6g')}  "
            f"{_fmt(r.worst_bound, '>14.6g')}  {_fmt(r.worst_ratio, '>14.6f')}  "
            f"{_fmt(r.ratio_at_T, '>10.4f')}  {_fmt(r.check.tightness_cap, '>5.3f')}  "
            f"{'yes' if r.holds else 'NO'}"
        )
    bad = [r for r in rows if not r.holds]
    finite = [r.worst_ratio for r in rows if math.isfinite(r.worst_ratio)]
    print(
        f"{len(rows) - len(bad)} of {len(rows)} checks hold (worst ratio {max(finite, default=math.nan):.6f}); "
        "regret checks: instances = informative/run (measured > 0), worst ratio over t >= t0 (see the check)"
    )
    if args.out is not None:
        out = Path(args.out)
        write_json(out / "verify.json", [r.record() for r in rows])
        write_atomic(out / "verify.png", _figure(rows))
        print(f"wrote {out / 'verify.json'} and {out / 'verify.png'}")
    return 1 if bad else 0


HELP = "run every theorem check on random instances; print worst measured/bound"  # one-line help of this `memopt` subcommand
