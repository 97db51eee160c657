"""spectra.store: round trips, run identity, resume, a SIGKILLed writer, the long-format table."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memopt_theory.errors import MemoptError
from spectra import metrics
from spectra.store import FORMAT, TABLE_COLUMNS, Decomposition, SnapshotStore

ROOT = Path(__file__).resolve().parents[2]


def _dec(step: int, d: int = 30, k: int = 5) -> Decomposition:
    """A deterministic decomposition per step: power-law spectrum scaled by step + 1, a permuted basis."""
    lam = (step + 1) * np.arange(1, d + 1, dtype=np.float64) ** -1.5
    V = np.eye(d)[:, np.random.default_rng(step).permutation(d)[:k]]
    return Decomposition(lam, V, True, float(lam.sum()), d)


def _same(a: Decomposition, b: Decomposition) -> bool:
    return (
        np.array_equal(a.eigvals, b.eigvals)
        and np.array_equal(a.eigvecs, b.eigvecs)
        and (a.exact, a.trace, a.dim) == (b.exact, b.trace, b.dim)
    )


def test_write_load_round_trip(tmp_path):
    store = SnapshotStore(tmp_path / "r", {"model": "mlp", "seed": 0})
    names = ["fc1:shampoo_L", "fc1:kfac_A", "blocks.0.attn/q:kfac_G"]  # '/' and '.' must survive as names
    for step in (0, 10):
        for n in names:
            store.write(step, n, _dec(step), extra={"overlap_prev": 0.5})
    assert store.steps() == [0, 10] and store.names() == sorted(names)
    assert (
        store.steps("fc1:kfac_A") == [0, 10]
        and store.has(10, "fc1:kfac_A")
        and not store.has(5, "fc1:kfac_A")
    )
    assert _same(store.load(10, "blocks.0.attn/q:kfac_G"), _dec(10))  # bitwise: npz keeps float64 exactly
    again = SnapshotStore(tmp_path / "r", {"seed": 0, "model": "mlp"})  # same run, keys in another order
    assert again.steps() == [0, 10] and _same(again.load(0, "fc1:kfac_A"), _dec(0))
    with pytest.raises(KeyError, match=r"no snapshot \(5, 'fc1:kfac_A'\).*steps \[0, 10\]"):
        store.load(5, "fc1:kfac_A")
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["format"] == FORMAT and len(manifest["snapshots"]) == 6
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "r").rglob("*"))


def test_read_only_open_neither_writes_nor_deletes(tmp_path):
    """A reader beside a running writer must not remove the writer's temp files or rewrite the manifest."""
    store = SnapshotStore(tmp_path, {"run": "ro", "seed": 3})
    store.write(4, "a:kfac_A", _dec(4))
    tmp = tmp_path / "snapshots" / ".000000005__a.npz.abc.tmp"  # a write in flight
    tmp.write_bytes(b"half")
    before = (tmp_path / "manifest.json").stat().st_mtime_ns
    ro = SnapshotStore.open(tmp_path)
    assert (
        ro.run_meta == {"run": "ro", "seed": 3}
        and ro.steps() == [4]
        and _same(ro.load(4, "a:kfac_A"), _dec(4))
    )
    assert ro.table().equals(store.table())
    assert tmp.exists() and (tmp_path / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match=r"opened read-only"):
        ro.write(5, "a:kfac_A", _dec(5))
    with pytest.raises(FileNotFoundError, match=r"manifest.json is missing"):
        SnapshotStore.open(tmp_path / "nowhere")


def test_another_runs_directory_is_refused(tmp_path):
    SnapshotStore(tmp_path, {"model": "mlp", "seed": 0})
    with pytest.raises(
        ValueError,
        match=r"holds snapshots of another run: \{'model': 'mlp', 'seed': 0\}; this run is \{'model': 'mlp', 'seed': 1\}",
    ):
        SnapshotStore(tmp_path, {"model": "mlp", "seed": 1})
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a store")
    with pytest.raises(ValueError, match=r"is not empty and has no manifest.json"):
        SnapshotStore(other, {"model": "mlp"})


