"""Every method module documents itself in the same fixed sections (memopt_theory/methods/_template.py), and the
sections say what the registry says: the Guarantee section names the kind each registered method carries."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import memopt_theory.methods as pkg
from memopt_theory import methods

SECTIONS = ("Update", "Memory", "Guarantee", "References", "Example")
MODULES = sorted(
    i.name for i in pkgutil.iter_modules(pkg.__path__) if not i.name.startswith("_") or i.name == "_template"
)


def _sections(doc: str) -> list[str]:
    return re.findall(r"^(\w+)\n-{3,}$", doc, re.M)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_has_the_fixed_sections_in_order(name):
    doc = importlib.import_module(f"memopt_theory.methods.{name}").__doc__ or ""
    found = [s for s in _sections(doc) if s in SECTIONS]
    assert found == list(SECTIONS), f"{name}: sections {found}, expected {list(SECTIONS)}"
    assert ">>> " in doc.split("\nExample\n")[1], f"{name}: the Example section has no runnable example"


@pytest.mark.parametrize("name", methods.names())
def test_guarantee_section_matches_the_registry(name):
    m = methods.get(name)
    doc = importlib.import_module(m.update.__module__).__doc__ or ""
    section = doc.split("\nGuarantee\n---------\n")[1].split("\nReferences\n")[0]
    if m.guarantee is None or m.guarantee.bound is None:
        assert re.search(r"\bnone\b", section), (
            f"{name}: no bound registered, but the section does not say none"
        )
    else:
        assert m.guarantee.kind in section and "GUARANTEE" in section, f"{name}: {section!r}"
