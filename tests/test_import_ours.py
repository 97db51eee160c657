"""`spectra` is also the name of an unrelated colour library on PyPI: make sure the one imported is ours."""

from pathlib import Path

import memopt_theory
import online_convex
import spectra

ROOT = Path(__file__).resolve().parents[1]


def test_spectra_is_ours():
    assert Path(spectra.__file__).resolve().parent == ROOT / "spectra"
    assert Path(online_convex.__file__).resolve().parent == ROOT / "online_convex"
    assert Path(memopt_theory.__file__).resolve().parent == ROOT / "memopt_theory"
