"""The example sweep on a local process pool with 1 and then 2 workers: wall time as a ratio.

    python -m benchmarks.sweep_scaling [--file examples/sadagrad_sweep.toml] [--repeats 1] [--workers 1 2]

Each timing is one whole :func:`online_convex.sweep.sweep` into a fresh results directory, pool start-up
included. The pool's fork server (which imports torch once, ~5–15 s) is started before the first timing, so
neither worker count pays it and the ratio measures the runs. Runs alternate between the worker counts so
that drift in the machine's load hits both. The tables of the two runs are compared too:
the numbers must not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from online_convex.results import load
from online_convex.sweep import local_executor, sweep
from online_convex.sweep_file import load_sweep_file

ROOT = Path(__file__).resolve().parents[1]


def seconds(specs, workers: int, out: Path) -> float:
    t0 = time.perf_counter()
    sweep(specs, results_dir=out, workers=workers, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default=str(ROOT / "examples" / "sadagrad_sweep.toml"))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, nargs=2, default=(1, 2), metavar=("BASE", "MORE"))
    a = p.parse_args()
    specs = load_sweep_file(a.file)
    base, more = a.workers
    times: dict[int, list[float]] = {base: [], more: []}
    tables = {}
    with local_executor(1) as ex:  # start the fork server (torch imported once) outside the timings
        ex.submit(int).result()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for w in (base, more):
                out = Path(tmp) / f"w{w}_r{r}"
                times[w].append(seconds(specs, w, out))
                tables[w] = load(out)
                print(f"{len(specs)} runs, {w} worker(s): {times[w][-1]:.1f} s")
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # a ratio near `more/base` needs that many idle cores; on a shared box the load says how many there were
    print(f"machine: {os.cpu_count()} cores, 1-minute load average {load_avg:.1f} at the end")
    same = tables[base].equals(tables[more])
    t1, t2 = statistics.median(times[base]), statistics.median(times[more])
    print(
        f"time with {base} worker(s) ÷ time with {more} worker(s) = {t1 / t2:.2f} "
        f"(median of {a.repeats}; ideal {more / base:.0f}); tables identical: {same}"
    )


if __name__ == "__main__":
    main()
