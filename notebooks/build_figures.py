"""Regenerate the full-mode headline figures into docs/figures/ (python notebooks/build_figures.py [--fast]).

Executes every notebook of this folder through a Jupyter kernel, as the tests do, but without MEMOPT_FAST;
each notebook saves its headline figure(s) into $MEMOPT_FIGURES_DIR, which this script points at docs/figures.
``--fast`` (a smoke run) writes to build/figures-fast instead and refuses an ``--out`` of docs/figures: the
committed figures are full-mode ones and only a full run replaces them.
05_scaling (d up to 2^18, the sparse simulator) is the slowest; ``--only 05`` rebuilds just its two figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMMITTED = ROOT / "docs" / "figures"  # full-mode figures, in git
FAST_OUT = ROOT / "build" / "figures-fast"  # build/ is git-ignored


def out_dir(fast: bool, out: str | None) -> Path:
    """Where figures go: docs/figures for a full run, build/figures-fast for a fast one (default); a fast run
    into docs/figures is refused (SystemExit naming --out), so it can never replace the committed figures."""
    path = Path(out) if out is not None else (FAST_OUT if fast else COMMITTED)
    if fast and path.resolve() == COMMITTED.resolve():
        raise SystemExit(
            f"build_figures: --fast writes smoke-run figures; --out {out!r} holds the committed full-mode "
            f"figures. Use another --out (default for --fast: {FAST_OUT.relative_to(ROOT)})"
        )
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--fast", action="store_true", help="MEMOPT_FAST=1 (a quick smoke run, into build/figures-fast)"
    )
    p.add_argument("--only", default="", help="run only notebooks whose name contains this text")
    p.add_argument(
        "--out", default=None, help="figure directory (default: docs/figures; with --fast build/figures-fast)"
    )
    a = p.parse_args(argv)
    out = out_dir(a.fast, a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MEMOPT_FIGURES_DIR"] = str(out)
    os.environ["MPLBACKEND"] = "Agg"
    os.environ["MEMOPT_FAST"] = "1" if a.fast else "0"
    for path in sorted(HERE.glob("[0-9][0-9]_*.py")):
        if a.only not in path.stem:
            continue
        t0 = time.perf_counter()
        nb = jupytext.read(path)
        NotebookClient(
            nb, kernel_name="python3", timeout=3600, resources={"metadata": {"path": str(ROOT)}}
        ).execute()
        print(f"{path.stem}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"figures in {out}: {', '.join(sorted(f.name for f in out.glob('*.png')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
