"""The public API: every name each package (and each public module) exports in ``__all__`` resolves, the
README's imports come from the package roots, and the registries share one idiom, get(name) / names()."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import memopt_theory
import online_convex
import spectra
from memopt_theory import methods, verify
from online_convex import domains, problems, streams

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (memopt_theory, online_convex, spectra)


def _public_modules():
    for pkg in PACKAGES:
        yield pkg.__name__
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                yield info.name


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_every_name_in_all_resolves(name):
    mod = importlib.import_module(name)
    exported = getattr(mod, "__all__", None)
    if mod.__name__ in {p.__name__ for p in PACKAGES}:
        assert exported and len(exported) >= 8, f"{name} exports too little: {exported}"
    for attr in exported or ():
        assert hasattr(mod, attr), f"{name}.__all__ names {attr!r}, which it does not define"
    assert len(set(exported or ())) == len(exported or ()), f"{name}.__all__ repeats a name"


def test_package_roots_export_the_user_facing_names():
    assert {"methods", "make_optimizer", "bounds", "Check", "Guarantee", "testing"} <= set(
        memopt_theory.__all__
    )
    assert {"Learner", "run", "make_domain", "make_stream", "best_fixed_point"} <= set(online_convex.__all__)
    assert {"FactorRecorder", "metrics", "null_factors"} <= set(spectra.__all__)
    # the root re-exports are the objects themselves, not copies
    from memopt_theory.optim import make_optimizer
    from online_convex.simulate import run
    from spectra.recorder import FactorRecorder

    assert memopt_theory.make_optimizer is make_optimizer
    assert online_convex.run is run and spectra.FactorRecorder is FactorRecorder


def test_readme_imports_from_package_roots():
    """README code imports user-facing names from the package roots, never by a module path."""
    text = (ROOT / "README.md").read_text()
    deep = re.findall(r"^\s*from ((?:memopt_theory|online_convex|spectra)\.[\w.]+) import", text, re.M)
    assert deep == [], f"README imports by module path: {deep}"


# -------------------------------------------------------------------------------------------- registries
REGISTRIES = {
    "methods": (methods.get, methods.names, lambda n, obj: obj.name == n),
    "problems": (problems.get, problems.names, lambda n, obj: obj.name == n),
    "domains": (domains.get, domains.names, lambda n, obj: obj((3,), **_DOMAIN_PARAMS[n]).name == n),
    "streams": (
        streams.get,
        streams.names,
        lambda n, obj: obj.func is streams.make_stream and obj.args == (n,),
    ),
    "checks": (verify.get, verify.names, lambda n, obj: obj.name == n),
}
_DOMAIN_PARAMS = {
    "unconstrained": {},
    "l2_ball": {"radius": 1.0},
    "box": {"lo": -1.0, "hi": 1.0},
    "simplex": {},
    "nuclear_ball": {"radius": 1.0},
}


@pytest.mark.parametrize("registry", sorted(REGISTRIES))
def test_registry_idiom(registry):
    """names() lists unique names; get(name) returns the object registered under that very name; an unknown
    name raises a ValueError that names it."""
    get, names, is_named = REGISTRIES[registry]
    listed = names()
    assert listed and len(set(listed)) == len(listed)
    for n in listed:
        if registry == "domains" and n == "nuclear_ball":
            assert domains.get(n)((3, 2), radius=1.0).name == n  # matrices only
            continue
        assert is_named(n, get(n)), (registry, n)
    with pytest.raises(ValueError, match="no_such_thing"):
        get("no_such_thing")


def test_old_registry_functions_are_aliases():
    assert problems.names() == list(problems.PROBLEM_NAMES)
    assert domains.names() == list(domains.DOMAIN_NAMES)
    assert streams.names() == streams.stream_names()
    assert [c.name for c in verify.all_checks()] == verify.names()


@pytest.mark.parametrize("name", verify.names())
def test_every_registered_check_holds(name):
    """Every check registered under the ``memopt.checks`` entry points (so a new check module is tested the
    moment it exists, without an import here) holds on its fast instances: measured ≤ bound."""
    r = verify.run_check(verify.get(name), fast=True)
    assert r.holds, (r.worst_measured, r.worst_bound, r.worst_ratio)


def test_registration_is_read_from_pyproject_when_the_install_predates_it(monkeypatch):
    """An editable install made before the entry points were declared has no ``memopt.*`` groups: the checks
    and subcommands are then read from the checkout's pyproject.toml — the same registrations, the same order."""
    from memopt_theory import _entry_points, cli

    installed_checks = verify.names()
    installed_commands = [e.name for e in cli.commands()]
    monkeypatch.setattr(_entry_points, "entry_points", lambda group: [])
    assert verify.names() == installed_checks
    assert (
        [e.name for e in cli.commands()]
        == installed_commands
        == ["verify", "memory", "regret", "sweep", "spectra"]
    )
