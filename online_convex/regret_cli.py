r"""``memopt regret``: one OCO experiment → results directory (npz + JSON), a PNG, and a printed table.

Default: full-matrix AdaGrad, diagonal AdaGrad, S-AdaGrad (ℓ ∈ {4, 16}) and OGD, each at its theorem's step
size, on a synthetic rank-8-plus-noise linear-loss stream, d = 64, T = 2000, 8 seeds, in the unit ℓ2 ball,
projections in the H_t-norm. The comparator depends on the stream only, so it is certified once and shared.

Table columns: method, memory (persistent floats of one run, docs/theory/bounds.md §E.2), the final regret interval
[L_T − value, L_T − lower] (mean over seeds), its width (the comparator's certified gap, max over seeds),
the theorem's bound at T (mean over seeds) and the worst regret_upper/bound over seeds and checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

from memopt_theory import methods, storage
from memopt_theory.errors import MemoptError, user_input

DEFAULT_METHODS = "adagrad_full,adagrad_diag,s_adagrad,ogd"
MATRIX = "matrix-"  # --problem matrix-LOSS: the same loss on an m×n iterate (--shape, default d×d)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from online_convex.streams import stream_names

    p.add_argument(
        "--stream",
        default="low_rank_noise",
        help=f"data stream, one of: {', '.join(stream_names())} (default low_rank_noise); sparse, d up to 2^18: zipf_sparse, "
        "pydoc_ngrams, libsvm_sparse",
    )
    p.add_argument(
        "--stream-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stream parameter, repeatable (e.g. rank=8, noise=0.1, path=a9a.txt); default rank=8",
    )
    p.add_argument(
        "--problem",
        default=None,
        help="loss: linear, least_squares, logistic, hinge (default: the stream's); matrix-LOSS (e.g. "
        "matrix-logistic) runs it on a matrix iterate of shape --shape (default d×d), for the tensored methods",
    )
    p.add_argument("--shape", default=None, help="matrix shape MxN for --problem matrix-LOSS (default d×d)")
    p.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma-separated methods (default {DEFAULT_METHODS})"
    )
    p.add_argument(
        "--ranks",
        default="4,16",
        help="sketch sizes ℓ of the sketched methods ("
        + ", ".join(m.name for m in methods.all_methods() if m.field_for("sketch_size"))
        + "), comma-separated (default 4,16); "
        "an ℓ whose state is larger than full-matrix AdaGrad's is run with a warning",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="set a field of a method's Config, repeatable (e.g. sm3.variant=I, ef_mfac.density=0.01, "
        "adagrad_full.delta=1e-6); unknown methods or fields are refused",
    )
    p.add_argument("--d", type=int, default=64, help="dimension of synthetic streams (default 64)")
    p.add_argument("--T", type=int, default=2000, help="rounds (default 2000)")
    p.add_argument("--seeds", type=int, default=8, help="seeds, run batched (default 8)")
    p.add_argument("--entropy", type=int, default=0, help="root seed of the SeedSequence (default 0)")
    p.add_argument(
        "--domain",
        default="l2_ball",
        help="l2_ball, box, simplex, nuclear_ball, unconstrained (default l2_ball)",
    )
    p.add_argument(
        "--radius",
        type=float,
        default=1.0,
        help="radius of the ball/simplex; box is [-radius, radius] (default 1)",
    )
    p.add_argument(
        "--eta",
        default="theory",
        help="'theory' (each theorem's step size; the default) or a number (also the lr of a method without a "
        "default, CAME)",
    )
    p.add_argument("--checkpoints", type=int, default=30, help="checkpoints on a geometric grid (default 30)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--out",
        default=None,
        help=f"output directory, new or empty; checked writable before any run (default: a new "
        f"{DEFAULT_OUT}/YYYYMMDD-HHMMSS per run, so that reruns never collide)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a non-empty --out: first remove the files an earlier memopt regret run listed in its "
        "summary.json (no other file is touched)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (regret.png)")


def _parse_value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def _stream_params(items: list[str], stream: str, d: int) -> dict:
    out = {"rank": min(8, d)} if stream == "low_rank_noise" else {}
    for it in items:
        key, sep, val = it.partition("=")
        if not sep or not key:
            raise MemoptError(f"--stream-param must be KEY=VALUE; got {it!r}")
        out[key] = _parse_value(val)
    return out


def _domain(args, shape):
    from online_convex.domains import make_domain

    if not (args.radius > 0 and math.isfinite(args.radius)):
        raise MemoptError(f"--radius must be a finite number > 0; got {args.radius}")
    if args.domain == "box":
        return make_domain("box", shape, lo=-args.radius, hi=args.radius)
    if args.domain == "unconstrained":
        return make_domain("unconstrained", shape)
    return make_domain(args.domain, shape, radius=args.radius)


def _learners(args, domain) -> list:
    from online_convex.learners import Learner

    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise MemoptError(f"--methods must name at least one method; got {args.methods!r}")
    try:
        ranks = [int(r) for r in args.ranks.split(",") if r.strip()]
    except ValueError:
        raise MemoptError(f"--ranks must be comma-separated ints; got {args.ranks!r}") from None
    if not ranks or min(ranks) < 1:
        raise MemoptError(f"--ranks must be ints >= 1; got {args.ranks!r}")
    eta = args.eta if args.eta == "theory" else float(args.eta)
    overrides = _config_overrides(getattr(args, "config", []), names)
    out = []
    for name in names:
        m = methods.get(name)
        ell = m.field_for("sketch_size")  # a sketched method runs once per --ranks value
        if ell is not None:
            out += [
                Learner(name, m.Config(**{**overrides.get(name, {}), ell: r}), eta=eta, domain=domain)
                for r in ranks
            ]
        else:
            cfg = _default_config(m, eta, overrides.get(name, {}))
            out.append(Learner(name, cfg, eta=eta, domain=domain))
    return out


def _config_overrides(items: list[str], names: list[str]) -> dict[str, dict]:
    """``--config METHOD.FIELD=VALUE`` items as {method: {field: value}}; the method must be among --methods
    and the field one of its Config's (``ell`` of a sketched method comes from --ranks)."""
    out: dict[str, dict] = {}
    for it in items:
        lhs, sep, val = it.partition("=")
        name, dot, field = lhs.partition(".")
        if not (sep and dot and name and field):
            raise MemoptError(f"--config must be METHOD.FIELD=VALUE (e.g. sm3.variant=I); got {it!r}")
        if name not in names:
            raise MemoptError(f"--config {it!r}: method {name!r} is not among --methods {','.join(names)}")
        fields = [f.name for f in dataclasses.fields(methods.get(name).Config)]
        if field not in fields:
            raise MemoptError(
                f"--config {it!r}: {name}.Config has no field {field!r}; it has {', '.join(fields)}"
            )
        if field == methods.get(name).field_for("sketch_size"):
            raise MemoptError(f"--config {it!r}: the sketch size of {name} is set by --ranks")
        out.setdefault(name, {})[field] = _parse_value(val)
    return out


