"""Every notebook runs top to bottom in fast mode through a real Jupyter kernel.

The notebooks are jupytext py:percent files; jupytext turns each into a notebook in memory and nbclient
executes it in a fresh ``python3`` kernel with ``MEMOPT_FAST=1`` and ``MPLBACKEND=Agg``. Any cell error fails.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_the_numbered_notebooks_are_there():
    assert [p.stem[:2] for p in PATHS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMOPT_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MEMOPT_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = jupytext.read(path)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    # each notebook saves its headline figure; fast mode writes it to the temporary figures dir
    assert list((tmp_path / "figures").glob(f"{path.stem}*.png")), "the notebook saved no headline figure"
