"""Regenerate the full-mode headline figures into docs/figures/ (python notebooks/build_figures.py [--fast]).

Executes every notebook of this folder through a Jupyter kernel, as the tests do, but without MEMOPT_FAST;
each notebook saves its headline figure(s) into $MEMOPT_FIGURES_DIR, which this script points at docs/figures.
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fast", action="store_true", help="MEMOPT_FAST=1 (a quick smoke run)")
    p.add_argument("--only", default="", help="run only notebooks whose name contains this text")
    p.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    a = p.parse_args(argv)
    out = Path(a.out)
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
