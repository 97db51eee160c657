r"""Sweep files (TOML) → lists of :class:`~online_convex.sweep.RunSpec`, with errors that say where.

A sweep file is the whole experiment; where it runs (local pool, Dask cluster) is the command line's
business, so the same file runs anywhere unchanged::

    [sweep]                          # defaults shared by every run
    T = 400
    seeds = 4
    entropy = 2026                   # numpy SeedSequence root: common random numbers across methods
    checkpoints = 16
    domain = "l2_ball"
    domain_params = { radius = 10.0 }

    [[streams]]                      # one table per data stream
    name = "power_law"
    shape = [16]
    params = { alpha = 1.0 }         # make_stream keyword arguments
    # problem = "logistic"           # default: the stream's own loss; domain / domain_params override [sweep]

    [[methods]]                      # one table per method
    name = "s_adagrad"
    config = { delta = 0.0 }         # fixed Config fields
    grid = { ell = [2, 4, 8] }       # Config fields crossed with each other
    eta = [0.1, 1.0, 10.0]           # a number, "theory", or a list of them

Runs: streams × methods × grid × eta, in file order. Errors (``MemoptError``, a ``ValueError``) start with ``FILE:LINE:`` — for
syntax errors tomllib's line and column, for unknown keys and invalid values the line of the key found by
searching the text within its table.
"""

from __future__ import annotations

import itertools
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from memopt_theory.errors import MemoptError
from online_convex.sweep import RunSpec

__all__ = ["load_sweep_file", "parse_sweep"]

_ALLOWED = {
    "": {"sweep", "streams", "methods"},
    "sweep": {"T", "seeds", "entropy", "checkpoints", "domain", "domain_params", "eta", "problem"},
    "streams": {"name", "shape", "params", "problem", "domain", "domain_params", "T"},
    "methods": {"name", "config", "grid", "eta"},
}


class _Locator:
    """Line numbers of tables and keys, found by searching the text (tomllib keeps no positions)."""

    def __init__(self, text: str, path: str) -> None:
        self.lines = text.splitlines()
        self.path = path

    def _headers(self, table: str) -> list[int]:
        pat = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
        return [i for i, line in enumerate(self.lines) if pat.match(line)]

    def line(self, table: str, index: int | None = None, key: str | None = None) -> int | None:
        """1-based line of ``key`` inside the ``index``-th ``[[table]]`` (or ``[table]``); of the header if no key."""
        if table == "":
            start, end = 0, len(self.lines)
        else:
            heads = self._headers(table)
            if not heads or (index or 0) >= len(heads):
                return None
            start = heads[index or 0]
            nxt = re.compile(r"^\s*\[")
            end = next(
                (i for i in range(start + 1, len(self.lines)) if nxt.match(self.lines[i])), len(self.lines)
            )
        if key is None:
            return start + 1
        if table == "":
            hit = [
                i
                for i, line in enumerate(self.lines)
                if re.match(rf"^\s*\[\[?\s*{re.escape(key)}\s*\]\]?", line)
            ]
            hit = hit or [
                i for i, line in enumerate(self.lines) if re.match(rf"^\s*{re.escape(key)}\s*=", line)
            ]
            return hit[0] + 1 if hit else None
        pat = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        for i in range(start + (table != ""), end):
            if pat.search(self.lines[i].split("#", 1)[0]):
                return i + 1
        return start + 1

    def error(self, msg: str, table: str, index: int | None = None, key: str | None = None) -> MemoptError:
        n = self.line(table, index, key)
        where = f"[[{table}]] #{index + 1}" if index is not None else (f"[{table}]" if table else "top level")
        return MemoptError(f"{self.path}:{n if n is not None else '?'}: {where}: {msg}")


def _check_keys(loc: _Locator, table: str, index: int | None, got: dict) -> None:
    for k in got:
        if k not in _ALLOWED[table]:
            raise loc.error(
                f"unknown key {k!r}; allowed: {', '.join(sorted(_ALLOWED[table]))}", table, index, k
            )


def _listify(x: Any) -> list:
    return list(x) if isinstance(x, list) else [x]


