"""The type checker and the docstring examples: mypy is clean on the three packages (configuration and the
ratchet of not-yet-clean modules in pyproject.toml), and every ``>>>`` example in them runs and prints what it
shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import memopt_theory
import online_convex
import spectra
from tests.test_lint import ROOT

PACKAGES = (memopt_theory, online_convex, spectra)


def _modules_with_examples() -> list[str]:
    out = []
    for pkg in PACKAGES:
        names = [pkg.__name__] + [
            i.name
            for i in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}.")
            if not any(part.startswith("_") for part in i.name.split("."))  # __main__ would run the CLI
        ]
        for name in names:
            mod = importlib.import_module(name)
            if doctest.DocTestFinder().find(mod) and any(
                t.examples for t in doctest.DocTestFinder().find(mod)
            ):
                out.append(name)
    return out


EXAMPLES = _modules_with_examples()


def test_there_are_examples():
    # the package roots, the registry, the guarantee, the battery, the optimiser, the compressor, the streams…
    assert len(EXAMPLES) >= 10, EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.attempted > 0 and res.failed == 0, f"{name}: {res.failed} of {res.attempted} examples failed"


@pytest.mark.slow
def test_mypy_clean():
    try:
        from mypy import api
    except ImportError:
        pytest.fail("mypy is not installed; it is in the 'test' extra: pip install -e '.[test]'")
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental"])
    assert status == 0, stdout[-6000:] + stderr[-2000:]
