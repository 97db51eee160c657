"""A reader never needs a file the repository does not ship: no file in the packages, tests, benchmarks,
notebooks or README mentions the team's design files, and every ``docs/theory/<page>.md §<section>`` citation points to
a page that exists and a section anchor on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# spelled in pieces so that this file does not mention them itself
OUTSIDE = tuple(name + ".md" for name in ("ALGORITHMS", "ARCHITECTURE", "STYLE"))
SCANNED = ("memopt_theory", "online_convex", "spectra", "tests", "benchmarks", "notebooks", "README.md")
SUFFIXES = {".py", ".md", ".toml", ".txt", ".ipynb"}


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        p = ROOT / name
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += [
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and f.suffix in SUFFIXES and "__pycache__" not in f.parts
            ]
    return out


FILES = _files()


def test_scans_the_tree():
    names = {f.relative_to(ROOT).parts[0] for f in FILES}
    assert set(SCANNED) <= names, set(SCANNED) - names


def test_no_file_mentions_the_design_files():
    hits = []
    for f in FILES:
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            for name in OUTSIDE:
                if name in line:
                    hits.append(f"{f.relative_to(ROOT)}:{i}: {name}")
    assert not hits, f"{len(hits)} mentions of files the repository does not ship:\n" + "\n".join(hits[:40])


CITE = re.compile(r"docs/theory/(?P<page>[\w-]+)\.md(?: §(?P<sec>[0-9A-EL][\w.]*))?")
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


def _anchors(page: str) -> set[str]:
    return set(ANCHOR.findall((ROOT / "docs" / "theory" / f"{page}.md").read_text(encoding="utf-8")))


def _section_ok(sec: str, anchors: set[str]) -> bool:
    sec = sec.rstrip(".")
    if sec in anchors:
        return True
    if len(sec) == 1:  # a whole family, e.g. §A
        return any(a.startswith(sec) for a in anchors)
    return False


def test_every_citation_points_to_a_page_and_a_section():
    bad = []
    n = 0
    for f in FILES:
        for m in CITE.finditer(f.read_text(encoding="utf-8")):
            n += 1
            page, sec = m.group("page"), m.group("sec")
            if not (ROOT / "docs" / "theory" / f"{page}.md").is_file():
                bad.append(f"{f.relative_to(ROOT)}: no page {page}.md")
            elif sec is not None and not _section_ok(sec, _anchors(page)):
                bad.append(f"{f.relative_to(ROOT)}: {page}.md has no section {sec}")
    assert not bad, "\n".join(bad[:40])
    assert n >= 1  # the tree cites the pages (the citations are what this test is about)


@pytest.mark.parametrize("page", ["bounds", "baselines", "sketching", "tensored", "compressed"])
def test_family_pages_carry_their_anchors(page):
    want = {
        "bounds": {"0", "L1", "L2", "L3", "E.1", "E.2", "E.3"},
        "baselines": {f"A{i}" for i in range(1, 5)},
        "sketching": {f"B{i}" for i in range(1, 8)},
        "tensored": {f"C{i}" for i in range(1, 6)},
        "compressed": {f"D{i}" for i in range(1, 9)},
    }[page]
    assert want <= _anchors(page), want - _anchors(page)
