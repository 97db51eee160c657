"""Entry points of a group (``memopt.checks``, ``memopt.commands``) as installed, or as declared in the source
checkout's pyproject.toml when the installed metadata predates the group (an editable install made before the
entry points were added): registration stays in pyproject.toml either way."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def registered(group: str) -> list[EntryPoint]:
    found = list(entry_points(group=group))
    if found or not _PYPROJECT.is_file():
        return found
    declared = (
        tomllib.loads(_PYPROJECT.read_text(encoding="utf-8")).get("project", {}).get("entry-points", {})
    )
    return [EntryPoint(name, value, group) for name, value in declared.get(group, {}).items()]
