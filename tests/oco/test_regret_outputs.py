"""``memopt regret``'s output directory: a run never mixes its files with an earlier run's, never computes
before knowing it can save, and says when a sketch is larger than what it sketches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from memopt_theory import methods, storage
from memopt_theory.cli import main
from online_convex import simulate
from online_convex.streams import stream_names

SMALL = ["--d", "6", "--T", "30", "--seeds", "2", "--checkpoints", "5", "--no-plot"]


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if not p.name.startswith(".")}


def test_non_empty_out_is_refused_and_overwrite_replaces_exactly_the_earlier_runs_files(tmp_path, capsys):
    """Before: a second run into the same --out overwrote some files and left the first run's others beside
    a new summary (T=800 files beside a T=300 summary). Now: refused without --overwrite; with it, the
    first run's files (listed in its summary) are removed, a file of the user's is kept, and the new summary
    lists exactly the files of the new run, each of which holds the new T."""
    out = tmp_path / "r"
    assert (
        main(["regret", *SMALL, "--methods", "adagrad_diag,s_adagrad", "--ranks", "2,3", "--out", str(out)])
        == 0
    )
    first = _files(out)
    assert first == {"summary.json"} | {
        f"{s}.{e}" for s in ("adagrad_diag", "s_adagrad_ell2", "s_adagrad_ell3") for e in ("npz", "json")
    }
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    argv = ["regret", *SMALL[:2], "--T", "20", *SMALL[4:], "--methods", "ogd", "--out", str(out)]
    assert main(argv) == 2
    assert f"--out '{out}' is not empty (holds adagrad_diag.json" in capsys.readouterr().err
    assert _files(out) == first | {"notes.txt"}  # nothing touched
    assert main([*argv, "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and sorted(summary["files"]) == ["ogd.json", "ogd.npz"]
    assert _files(out) == {"ogd.json", "ogd.npz", "summary.json", "notes.txt"}
    arrays, meta = storage.read_result(out / "ogd")
    assert meta["T"] == 20 and int(arrays["checkpoints"][-1]) == 20


def test_overwrite_refuses_a_directory_without_a_regret_summary(tmp_path, capsys):
    (tmp_path / "data.csv").write_text("1,2\n")
    assert main(["regret", *SMALL, "--methods", "ogd", "--out", str(tmp_path), "--overwrite"]) == 2
    assert "holds data.csv but no summary.json of a memopt regret run" in capsys.readouterr().err
    assert _files(tmp_path) == {"data.csv"}


def test_a_killed_run_is_listed_so_overwrite_clears_it(tmp_path, monkeypatch):
    """The summary is written (status 'running', the planned files) before the first learner runs."""
    calls = []
    real = simulate.run

    def dies_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(simulate, "run", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        main(["regret", *SMALL, "--methods", "ogd,adagrad_diag", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "running"
    assert sorted(summary["files"]) == ["adagrad_diag.json", "adagrad_diag.npz", "ogd.json", "ogd.npz"]
    monkeypatch.setattr(simulate, "run", real)
    assert main(["regret", *SMALL, "--methods", "adagrad_full", "--out", str(tmp_path), "--overwrite"]) == 0
    assert _files(tmp_path) == {"adagrad_full.json", "adagrad_full.npz", "summary.json"}


@pytest.mark.parametrize("command", ["regret", "spectra", "sweep"])
@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_unwritable_out_is_refused_before_any_computation(tmp_path, capsys, monkeypatch, command, where):
    """--out that is a file, lies under a file, or under /proc: exit 2 naming --out, and nothing was computed
    (before: regret failed only after its first learner had run)."""
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "sub", "proc": Path("/proc/memopt_out")}[
        where
    ]
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    import online_convex.streams
    import spectra.cli

    def no(*a, **k):
        raise AssertionError("computation started before --out was checked")

    monkeypatch.setattr(online_convex.streams, "make_stream", no)
    monkeypatch.setattr(spectra.cli, "make_run", no)
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[sweep]\nT = 5\n[[streams]]\nname = "power_law"\nshape = [3]\n[[methods]]\nname = "adam"\neta = 0.1\n'
    )
    argv = {
        "regret": ["regret", *SMALL],
        "spectra": ["spectra", "--steps", "2", "--snapshot-every", "1"],
        "sweep": ["sweep", str(spec), "--no-progress"],
    }[command]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"memopt {command}: error: --out '{out}' is ")
    assert ("is a file" in err) if where == "file" else ("is not a writable directory" in err)


def test_a_sketch_larger_than_full_matrix_adagrad_is_warned(tmp_path, capsys):
    """S-AdaGrad with ℓ = 100 on d = 6 keeps more floats than full-matrix AdaGrad's d² + …: say so (with both
    counts from the closed forms); ℓ = 2 is silent."""
    assert main(["regret", *SMALL, "--methods", "s_adagrad", "--ranks", "2,100", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    sa, full = methods.get("s_adagrad"), methods.get("adagrad_full")
    big, ref = sa.memory((6,), sa.Config(ell=100)), full.memory((6,), full.Config())
    assert big > ref
    assert (
        f"warning: s_adagrad with ℓ = 100 on shape (6,) stores {big:,} floats, more than full-matrix AdaGrad's {ref:,}"
        in err
    )
    assert "ℓ = 2 " not in err and err.count("warning") == 1


def test_help_lists_the_stream_names(capsys):
    with pytest.raises(SystemExit):
        main(["regret", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in stream_names():
        assert name in out, name
    assert "--overwrite" in out and "(default 4,16)" in out
    assert np.all([n in out for n in ("l2_ball", "box", "simplex", "nuclear_ball", "unconstrained")])


def test_without_out_each_run_gets_its_own_directory(tmp_path, monkeypatch, capsys):
    """The README's default example (``memopt regret``) rerun in the same checkout never meets its earlier
    output: each run writes a new results/regret/YYYYMMDD-HHMMSS[-N], named in the summary and the last line."""
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["regret", *SMALL, "--methods", "ogd"]) == 0
    runs = sorted((tmp_path / "results" / "regret").iterdir())
    assert len(runs) == 2 and all(re.fullmatch(r"\d{8}-\d{6}(-\d+)?", p.name) for p in runs)
    out = capsys.readouterr().out
    for run in runs:
        assert _files(run) == {"ogd.json", "ogd.npz", "summary.json"}
        assert json.loads((run / "summary.json").read_text())["args"]["out"] == str(run.relative_to(tmp_path))
        assert f"results: {run.relative_to(tmp_path)}/" in out
