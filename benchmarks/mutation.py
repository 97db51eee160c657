r"""Mutation score of the test suite: realistic one-line bugs, each applied to a fresh copy of the tree, with
the tests that should catch it run against that copy.

    python -m benchmarks.mutation                    # every mutant, 1 job
    python -m benchmarks.mutation --only bound       # the mutants whose name contains "bound"
    python -m benchmarks.mutation --jobs 2 --timeout 600
    python -m benchmarks.mutation --list             # print the mutants, run nothing

A mutant is (name, file, exact original snippet, replacement, pytest selection). The snippet must occur in
the file exactly once; a snippet that is missing or ambiguous is a **stale mutant** and fails the benchmark
(exit 2), so the list keeps up with the code. Each mutant runs in its own temporary copy of the tracked and
untracked (not ignored) files, with ``PYTHONPATH`` pointing at the copy (checked: the copy's packages are the
ones imported), ``pytest -x -q -p no:cacheprovider`` on the selection, OMP/MKL threads 1, and a timeout.

Outcome per mutant: **killed** (pytest exit 1: a test failed, or the timeout hit — reported separately),
**survived** (exit 0), **error** (any other exit: collection error or no test selected — a benchmark bug).
Printed: one line per mutant, the score killed/total, and the survivors. Exit 0 only when every mutant is
killed and none is stale or errored.

The areas (prefix of each name): ``bound.`` regret bounds, ``update.`` optimizer updates (signs, exponents,
bias correction, error-feedback residual, FD shrink), ``memory.`` closed-form memory, ``comparator.`` the
certified comparator, ``metric.`` spectral metrics, ``null.`` the spectra nulls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


def M(name: str, file: str, original: str, replacement: str, *tests: str) -> Mutant:
    return Mutant(name, file, original, replacement, tests)


BT = "memopt_theory/bounds/tensored.py"
BA = "memopt_theory/bounds/adagrad.py"
BS = "memopt_theory/bounds/sketchy.py"
BQ = "memopt_theory/bounds/quantities.py"
T_BOUNDS = ("tests/theory/test_bounds.py", "tests/theory/test_tensored_bounds.py")
T_TBOUNDS = (
    "tests/theory/test_tensored_bounds.py",
    "tests/theory/test_independent_rederivations.py",
    "tests/oco/test_tensored_regret.py",
)
T_CMP = ("tests/oco/test_comparator.py", "tests/oco/test_comparator_exact.py")
CE = "online_convex/certificate_exact.py"
T_METRICS = ("tests/spectra/test_metrics.py",)
T_MEM = ("tests/theory/test_memory_model.py", "tests/theory/test_memory_closed_forms.py")
T_RED = "tests/theory/test_independent_rederivations.py"

MUTANTS: tuple[Mutant, ...] = (
    # --- regret bounds: constants ×2/÷2, D vs D², δ inside/outside a root, dropped roots -------------------
    M(
        "bound.ogd_sqrt_halved",
        BA,
        'factor = 1.5 if schedule == "sqrt"',
        'factor = 0.75 if schedule == "sqrt"',
        *T_BOUNDS,
    ),
    M(
        "bound.ogd_const_halved",
        BA,
        'if schedule == "sqrt" else 1.0',
        'if schedule == "sqrt" else 0.5',
        *T_BOUNDS,
    ),
    M(
        "bound.ogd_D_squared",
        BA,
        "return factor * G * D * math.sqrt(T)",
        "return factor * G * D * D * math.sqrt(T)",
        *T_BOUNDS,
    ),
    M(
        "bound.adaptive_D_not_squared",
        BQ,
        "return D.square() / (2 * eta) + eta",
        "return D / (2 * eta) + eta",
        *T_BOUNDS,
    ),
    M(
        "bound.adaptive_eta_halved",
        BQ,
        "return D.square() / (2 * eta) + eta",
        "return D.square() / (2 * eta) + eta / 2",
        *T_BOUNDS,
    ),
    M("bound.full_delta_dropped", BA, "trace_sqrt(G + delta * eye)", "trace_sqrt(G)", *T_BOUNDS),
    M(
        "bound.full_outside_delta_not_d",
        BA,
        "(tr + d * delta) + eta * tr",
        "(tr + delta) + eta * tr",
        *T_BOUNDS,
    ),
    M(
        "bound.full_outside_eta_halved",
        BA,
        "(tr + d * delta) + eta * tr",
        "(tr + d * delta) + eta * tr / 2",
        *T_BOUNDS,
    ),
    M("bound.sadagrad_cor4_no_d", BS, "(d * gap * omega).sqrt()", "(gap * omega).sqrt()", *T_BOUNDS),
    M(
        "bound.sadagrad_thm3_root_dropped",
        BS,
        '"thm3": base + d * omega.sqrt()',
        '"thm3": base + d * omega',
        *T_BOUNDS,
    ),
    M(
        "bound.sadagrad_delta_outside_root",
        BS,
        "base = (lam + delta).sqrt().sum(-1)",
        "base = lam.sqrt().sum(-1) + delta",
        *T_BOUNDS,
    ),
    M(
        "bound.sadagrad_chain_no_d",
        BS,
        '"chain"] = base + (d * gap * r).sqrt()',
        '"chain"] = base + (gap * r).sqrt()',
        *T_BOUNDS,
    ),
    M(
        "bound.omega_shifted_k",
        BQ,
        "(tails[..., : kmax + 1] / (ell - k))",
        "(tails[..., : kmax + 1] / (ell - k + 1))",
        *T_BOUNDS,
    ),
    M("bound.shampoo_opt_coef_halved", BT, "return (2 * r).sqrt() * D", "return r.sqrt() * D", *T_TBOUNDS),
    M(
        "bound.shampoo_coef_r_dropped",
        BT,
        "return D.square() / (2 * eta) + eta * r",
        "return D.square() / (2 * eta) + eta",
        *T_TBOUNDS,
    ),
    M(
        "bound.kron_trace_root_p",
        BT,
        "tr = psd_eigvals_desc(A).pow(1.0 / (2 * p)).sum(-1)",
        "tr = psd_eigvals_desc(A).pow(1.0 / p).sum(-1)",
        *T_TBOUNDS,
    ),
    M(
        "bound.sshampoo_n_dropped",
        BT,
        "+ n * omega_ell(lam, ell).pow(1.0 / (2 * p))",
        "+ omega_ell(lam, ell).pow(1.0 / (2 * p))",
        *T_TBOUNDS,
    ),
    M(
        "bound.sshampoo_eps_outside_root",
        BT,
        "term = (lam + eps).pow(1.0 / (2 * p)).sum(-1)",
        "term = lam.pow(1.0 / (2 * p)).sum(-1) + eps",
        *T_TBOUNDS,
    ),
    M(
        "bound.et_eta_none_D_squared",
        BT,
        '    assert tr is not None  # h is non-empty (checked above)\n    coef = (\n        math.sqrt(2) * _as_tensor(D_inf, "D_inf", where) if',
        '    assert tr is not None  # h is non-empty (checked above)\n    coef = (\n        math.sqrt(2) * _as_tensor(D_inf, "D_inf", where) ** 2 if',
        *T_TBOUNDS,
    ),
    M(
        "bound.et_root_order",
        BT,
        't = _as_tensor(hi, "h", where).clamp_min(0).pow(1.0 / (2 * p)).sum(-1)',
        't = _as_tensor(hi, "h", where).clamp_min(0).pow(1.0 / p).sum(-1)',
        *T_TBOUNDS,
    ),
    M(
        "bound.sm3_root_dropped",
        BT,
        "tr = v.sqrt().flatten(start_dim=nbatch).sum(-1)",
        "tr = v.flatten(start_dim=nbatch).sum(-1)",
        *T_TBOUNDS,
    ),
    M(
        "bound.mode_rank_exponent",
        BT,
        "return math.prod(min(n, N // n) for n in shape) ** (1.0 / len(shape))",
        "return math.prod(min(n, N // n) for n in shape) ** (0.5 / len(shape))",
        *T_TBOUNDS,
    ),
    # --- updates ---------------------------------------------------------------------------------------------
    M(
        "update.adam_bias_correction_m",
        "memopt_theory/methods/adam.py",
        "c1, c2 = 1 - b1**tb, 1 - b2**tb",
        "c1, c2 = 1 - b1 ** (tb + 1), 1 - b2**tb",
        "tests/theory/test_baseline_methods.py",
    ),
    M(
        "update.adam_bias_correction_v_dropped",
        "memopt_theory/methods/adam.py",
        "c1, c2 = 1 - b1**tb, 1 - b2**tb",
        "c1, c2 = 1 - b1**tb, 1.0 + 0 * tb",
        "tests/theory/test_baseline_methods.py",
    ),
    M(
        "update.adam_wd_sign",
        "memopt_theory/methods/adam.py",
        "step = step + config.lr * config.weight_decay * param",
        "step = step - config.lr * config.weight_decay * param",
        "tests/theory/test_baseline_methods.py",
    ),
    M(
        "update.adagrad_diag_exponent",
        "memopt_theory/methods/adagrad_diag.py",
        "root = s.clamp_min(0).sqrt()",
        "root = s.clamp_min(0).pow(0.25)",
        "tests/theory/test_baseline_methods.py",
    ),
    M(
        "update.adagrad_full_delta_outside",
        "memopt_theory/methods/adagrad_full.py",
        "return (lam + config.delta).sqrt()",
        "return lam.sqrt() + config.delta",
        "tests/theory/test_baseline_methods.py",
    ),
    M(
        "update.ef_residual_sign",
        "memopt_theory/compressors.py",
        "EFState(e=a - c, comp=comp)",
        "EFState(e=c - a, comp=comp)",
        "tests/theory/test_compressors.py",
        "tests/theory/test_compressed_methods.py",
        T_RED,
    ),
    M(
        "update.ef_residual_dropped",
        "memopt_theory/compressors.py",
        "a = state.e + g\n",
        "a = g + 0 * state.e\n",
        "tests/theory/test_compressors.py",
        "tests/theory/test_compressed_methods.py",
        T_RED,
    ),
    M(
        "update.microadam_ef_dropped",
        "memopt_theory/methods/microadam.py",
        "a = g + dequantize4(state.codes, state.lo, state.hi, N, Bq)",
        "a = g + 0 * dequantize4(state.codes, state.lo, state.hi, N, Bq)",
        "tests/theory/test_moment_compression.py",
    ),
    M(
        "update.fd_shrink_index",
        "memopt_theory/sketches.py",
        "rho_t = lam[..., ell - 1] if ell <= m",
        "rho_t = lam[..., ell - 2] if ell <= m",
        "tests/theory/test_sketches.py",
    ),
    M(
        "update.fd_shrink_dropped",
        "memopt_theory/sketches.py",
        "s_new = (lam[..., :k] - rho_t.unsqueeze(-1)).clamp_min(0)",
        "s_new = lam[..., :k].clamp_min(0)",
        "tests/theory/test_sketches.py",
    ),
    M(
        "update.fd_rho_accumulation",
        "memopt_theory/sketches.py",
        "rho=beta * rho + rho_t",
        "rho=rho + rho_t",
        "tests/theory/test_sketches.py",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.fd_classic_shrink_root",
        "memopt_theory/sketches.py",
        "rows = (sig.square() - delta.unsqueeze(-1)).clamp_min(0).sqrt()",
        "rows = (sig - delta.unsqueeze(-1).sqrt()).clamp_min(0)",
        "tests/theory/test_sketches.py",
    ),
    M(
        "update.came_confidence_sign",
        "memopt_theory/methods/came.py",
        "res = (U - m).square() + config.eps2",
        "res = (U + m).square() + config.eps2",
        "tests/theory/test_factored_methods.py",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.came_wd_sign",
        "memopt_theory/methods/came.py",
        "step = step + config.lr * config.weight_decay * param",
        "step = step - config.lr * config.weight_decay * param",
        "tests/theory/test_factored_methods.py",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.came_col_stat_axis",
        "memopt_theory/methods/came.py",
        "C = b3 * state.C + (1 - b3) * res.mean(dim=-2)",
        "C = b3 * state.C + (1 - b3) * res.mean(dim=-1).mean(-1, keepdim=True).expand_as(state.C)",
        "tests/theory/test_factored_methods.py",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.came_clip_dropped",
        "memopt_theory/methods/came.py",
        "U = U / (_rms(U, k) / config.clip_threshold).clamp_min(1.0)",
        "U = U / (_rms(U, k) / config.clip_threshold).clamp_min(1.0).clamp_max(1.0)",
        "tests/theory/test_factored_methods.py",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.adafactor_row_norm",
        "memopt_theory/methods/adafactor.py",
        "return R.unsqueeze(-1) * C.unsqueeze(-2) / R.sum(dim=-1, keepdim=True).unsqueeze(-1)",
        "return R.unsqueeze(-1) * C.unsqueeze(-2) / R.mean(dim=-1, keepdim=True).unsqueeze(-1)",
        "tests/theory/test_factored_methods.py",
        "tests/theory/test_tensored_methods.py",
    ),
    M(
        "update.sm3_cover_max_not_min",
        "memopt_theory/methods/sm3.py",
        "out = a if out is None else torch.minimum(out, a)",
        "out = a if out is None else torch.maximum(out, a)",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.sm3_ii_absorbs_before_min",
        "memopt_theory/methods/sm3.py",
        "nu = _expand(state.mu, config, shape) + g2",
        "nu = _expand(tuple(a + b for a, b in zip(state.mu, _reduce_max(g2, config, shape))), config, shape)",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.s_shampoo_beta2_ignored",
        "memopt_theory/methods/s_shampoo.py",
        "new, rho_t = fd_update(sk, F, config.ell, beta=config.beta2)",
        "new, rho_t = fd_update(sk, F, config.ell, beta=1.0)",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.s_shampoo_beta2_squared",
        "memopt_theory/methods/s_shampoo.py",
        "new, rho_t = fd_update(sk, F, config.ell, beta=config.beta2)",
        "new, rho_t = fd_update(sk, F, config.ell, beta=config.beta2**2)",
        "tests/theory/test_tensored_methods.py",
        T_RED,
    ),
    M(
        "update.ef_sparse_ring_drops_feedback",
        "memopt_theory/methods/_windows.py",
        "return c, SparseRing(values=values, indices=indices, e=ef.e), oh, Cc",
        "return c, SparseRing(values=values, indices=indices, e=ring.e), oh, Cc",
        "tests/oco/test_compressed_regret.py",
        T_RED,
    ),
    # --- memory forms ----------------------------------------------------------------------------------------
    M(
        "memory.came_factored",
        "memopt_theory/methods/came.py",
        "return N + 2 * numel(shape[:-2]) * (shape[-2] + shape[-1])",
        "return N + numel(shape[:-2]) * (shape[-2] + shape[-1])",
        *T_MEM,
    ),
    M(
        "memory.adam_counter",
        "memopt_theory/methods/adam.py",
        "return 2 * numel(shape) + 1",
        "return 2 * numel(shape)",
        *T_MEM,
    ),
    M(
        "memory.ggt_momentum",
        "memopt_theory/methods/ggt.py",
        "return config.window * n + (n if config.beta1 > 0 else 0) + 1",
        "return config.window * n + n + 1",
        *T_MEM,
    ),
    M(
        "memory.shampoo_square",
        "memopt_theory/methods/shampoo.py",
        "return sum(n * n for n in shape)",
        "return sum(n * (n + 1) // 2 for n in shape)",
        *T_MEM,
    ),
    M(
        "memory.s_adagrad_ell",
        "memopt_theory/methods/s_adagrad.py",
        "return min(config.ell - 1, n) * (n + 1) + 1",
        "return min(config.ell, n) * (n + 1) + 1",
        *T_MEM,
    ),
    M(
        "memory.sm3_slices",
        "memopt_theory/methods/sm3.py",
        '"slices": sum(shape) if shape else 1',
        '"slices": max(shape) if shape else 1',
        *T_MEM,
    ),
    M(
        "memory.ldadam_error_feedback",
        "memopt_theory/methods/ldadam.py",
        "+ (N if config.error_feedback else 0)",
        "+ (N if not config.error_feedback else 0)",
        *T_MEM,
    ),
    M(
        "memory.microadam_quant_stats",
        "memopt_theory/methods/microadam.py",
        "return config.window * nb * kb + 2 * (-(-N // config.quant_block)) + 1",
        "return config.window * nb * kb + (-(-N // config.quant_block)) + 1",
        *T_MEM,
    ),
    M(
        "memory.galore_projector",
        "memopt_theory/methods/galore.py",
        "return 2 * r * max(shape) + r * min(shape) + 1",
        "return 2 * r * min(shape) + r * max(shape) + 1",
        *T_MEM,
    ),
    # --- the certified comparator ------------------------------------------------------------------------------
    M(
        "comparator.value_is_lower",
        "online_convex/comparator.py",
        "return ComparatorResult(x, value, lower, note)",
        "return ComparatorResult(x, lower, lower, note)",
        *T_CMP,
    ),
    M(
        "comparator.ls_conjugate_sign",
        CE,
        "return S * S / 2 * int(sum(al * al)) + S * sy * int(sum(al * yi))",
        "return S * S / 2 * int(sum(al * al)) - S * sy * int(sum(al * yi))",
        *T_CMP,
    ),
    M(
        "comparator.ball_radius_halved",
        CE,
        "return -R * _sqrt_up(sum((c * c for c in v), Fraction(0)))",
        "return -R / 2 * _sqrt_up(sum((c * c for c in v), Fraction(0)))",
        *T_CMP,
    ),
    M("comparator.simplex_max_vertex", CE, "return R * min(v)", "return R * max(v)", *T_CMP),
    M(
        "comparator.box_wrong_end",
        CE,
        "return sum((min(lo * c, hi * c) for c in v), Fraction(0))",
        "return sum((max(lo * c, hi * c) for c in v), Fraction(0))",
        *T_CMP,
    ),
    M(
        "comparator.hinge_conjugate_sign",
        CE,
        "return -S * int(sum(U))",
        "return S * int(sum(U))",
        *T_CMP,
    ),
    M(
        "comparator.null_projection_sign",
        CE,
        "out[rows] = out[rows] - aFC.dot(zi)",
        "out[rows] = out[rows] + aFC.dot(zi)",
        *T_CMP,
    ),
    M(
        "comparator.value_rounded_down",
        CE,
        "vals.append(_round(tot, data.a.dtype, up=True))",
        "vals.append(_round(tot, data.a.dtype, up=False))",
        *T_CMP,
    ),
    M(
        "comparator.nuclear_sigma_halved",
        CE,
        "return -R * _sqrt_up(_lambda_max_up(_gram(V)))",
        "return -R * _sqrt_up(_lambda_max_up(_gram(V)) / 4)",
        *T_CMP,
    ),
    # --- spectral metrics --------------------------------------------------------------------------------------
    M(
        "metric.stable_rank_power",
        "spectra/metrics.py",
        "return float(np.sum((lam / lam[0]) ** 2))",
        "return float(np.sum(lam / lam[0]))",
        *T_METRICS,
    ),
    M(
        "metric.participation_ratio_square",
        "spectra/metrics.py",
        "return float(x.sum() ** 2 / np.sum(x**2))",
        "return float(x.sum() / np.sum(x**2))",
        *T_METRICS,
    ),
    M(
        "metric.k_for_mass_side",
        "spectra/metrics.py",
        'k = int(np.searchsorted(cum, target, side="left")) + 1',
        'k = int(np.searchsorted(cum, target, side="right")) + 1',
        *T_METRICS,
    ),
    M(
        "metric.tail_mass_off_by_one",
        "spectra/metrics.py",
        "return float(lam[k:].sum())",
        "return float(lam[k + 1 :].sum())",
        *T_METRICS,
    ),
    M(
        "metric.intrinsic_dimension_square",
        "spectra/metrics.py",
        "return float(s / lam[0])",
        "return float(s / lam[0] ** 2)",
        *T_METRICS,
    ),
    M(
        "metric.stale_capture_unnormalised",
        "spectra/metrics.py",
        "return min(1.0, max(0.0, float(np.sum(Uk * (F @ Uk))) / tr))",
        "return min(1.0, max(0.0, float(np.sum(Uk * (F @ Uk))) / tr / k))",
        *T_METRICS,
    ),
    M(
        "metric.overlap_normaliser",
        "spectra/metrics.py",
        "/ min(U.shape[1], V.shape[1]))",
        "/ max(U.shape[1], V.shape[1]))",
        *T_METRICS,
    ),
    M(
        "metric.top_k_mass_index",
        "spectra/metrics.py",
        "return 0.0 if k == 0 else min(1.0, float(np.cumsum(lam)[k - 1]) / s)",
        "return 0.0 if k == 0 else min(1.0, float(np.cumsum(lam)[max(k - 2, 0)]) / s)",
        *T_METRICS,
    ),
    # --- spectra nulls ---------------------------------------------------------------------------------------------
    M(
        "null.isotropic_not_normalised",
        "spectra/null.py",
        "totals[name] = accumulate(totals[name], gram(X) / r, beta)",
        "totals[name] = accumulate(totals[name], gram(X), beta)",
        "tests/spectra/test_null.py",
    ),
    M(
        "null.matched_scale_not_divided_by_mass",
        "spectra/null.py",
        "sigma = (diag / mass).sqrt()",
        "sigma = diag.sqrt()",
        "tests/spectra/test_null.py",
    ),
    M(
        "null.matched_variance_not_std",
        "spectra/null.py",
        "sigma = (diag / mass).sqrt()",
        "sigma = diag / mass",
        "tests/spectra/test_null.py",
    ),
)


def check_snippets(mutants) -> list[str]:
    """Stale mutants: the file is missing, or the original snippet occurs other than exactly once."""
    stale = []
    for m in mutants:
        p = ROOT / m.file
        if not p.is_file():
            stale.append(f"{m.name}: file {m.file} not found")
            continue
        n = p.read_text(encoding="utf-8").count(m.original)
        if n != 1:
            stale.append(f"{m.name}: snippet found {n} times in {m.file} (must be exactly once)")
    return stale


def _tree_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def _copy_tree(dst: Path, files: list[str]) -> None:
    for f in files:
        target = dst / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, target)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    return env


def run_mutant(m: Mutant, files: list[str], timeout: float, mutate: bool = True) -> tuple[str, float, str]:
    """(outcome, seconds, detail) for one mutant in a fresh copy of the tree."""
    with tempfile.TemporaryDirectory(prefix="memopt-mutant-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy, files)
        if mutate:
            p = copy / m.file
            src = p.read_text(encoding="utf-8")
            if src.count(m.original) != 1:  # the tree moved since check_snippets: stale, not a pass
                return "error", 0.0, f"snippet found {src.count(m.original)} times in the copy of {m.file}"
            p.write_text(src.replace(m.original, m.replacement, 1), encoding="utf-8")
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import memopt_theory, online_convex, spectra; print(memopt_theory.__file__)",
            ],
            cwd=copy,
            env=_env(copy),
            capture_output=True,
            text=True,
        )
        if not probe.stdout.strip().startswith(str(copy)):
            return (
                "error",
                0.0,
                f"the copy's packages are not the ones imported: {probe.stdout}{probe.stderr}",
            )
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - t0, f"no result within {timeout:.0f} s"
        dt = time.perf_counter() - t0
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
        tail = lines[-1] if lines else ""
        if r.returncode == 0:
            return "survived", dt, tail
        if r.returncode == 1:
            failed = next((ln for ln in lines if ln.startswith("FAILED")), tail)
            return "killed", dt, failed
        return "error", dt, f"pytest exit {r.returncode}: {tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--only",
        default=None,
        help="run only mutants whose name contains PATTERN (comma-separated: any of them)",
    )
    p.add_argument("--jobs", type=int, default=1, help="mutants run in parallel (each its own copy)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant's pytest run")
    p.add_argument("--list", action="store_true", help="print the mutants and exit")
    p.add_argument("--baseline", action="store_true", help="also run each selection unmutated (must pass)")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1; got {args.jobs}")
    pats = None if args.only is None else [q for q in args.only.split(",") if q]
    mutants = [m for m in MUTANTS if pats is None or any(q in m.name for q in pats)]
    if not mutants:
        p.error(f"--only {args.only!r} matches no mutant; names look like {MUTANTS[0].name!r}")
    if args.list:
        for m in mutants:
            print(f"{m.name:42s} {m.file}  tests: {' '.join(m.tests)}")
        return 0
    stale = check_snippets(mutants)
    for s in stale:
        print(f"STALE {s}")
    if stale:
        print(f"{len(stale)} stale mutant(s): update their snippets to the current code")
        return 2
    files = _tree_files()
    print(f"{len(mutants)} mutants, {args.jobs} job(s), timeout {args.timeout:.0f} s; OMP/MKL threads 1")
    if args.baseline:
        sels = sorted({m.tests for m in mutants})
        base = Mutant("baseline", "", "", "", ())
        with ThreadPoolExecutor(args.jobs) as ex:
            res = list(
                ex.map(
                    lambda t: run_mutant(Mutant(base.name, "", "", "", t), files, args.timeout, False), sels
                )
            )
        bad = [(t, r) for t, r in zip(sels, res) if r[0] != "survived"]
        for t, r in bad:
            print(f"BASELINE FAILS {' '.join(t)}: {r[0]} {r[2]}")
        if bad:
            return 2
        print(f"baseline: all {len(sels)} selections pass unmutated")
    results = {}

    def one(m: Mutant):
        out = run_mutant(m, files, args.timeout)
        print(f"{out[0]:9s} {out[1]:6.1f}s  {m.name:42s} {out[2][:110]}", flush=True)
        return m, out

    with ThreadPoolExecutor(args.jobs) as ex:
        for m, out in ex.map(one, mutants):
            results[m.name] = out
    killed = [n for n, o in results.items() if o[0] in ("killed", "timeout")]
    survived = [n for n, o in results.items() if o[0] == "survived"]
    errors = [n for n, o in results.items() if o[0] == "error"]
    print(f"\nmutation score: {len(killed)}/{len(mutants)} killed ({100 * len(killed) / len(mutants):.1f} %)")
    timeouts = [n for n, o in results.items() if o[0] == "timeout"]
    if timeouts:
        print(f"killed by timeout: {', '.join(timeouts)}")
    print(f"survivors ({len(survived)}): {', '.join(survived) if survived else 'none'}")
    if errors:
        print(f"errors ({len(errors)}): {', '.join(errors)}")
    return 0 if not survived and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
