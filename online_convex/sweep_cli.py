"""``memopt sweep FILE.toml``: run a sweep file on a local process pool or a Dask cluster.

Writes under ``--out``: ``results/`` (the resumable store, one file pair per run), ``table.parquet`` (or
``.csv`` without pyarrow; one row per run × seed × checkpoint) and ``regret_vs_memory.png``. Killed and
restarted with the same arguments, it runs only what is missing.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from memopt_theory.errors import MemoptError
from memopt_theory.storage import writable_dir, write_atomic
from online_convex.results import load, write_table
from online_convex.sweep import sweep
from online_convex.sweep_file import load_sweep_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep file (TOML; see online_convex.sweep_file)")
    p.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local (the default): a process pool on this machine; dask: a Dask cluster (--scheduler) or a "
        "local one",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local pool / local Dask cluster: worker processes (default: CPU count)",
    )
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the Dask scheduler (default 10)"
    )
    p.add_argument("--out", default=None, help="output directory (default: sweep_<file stem>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _dask_client(args: argparse.Namespace):
    """A ``distributed.Client``: to ``--scheduler`` (ValueError if unreachable within ``--timeout``) or local."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MemoptError(
            "--executor dask needs dask.distributed: pip install 'memopt[distributed]'"
        ) from None
    if args.scheduler is None:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
        return Client(cluster)
    try:
        return Client(args.scheduler, timeout=args.timeout)
    except (OSError, TimeoutError) as e:  # distributed raises OSError("Timed out trying to connect ...")
        raise MemoptError(
            f"--scheduler {args.scheduler!r}: no Dask scheduler reachable within {args.timeout:g} s ({e}); "
            "start one with `dask scheduler` and workers with `dask worker ADDRESS`"
        ) from None


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise MemoptError(f"--workers must be >= 1; got {args.workers}")
    if args.timeout <= 0:
        raise MemoptError(f"--timeout must be > 0 seconds; got {args.timeout}")
    if args.scheduler is not None and args.executor != "dask":
        raise MemoptError("--scheduler is for --executor dask; got --executor local")
    specs = load_sweep_file(args.spec)
    out = writable_dir(args.out or f"sweep_{Path(args.spec).stem}", option="--out")  # before any run
    from online_convex.results import ResultStore

    ResultStore(
        out / "results"
    ).keys()  # a foreign or other-version store is refused here, not after the runs
    client = _dask_client(args) if args.executor == "dask" else None
    try:
        report = sweep(
            specs, client, results_dir=out / "results", progress=not args.no_progress, workers=args.workers
        )
    finally:
        if client is not None:
            cluster = client.cluster if args.scheduler is None else None
            client.close()
            if cluster is not None:
                cluster.close()
    df = load(out / "results")
    df = df[df["key"].isin(report.keys)].reset_index(
        drop=True
    )  # this file's runs, not older ones in the store
    table = write_table(df, out / "table")
    import matplotlib

    matplotlib.use("Agg")
    from online_convex.plots_sweep import regret_vs_memory

    axes = regret_vs_memory(df)
    buf = io.BytesIO()
    axes[0].figure.savefig(buf, format="png", dpi=120)
    write_atomic(out / "regret_vs_memory.png", buf.getvalue())
    print(
        f"sweep: {len(report.keys)} runs ({report.ran} run now, {report.skipped} already stored) in {report.results_dir}"
    )
    print(f"sweep: table {table} ({len(df)} rows), plot {out / 'regret_vs_memory.png'}")
    return 0


HELP = "run a sweep file (TOML) on a local process pool or a Dask cluster"  # one-line help of this `memopt` subcommand
