"""Snapshotter(background=True): the same snapshots as in the foreground, taken from a copy; errors surface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectra.snapshots import Snapshotter
from spectra.store import SnapshotStore


def _stream(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(20, 5, generator=g, dtype=torch.float64) for _ in range(6)]


def _record(tmp, background: bool) -> SnapshotStore:
    """Accumulate F ← F + XᵀX IN PLACE every step and snapshot every 2nd: the worker must see step t's F."""
    store = SnapshotStore(tmp, {"run": "bg"})
    F = torch.zeros(20, 20, dtype=torch.float64)
    with Snapshotter(store, every=2, k_top=4, background=background) as snap:
        for t, X in enumerate(_stream(), start=1):
            F.addmm_(X, X.T)
            snap.maybe_snapshot(t, {"layer:shampoo_L": F, "layer:shampoo_R": 2 * F})
    return store


def test_background_snapshots_equal_foreground(tmp_path):
    fg, bg = _record(tmp_path / "fg", False), _record(tmp_path / "bg", True)
    assert fg.steps() == bg.steps() == [2, 4, 6]
    for step in fg.steps():
        for name in fg.names():
            a, b = fg.load(step, name), bg.load(step, name)
            np.testing.assert_array_equal(a.eigvals, b.eigvals)  # the same solver on the same numbers
            np.testing.assert_array_equal(a.eigvecs, b.eigvecs)
            assert a.trace == b.trace
    # step 2's snapshot is of F after two updates, not of the F the loop went on to change
    X = _stream()
    F2 = X[0] @ X[0].T + X[1] @ X[1].T
    assert bg.load(2, "layer:shampoo_L").trace == pytest.approx(float(torch.trace(F2)), rel=1e-15)


def test_background_worker_error_is_raised_on_wait(tmp_path):
    store = SnapshotStore(tmp_path / "e", {"run": "bg"})
    snap = Snapshotter(store, every=1, background=True)
    snap.maybe_snapshot(1, {"layer:shampoo_L": -torch.eye(4, dtype=torch.float64)})  # not PSD
    with pytest.raises(ValueError, match="positive semidefinite"):
        snap.close()
