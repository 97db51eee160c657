r"""Regret against memory across a sweep: one point per method/rank, one panel per stream.

A point is one method with one Config (for S-AdaGrad one sketch size ℓ) at its best step size η: the η
whose median over seeds of the final certified regret upper end (RegretTrace ``regret_upper`` at t = T) is
smallest. x: the method's persistent state in scalars for one run (docs/theory/bounds.md §E.2); y: that median
divided by T (average regret), so streams of different lengths read alike.
"""

from __future__ import annotations

from typing import Any

__all__ = ["best_points", "regret_vs_memory"]


def best_points(df) -> Any:
    """One row per (stream, label): the best η's median final ``regret_upper``, its memory and η.

    Parameters
    ----------
    df : pandas.DataFrame   the tidy table of :func:`online_convex.results.load`

    Returns
    -------
    pandas.DataFrame with columns stream, method, label, eta_spec, memory_scalars, regret_upper, T, config,
    avg_regret
    """
    import pandas as pd

    need = {
        "stream",
        "method",
        "label",
        "config",
        "eta_spec",
        "t",
        "T",
        "seed",
        "regret_upper",
        "memory_scalars",
    }
    missing = sorted(need - set(df.columns))
    if missing:
        raise ValueError(
            f"best_points: the table lacks columns {missing}; pass online_convex.results.load(...)"
        )
    final = df[df["t"] == df["T"]]
    per_eta = (
        final.groupby(["stream", "method", "label", "eta_spec"], sort=True)
        .agg(
            regret_upper=("regret_upper", "median"),
            memory_scalars=("memory_scalars", "first"),
            T=("T", "first"),
            config=("config", "first"),
        )
        .reset_index()
    )
    best = per_eta.loc[per_eta.groupby(["stream", "label"], sort=True)["regret_upper"].idxmin()]
    best = best.assign(avg_regret=best["regret_upper"] / best["T"])
    return pd.DataFrame(best).reset_index(drop=True)


def regret_vs_memory(df, *, axes=None) -> list:
    """Scatter avg regret (best η) against state memory, a panel per stream; returns the list of Axes.

    Points are annotated with the Config fields that vary among the method's points (for S-AdaGrad: ℓ).
    """
    import matplotlib.pyplot as plt

    pts = best_points(df)
    streams = list(dict.fromkeys(pts["stream"]))
    if axes is None:
        _, axes = plt.subplots(
            1, len(streams), figsize=(4.2 * len(streams), 3.6), layout="constrained", squeeze=False
        )
        axes = list(axes[0])
    if len(axes) < len(streams):
        raise ValueError(f"regret_vs_memory: {len(streams)} streams need as many axes; got {len(axes)}")
    from matplotlib.ticker import NullFormatter

    methods_ = sorted(set(pts["method"]))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods_)}
    for ax, stream in zip(axes, streams):
        sub = pts[pts["stream"] == stream]
        for m in methods_:
            s = sub[sub["method"] == m]
            if len(s):
                ax.scatter(s["memory_scalars"], s["avg_regret"], color=colours[m], label=m, zorder=3)
            for _, r in s.iterrows():
                ax.annotate(
                    _short(r, pts),
                    (r["memory_scalars"], r["avg_regret"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")  # memory spans d … d²; regret values are close, so y stays linear
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("state memory (scalars, one run)")
        ax.set_ylabel("regret upper end / T")
        ax.set_title(f"{stream} (best η, median over seeds)", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    return list(axes)


def _short(row, pts) -> str:
    """``ell=4``: the Config fields that take more than one value among this method's points."""
    import json

    mine = [json.loads(c) for c in pts.loc[pts["method"] == row["method"], "config"]]
    cfg = json.loads(row["config"])
    vary = [k for k in cfg if len({json.dumps(c.get(k)) for c in mine}) > 1]
    return ", ".join(f"{k}={cfg[k]}" for k in vary)
