r"""Plots of Kronecker-factor spectra: each function draws on a given Axes and returns it (never shows).

* ``cumulative_mass`` — Σ_{i≤k} λ_i / tr F against k/d per snapshot, with the Gaussian null and 90 %/99 % marked;
* ``topk_heatmap`` — layer × step heat map of the top-⌈f·d⌉ mass from the store's long table;
* ``overlap_matrix`` — step × step subspace overlap ‖U_sᵀU_t‖_F²/k of the leading eigenvectors.

Each plotted artist carries a ``gid`` ("step:<s>", "null", "mark:<m>", "heatmap", "overlap") so that tests and
notebooks can find the data they drew.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from spectra import metrics
from spectra.store import Decomposition

__all__ = ["cumulative_mass", "topk_heatmap", "overlap_matrix", "cumulative_curve"]


def _check_ax(ax, where: str) -> None:
    if not isinstance(ax, Axes):
        raise TypeError(f"{where}: ax must be a matplotlib Axes; got {type(ax).__name__}")


def cumulative_curve(spectrum) -> tuple[np.ndarray, np.ndarray]:
    r"""(k/d, Σ_{i≤k} λ_i / tr F) for k = 1..k', from eigenvalues (the whole spectrum) or a Decomposition.

    A truncated Decomposition (``exact=False``) gives the head only, k' = its length, divided by its exact
    trace, so the curve stops below 1 at k'/d.
    """
    if isinstance(spectrum, Decomposition):
        total: float | None
        lam, d, total = np.asarray(spectrum.eigvals, np.float64), spectrum.dim, spectrum.trace
        if spectrum.exact:
            total = None
    else:
        lam = spectrum.detach().cpu().numpy() if hasattr(spectrum, "detach") else np.asarray(spectrum)
        d, total = lam.size, None
    y = metrics.cumulative_mass(lam, total=total)
    return np.arange(1, y.size + 1) / d, y


def cumulative_mass(
    ax: Axes,
    spectra: Mapping[int, object],
    null=None,
    *,
    title: str | None = None,
    marks: tuple[float, ...] = (0.9, 0.99),
    cmap: str = "viridis",
    matched=None,
) -> Axes:
    r"""Cumulative eigenvalue mass against the fraction k/d of eigenvectors kept, one line per snapshot.

    Parameters
    ----------
    ax : matplotlib Axes
    spectra : {step: eigenvalues (d,) or Decomposition} — one factor's snapshots
    null : eigenvalues or Decomposition, optional — the same factor under Gaussian gradients (dashed black)
    matched : eigenvalues or Decomposition, optional — the diagonal-matched null (spectra.null: the real
            factor's per-coordinate scale, no correlation; dotted black)
    title : str, optional — default states what the data show: the largest k/d any snapshot needs for 90 %
            of the trace, and the null's
    marks : mass levels drawn as dotted horizontal lines

    k/d runs from 1/d to 1, several decades for d in the hundreds, so the x axis is logarithmic.
    """
    _check_ax(ax, "cumulative_mass")
    if not isinstance(spectra, Mapping) or not spectra:
        raise ValueError(
            f"cumulative_mass: spectra must be a non-empty dict step -> eigenvalues; got {spectra!r:.80}"
        )
    steps = sorted(spectra)
    colors = _colormap(cmap)(np.linspace(0.1, 0.9, len(steps)))
    k90 = []  # k/d at which each curve reaches 90 %: the figure's headline number
    for c, step in zip(colors, steps):
        x, y = cumulative_curve(spectra[step])
        ax.plot(x, y, color=c, lw=1.4, label=f"step {step}", gid=f"step:{step}")
        k90.append(_k_frac_at(x, y, 0.9))
    reached = [v for v in k90 if v is not None]
    claim = f"90 % of tr F in k/d ≤ {max(reached):.3g}" if len(reached) == len(k90) else "cumulative mass"
    if null is not None:
        x, y = cumulative_curve(null)
        ax.plot(x, y, color="black", ls="--", lw=1.4, label="null (Gaussian gradients)", gid="null")
        kn = _k_frac_at(x, y, 0.9)
        claim += f" (null: {kn:.3g})" if kn is not None else ""
    if matched is not None:
        x, y = cumulative_curve(matched)
        ax.plot(
            x,
            y,
            color="black",
            ls=":",
            lw=1.6,
            label="matched null (real diagonal, no correlation)",
            gid="matched",
        )
    for m in marks:
        ax.axhline(m, color="grey", ls=":", lw=0.8, gid=f"mark:{m:g}")
        ax.text(
            0.01,
            m,
            f"{100 * m:g} %",
            ha="left",
            va="bottom",
            fontsize=7,
            color="grey",
            transform=ax.get_yaxis_transform(),
        )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k / d  (fraction of eigenvectors kept, log scale)")
    ax.set_ylabel(r"cumulative mass $\sum_{i\leq k}\lambda_i\,/\,\mathrm{tr}\,F$  (fraction)")
    # two lines: a one-line claim runs into the neighbouring panel's title in a grid of plots
    ax.set_title(title or f"{claim}:\na few leading eigenvectors hold most of the trace", fontsize="medium")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def _k_frac_at(x: np.ndarray, y: np.ndarray, m: float) -> float | None:
    """The first k/d whose cumulative mass reaches m (None if a truncated curve never does)."""
    hit = np.flatnonzero(y >= m)
    return float(x[hit[0]]) if hit.size else None


def _colormap(name: str):
    from matplotlib import colormaps

    if name not in colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name; got {name!r}")
    return colormaps[name]


def topk_heatmap(
    ax: Axes,
    table: pd.DataFrame,
    frac: float = 0.25,
    *,
    null: Mapping[str, float] | None = None,
    title: str | None = None,
    cmap: str = "viridis",
) -> Axes:
    r"""Heat map of the top-⌈frac·d⌉ mass (``top_mass@frac`` rows of the long table), layer:factor × step.

    Parameters
    ----------
    table : DataFrame with columns step, layer, factor, metric, value (``SnapshotStore.table()``)
    frac : float in (0, 1] — which ``top_mass@frac`` metric
    null : {"layer:factor": value}, optional — the null's top mass, shown in the row labels
    title : default states the median over factors of the latest top mass, and against the null how many
            factors exceed it
    Missing cells (a snapshot without that metric) are left blank. Colour scale fixed to [0, 1].
    """
    _check_ax(ax, "topk_heatmap")
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
        raise ValueError(f"topk_heatmap: frac must be a real in (0, 1]; got {frac!r}")
    missing = {"step", "layer", "factor", "metric", "value"} - set(getattr(table, "columns", ()))
    if missing:
        raise ValueError(
            f"topk_heatmap: table must have columns step, layer, factor, metric, value; missing {sorted(missing)}"
        )
    metric = f"top_mass@{frac:g}"
    rows = table[table.metric == metric]
    if rows.empty:
        raise ValueError(
            f"topk_heatmap: no {metric!r} rows in the table; metrics present: {sorted(set(table.metric))}"
        )
    name = rows.layer + np.where(rows.factor == "", "", ":" + rows.factor)
    grid = rows.assign(name=name).pivot_table(index="name", columns="step", values="value", aggfunc="first")
    data = np.ma.masked_invalid(grid.to_numpy(dtype=np.float64))
    im = ax.imshow(data, aspect="auto", vmin=0.0, vmax=1.0, cmap=cmap, interpolation="nearest", gid="heatmap")
    steps = list(grid.columns)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 10)).round().astype(int))
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
    labels = [n if null is None or n not in null else f"{n}  (null {null[n]:.2f})" for n in grid.index]
    ax.set_yticks(np.arange(len(grid.index)), labels, fontsize=7)
    ax.set_xlabel("training step")
    ax.set_ylabel("layer : factor")
    ax.figure.colorbar(im, ax=ax, label=f"top-{100 * frac:g} % eigenvalue mass (fraction of tr F)")
    last = grid.ffill(axis=1).iloc[:, -1]  # each factor's latest value
    claim = f"top {100 * frac:g} % of eigenvectors: median mass {np.nanmedian(last):.2f} at the last step"
    if null is not None:
        known = [n for n in grid.index if n in null and np.isfinite(last[n])]
        above = sum(last[n] > null[n] for n in known)
        claim += f",\nabove the null in {above}/{len(known)} factors"
    ax.set_title(title or claim, fontsize="medium")
    return ax


def overlap_matrix(
    ax: Axes,
    bases: Mapping[int, object],
    *,
    k: int | None = None,
    title: str | None = None,
    cmap: str = "magma",
) -> Axes:
    r"""Step × step matrix of subspace overlaps ‖U_sᵀU_t‖_F² / k of the top-k eigenvectors of one factor.

    Parameters
    ----------
    bases : {step: eigenvectors (d, ≥k) or Decomposition}
    k : int, optional — leading columns compared; default the smallest width present
    1 on the diagonal; independent random k-dimensional subspaces would give k/d (stated in the colour bar).
    title : default states the range of overlaps between consecutive snapshots and first vs last
    """
    _check_ax(ax, "overlap_matrix")
    if not isinstance(bases, Mapping) or not bases:
        raise ValueError(
            f"overlap_matrix: bases must be a non-empty dict step -> eigenvectors; got {bases!r:.80}"
        )
    steps = sorted(bases)
    U = {
        s: np.asarray(b.eigvecs if isinstance(b, Decomposition) else b, dtype=np.float64)
        for s, b in bases.items()
    }
    width = min(u.shape[1] if u.ndim == 2 else 0 for u in U.values())
    if k is None:
        k = width
    if type(k) is not int or not 1 <= k <= width:
        raise ValueError(f"overlap_matrix: k must be an int in [1, {width}] (the narrowest basis); got {k!r}")
    O = np.array([[metrics.subspace_overlap(U[a][:, :k], U[b][:, :k]) for b in steps] for a in steps])
    im = ax.imshow(O, vmin=0.0, vmax=1.0, cmap=cmap, interpolation="nearest", gid="overlap")
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 10)).round().astype(int))
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("training step")
    ax.set_ylabel("training step")
    d = next(iter(U.values())).shape[0]
    ax.figure.colorbar(im, ax=ax, label=f"subspace overlap, top {k} (random: k/d = {k / d:.3f})")
    if len(steps) > 1:
        consecutive = np.diag(O, 1)
        claim = (
            f"top-{k} eigenspace: overlap of consecutive snapshots {consecutive.min():.2f}–{consecutive.max():.2f},\n"
            f"first vs last {O[0, -1]:.2f} (random {k / d:.2f})"
        )
    else:
        claim = f"top-{k} eigenspace of one snapshot"
    ax.set_title(title or claim, fontsize="medium")
    return ax
