# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Where full-matrix AdaGrad cannot go: regret, memory and time per step against d, up to 2^18
#
# Sketchy's claim is full-matrix-AdaGrad regret in O(dℓ) memory. This notebook runs every learner on the same
# high-dimensional sparse stream (``zipf_sparse``: unit rows with Zipf-distributed feature frequencies, like
# a9a/rcv1; logistic loss, unit ℓ2 ball, each theorem's step size) for d from 2^6 to 2^18, through the sparse
# simulator (``online_convex.sparse``: no T×d or d×d array; certified comparator). S-AdaGrad and Ada-FD use the
# buffered FD sketch (``sketch="buffer"``, amortised O(dℓ) per step, same sandwich and Δ ≤ Ω_ℓ as exact FD).
#
# 1. **Scaling**: regret at T (the certified interval's upper end, mean over seeds), state memory (the closed
#    form, floats) and wall time per step, against d; the largest d at which full-matrix AdaGrad still ran here
#    (memory limit, or a time budget of its O(d³) eigh per step) is marked.
# 2. **The price of the sketch**: S-AdaGrad − AdaGrad regret against S-AdaGrad's escaped mass Δ_T (the tail
#    mass its regret chain pays, ≤ Ω_ℓ), where both run.
#
# ``MEMOPT_FAST=1`` runs a tiny version (d ≤ 2^8) in well under a minute.

# %%
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import memopt_theory
from memopt_theory import storage

ROOT = Path(next(iter(memopt_theory.__path__))).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.sparse_scaling import gap_rows, scaling_rows  # noqa: E402

FAST = os.environ.get("MEMOPT_FAST", "0") == "1"
# fast (smoke) figures never land on the committed full-mode ones in docs/figures
FIG_DIR = Path(os.environ.get("MEMOPT_FIGURES_DIR", "build/figures-fast" if FAST else "docs/figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
if FAST:
    DIMS, T, SEEDS, GAP_DIMS, ELLS = [2**6, 2**8], 40, 1, [32], [2, 8]
else:  # MEMOPT_SCALING_T / _SEEDS shorten the full run on a busy machine (the committed figure says which)
    T = int(os.environ.get("MEMOPT_SCALING_T", "500"))
    SEEDS = int(os.environ.get("MEMOPT_SCALING_SEEDS", "2"))
    DIMS, GAP_DIMS, ELLS = [2**k for k in range(6, 19, 2)], [64, 256], [2, 4, 8, 16]

# %%
rows = pd.DataFrame(scaling_rows(DIMS, T=T, seeds=SEEDS, ell=16, full_budget_s=120.0))
full_ran = rows[(rows.method == "adagrad_full") & rows.ran]
d_full = int(full_ran.d.max()) if len(full_ran) else None
print(f"T = {T}, {SEEDS} seeds; largest d at which full-matrix AdaGrad ran: {d_full}")
if "why" in rows:
    print(rows[~rows.ran][["d", "method", "why"]].to_string(index=False))
storage.write_json(
    FIG_DIR / "05_scaling_rows.json", {"T": T, "seeds": SEEDS, "rows": rows.to_dict("records")}
)
rows.pivot(index="d", columns="method", values="regret_upper")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for name, g in rows[rows.ran].groupby("method", sort=False):
    for ax, col in zip(axes, ("regret_upper", "memory", "sec_per_step")):
        ax.plot(g.d, g[col], "o-", label=name)
for ax, lab in zip(axes, ("regret at T (certified upper end)", "state memory (floats)", "seconds per step")):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d")
    ax.set_ylabel(lab)
    if lab != "regret at T (certified upper end)":
        ax.set_yscale("log")
    if d_full is not None:
        ax.axvline(d_full, color="grey", ls=":", lw=1)
        ax.text(d_full, ax.get_ylim()[1], " full AdaGrad's last d", va="top", fontsize=8, color="grey")
axes[0].legend(fontsize=8)
fig.suptitle(f"zipf_sparse logistic stream, T = {T}, {SEEDS} seeds (buffered FD for the sketches)")
fig.tight_layout()
fig.savefig(FIG_DIR / "05_scaling.png", dpi=110)

# %% [markdown]
# The sketched learners' memory grows like 2ℓd, full AdaGrad's like d²; its time per step like d³ (an eigh of the
# d×d statistic) until it stops. The regret of the sketches stays at full AdaGrad's level where both run.

# %%
gap = pd.DataFrame(gap_rows(GAP_DIMS, ELLS, T=T, seeds=SEEDS))
fig, ax = plt.subplots(figsize=(6, 4.2))
for d, g in gap.groupby("d"):
    ax.scatter(g.rho, g.gap, label=f"d = {d}")
ax.axhline(0, color="grey", lw=0.8)
ax.set_xscale("symlog", linthresh=1e-3)
ax.set_xlabel("S-AdaGrad escaped mass Δ_T (tail mass, ≤ Ω_ℓ)")
ax.set_ylabel("S-AdaGrad − AdaGrad regret at T")
ax.legend()
fig.tight_layout()
fig.savefig(FIG_DIR / "05_gap_vs_tail.png", dpi=110)
storage.write_json(FIG_DIR / "05_gap_rows.json", {"T": T, "seeds": SEEDS, "rows": gap.to_dict("records")})
gap.groupby(["d", "ell"])[["rho", "gap"]].mean()