def parse_sweep(text: str, path: str = "<sweep>") -> list[RunSpec]:
    """The runs of a sweep file's text (see the module docstring for the format)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:  # its message ends "(at line L, column C)"
        raise MemoptError(f"{path}: invalid TOML: {e}") from None
    loc = _Locator(text, path)
    _check_keys(loc, "", None, doc)
    base = doc.get("sweep", {})
    if not isinstance(base, dict):
        raise loc.error("must be a table [sweep]", "", None, "sweep")
    _check_keys(loc, "sweep", None, base)
    streams, meths = doc.get("streams", []), doc.get("methods", [])
    for name, tabs in (("streams", streams), ("methods", meths)):
        if not isinstance(tabs, list) or not tabs or not all(isinstance(t, dict) for t in tabs):
            raise MemoptError(f"{path}: needs at least one [[{name}]] table")
        for i, t in enumerate(tabs):
            _check_keys(loc, name, i, t)
            if not isinstance(t.get("name"), str):
                raise loc.error(f'needs name = "..." (a string); got {t.get("name")!r}', name, i, "name")

    from memopt_theory import methods as registry

    for j, m in enumerate(meths):
        if m["name"] not in registry.names():
            raise loc.error(
                f"unknown method {m['name']!r}; registered: {', '.join(registry.names())}",
                "methods",
                j,
                "name",
            )
        for key in ("config", "grid"):
            if not isinstance(m.get(key, {}), dict):
                raise loc.error(f"{key} must be an inline table {{ field = value, … }}", "methods", j, key)
        for field, values in m.get("grid", {}).items():
            if not isinstance(values, list) or not values:
                raise loc.error(f"grid.{field} must be a non-empty list; got {values!r}", "methods", j, field)
        if m.get("eta") == []:
            raise loc.error(
                'eta must be a number, "theory" or a non-empty list of them; got []', "methods", j, "eta"
            )
    if base.get("eta") == []:
        raise loc.error(
            'eta must be a number, "theory" or a non-empty list of them; got []', "sweep", None, "eta"
        )

    specs = []
    for i, s in enumerate(streams):
        for j, m in enumerate(meths):
            grid = m.get("grid", {})
            etas = _listify(m.get("eta", base.get("eta", "theory")))
            for combo in itertools.product(*grid.values()):
                config = {**m.get("config", {}), **dict(zip(grid, combo))}
                for eta in etas:
                    try:
                        spec = RunSpec(
                            method=m["name"],
                            config=config,
                            stream=s["name"],
                            stream_params=s.get("params", {}),
                            shape=tuple(s["shape"]) if isinstance(s.get("shape"), list) else s.get("shape"),
                            problem=s.get("problem", base.get("problem")),
                            domain=s.get("domain", base.get("domain", "unconstrained")),
                            domain_params=s.get("domain_params", base.get("domain_params", {})),
                            T=s.get("T", base.get("T", 0)),
                            seeds=base.get("seeds", 1),
                            entropy=base.get("entropy", 0),
                            eta=eta,
                            checkpoints=base.get("checkpoints", 20),
                        )
                    except (TypeError, ValueError) as e:
                        raise _locate(loc, str(e), base, (i, s), (j, m)) from None
                    specs.append(spec)
    return specs


def _locate(
    loc: _Locator, msg: str, base: dict, stream: tuple[int, dict], method: tuple[int, dict]
) -> MemoptError:
    """Point a RunSpec error at the table and line of the key it is about (method first, then stream, sweep)."""
    (i, s), (j, m) = stream, method
    fields = [*m.get("grid", {}), *m.get("config", {})]
    nested_s = [*s.get("params", {}), *s.get("domain_params", {})]
    nested_b = list(base.get("domain_params", {}))
    keys = [
        *fields,
        *nested_s,
        *nested_b,
        "config",
        "eta",
        "shape",
        "params",
        "T",
        "domain",
        "problem",
        "seeds",
        "entropy",
        "checkpoints",
    ]
    for key in keys:
        if not re.search(rf"\b{re.escape(key)}\b", msg):
            continue
        if key in fields or key in m:
            return loc.error(f"{msg} (stream {s['name']!r})", "methods", j, key)
        if key in s or key in nested_s:
            return loc.error(f"{msg} (method {m['name']!r})", "streams", i, key)
        if key in base or key in nested_b:
            return loc.error(msg, "sweep", None, key)
    return loc.error(f"{msg} (method {m['name']!r})", "streams", i, "name")


def load_sweep_file(path: str | os.PathLike) -> list[RunSpec]:
    """The runs of the sweep file at ``path``; ``FileNotFoundError`` if it is missing."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sweep file {str(p)!r} not found")
    return parse_sweep(p.read_text(), str(p))
