"""Sweep faults: result files tied to their JSON by a hash, a lost manifest rebuilt, parse-time refusals,
and a ``kill -9`` of ``memopt sweep`` that leaves no process behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import psutil
import pytest

from memopt_theory.errors import MemoptError
from online_convex.results import MANIFEST, ResultStore, load
from online_convex.sweep import RunSpec, sweep
from online_convex.sweep_file import parse_sweep

ROOT = Path(__file__).resolve().parents[2]
COMMON = dict(
    stream="power_law",
    shape=(4,),
    T=30,
    seeds=2,
    checkpoints=4,
    domain="l2_ball",
    domain_params={"radius": 1.0},
)
SPECS = [RunSpec(method="adagrad_diag", eta=eta, **COMMON) for eta in (0.1, 0.5)]


@pytest.fixture
def stored(tmp_path) -> Path:
    with ThreadPoolExecutor(1) as ex:
        sweep(SPECS, ex, results_dir=tmp_path / "r", progress=False)
    return tmp_path / "r"


def test_another_runs_npz_copied_over_a_result_is_refused(stored):
    """Both npz files hold the same array names and shapes, so before the hash the table silently took the
    other run's numbers under this run's spec (the issue: 40 table rows wrong)."""
    a, b = (stored / f"{s.key}.npz" for s in SPECS)
    shutil.copyfile(b, a)
    for call in (lambda: load(stored), lambda: sweep(SPECS, ThreadPoolExecutor(1), results_dir=stored)):
        with pytest.raises(MemoptError, match=rf"{a.name}: its content does not match the sha256"):
            call()


def test_lost_manifest_is_rebuilt_losing_nothing(stored):
    """Before: 'holds [...] but no manifest.json: use a new directory'. Every result JSON names its spec and
    spec version, so the manifest is rebuilt (with a warning) and the table is the same, row for row."""
    before = load(stored)
    (stored / MANIFEST).unlink()
    with pytest.warns(UserWarning, match="manifest.json was missing; rebuilt it from the 2 result JSONs"):
        store = ResultStore(stored)
    assert (stored / MANIFEST).is_file() and store.keys() == sorted(s.key for s in SPECS)
    pd.testing.assert_frame_equal(load(stored), before)
    report = sweep(SPECS, ThreadPoolExecutor(1), results_dir=stored, progress=False)
    assert (report.ran, report.skipped) == (0, 2)  # nothing recomputed


def test_lost_manifest_with_a_foreign_file_is_still_refused(stored):
    (stored / MANIFEST).unlink()
    (stored / "notes.txt").write_text("mine")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MemoptError, match=r"but no manifest.json: not a sweep results directory"):
            ResultStore(stored)
    assert not (stored / MANIFEST).exists()


BASE = '[sweep]\nT = 10\ndomain = "l2_ball"\ndomain_params = { radius = 1.0 }\n\n[[streams]]\nname = "power_law"\nshape = [4]\n\n'


def test_empty_eta_list_is_refused_at_its_line():
    """Before: ``eta = []`` made no runs and the table step failed with KeyError: 'key'."""
    text = BASE + '[[methods]]\nname = "ogd"\neta = []\n'
    with pytest.raises(
        MemoptError,
        match=r"^s.toml:12: \[\[methods\]\] #1: eta must be a number, \"theory\" or a non-empty list",
    ):
        parse_sweep(text, "s.toml")
    with pytest.raises(MemoptError, match=r"^s.toml:2: \[sweep\]: eta must be"):
        parse_sweep(
            "[sweep]\neta = []\n" + BASE[len("[sweep]\n") :] + '[[methods]]\nname = "ogd"\n', "s.toml"
        )


def test_method_domain_mismatch_is_refused_at_parse_time():
    """galore has its own step rule and runs unconstrained only: before, found inside a worker mid-sweep."""
    text = BASE + '[[methods]]\nname = "galore"\n'
    with pytest.raises(
        MemoptError,
        match=r"^s.toml:3: \[sweep\]: .*galore .* runs unconstrained only; got the bounded domain 'l2_ball'",
    ):
        parse_sweep(text, "s.toml")
    text = (
        BASE.replace('domain = "l2_ball"\ndomain_params = { radius = 1.0 }\n', "")
        + '[[methods]]\nname = "ogd"\n'
    )
    with pytest.raises(MemoptError, match=r"eta='theory' needs a bounded domain"):
        parse_sweep(text, "s.toml")


def _descendants_after_start(proc: subprocess.Popen, n: int, timeout: float) -> list[psutil.Process]:
    parent, t0 = psutil.Process(proc.pid), time.monotonic()
    while time.monotonic() - t0 < timeout:
        kids = parent.children(recursive=True)
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"the sweep started {len(parent.children(recursive=True))} processes, expected {n}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_a_sweep_leaves_no_process_behind(tmp_path):
    """Before: the fork server, both workers and the resource tracker stayed alive forever, blocked on a pipe.
    The sweep is long enough (adagrad_full, d = 64, T = 4000 four times) to be killed mid-run."""
    spec = tmp_path / "long.toml"
    spec.write_text(
        '[sweep]\nT = 4000\nseeds = 4\ndomain = "l2_ball"\ndomain_params = { radius = 1.0 }\n\n'
        '[[streams]]\nname = "power_law"\nshape = [64]\n\n[[methods]]\nname = "adagrad_full"\n'
        "eta = [0.1, 0.2, 0.3, 0.4]\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "memopt_theory.cli", "sweep", str(spec), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(
        [*argv, "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kids = _descendants_after_start(proc, 4, timeout=60)  # resource tracker, fork server, 2 workers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10  # the kernel's SIGKILL is immediate; allow a loaded box to reap them
    alive = kids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [k for k in alive if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    for k in alive:
        k.kill()  # do not leave them to the next test
    assert not alive, [" ".join(k.cmdline())[-80:] for k in alive]
