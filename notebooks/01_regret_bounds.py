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
# # 01 · When does a rank-ℓ sketch match full-matrix AdaGrad's regret, and what does the tail cost?
#
# **Question.** Full-matrix AdaGrad keeps the d×d gradient covariance G_t and guarantees
# R^lin_T ≤ √2·D·tr G_T^{1/2} (docs/theory/baselines.md §A3). Sketchy's S-AdaGrad keeps a rank-(ℓ−1) Frequent Directions
# sketch plus the escaped mass ρ_{1:t} (ℓd scalars instead of d²) and guarantees (Corollary 4, B3)
#
#   R^lin_T ≤ √2·D·(tr G_T^{1/2} + √(d(d−ℓ)·Ω_ℓ)),  Ω_ℓ = min_{k<ℓ} (ℓ−k)^{−1}Σ_{i>k} λ_i(G_T),
#
# so the price of the sketch is a term driven by the spectral **tail** Σ_{i>ℓ} λ_i. Diagonal AdaGrad (d scalars)
# pays Σ_i‖g_{1:T,i}‖₂ ≥ tr G_T^{1/2} instead; OGD (1 scalar) pays (3/2)GD√T.
#
# **Method.** The OCO simulator (`online_convex.simulate`) runs every learner on the same seeded streams (common
# random numbers) and records the *certified* regret interval against the best fixed point in hindsight (Fenchel
# duality certificate; width printed) and each theorem's bound evaluated on the run's own G_t. Plots show the
# upper end of the interval (median over seeds, 10–90 % band) with the bound dashed. We vary
#
# 1. the spectral decay of the gradients (power law λ_i ∝ i^{−α}, α = 0.5, 1, 2),
# 2. the rotation rate ω of a low-rank gradient subspace (`rotating` stream),
# 3. a real stream (scikit-learn's breast-cancer data, logistic loss),
# 4. matrix-shaped problems where the tensored (Shampoo, S-Shampoo, Extreme Tensoring, SM3) and compressed
#    (GGT, EFCP's ef_ggt / ef_mfac; unconstrained only) methods apply, for a regret-vs-memory frontier.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import FormatStrFormatter

from memopt_theory import methods
from memopt_theory.bounds.quantities import omega_ell, psd_eigvals_desc
from online_convex import Learner, get_problem, make_stream, simulate
from online_convex.domains import L2Ball, Unconstrained
from online_convex.plots import regret_figure, regret_with_bound

FAST = os.environ.get("MEMOPT_FAST") == "1"
# fast (smoke) figures never land on the committed full-mode ones in docs/figures
FIG_DIR = Path(os.environ.get("MEMOPT_FIGURES_DIR", "build/figures-fast" if FAST else "docs/figures"))
FIG_DIR.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(1)
pd.set_option("display.width", 160, "display.max_rows", 100)
T_START = time.perf_counter()

D_VEC = 8 if FAST else 24  # dimension of the vector streams
T = 150 if FAST else 1000  # rounds
SEEDS = 2 if FAST else 4
ELLS = (2, 4, 8) if FAST else (2, 4, 8, 16)  # S-AdaGrad sketch sizes (paper's ℓ; ℓ−1 directions kept)
N_CK = 12 if FAST else 25  # geometric checkpoints
print(f"FAST={FAST}: d={D_VEC}, T={T}, seeds={SEEDS}, ℓ ∈ {ELLS}")

SAdaGrad = methods.get("s_adagrad").Config


def suite(data, problem, domain, learners, checkpoints):
    """Run every (method, config) learner with η = "theory" on one stream; the comparator is computed once."""
    comp = simulate.comparator_bounds(get_problem(problem), data, domain, checkpoints)
    out = []
    for method, config in learners:
        lr = Learner(method, config=config, eta="theory", domain=domain)
        out.append(simulate.run(lr, problem, data, checkpoints=checkpoints, comparator=comp))
    return out


def vector_learners():
    return [("ogd", None), ("adagrad_diag", None), ("adagrad_full", None)] + [
        ("s_adagrad", SAdaGrad(ell=ell)) for ell in ELLS if ell <= D_VEC
    ]


