r"""``memopt spectra``: one reference run with the Kronecker-factor recorder → snapshots, a PNG and a table.

With no arguments: the 1024-wide digits MLP trained with Adam for 300 steps while the recorder accumulates
Shampoo (L, R) and K-FAC (A, G) factors with EMA β = 0.999 every step; every factor is eigendecomposed every 50
steps into ``OUT`` (a crash-safe ``SnapshotStore``). The null baseline — Gaussian gradients of the same shapes,
β and number of accumulated steps, through the same accumulation — goes to ``OUT/null``; the matched null (the
real factors' diagonal, no correlation: it separates low rank from mere anisotropy) to ``OUT/null_matched``.
Then:

* ``OUT/spectra.png``: cumulative mass vs k/d per snapshot with the null (the widest Shampoo and K-FAC factor),
  a layer × step heat map of the top-25 % mass, and a step × step subspace-overlap matrix;
* ``OUT/summary.csv`` and the printed table: top-25 % mass per layer and factor at the last snapshot beside the
  nulls', and the fraction k/d of eigenvectors that holds 90 % of the trace;
* ``OUT/table.parquet`` (or .csv): the long table (step, layer, factor, metric, value) of every snapshot.

Rerunning with the same arguments resumes into the same ``OUT`` (finished snapshots are kept); a directory that
holds another run's snapshots is refused.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from memopt_theory.errors import MemoptError, user_input
from memopt_theory.storage import writable_dir, write_atomic
from spectra.null import matched_null_factors, null_factors
from spectra.recorder import KINDS, FactorRecorder
from spectra.runs import RUNS, make_run, train
from spectra.snapshots import Snapshotter
from spectra.store import SnapshotStore

FRAC = 0.25  # the headline: mass in the top quarter of the eigenvectors


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", default="digits_mlp", choices=RUNS, help="reference run (default: digits_mlp)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    p.add_argument(
        "--device", default="cpu", help="torch device of the model and the factors (default: cpu; e.g. cuda)"
    )
    p.add_argument("--out", default="spectra_out", help="output directory (default: ./spectra_out)")
    p.add_argument("--seed", type=int, default=0, help="model, batches and null seed (default: 0)")
    p.add_argument(
        "--kinds", nargs="+", default=list(KINDS), help=f"factor kinds, of {KINDS} (default: both)"
    )
    p.add_argument(
        "--beta", type=float, default=0.999, help="EMA discount β in (0, 1]; 1 = plain sum (default: 0.999)"
    )
    p.add_argument("--every", type=int, default=1, help="accumulate every n-th step (default: 1)")
    p.add_argument(
        "--snapshot-every", type=int, default=50, help="eigendecompose every n steps (default: 50)"
    )
    p.add_argument(
        "--k-top", type=int, default=64, help="leading eigenvectors stored per snapshot (default: 64)"
    )
    p.add_argument(
        "--width", type=int, default=None, help="model width (default: the run's, 1024 for the MLP)"
    )
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument(
        "--fisher",
        default="empirical",
        choices=("empirical", "sampled"),
        help="labels of the K-FAC G factor: the data's (empirical) or drawn from the model (sampled); "
        "default: empirical",
    )
    p.add_argument(
        "--kfac-rows",
        type=int,
        default=None,
        metavar="M",
        help="K-FAC statistics from a random M of each step's rows (tokens), unbiased; default: every row",
    )
    p.add_argument(
        "--sketch",
        type=int,
        default=None,
        metavar="ELL",
        help="keep each factor as a Frequent Directions sketch of size ELL (O(d·ELL) memory instead of d²; "
        "each snapshot stores the escaped mass fd_rho, with s_i <= λ_i <= s_i + fd_rho); default: dense factors",
    )


def _check_args(a: argparse.Namespace) -> None:
    for name in ("steps", "every", "snapshot_every", "k_top", "batch_size"):
        v = getattr(a, name)
        if v < 1:
            raise MemoptError(f"--{name.replace('_', '-')} must be >= 1; got {v}")
    if a.snapshot_every > a.steps:
        raise MemoptError(
            f"--snapshot-every ({a.snapshot_every}) must be <= --steps ({a.steps}): no snapshot would be taken"
        )
    for k in a.kinds:
        if k not in KINDS:
            raise MemoptError(f"--kinds: unknown factor kind {k!r}; known: {', '.join(KINDS)}")
    if a.kfac_rows is not None and a.kfac_rows < 1:
        raise MemoptError(f"--kfac-rows must be >= 1; got {a.kfac_rows}")
    if a.sketch is not None and a.sketch < 2:
        raise MemoptError(
            f"--sketch must be >= 2 (the FD sketch size ℓ keeps ℓ - 1 directions); got {a.sketch}"
        )
    if not 0 < a.beta <= 1:
        raise MemoptError(f"--beta must be in (0, 1]; got {a.beta}")
    try:
        torch.empty(0, device=a.device)
    except (RuntimeError, AssertionError) as e:
        raise MemoptError(f"--device {a.device!r} is not usable here: {e}") from None


EXACT_MAX_DIM = 2048  # Snapshotter's default: wider factors keep only their top k_top eigenpairs


def _featured(shapes: dict[str, tuple[int, int]], kind: str) -> str | None:
    """The widest fully decomposed factor of a kind (ties: first by name), shown in a cumulative-mass panel."""
    names = sorted(n for n in shapes if n.split(":")[-1].startswith(kind))
    exact = [n for n in names if shapes[n][0] <= EXACT_MAX_DIM]
    names = exact or names
    return max(names, key=lambda n: shapes[n][0]) if names else None


def summary_table(
    real: pd.DataFrame, null: pd.DataFrame, step: int, matched: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Top-25 % mass and k/d for 90 % mass per layer:factor at ``step``, real beside the isotropic null and
    (``matched``) the diagonal-matched null."""

    def pick(df: pd.DataFrame, s: int, metric: str) -> pd.Series:
        rows = df[(df.step == s) & (df.metric == metric)]
        return rows.set_index(rows.layer + ":" + rows.factor).value

    null_step = int(null.step.max())
    out = pd.DataFrame(
        {
            "top25_mass": pick(real, step, f"top_mass@{FRAC:g}"),
            "top25_mass_null": pick(null, null_step, f"top_mass@{FRAC:g}"),
            "k/d_for_90%": pick(real, step, "k_frac_for_mass@0.9"),
            "k/d_for_90%_null": pick(null, null_step, "k_frac_for_mass@0.9"),
        }
    )
    if matched is not None:
        m_step = int(matched.step.max())
        out["top25_mass_matched"] = pick(matched, m_step, f"top_mass@{FRAC:g}")
        out["k/d_for_90%_matched"] = pick(matched, m_step, "k_frac_for_mass@0.9")
    out.index.name = "layer:factor"
    return out


