"""Snapshots of layers whose names contain dots (nested modules: 'blocks.0.attn.q') stay distinct on disk."""

from __future__ import annotations

import numpy as np

from spectra.store import Decomposition, SnapshotStore


def _dec(lam: np.ndarray) -> Decomposition:
    d = len(lam)
    return Decomposition(eigvals=lam, eigvecs=np.eye(d), exact=True, trace=float(lam.sum()), dim=d)


def test_dotted_layer_names_do_not_collide(tmp_path):
    # two factors of sibling modules and one of different dimension: before the fix all three shared the file
    # pair '<step>__blocks.0.attn.*' and read back the last one written
    spectra = {
        "blocks.0.attn.q:shampoo_L": np.array([3.0, 2.0, 1.0]),
        "blocks.0.attn.k:shampoo_L": np.array([5.0, 0.5, 0.25]),
        "blocks.0.attn.k:kfac_A": np.array([4.0, 1.0, 1.0, 1.0]),
    }
    store = SnapshotStore(tmp_path / "s", {"run": "dotted"})
    for name, lam in spectra.items():
        store.write(7, name, _dec(lam))
    for reader in (store, SnapshotStore.open(tmp_path / "s")):
        assert sorted(reader.names()) == sorted(spectra)
        for name, lam in spectra.items():
            dec = reader.load(7, name)
            np.testing.assert_array_equal(dec.eigvals, lam)  # stored float64 bytes: exact round trip
            assert dec.dim == len(lam)
    assert len(list((tmp_path / "s" / "snapshots").glob("*.json"))) == len(spectra)