def test_resume_adopts_finished_snapshots_and_ignores_torn_files(tmp_path):
    """Crash states a writer can leave, made by hand: (a) snapshot pair complete but manifest not yet updated;
    (b) an npz without its JSON sidecar (killed before the sidecar); (c) temp files of an interrupted rename."""
    meta = {"run": "crash"}
    store = SnapshotStore(tmp_path, meta)
    store.write(0, "a:kfac_A", _dec(0))
    old_manifest = (tmp_path / "manifest.json").read_bytes()
    store.write(1, "a:kfac_A", _dec(1))
    (tmp_path / "manifest.json").write_bytes(old_manifest)  # (a): killed between sidecar and manifest
    snaps = tmp_path / "snapshots"
    (snaps / "000000002__a_kfac_A__deadbeef.npz").write_bytes(b"PK\x03\x04torn")  # (b)
    (snaps / ".000000003__x.npz.abc.tmp").write_bytes(b"half")  # (c)
    (tmp_path / ".manifest.json.xyz.tmp").write_bytes(b"{")
    resumed = SnapshotStore(tmp_path, meta)
    assert resumed.steps() == [0, 1] and _same(resumed.load(1, "a:kfac_A"), _dec(1))
    assert not list(tmp_path.rglob("*.tmp"))
    listed = json.loads((tmp_path / "manifest.json").read_text())["snapshots"]
    assert [e["step"] for e in listed] == [0, 1]


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from spectra.store import Decomposition, SnapshotStore

    store = SnapshotStore(sys.argv[1], {"run": "killed"})
    step = 0
    while True:  # until SIGKILL: big enough files that the kill often lands inside a write
        d = 400
        lam = (step + 1) * np.arange(1, d + 1, dtype=np.float64) ** -1.5
        V = np.random.default_rng(step).standard_normal((d, 64))
        for name in ("fc1:shampoo_L", "fc1:shampoo_R"):
            store.write(step, name, Decomposition(lam, V, True, float(lam.sum()), d))
        step += 1
    """
)


def test_sigkilled_writer_leaves_every_listed_snapshot_loadable(tmp_path):
    root = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = root / "manifest.json"
            if m.exists() and len(json.loads(m.read_text())["snapshots"]) >= 8:  # read during writes: atomic
                break
            assert proc.poll() is None, "the writer died on its own"
            time.sleep(0.05)
        else:
            pytest.fail("the writer did not produce 8 snapshots in 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    listed_before = json.loads((root / "manifest.json").read_text())["snapshots"]
    store = SnapshotStore(root, {"run": "killed"})
    assert len(store.steps()) >= 4 and len(store.names()) == 2
    assert {(e["step"], e["name"]) for e in listed_before} <= {
        (s, n) for n in store.names() for s in store.steps(n)
    }
    d = 400
    for name in store.names():
        for step in store.steps(name):
            dec = store.load(step, name)  # every listed snapshot loads and holds exactly what was written
            assert np.array_equal(dec.eigvals, (step + 1) * np.arange(1, d + 1, dtype=np.float64) ** -1.5)
            assert np.array_equal(dec.eigvecs, np.random.default_rng(step).standard_normal((d, 64)))
    listed = {e["stem"] for e in json.loads((root / "manifest.json").read_text())["snapshots"]}
    on_disk = {p.stem for p in (root / "snapshots").glob("*.json")}
    assert listed == on_disk  # every complete pair listed; torn ones (npz without sidecar) not
    assert not list(root.rglob("*.tmp"))


def test_table_long_format_against_metrics(tmp_path):
    store = SnapshotStore(tmp_path, {"run": "table"})
    for step in (0, 5):
        store.write(step, "net.0:shampoo_L", _dec(step), extra={"overlap_prev": 0.25})
        store.write(step, "nolayerfactor", _dec(step))
    tab = store.table()
    assert list(tab.columns) == list(TABLE_COLUMNS)
    assert tab.dtypes["step"] == np.int64 and tab.dtypes["value"] == np.float64
    assert set(tab.layer) == {"net.0", "nolayerfactor"} and set(tab.factor) == {"shampoo_L", ""}
    one = tab[(tab.step == 5) & (tab.layer == "net.0")].set_index("metric").value
    lam = _dec(5).eigvals
    # independent of metrics.summary: the definitions on the known power law, d = 30
    assert one["top_mass@0.25"] == pytest.approx(lam[: math.ceil(0.25 * 30)].sum() / lam.sum(), rel=1e-14)
    assert one["effective_rank"] == pytest.approx(metrics.effective_rank(lam), rel=1e-14)
    assert one["trace"] == pytest.approx(lam.sum(), rel=1e-15) and one["overlap_prev"] == 0.25
    assert not tab.duplicated(["step", "layer", "factor", "metric"]).any()


def test_table_file_round_trips(tmp_path):
    store = SnapshotStore(tmp_path / "s", {"run": "files"})
    for step in (0, 1, 2):
        store.write(step, "fc:kfac_G", _dec(step), extra={"stale_capture_prev": 0.9})
    tab = store.table()
    pytest.importorskip("pyarrow")
    p = store.write_table()
    assert p.name == "table.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(p), tab)
    c = store.write_table(tmp_path / "t.csv")
    back = pd.read_csv(c, keep_default_na=False).astype({"layer": str, "factor": str})
    pd.testing.assert_frame_equal(back, tab, check_exact=False, rtol=1e-15)  # CSV keeps repr(float): exact
    with pytest.raises(ValueError, match=r"path must end in .parquet or .csv; got '.*t.xlsx'"):
        store.write_table(tmp_path / "t.xlsx")


def test_store_bad_input(tmp_path):
    store = SnapshotStore(tmp_path, {"run": "bad"})
    with pytest.raises(ValueError, match=r"step must be an int >= 0; got -1"):
        store.write(-1, "a:b", _dec(0))
    with pytest.raises(ValueError, match=r"name must be a non-empty str"):
        store.write(0, "", _dec(0))
    with pytest.raises(TypeError, match=r"decomposition must be a spectra.store.Decomposition; got dict"):
        store.write(0, "a:b", {})
    with pytest.raises(ValueError, match=r"extra must map str to finite numbers; got 'x': nan"):
        store.write(0, "a:b", _dec(0), extra={"x": float("nan")})
    with pytest.raises(TypeError, match=r"run_meta must be JSON-serialisable"):
        SnapshotStore(tmp_path / "x", {"f": object()})
    with pytest.raises(TypeError, match=r"run_meta must be a dict"):
        SnapshotStore(tmp_path / "y", ["run"])
    assert store.steps() == []  # nothing half-written by the refused calls


def test_truncated_snapshot_is_noticed_on_resume_and_on_load(tmp_path):
    """Before: a truncated snapshot npz listed in the manifest was kept on resume (the run exited 0 with a
    broken store). Its sidecar's sha256 no longer matches: a reader refuses it naming the file, and a
    resuming writer drops it with a warning so that the run takes that snapshot again."""
    meta = {"run": "trunc"}
    store = SnapshotStore(tmp_path, meta)
    for step in (0, 1):
        store.write(step, "a:shampoo_L", _dec(step))
    npz = next((tmp_path / "snapshots").glob("000000001__*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(MemoptError, match=rf"{npz.name}: its content does not match the sha256"):
        SnapshotStore.open(tmp_path).load(1, "a:shampoo_L")
    with pytest.warns(UserWarning, match=r"dropping snapshot \(1, 'a:shampoo_L'\) to take it again"):
        resumed = SnapshotStore(tmp_path, meta)
    assert resumed.steps() == [0] and _same(resumed.load(0, "a:shampoo_L"), _dec(0))
    resumed.write(1, "a:shampoo_L", _dec(1))
    assert _same(SnapshotStore.open(tmp_path).load(1, "a:shampoo_L"), _dec(1))


def test_another_snapshots_npz_copied_over_is_refused(tmp_path):
    store = SnapshotStore(tmp_path, {"run": "swap"})
    store.write(0, "a:kfac_A", _dec(0))
    store.write(1, "a:kfac_A", _dec(1))
    n0, n1 = sorted((tmp_path / "snapshots").glob("*.npz"))
    n0.write_bytes(n1.read_bytes())  # same names and shapes: np.load alone would accept it
    with pytest.raises(MemoptError, match=rf"{n0.name}: its content does not match"):
        SnapshotStore.open(tmp_path).load(0, "a:kfac_A")


def test_lost_manifest_is_rebuilt_from_this_runs_sidecars(tmp_path):
    """The sidecars name their step, factor and the run's id: a writer of the same run rebuilds the manifest
    (warning), losing nothing; another run still finds the directory foreign."""
    meta = {"run": "lost"}
    store = SnapshotStore(tmp_path, meta)
    for step, name in ((0, "a:kfac_A"), (0, "b.c:shampoo_R"), (5, "a:kfac_A")):
        store.write(step, name, _dec(step))
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(MemoptError, match="is not empty and has no manifest.json"):
        SnapshotStore(tmp_path, {"run": "other"})
    with pytest.warns(UserWarning, match="manifest.json was missing; rebuilt from the snapshot sidecars"):
        rebuilt = SnapshotStore(tmp_path, meta)
    assert rebuilt.steps() == [0, 5] and rebuilt.names() == ["a:kfac_A", "b.c:shampoo_R"]
    assert _same(SnapshotStore.open(tmp_path).load(5, "a:kfac_A"), _dec(5))
