"""Every README python block runs as written, and every package it imports is installed by an extra.

Stated substitutions (the only text changed before running a block): none, except the SLURM block, whose
``cluster.scale(jobs=4)`` would call ``sbatch``; with no SLURM here it is replaced by
``print(cluster.job_script())`` and the cluster is closed — the import, the constructor with the README's
arguments and ``scheduler_address`` run as written. Blocks run in a temporary working directory (the
make_optimizer block saves ``opt.pt`` there), in a fresh interpreter each, so a block cannot lean on names
another block defined.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
SUBSTITUTIONS = {"cluster.scale(jobs=4)": "print(cluster.job_script())"}
CLOSE = {"SLURMCluster": "\ncluster.close()\n"}

# import name -> distribution, for imports whose distribution has another name or is not a core dependency
DISTRIBUTIONS = {"dask_jobqueue": "dask-jobqueue", "distributed": "dask", "sklearn": "scikit-learn"}
OURS = {"memopt_theory", "online_convex", "spectra"}


def _imports(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) == 4  # method interface, make_optimizer, FactorRecorder, SLURM: update when adding one


def _id(code: str) -> str:
    """The block's first call or constructor worth naming (make_optimizer, FactorRecorder, ...)."""
    for word in ("SLURMCluster", "FactorRecorder", "make_optimizer", "methods.get"):
        if word in code:
            return word
    return code.split("\n")[0][:30]


@pytest.mark.slow  # a fresh interpreter importing torch per block: 14–65 s each here (2 cores, load ~17)
@pytest.mark.parametrize("code", BLOCKS, ids=_id)
def test_readme_block_runs_as_written(code, tmp_path):
    for old, new in SUBSTITUTIONS.items():
        code = code.replace(old, new)
    code += "".join(tail for key, tail in CLOSE.items() if key in code)
    if "dask_jobqueue" in code:
        pytest.importorskip("dask_jobqueue", reason="pip install 'memopt[slurm]'")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"README block failed:\n{code}\n{r.stderr[-3000:]}"


def test_every_readme_import_is_installed_by_a_dependency_or_extra():
    """Before: the SLURM block imported dask_jobqueue, which no extra installed."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*meta["dependencies"], *(r for rs in meta["optional-dependencies"].values() for r in rs)]
    dists = {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower() for r in reqs}
    for code in BLOCKS:
        for name in _imports(code) - OURS - set(sys.stdlib_module_names):
            dist = DISTRIBUTIONS.get(name, name).lower()
            assert dist in dists, f"README imports {name}, but no dependency or extra installs {dist}"
    assert "pip install 'memopt[slurm]'" in README  # the README names the extra where it uses it
    assert "dask-jobqueue" in " ".join(meta["optional-dependencies"]["slurm"])