def _default_config(m, eta, overrides: dict | None = None):
    """The method's default Config with the --config fields; one whose step size has no default (CAME's lr)
    takes --eta as its lr. Any other error of the Config (a bad --config value) propagates as it is."""
    overrides = dict(overrides or {})
    required = {
        f.name
        for f in dataclasses.fields(m.Config)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    lr = m.field_for("lr")
    if lr is not None and lr in required and lr not in overrides:
        if eta == "theory":
            raise MemoptError(
                f"--methods: {m.name} has no default {lr} and no theory step; pass --eta NUMBER (its {lr})"
            )
        overrides[lr] = eta
    return m.Config(**overrides)


def _check_device(device: str) -> None:
    """Refuse a device this torch build cannot compute on (e.g. cuda without CUDA, or meta, which holds no
    data) before any stream is made, instead of a traceback from deep inside the first round."""
    import torch

    try:
        torch.zeros(1, device=device).item()
    except (RuntimeError, AssertionError, NotImplementedError) as e:
        raise MemoptError(f"--device {device!r} is not usable here: {e}; use e.g. cpu") from None


SUMMARY = "summary.json"


def _label(learner) -> str:
    """File stem of a learner's result: the method, with ``_ell<ℓ>`` where its Config has a sketch size."""
    ell = getattr(learner.config, "ell", None)
    return f"{learner.method}_ell{ell}" if ell is not None else learner.method


DEFAULT_OUT = "results/regret"


def _new_run_dir(base: Path) -> Path:
    """``base/YYYYMMDD-HHMMSS`` (UTC), with ``-2``, ``-3``, … if a run of the same second has it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for i in range(1, 1000):
        path = base / (stamp if i == 1 else f"{stamp}-{i}")
        if not path.exists():
            return path
    raise MemoptError(f"--out: {base} has 999 runs of {stamp}; pass --out")


def _prepare_out(args) -> Path:
    """``--out``, writable, and empty — or, with ``--overwrite``, cleared of the files an earlier run listed in
    its summary.json (a killed run lists them too: the summary is written before the first learner runs).
    Without ``--out``, a new directory per run under results/regret."""
    if args.out is None:
        args.out = str(_new_run_dir(Path(DEFAULT_OUT)))
    out = storage.writable_dir(args.out, option="--out")
    present = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if not present:
        return out
    if not args.overwrite:
        more = f" and {len(present) - 5} more" if len(present) > 5 else ""
        raise MemoptError(
            f"--out {args.out!r} is not empty (holds {', '.join(present[:5])}{more}); choose a new directory, "
            "or pass --overwrite to replace the files of the memopt regret run it holds"
        )
    summary = out / SUMMARY
    previous = storage.read_json(summary) if summary.is_file() else None
    listed = previous.get("files") if isinstance(previous, dict) else None
    plain = lambda f: isinstance(f, str) and "/" not in f and "\\" not in f and f not in ("", ".", "..")
    if not isinstance(listed, list) or not all(plain(f) for f in listed):
        raise MemoptError(
            f"--overwrite: {args.out!r} holds {', '.join(present[:5])} but no summary.json of a memopt regret "
            "run listing its files; nothing was removed. Choose a new directory"
        )
    for name in [*listed, SUMMARY]:
        (out / name).unlink(missing_ok=True)
    return out


def _warn_large_sketches(learners, shape) -> None:
    """Say so when a sketch size makes a learner's state larger than full-matrix AdaGrad's on this shape."""
    import sys

    n = math.prod(shape)
    full = n * n  # the dense statistic Σ g gᵀ every full-matrix method keeps
    for L in learners:
        field = L.spec.field_for("sketch_size")
        ell = None if field is None else getattr(L.config, field)
        if ell is None:
            continue
        mem = methods.get(L.method).memory(tuple(shape), L.config)
        if mem > full:
            print(
                f"memopt regret: warning: {L.method} with ℓ = {ell} on shape {tuple(shape)} stores {mem:,} floats, "
                f"more than full-matrix AdaGrad's {full:,}: a sketch saves memory only for ℓ well below d",
                file=sys.stderr,
            )


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "-"


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from online_convex import plots, simulate
    from online_convex.problems import get_problem
    from online_convex.streams import make_stream

    if args.T < 1:
        raise MemoptError(f"--T must be >= 1; got {args.T}")
    if args.seeds < 1:
        raise MemoptError(f"--seeds must be >= 1; got {args.seeds}")
    if args.d < 1:
        raise MemoptError(f"--d must be >= 1; got {args.d}")
    if args.checkpoints < 1:
        raise MemoptError(f"--checkpoints must be >= 1; got {args.checkpoints}")
    _check_device(args.device)
    out = _prepare_out(args)  # before any computation: a run never fails at its first save
    t_start = time.perf_counter()
    matrix_shape = None
    if args.problem is not None and args.problem.startswith(MATRIX):
        args.problem = args.problem[len(MATRIX) :] or None
        try:
            matrix_shape = (
                tuple(int(x) for x in args.shape.lower().split("x")) if args.shape else (args.d, args.d)
            )
        except ValueError:
            raise MemoptError(f"--shape must be MxN (e.g. 8x4); got {args.shape!r}") from None
        if len(matrix_shape) != 2 or min(matrix_shape) < 1:
            raise MemoptError(f"--shape must be MxN with M, N >= 1; got {args.shape!r}")
    elif args.shape is not None:
        raise MemoptError("--shape needs --problem matrix-LOSS (e.g. --problem matrix-linear)")
    if not (args.radius > 0 and math.isfinite(args.radius)):
        raise MemoptError(f"--radius must be a finite number > 0; got {args.radius}")
    # the default rank min(8, ·) is of the stream's dimension: N = M·N for a matrix iterate, not --d
    params = _stream_params(
        args.stream_param, args.stream, math.prod(matrix_shape) if matrix_shape else args.d
    )
    from online_convex.sparse import SPARSE_STREAMS

    if (
        args.stream in SPARSE_STREAMS
    ):  # padded (indices, values) rounds, no T×d array: online_convex.sparse_cli
        from online_convex import sparse_cli

        return sparse_cli.run(args, params)
    if args.problem is not None:
        params.setdefault("problem", args.problem)
    from online_convex.streams_real import REAL

    shape = None if args.stream in REAL else (matrix_shape or (args.d,))
    if matrix_shape is not None and args.stream in REAL:
        raise MemoptError(
            f"--problem matrix-…: stream {args.stream!r} is a real data set of vectors; use a synthetic one"
        )
    if args.stream in REAL:
        params.pop("problem", None)
    with user_input():  # building the run from the arguments: an error here is about them
        data, problem_name = make_stream(
            args.stream,
            shape=shape,
            T=args.T,
            seeds=args.seeds,
            entropy=args.entropy,
            device=args.device,
            **params,
        )
        problem = get_problem(args.problem or problem_name)
        domain = _domain(args, data.shape)
        learners = _learners(args, domain)
    _warn_large_sketches(learners, data.shape)
    files = [f"{_label(L)}{ext}" for L in learners for ext in (".npz", ".json")]
    files += [] if args.no_plot else ["regret.png"]
    argv = {k: v for k, v in vars(args).items() if not k.startswith("_") and not callable(v)}
    # written first, so that a killed run's files are known to --overwrite; rewritten complete at the end
    storage.write_json(out / SUMMARY, {"status": "running", "files": files, "args": argv})
    ck = simulate.geometric_checkpoints(args.T, args.checkpoints)
    comparator = simulate.comparator_bounds(problem, data, domain, ck)
    traces, rows = [], []
    for L in learners:
        tr = simulate.run(
            L, problem, data, checkpoints=ck, device=args.device, progress=True, comparator=comparator
        )
        storage.write_result(out / _label(L), tr.to_arrays(), tr.meta())
        traces.append(tr)
        ratio = float(np.max(tr.regret_upper / tr.bound)) if tr.bound is not None else math.nan
        # the max ratio is often reached at t = 1 (one step); the ratio at T is the tightness of the √T rate
        ratio_T = float(np.max(tr.regret_upper[-1] / tr.bound[-1])) if tr.bound is not None else math.nan
        rows.append(
            {
                "method": plots.label_of(tr),
                "memory": tr.memory_scalars,
                "regret_lower": float(tr.regret_lower[-1].mean()),
                "regret_upper": float(tr.regret_upper[-1].mean()),
                "width": float(tr.comparator_gap[-1].max()),
                "bound": float(tr.bound[-1].mean()) if tr.bound is not None else math.nan,
                "ratio": ratio,
                "ratio_at_T": ratio_T,
                "seconds": tr.seconds,
            }
        )
    title = (
        f"{args.stream} {json.dumps(params) if params else ''}, {problem.name} loss, d={data.shape}, T={args.T}, "
        f"{args.seeds} seeds, {domain.name} (D={float(domain.diameter):.3g}), η={args.eta}"
    )
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plots.regret_figure(traces, title=title)
        fig.savefig(out / "regret.png", dpi=110)
        plt.close(fig)
    storage.write_json(
        out / SUMMARY, {"status": "complete", "files": files, "title": title, "rows": rows, "args": argv}
    )
    w = max(len(r["method"]) for r in rows)
    print(title)
    print(
        f"{'method':<{w}}  {'memory':>7}  {'regret interval at T':>24}  {'width':>8}  {'bound':>9}  {'max ratio':>9}  {'ratio at T':>10}"
    )
    for r in rows:
        interval = f"[{_fmt(r['regret_lower'])}, {_fmt(r['regret_upper'])}]"
        print(
            f"{r['method']:<{w}}  {r['memory']:>7}  {interval:>24}  {r['width']:>8.2g}  {_fmt(r['bound']):>9}  "
            f"{_fmt(r['ratio']):>9}  {_fmt(r['ratio_at_T']):>10}"
        )
    print(
        f"results: {out}/ ({len(rows)} runs, {'no plot' if args.no_plot else 'regret.png'}); "
        f"{time.perf_counter() - t_start:.1f} s"
    )
    bad = [r for r in rows if math.isfinite(r["ratio"]) and r["ratio"] > 1]
    return 1 if bad else 0


HELP = "one OCO experiment: regret intervals with theorem bounds, results + plot"  # one-line help of this `memopt` subcommand
