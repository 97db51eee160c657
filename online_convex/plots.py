r"""Regret against t with each method's theorem bound overlaid, and the regret/bound panel.

Curves are the UPPER end of the certified regret interval (``RegretTrace.regret_upper``): median over seeds
as a line, the 10–90 % band over seeds shaded; the bound (median over seeds) is the dashed line of the same
colour. The right panel shows regret_upper / bound per method: the theorem holds where it stays below 1.
Functions take and return matplotlib Axes; they never call ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["label_of", "regret_with_bound", "ratio_panel", "regret_figure"]


def label_of(trace) -> str:
    """A legend label: the method, with its sketch size ℓ where it has one (the Config field whose role is
    "sketch_size"; "ell" for a method no longer registered)."""
    from memopt_theory import methods

    field = methods.get(trace.method).field_for("sketch_size") if trace.method in methods.names() else "ell"
    ell = trace.config.get(field) if isinstance(trace.config, dict) and field else None
    return f"{trace.method} (ℓ={ell})" if ell is not None else trace.method


def _band(ax, t, Y, color, label, style="-"):
    med = np.median(Y, axis=1)
    ax.plot(t, med, style, color=color, label=label, lw=1.6)
    if Y.shape[1] > 1:
        lo, hi = np.quantile(Y, [0.1, 0.9], axis=1)
        ax.fill_between(t, lo, hi, color=color, alpha=0.15, lw=0)


def regret_with_bound(traces: Sequence, ax):
    """Log–log regret (upper end, median and 10–90 % band over seeds) with each bound dashed."""
    colors = [f"C{i}" for i in range(10)]
    for i, tr in enumerate(traces):
        c = colors[i % 10]
        t = tr.checkpoints
        # log axes cannot show regret ≤ 0 (a lucky start): clip at a floor below every positive value
        Y = np.asarray(tr.regret_upper, dtype=float)
        _band(ax, t, np.clip(Y, 1e-3, None), c, label_of(tr))
        if tr.bound is not None:
            ax.plot(t, np.median(tr.bound, axis=1), "--", color=c, lw=1.0, alpha=0.9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("round t")
    ax.set_ylabel("regret (upper end of certified interval)")
    ax.grid(True, which="major", alpha=0.3)
    ax.plot([], [], "--", color="0.3", label="theorem bound (dashed)")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def ratio_panel(traces: Sequence, ax):
    """regret_upper / bound against t (median and 10–90 % band); the line y = 1 is where a theorem would fail."""
    for i, tr in enumerate(traces):
        if tr.bound is None:
            continue
        _band(ax, tr.checkpoints, tr.regret_upper / tr.bound, f"C{i % 10}", label_of(tr))
    ax.axhline(1.0, color="k", lw=1, ls=":")
    ax.set_xscale("log")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=max(1.1, ax.get_ylim()[1]))
    ax.set_xlabel("round t")
    ax.set_ylabel("regret / bound  (≤ 1: theorem holds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def regret_figure(traces: Sequence, *, title: str = ""):
    """A two-panel figure (regret with bounds | regret/bound); returns the Figure."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    regret_with_bound(traces, a)
    ratio_panel(traces, b)
    a.set_title("regret vs t, bounds dashed")
    b.set_title("regret / bound")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
