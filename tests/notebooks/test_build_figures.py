"""notebooks/build_figures.py: a fast (smoke) run never writes over the committed full-mode figures."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "notebooks" / "build_figures.py"


@pytest.fixture(scope="module")
def bf():
    spec = importlib.util.spec_from_file_location("build_figures", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fast_mode_writes_outside_docs_figures(bf):
    """Before: --fast wrote its smoke-run PNGs into docs/figures (10 of 11 committed figures modified)."""
    assert bf.out_dir(False, None) == ROOT / "docs" / "figures"
    fast = bf.out_dir(True, None)
    assert fast == ROOT / "build" / "figures-fast"
    assert ROOT / "docs" / "figures" not in (fast, *fast.parents)
    with pytest.raises(SystemExit, match=r"--fast writes smoke-run figures; --out .* holds the committed"):
        bf.out_dir(True, str(ROOT / "docs" / "figures"))
    with pytest.raises(SystemExit):  # the same directory spelt another way
        bf.out_dir(True, str(ROOT / "docs" / ".." / "docs" / "figures"))


def test_fast_run_leaves_committed_figures_untouched(tmp_path):
    """End to end with no notebook selected (--only matches none): the script reports build/figures-fast,
    and docs/figures is byte-for-byte as before."""
    figs = ROOT / "docs" / "figures"
    before = {p.name: p.read_bytes() for p in figs.glob("*.png")}
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--fast", "--only", "no-such-notebook"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg"}, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"figures in {ROOT / 'build' / 'figures-fast'}" in r.stdout
    assert {p.name: p.read_bytes() for p in figs.glob("*.png")} == before


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_notebooks_default_to_build_in_fast_mode(path):
    """A notebook run by hand with MEMOPT_FAST=1 and no MEMOPT_FIGURES_DIR (the README's Jupyter recipe)
    saves into build/figures-fast, not docs/figures."""
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith("FIG_DIR ="))
    env = {"FAST": True, "os": os, "Path": Path}
    os_environ = dict(os.environ)
    os_environ.pop("MEMOPT_FIGURES_DIR", None)
    env["os"] = type("os", (), {"environ": os_environ})
    exec(line, env)  # the one line that picks the directory
    assert env["FIG_DIR"] == Path("build/figures-fast")
    env["FAST"] = False
    exec(line, env)
    assert env["FIG_DIR"] == Path("docs/figures")
