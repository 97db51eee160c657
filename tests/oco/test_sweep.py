"""Sweeps through the real simulator: any executor gives the same numbers; kill and resume; the tidy table.

Reference numbers come from calling ``online_convex.simulate.run`` in this process, one spec at a time
(:func:`direct`), independently of the sweep machinery; every executor must reproduce them bit for bit
(``np.array_equal``, not allclose: the same float64 operations in the same order on one thread each).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import online_convex.sweep
from memopt_theory.cli import main as memopt_main
from online_convex import domains, learners, problems, simulate, streams
from online_convex.plots_sweep import best_points, regret_vs_memory
from online_convex.results import MANIFEST, ResultStore, load, write_table
from online_convex.sweep import RunSpec, local_executor, run_one, sweep
from online_convex.sweep_file import load_sweep_file

ROOT = Path(__file__).resolve().parents[2]
COMMON = dict(T=40, seeds=2, entropy=11, checkpoints=5, domain="l2_ball", domain_params={"radius": 2.0})
SPECS = [
    RunSpec(method="s_adagrad", config={"ell": 2}, stream="power_law", shape=(5,), eta=0.5, **COMMON),
    RunSpec(method="adagrad_full", stream="power_law", shape=(5,), eta="theory", **COMMON),
    RunSpec(method="s_adagrad", config={"ell": 3}, stream="wine", eta="theory", **COMMON),
    RunSpec(method="ogd", stream="wine", eta=0.1, **COMMON),
]


def direct(spec: RunSpec) -> dict[str, np.ndarray]:
    """The spec run by hand through streams → problem → domain → Learner → simulate.run (no sweep code)."""
    params = dict(spec.stream_params) | ({"problem": spec.problem} if spec.problem else {})
    data, name = streams.make_stream(
        spec.stream, shape=spec.shape, T=spec.T, seeds=spec.seeds, entropy=spec.entropy, **params
    )
    domain = domains.make_domain(spec.domain, tuple(data.a.shape[2:]), **dict(spec.domain_params))
    learner = learners.Learner(method=spec.method, config=spec.method_config(), eta=spec.eta, domain=domain)
    trace = simulate.run(
        learner,
        problems.get_problem(name),
        data,
        checkpoints=simulate.geometric_checkpoints(spec.T, spec.checkpoints),
    )
    return trace.to_arrays()


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, np.ndarray]]:
    return {s.key: direct(s) for s in SPECS}


def assert_store_equals(root: Path, reference) -> None:
    store = ResultStore(root)
    assert sorted(store.keys()) == sorted(reference)
    for key, want in reference.items():
        spec, arrays, _ = store.read(key)
        assert spec.key == key and sorted(arrays) == sorted(want)
        for name in want:
            assert np.array_equal(arrays[name], want[name]), (key, name)  # bitwise


def test_run_one_is_the_simulator(reference):
    for s in SPECS[:2]:
        got = run_one(s).to_arrays()
        assert all(np.array_equal(got[k], reference[s.key][k]) for k in reference[s.key])


@pytest.mark.slow  # > 10 s on a loaded machine: process start-ups import torch
@pytest.mark.timeout(240)
def test_same_numbers_on_local_pools_of_1_and_2_workers_and_in_a_thread(tmp_path, reference):
    for name, ex in [
        ("thread", ThreadPoolExecutor(1)),
        ("pool1", local_executor(1)),
        ("pool2", local_executor(2)),
    ]:
        with ex:
            if name != "thread":  # one torch / OpenMP thread per worker, whatever this process uses
                assert ex.submit(torch.get_num_threads).result() == 1
                assert ex.submit(os.getenv, "OMP_NUM_THREADS").result() == "1"
            report = sweep(SPECS, ex, results_dir=tmp_path / name, progress=False)
        assert report.ran == len(SPECS) and report.skipped == 0
        assert_store_equals(tmp_path / name, reference)
    again = sweep(SPECS + SPECS[:1], ThreadPoolExecutor(1), results_dir=tmp_path / "pool2", progress=False)
    assert (again.ran, again.skipped) == (
        0,
        len(SPECS),
    )  # restart: everything already stored, duplicates once


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    # a real scheduler and two single-threaded worker processes, started here: nothing mocked
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow  # > 10 s on a loaded machine: process start-ups import torch
@pytest.mark.timeout(240)
def test_dask_local_cluster_gives_the_same_numbers(tmp_path, reference, dask_client):
    report = sweep(SPECS, dask_client.get_executor(), results_dir=tmp_path / "dask", progress=False)
    assert report.ran == len(SPECS)
    assert_store_equals(tmp_path / "dask", reference)
    # the Client itself is accepted too, through its standard executor front
    assert sweep(SPECS, dask_client, results_dir=tmp_path / "dask", progress=False).skipped == len(SPECS)


def test_cli_runs_a_file_on_a_dask_scheduler_address(tmp_path, dask_client):
    """`memopt sweep --executor dask --scheduler ADDRESS` against the test's cluster: same store as a thread."""
    path = _write(tmp_path, SWEEP_FILE.format(T=12))
    out = tmp_path / "o"
    code = memopt_main(
        [
            "sweep",
            str(path),
            "--executor",
            "dask",
            "--scheduler",
            dask_client.scheduler.address,
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    with ThreadPoolExecutor(1) as ex:
        sweep(load_sweep_file(path), ex, results_dir=tmp_path / "thread", progress=False)
    assert load(out / "results").equals(load(tmp_path / "thread"))


SWEEP_FILE = """\
[sweep]
T = {T}
seeds = 2
entropy = 3
checkpoints = 6
domain = "l2_ball"
domain_params = {{ radius = 3.0 }}

[[streams]]
name = "low_rank_noise"
shape = [8]
params = {{ rank = 2 }}

[[streams]]
name = "power_law"
shape = [6]

[[methods]]
name = "s_adagrad"
grid = {{ ell = [2, 3, 5] }}
eta = [0.2, 2.0]

[[methods]]
name = "adagrad_full"
eta = [0.2, 2.0]
"""


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.Popen(
        [sys.executable, "-m", "memopt_theory", "sweep", *args, "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _done(results: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_mtime_ns for p in results.glob("*.json") if p.name != MANIFEST}


@pytest.mark.slow  # > 10 s on a loaded machine: process start-ups import torch
@pytest.mark.timeout(300)
def test_killed_sweep_resumes_to_the_same_results(tmp_path):
    """SIGKILL `python -m memopt_theory sweep` (and its pool) once some runs are stored; rerun; compare."""
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(SWEEP_FILE.format(T=200))  # 16 runs of ~0.1–0.5 s: time to kill between results
    specs = load_sweep_file(spec_file)
    out, results = tmp_path / "out", tmp_path / "out" / "results"
    proc = _cli(str(spec_file), "--workers", "1", "--out", str(out))
    deadline = time.monotonic() + 200
    while len(_done(results)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool worker: the whole session it leads
    proc.wait()
    before = _done(results)
    assert 2 <= len(before) < len(specs), (
        f"kill came too late or too early: {len(before)} of {len(specs)} stored"
    )
    assert not (out / "table.parquet").exists()

    proc = _cli(str(spec_file), "--workers", "1", "--out", str(out))
    log = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, log
    assert f"{len(specs) - len(before)} run now, {len(before)} already stored" in log
    after = _done(results)
    assert {k: after[k] for k in before} == before  # finished runs were skipped, not rewritten
    assert sorted(after) == sorted(s.key for s in specs)
    with ThreadPoolExecutor(1) as ex:  # the same sweep, never interrupted
        sweep(specs, ex, results_dir=tmp_path / "clean", progress=False)
    resumed, clean = load(results), load(tmp_path / "clean")
    assert resumed.equals(clean)
    table = pd.read_parquet(out / "table.parquet")  # pyarrow: a [test] requirement
    assert table.equals(resumed) and (out / "regret_vs_memory.png").stat().st_size > 0


def test_tidy_table_has_one_row_per_run_seed_checkpoint(tmp_path, reference):
    with ThreadPoolExecutor(1) as ex:
        sweep(SPECS, ex, results_dir=tmp_path / "r", progress=False)
    df = load(tmp_path / "r")
    n_ck = {s.key: len(reference[s.key]["checkpoints"]) for s in SPECS}
    assert len(df) == sum(s.seeds * n_ck[s.key] for s in SPECS)
    assert not df.duplicated(["key", "seed", "t"]).any()
    for s in SPECS:  # every cell back at its (t, seed) in the trace's (n_ckpt, n_seeds) arrays
        ref = reference[s.key]
        for i, t in enumerate(ref["checkpoints"]):
            for seed in range(s.seeds):
                row = df[(df.key == s.key) & (df.t == t) & (df.seed == seed)]
                assert len(row) == 1 and row.method.item() == s.method and row.stream.item() == s.stream
                for name in ("cum_loss", "regret_upper", "regret_lower", "linear_regret_upper"):
                    assert row[name].item() == ref[name][i, seed]
                assert row["eta"].item() == ref["eta"][seed]
    path = write_table(df, tmp_path / "table")
    back = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    assert back.equals(df) if path.suffix == ".parquet" else len(back) == len(df)
    dotted = write_table(df, tmp_path / "sweep.v2")  # the suffix is appended, the stem's dot kept
    assert dotted.name in ("sweep.v2.parquet", "sweep.v2.csv") and path.exists()


def test_best_points_and_plot_have_one_point_per_method_and_rank(tmp_path):
    specs = load_sweep_file(_write(tmp_path, SWEEP_FILE.format(T=30)))
    with ThreadPoolExecutor(1) as ex:
        sweep(specs, ex, results_dir=tmp_path / "r", progress=False)
    df = load(tmp_path / "r")
    pts = best_points(df)
    # brute force: per stream and label, the η minimising the median over seeds of regret_upper at t = T
    for (stream, label), g in df[df.t == df.T].groupby(["stream", "label"]):
        med = {eta: float(np.median(h.regret_upper)) for eta, h in g.groupby("eta_spec")}
        row = pts[(pts.stream == stream) & (pts.label == label)]
        assert len(row) == 1 and row.regret_upper.item() == min(med.values())
        assert row.eta_spec.item() == min(med, key=med.get)
    assert len(pts) == 2 * 4  # 2 streams × (s_adagrad ℓ ∈ {2, 3, 5} + adagrad_full)
    axes = regret_vs_memory(df)
    for ax in axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) == 4
        assert sorted(a.get_text() for a in ax.texts) == [
            "",
            "ell=2",
            "ell=3",
            "ell=5",
        ]  # the rank, and AdaGrad


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


# --- bad input -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


@pytest.mark.timeout(60)
def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    path = _write(tmp_path, SWEEP_FILE.format(T=10))
    addr = f"tcp://127.0.0.1:{_free_port()}"
    code = memopt_main(
        [
            "sweep",
            str(path),
            "--executor",
            "dask",
            "--scheduler",
            addr,
            "--timeout",
            "2",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert f"--scheduler '{addr}': no Dask scheduler reachable within 2 s" in capsys.readouterr().err


def test_cli_reports_file_errors_with_position(tmp_path, capsys):
    path = _write(
        tmp_path, SWEEP_FILE.format(T=10).replace("eta = [0.2, 2.0]\n\n", "etas = [0.2, 2.0]\n\n", 1)
    )
    assert memopt_main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    line = 1 + SWEEP_FILE.splitlines().index("eta = [0.2, 2.0]")
    assert f"{path}:{line}: [[methods]] #1: unknown key 'etas'" in capsys.readouterr().err


@pytest.fixture
def stored(tmp_path) -> Path:
    with ThreadPoolExecutor(1) as ex:
        sweep(SPECS[:2], ex, results_dir=tmp_path / "r", progress=False)
    return tmp_path / "r"


def test_foreign_file_in_results_is_named(stored):
    (stored / "notes.txt").write_text("mine")
    for call in (lambda: load(stored), lambda: sweep(SPECS[:2], ThreadPoolExecutor(1), results_dir=stored)):
        with pytest.raises(ValueError, match=r"notes.txt: not a file of this sweep results directory"):
            call()


def test_directory_without_manifest_is_refused(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"holds \['data.csv'\] but no manifest.json: not a sweep results"):
        sweep(SPECS[:1], ThreadPoolExecutor(1), results_dir=tmp_path)


def test_other_spec_version_is_refused(stored):
    (stored / MANIFEST).write_text(json.dumps({"format": "memopt.sweep-results", "spec_version": 0}))
    with pytest.raises(
        ValueError, match=r"manifest.json: results written with spec version 0; this memopt reads"
    ):
        sweep(SPECS[:2], ThreadPoolExecutor(1), results_dir=stored)


def test_result_file_of_another_spec_version_is_named(stored):
    """A result copied in from a store of another spec version: the manifest is current, the file is not."""
    js = stored / f"{SPECS[0].key}.json"
    meta = json.loads(js.read_text())
    meta["spec_version"] = 0
    js.write_text(json.dumps(meta))
    for call in (lambda: load(stored), lambda: sweep(SPECS[:2], ThreadPoolExecutor(1), results_dir=stored)):
        with pytest.raises(ValueError, match=rf"{js.name}: written with spec version 0; this memopt reads"):
            call()


def test_corrupt_result_is_named_not_skipped(stored):
    npz = stored / f"{SPECS[0].key}.npz"
    npz.write_bytes(npz.read_bytes()[:50])  # torn by hand: atomic writes never leave this
    for call in (lambda: load(stored), lambda: sweep(SPECS[:2], ThreadPoolExecutor(1), results_dir=stored)):
        with pytest.raises(ValueError, match=rf"{npz.name}: its content does not match the sha256"):
            call()


def test_altered_result_json_is_named(stored):
    js = stored / f"{SPECS[0].key}.json"
    meta = json.loads(js.read_text())
    meta["spec"]["T"] += 1  # the file no longer holds the spec its name promises
    js.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"{js.name}: its spec hashes to .*, not to its file name"):
        load(stored)


def test_npz_without_json_is_an_unfinished_run_and_is_rerun(stored, reference):
    (stored / f"{SPECS[1].key}.json").unlink()  # killed between the two writes
    report = sweep(SPECS[:2], ThreadPoolExecutor(1), results_dir=stored, progress=False)
    assert (report.ran, report.skipped) == (1, 1)
    assert_store_equals(stored, {k: reference[k] for k in (SPECS[0].key, SPECS[1].key)})


def test_failing_run_names_the_spec_and_keeps_finished_ones(tmp_path, monkeypatch):
    bad = RunSpec(method="ogd", stream="power_law", shape=(3,), T=5, eta=0.1, domain="unconstrained")

    def run_one(spec):  # a run that fails in its worker (a bad spec is now refused before: RunSpec checks)
        if spec.key == bad.key:
            raise FloatingPointError("diverged")
        return real_run_one(spec)

    real_run_one = online_convex.sweep.run_one
    monkeypatch.setattr(online_convex.sweep, "run_one", run_one)  # a ThreadPoolExecutor sees the patch
    with pytest.raises(
        RuntimeError, match=rf"run {bad.key} \({re.escape(bad.label)} on power_law\) failed: .*diverged"
    ):
        sweep([SPECS[0], bad], ThreadPoolExecutor(1), results_dir=tmp_path, progress=False)
    assert ResultStore(tmp_path).keys() == [SPECS[0].key]


def test_example_sweep_file_is_sadagrad_ranks_and_steps_vs_full_adagrad():
    specs = load_sweep_file(ROOT / "examples" / "sadagrad_sweep.toml")
    from online_convex.streams_real import REAL

    used = {s.stream for s in specs}
    assert len(used & set(REAL)) == 2 and len(used - set(REAL)) == 2
    sk = [s for s in specs if s.method == "s_adagrad"]
    assert len({dict(s.config)["ell"] for s in sk}) >= 2 and len({s.eta for s in sk}) >= 2
    assert any(s.method == "adagrad_full" for s in specs)