def summary(traces):
    """Final-round figures per learner: medians over seeds; worst regret/bound over checkpoints and seeds."""
    rows = []
    for tr in traces:
        rows.append(
            {
                "learner": tr.method + (f" ℓ={tr.config['ell']}" if "ell" in tr.config else ""),
                "memory (scalars)": tr.memory_scalars,
                "regret (upper)": float(np.median(tr.regret_upper[-1])),
                "certificate width": float(tr.comparator_gap[-1].max()),
                "bound": float(np.median(tr.bound[-1])) if tr.bound is not None else np.nan,
                "worst regret/bound": float(tr.ratio().max()) if tr.bound is not None else np.nan,
            }
        )
    return pd.DataFrame(rows)


CK = simulate.geometric_checkpoints(T, N_CK)

# %% [markdown]
# ## 1. A power-law stream: regret with each theorem's bound
#
# Linear losses f_t(x) = ⟨g_t, x⟩ on the unit ℓ2 ball (D = 2), g_t = Q diag(√λ) z_t with λ_i = i^{−1} and a
# random rotation Q. The comparator of linear losses is exact (the ball's linear minimisation oracle), so the
# certified interval has width 0. Every learner uses its theorem's step size (η = D/√2, D_∞/√2, or OGD's
# D/(G√t)) and, on the ball, the projection in its own H_t-norm (Lemma L1).

# %%
data, problem = make_stream("power_law", shape=(D_VEC,), T=T, seeds=SEEDS, alpha=1.0, entropy=1)
ball = L2Ball((D_VEC,), 1.0)
traces_pl = suite(data, problem, ball, vector_learners(), CK)
table_pl = summary(traces_pl)
print(table_pl.to_string(float_format=lambda v: f"{v:.4g}"))

# %%
fig = regret_figure(
    traces_pl,
    title=f"Power-law gradients (λ_i ∝ 1/i, d={D_VEC}, T={T}, {SEEDS} seeds): "
    "does every learner stay below its theorem's bound, and does S-AdaGrad track full-matrix AdaGrad?",
)
fig.savefig(FIG_DIR / "01_regret_bounds_power_law.png", dpi=110)
plt.show()

# %%
full = table_pl.set_index("learner").loc["adagrad_full", "regret (upper)"]
print(
    f"worst regret/bound over all learners, checkpoints and seeds: {table_pl['worst regret/bound'].max():.3f}"
)
for _, r in table_pl.iterrows():
    print(
        f"{r['learner']:>14s}: final regret {r['regret (upper)']:.3g} = {r['regret (upper)'] / full:.2f} × "
        f"full-matrix AdaGrad, memory {r['memory (scalars)']} scalars, bound/regret "
        f"{r['bound'] / r['regret (upper)']:.1f}"
    )

# %% [markdown]
# The printed ratios say how far each theorem is from the measured regret (bound/regret) and how each learner's
# regret compares with full-matrix AdaGrad's at a fraction of its d² memory.
#
# ## 2. Spectral decay and subspace rotation: when does rank ℓ suffice?
#
# For each stream we run full-matrix AdaGrad and S-AdaGrad at every ℓ, and compare two ratios at T:
#
# * **measured**: regret of S-AdaGrad(ℓ) / regret of full-matrix AdaGrad (median over seeds);
# * **theory**: Cor. 4's bound / A3's bound = (tr G^{1/2} + √(d(d−ℓ)Ω_ℓ)) / tr G^{1/2} at the same η and D — the
#   factor by which the tail term inflates the guarantee.
#
# The tail fraction Σ_{i≥ℓ}λ_i / tr G_T of the realised G_T is printed beside them.

# %%
ALPHAS = (0.5, 1.0, 2.0)
RATES = (0.0, 0.01, 0.1)
RANK_ROT = 2 if FAST else 4
sweep_rows = []


def rank_sweep(kind, value, data, problem):
    learners = [("adagrad_full", None)] + [("s_adagrad", SAdaGrad(ell=ell)) for ell in ELLS if ell <= D_VEC]
    trs = suite(data, problem, ball, learners, CK)
    g = data.a  # linear losses: a_t is the gradient g_t
    G = torch.einsum("tsi,tsj->sij", g, g)
    lam = psd_eigvals_desc(G)
    full_regret = np.median(trs[0].regret_upper[-1])
    for tr in trs[1:]:
        ell = tr.config["ell"]
        sweep_rows.append(
            {
                "stream": kind,
                "param": value,
                "ell": ell,
                "measured ratio": float(np.median(tr.regret_upper[-1]) / full_regret),
                "theory ratio": float(np.median(tr.bound[-1] / trs[0].bound[-1])),
                "tail fraction": float(np.median((lam[:, ell - 1 :].sum(-1) / lam.sum(-1)).numpy())),
                "Omega_l / lambda_1": float(np.median((omega_ell(lam, ell) / lam[:, 0]).numpy())),
            }
        )