def _plot(
    path: Path,
    store: SnapshotStore,
    null_store: SnapshotStore,
    shapes,
    null_top: dict[str, float],
    matched_store: SnapshotStore | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra import plots

    featured = [f for f in (_featured(shapes, "shampoo"), _featured(shapes, "kfac")) if f is not None]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5), layout="constrained")
    panels = list(axes.flat)
    null_step = null_store.steps()[-1]
    for ax, name in zip(panels[:2], featured):
        spectra = {s: store.load(s, name) for s in store.steps(name)}
        d = shapes[name][0]
        plots.cumulative_mass(
            ax,
            spectra,
            null=null_store.load(null_step, name),
            matched=matched_store.load(null_step, name) if matched_store is not None else None,
            title=f"{name} ({d}×{d}): cumulative mass vs Gaussian and matched nulls",
        )
    if len(featured) == 1:
        panels[1].set_axis_off()
    plots.topk_heatmap(panels[2], store.table(), FRAC, null=null_top)
    name = featured[0]
    bases = {s: store.load(s, name) for s in store.steps(name)}
    # k ≈ d/16 (64 of 1024, the sketch sizes Sketchy uses): large enough to hold most mass, small enough that
    # random subspaces would overlap little (k/d)
    k = max(1, min(min(b.eigvecs.shape[1] for b in bases.values()), shapes[name][0] // 16))
    plots.overlap_matrix(
        panels[3], bases, k=k, title=f"{name}: overlap of the top-{k} eigenspace between snapshots"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    t0 = time.perf_counter()
    out = writable_dir(args.out, option="--out")  # before training: a run never fails at its first save
    with user_input():  # building the run from the arguments (e.g. --width 0): an error here is about them
        r = make_run(
            args.run, device=args.device, seed=args.seed, width=args.width, batch_size=args.batch_size
        )
        rec = FactorRecorder(
            r.model,
            tuple(args.kinds),
            beta=args.beta,
            every=args.every,
            terms_per_example=r.terms_per_example,
            fisher=args.fisher,
            seed=args.seed,
            sketch=args.sketch,
            kfac_rows=args.kfac_rows,
        )
    meta = {
        "run": args.run,
        "steps": args.steps,
        "seed": args.seed,
        "kinds": list(args.kinds),
        "beta": args.beta,
        "every": args.every,
        "snapshot_every": args.snapshot_every,
        "k_top": args.k_top,
        "width": args.width,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "fisher": args.fisher,
        "device": str(r.device),
        # absent at their defaults, so stores written before these options existed stay valid
        **({"sketch": args.sketch} if args.sketch else {}),
        **({"kfac_rows": args.kfac_rows} if args.kfac_rows else {}),
    }
    store = SnapshotStore(out, meta)
    snap = Snapshotter(  # background: training goes on while the last snapshot is solved and written
        store,
        every=args.snapshot_every,
        k_top=args.k_top,
        exact_max_dim=EXACT_MAX_DIM,
        seed=args.seed,
        background=True,
    )

    def on_step(t: int) -> None:
        if (t + 1) % args.snapshot_every == 0:  # factors() copies: only on the eigensolve cadence
            snap.maybe_snapshot(t + 1, rec.sketches() if args.sketch else rec.factors())

    with rec, snap:
        losses = train(r, args.steps, lr=args.lr, recorder=rec, on_step=on_step, progress=True)
    t_train = time.perf_counter() - t0

    shapes = rec.factor_shapes()
    null_store = SnapshotStore(out / "null", {**meta, "null_of": meta})
    last = store.steps()[-1]
    if not null_store.steps():
        null = null_factors(shapes, steps=rec.num_updates, beta=args.beta, seed=args.seed, device=r.device)
        Snapshotter(
            null_store, every=1, k_top=args.k_top, exact_max_dim=EXACT_MAX_DIM, seed=args.seed
        ).maybe_snapshot(last, null)
    matched_store = SnapshotStore(out / "null_matched", {**meta, "null_of": meta, "matched": "diagonal"})
    if not matched_store.steps():  # the real factors' diagonal, no correlation (spectra.null)
        matched = matched_null_factors(
            rec.factors(), shapes, steps=rec.num_updates, beta=args.beta, seed=args.seed, device=r.device
        )
        Snapshotter(
            matched_store, every=1, k_top=args.k_top, exact_max_dim=EXACT_MAX_DIM, seed=args.seed
        ).maybe_snapshot(last, matched)
    real_table, null_table = store.table(), null_store.table()
    store.write_table()
    null_store.write_table()
    matched_store.write_table()
    summ = summary_table(real_table, null_table, last, matched_store.table())
    write_atomic(out / "summary.csv", summ.to_csv().encode())
    _plot(out / "spectra.png", store, null_store, shapes, summ["top25_mass_null"].to_dict(), matched_store)

    print(
        f"{args.run}: {args.steps} steps on {r.device}, loss {losses[0]:.3f} -> {np.mean(losses[-10:]):.3f} "
        f"(mean of last 10); {rec.num_updates} accumulations, β = {args.beta}; snapshots at steps {store.steps()}"
    )
    print(
        f"top-{100 * FRAC:g} % eigenvalue mass at step {last} vs the Gaussian null (same shapes, β, steps) and the "
        "matched null (the real factor's diagonal, no correlation; beating it is low rank, not anisotropy):"
    )
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(summ.to_string())
    if summ.isna().to_numpy().any():
        print(
            f"NaN: a factor wider than {EXACT_MAX_DIM} keeps only its top {args.k_top} eigenpairs, too few for that "
            "metric; raise --k-top to cover it"
        )
    print(
        f"wrote {out / 'spectra.png'}, {out / 'summary.csv'}, long tables and snapshots under {out}; "
        f"training + recording {t_train:.1f} s, total {time.perf_counter() - t0:.1f} s"
    )
    return 0


HELP = "a reference training run with the Kronecker-factor recorder: snapshots + plot"  # one-line help of this `memopt` subcommand
