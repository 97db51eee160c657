r"""``memopt regret --stream zipf_sparse|pydoc_ngrams|libsvm_sparse``: the sparse path of ``memopt regret``.

Same arguments, outputs and table as online_convex.regret_cli (results directory, regret.png, summary.json),
run through online_convex.sparse (padded (indices, values) rounds, no T×d or d×d array). Extra columns:
seconds per run, and after the table the process's peak resident memory beside the closed-form memory of
every learner state (8 bytes × scalars × seeds, memopt_theory.memory) plus the stream's bytes. A method whose
state is refused (adagrad_full above its memory limit) is listed with the refusal message instead of a run.
"""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path

from memopt_theory import storage


def _rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return _rss_bytes()


def run(args, params: dict) -> int:
    import numpy as np

    from online_convex import plots, simulate
    from online_convex.problems import get_problem
    from online_convex.regret_cli import _domain, _fmt, _learners
    from online_convex.sparse import make_sparse_stream, run_sparse, sparse_comparator_bounds

    t_start = time.perf_counter()
    base_rss = _current_rss()
    params = {k: v for k, v in params.items() if k not in ("rank", "problem")}
    data, problem_name = make_sparse_stream(
        args.stream, d=args.d, T=args.T, seeds=args.seeds, entropy=args.entropy, **params
    )
    data = data.to(args.device)
    problem = get_problem(args.problem or problem_name)
    domain = _domain(args, data.shape)
    learners = _learners(args, domain)
    ck = simulate.geometric_checkpoints(args.T, args.checkpoints)
    t0 = time.perf_counter()
    comparator = sparse_comparator_bounds(problem, data, domain, ck)
    t_comp = time.perf_counter() - t0
    out = Path(args.out)
    traces, rows, refused = [], [], []
    for L in learners:
        try:
            tr = run_sparse(L, problem, data, checkpoints=ck, comparator=comparator, progress=True)
        except MemoryError as e:  # adagrad_full's StateTooLarge: refused before allocating
            refused.append(f"{L.method}: refused: {e}")
            continue
        label = plots.label_of(tr).replace(" ", "").replace("(ℓ=", "_ell").replace(")", "")
        if tr.config.get("sketch") == "buffer":
            label += "_buffer"
        storage.write_result(out / label, tr.to_arrays(), tr.meta())
        traces.append(tr)
        ratio = float(np.max(tr.regret_upper / tr.bound)) if tr.bound is not None else math.nan
        name = plots.label_of(tr) + (" buffer" if tr.config.get("sketch") == "buffer" else "")
        rows.append(
            {
                "method": name,
                "memory": tr.memory_scalars,
                "regret_lower": float(tr.regret_lower[-1].mean()),
                "regret_upper": float(tr.regret_upper[-1].mean()),
                "width": float(tr.comparator_gap[-1].max()),
                "bound": float(tr.bound[-1].mean()) if tr.bound is not None else math.nan,
                "ratio": ratio,
                "seconds": tr.seconds,
            }
        )
    peak = _rss_bytes()
    state_bytes = sum(8 * r["memory"] * args.seeds for r in rows)
    mem = {
        "peak_rss_bytes": peak,
        "rss_before_stream_bytes": base_rss,
        "states_closed_form_bytes": state_bytes,
        "data_bytes": data.nbytes(),
        "ratio_peak_above_start": (peak - base_rss) / (state_bytes + data.nbytes()),
        "comparator_seconds": t_comp,
    }
    title = (
        f"{args.stream} (sparse, mean nnz {float((data.val != 0).sum(-1).float().mean()):.1f}), "
        f"{problem.name} loss, d={args.d}, T={args.T}, {args.seeds} seeds, {domain.name} "
        f"(D={float(domain.diameter):.3g}), η={args.eta}"
    )
    if not args.no_plot and traces:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plots.regret_figure(traces, title=title)
        fig.savefig(out / "regret.png", dpi=110)
        plt.close(fig)
    argv = {k: v for k, v in vars(args).items() if not k.startswith("_") and not callable(v)}
    storage.write_json(
        out / "summary.json", {"title": title, "rows": rows, "refused": refused, "memory": mem, "args": argv}
    )
    w = max([len(r["method"]) for r in rows] + [6])
    print(title)
    print(
        f"{'method':<{w}}  {'memory':>9}  {'regret interval at T':>24}  {'width':>8}  {'bound':>9}  "
        f"{'max ratio':>9}  {'seconds':>8}"
    )
    for r in rows:
        interval = f"[{_fmt(r['regret_lower'])}, {_fmt(r['regret_upper'])}]"
        print(
            f"{r['method']:<{w}}  {r['memory']:>9}  {interval:>24}  {r['width']:>8.2g}  {_fmt(r['bound']):>9}  "
            f"{_fmt(r['ratio']):>9}  {r['seconds']:>8.1f}"
        )
    for line in refused:
        print(line)
    gib = 2.0**30
    print(
        f"memory: peak RSS {peak / gib:.3f} GiB (at start {base_rss / gib:.3f} GiB); states' closed forms "
        f"{state_bytes / gib:.3f} GiB + data {data.nbytes() / gib:.3f} GiB; (peak − start)/(states + data) = "
        f"{mem['ratio_peak_above_start']:.3f}"
    )
    print(
        f"results: {out}/ ({len(rows)} runs); comparator {t_comp:.1f} s; "
        f"total {time.perf_counter() - t_start:.1f} s"
    )
    bad = [r for r in rows if math.isfinite(r["ratio"]) and r["ratio"] > 1]
    return 1 if bad else 0