for alpha in ALPHAS:
    d_, p_ = make_stream("power_law", shape=(D_VEC,), T=T, seeds=SEEDS, alpha=alpha, entropy=2)
    rank_sweep("power law α", alpha, d_, p_)
for rate in RATES:
    d_, p_ = make_stream(
        "rotating", shape=(D_VEC,), T=T, seeds=SEEDS, rank=RANK_ROT, rate=rate, noise=0.1, entropy=3
    )
    rank_sweep("rotation ω", rate, d_, p_)
sweep = pd.DataFrame(sweep_rows)
print(sweep.to_string(float_format=lambda v: f"{v:.3f}"))

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained", sharey=True)
for ax, kind in zip(axes, ["power law α", "rotation ω"]):
    sub = sweep[sweep["stream"] == kind]
    for i, (val, grp) in enumerate(sub.groupby("param")):
        ax.plot(grp["ell"], grp["measured ratio"], "o-", color=f"C{i}", label=f"{kind} = {val:g}: measured")
        ax.plot(
            grp["ell"],
            grp["theory ratio"],
            "s--",
            color=f"C{i}",
            alpha=0.7,
            label=f"{kind} = {val:g}: Cor. 4 / A3",
        )
    ax.axhline(1.0, color="k", lw=1, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ELLS), [str(e) for e in ELLS])
    ax.set_xlabel("sketch size ℓ (paper's; ℓ−1 directions kept)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7.5)
axes[0].set_ylabel("S-AdaGrad(ℓ) / full-matrix AdaGrad  (regret or bound, at T)")
axes[0].set_title(
    f"Spectral decay (d={D_VEC}): does faster decay let a small ℓ match full-matrix?", fontsize=10
)
axes[1].set_title(f"Rotating rank-{RANK_ROT} subspace: does rotation hurt the sketch?", fontsize=10)
fig.suptitle(
    "When does a rank-ℓ sketch match full-matrix regret? measured (solid) vs the tail term of the bound (dashed)",
    fontsize=10,
)
fig.savefig(FIG_DIR / "01_regret_bounds_rank_sweep.png", dpi=110)
plt.show()

# %%
for (kind, val), grp in sweep.groupby(["stream", "param"]):
    within = grp[grp["measured ratio"] <= 1.05]["ell"]
    first = int(within.min()) if len(within) else None
    print(
        f"{kind} = {val:g}: measured ratio over ℓ {np.round(grp['measured ratio'].to_numpy(), 3).tolist()}, "
        f"bound inflation {np.round(grp['theory ratio'].to_numpy(), 3).tolist()}, "
        f"tail fraction {np.round(grp['tail fraction'].to_numpy(), 3).tolist()}; "
        f"smallest ℓ within 5 % of full-matrix regret: {first}"
    )
corr = np.corrcoef(np.log(sweep["tail fraction"].clip(1e-12)), np.log(sweep["measured ratio"]))[0, 1]
print(f"correlation of log tail fraction with log measured ratio over all streams and ℓ: {corr:.2f}")
covered = int((sweep["theory ratio"] >= sweep["measured ratio"]).sum())
print(f"the bound's inflation is at least the measured excess in {covered} of {len(sweep)} (stream, ℓ) cases")
print(
    f"largest measured excess over full-matrix: {sweep['measured ratio'].max():.3f}; "
    f"largest bound inflation: {sweep['theory ratio'].max():.3f}"
)

# %% [markdown]
# The printed lines give, for every stream, the smallest ℓ whose regret is within 5 % of full-matrix AdaGrad's and
# the inflation of the guarantee, and in how many cases the bound's inflation (dashed) is at least the measured
# excess (solid), i.e. the tail term over-estimates the cost of sketching.
#
# ## 3. A real stream: breast cancer, logistic loss
#
# Rows of scikit-learn's breast-cancer data (30 standardised features + a ones column, d = 31) arrive in a seeded
# random order per seed; f_t(x) = log(1 + exp(−y_t⟨a_t, x⟩)) on the ℓ2 ball of radius 5. The comparator is the
# proximal-Newton minimiser with a Frank–Wolfe duality certificate. The curves are the upper end of the certified
# interval; its width is the "certificate width" column of the table (the lower end lies that far below, which
# is invisible at plotting resolution whenever the printed width is many decades below the regret).

# %%
T_REAL = 150 if FAST else 1000
data_bc, problem_bc = make_stream("breast_cancer", shape=None, T=T_REAL, seeds=SEEDS, entropy=4)
d_bc = data_bc.shape[0]
ball_bc = L2Ball((d_bc,), 5.0)
learners_bc = [("ogd", None), ("adagrad_diag", None), ("adagrad_full", None)] + [
    ("s_adagrad", SAdaGrad(ell=ell)) for ell in ELLS
]
traces_bc = suite(data_bc, problem_bc, ball_bc, learners_bc, simulate.geometric_checkpoints(T_REAL, N_CK))
table_bc = summary(traces_bc)
print(table_bc.to_string(float_format=lambda v: f"{v:.4g}"))
fig = regret_figure(
    traces_bc, title=f"breast_cancer (d={d_bc}, logistic, T={T_REAL}): regret below each bound?"
)
fig.savefig(FIG_DIR / "01_regret_bounds_breast_cancer.png", dpi=110)
plt.show()
full_bc = table_bc.set_index("learner").loc["adagrad_full", "regret (upper)"]
print(
    f"worst regret/bound {table_bc['worst regret/bound'].max():.3f}; regret relative to full-matrix AdaGrad: "
    + ", ".join(f"{r['learner']} {r['regret (upper)'] / full_bc:.2f}" for _, r in table_bc.iterrows())
)

# %% [markdown]
# ## 4. Matrix-shaped problems: the regret–memory frontier
#
# Parameters X ∈ R^{4×6} (N = 24), features with a Kronecker power-law covariance (`kron_power_law`, α = 1),
# least-squares losses against a hidden teacher, **unconstrained** (the compressed methods have no metric to
# project with, so every method runs without a domain). No theorem step exists without a bounded domain, so each
# method gets the best η of a fixed grid (median final regret over seeds; ef_mfac has its own step rule and its
# grid is over lr). The comparator is the exact least-squares solution, certified from t > N (up to t = N the
# unconstrained minimiser is not unique and the certificate is not finite). Memory is the persistent state in
# scalars (docs/theory/bounds.md §E.2); bit-packed indices are not included. GGT runs with β1 = 0: with its default
# momentum β1 = 0.9 the momentum leaves the span of the gradient window and is divided by ε = 1e−4, and the run
# diverged at every η of the grid (regret ~1e35 at η = 0.01 on this stream, measured while preparing the notebook).

# %%
SHAPE = (4, 6)
N_MAT = int(np.prod(SHAPE))
T_MAT = 150 if FAST else 1000
data_m, problem_m = make_stream(
    "kron_power_law", shape=SHAPE, T=T_MAT, seeds=SEEDS, alpha=1.0, problem="least_squares", entropy=5
)
free = Unconstrained(SHAPE)
ck_m = simulate.geometric_checkpoints(T_MAT, N_CK)
ck_m = ck_m[ck_m > N_MAT]
comp_m = simulate.comparator_bounds(get_problem(problem_m), data_m, free, ck_m)
ETAS = (0.03, 0.3) if FAST else (0.01, 0.03, 0.1, 0.3, 1.0)
cfg = lambda name, **kw: methods.get(name).Config(**kw)  # noqa: E731
CANDIDATES = [
    ("ogd", None),
    ("adagrad_diag", None),
    ("adagrad_full", None),
    *[("s_adagrad", cfg("s_adagrad", ell=ell)) for ell in ELLS],
    ("shampoo", None),
    ("s_shampoo", cfg("s_shampoo", ell=2)),
    ("extreme_tensoring", None),
    ("sm3", None),
    ("ggt", cfg("ggt", window=8, beta1=0.0)),
    ("ef_ggt", cfg("ef_ggt", window=8, density=0.25)),
]
frontier_rows, best_traces = [], []


def record(label, tr, eta):
    return {
        "learner": label,
        "eta": eta,
        "memory": tr.memory_scalars,
        "memory_bits": tr.memory_bits,
        "regret": float(np.median(tr.regret_upper[-1])),
        "width": float(tr.comparator_gap[-1].max()),
    }


for name, config in CANDIDATES:
    label = name + (f" ℓ={config.ell}" if config is not None and hasattr(config, "ell") else "")
    best = None
    for eta in ETAS:
        tr = simulate.run(
            Learner(name, config=config, eta=eta, domain=free),
            problem_m,
            data_m,
            checkpoints=ck_m,
            comparator=comp_m,
        )
        r = record(label, tr, eta)
        if np.isfinite(r["regret"]) and (best is None or r["regret"] < best[0]["regret"]):
            best = (r, tr)
    frontier_rows.append(best[0])
    best_traces.append(best[1])
best = None
MFAC_DAMP = 0.1
for lr in [eta * MFAC_DAMP for eta in ETAS]:  # early steps are u ≈ g/λ, so lr/λ plays η's role
    c = cfg("ef_mfac", window=8, density=0.25, lr=lr, damp=MFAC_DAMP)
    tr = simulate.run(
        Learner("ef_mfac", config=c, eta=1.0, domain=free),
        problem_m,
        data_m,
        checkpoints=ck_m,
        comparator=comp_m,
    )
    r = record("ef_mfac", tr, lr)
    if np.isfinite(r["regret"]) and (best is None or r["regret"] < best[0]["regret"]):
        best = (r, tr)
frontier_rows.append(best[0])
best_traces.append(best[1])
frontier = pd.DataFrame(frontier_rows).sort_values("memory")
frontier["on frontier"] = frontier["regret"] <= frontier["regret"].cummin()
print(frontier.to_string(float_format=lambda v: f"{v:.4g}"))

# %%
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
FAMILY = {
    "ogd": "C7",
    "adagrad_diag": "C1",
    "adagrad_full": "C2",
    "s_adagrad": "C3",
    "shampoo": "C4",
    "s_shampoo": "C5",
    "extreme_tensoring": "C6",
    "sm3": "C8",
    "ggt": "C9",
    "ef_ggt": "C0",
    "ef_mfac": "k",
}
for i, r in enumerate(frontier.itertuples()):
    fam = r.learner.split(" ")[0]
    ax.plot(r.memory, r.regret, "o", color=FAMILY[fam], ms=8)
    ax.annotate(
        f"{r.learner} ({'lr' if fam == 'ef_mfac' else 'η'}={r.eta:g})",
        (r.memory, r.regret),
        textcoords="offset points",
        xytext=(6, 6 - 9 * (i % 3)),
        fontsize=7,
        color=FAMILY[fam],
    )
front = frontier[frontier["on frontier"]]
ax.step(front["memory"], front["regret"], where="post", color="k", lw=1, ls="--", label="Pareto frontier")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("optimizer memory (persistent scalars, log)")
ax.set_ylabel(f"regret at T={T_MAT} (upper end, median over seeds)")
ax.set_title(
    f"Regret vs memory, X ∈ R^{SHAPE[0]}×{SHAPE[1]} least squares: which methods are Pareto-optimal?",
    fontsize=10,
)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, loc="center right")
SHOWN = (
    "ogd",
    "adagrad_diag",
    "adagrad_full",
    "shampoo",
    "s_shampoo",
    "extreme_tensoring",
    "ggt",
    "ef_ggt",
    "ef_mfac",
)
best_sa = min(
    (tr for tr in best_traces if tr.method == "s_adagrad"), key=lambda tr: np.median(tr.regret_upper[-1])
)
regret_with_bound([tr for tr in best_traces if tr.method in SHOWN] + [best_sa], ax2)
ax2.set_title(
    "regret vs t at each method's best η\n(best S-AdaGrad ℓ shown; unconstrained: no bounds)", fontsize=10
)
ax2.legend(fontsize=6.5, ncol=2, loc="upper left")
for a_ in (ax, ax2):  # plain numbers on the log regret axes (the range is under one decade)
    a_.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    a_.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    a_.tick_params(axis="y", which="minor", labelsize=7)
fig.savefig(FIG_DIR / "01_regret_bounds_frontier.png", dpi=110)
plt.show()

# %%
full_m = frontier.set_index("learner").loc["adagrad_full"]
print(
    "Pareto frontier (memory ↑, regret ↓): "
    + " → ".join(f"{r.learner} ({r.memory} scalars, regret {r.regret:.3g})" for r in front.itertuples())
)
print(
    f"full-matrix AdaGrad: {full_m['memory']} scalars, regret {full_m['regret']:.3g}; max certificate width "
    f"{frontier['width'].max():.2e}"
)
print(f"notebook ran in {time.perf_counter() - T_START:.1f} s (FAST={FAST})")
