"""memopt_theory.storage: what a reader gets back is what the writer wrote, and a bad file is named."""

from __future__ import annotations

import numpy as np
import pytest

from memopt_theory import storage


def test_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((3, 4)), "k": np.arange(5, dtype=np.int64)}
    meta = {"T": 7, "inf": float("inf"), "name": "s_adagrad"}
    storage.write_result(tmp_path / "r", arrays, meta)
    got, got_meta = storage.read_result(tmp_path / "r")
    assert set(got) == {"x", "k"}
    np.testing.assert_array_equal(got["x"], arrays["x"])  # bit-exact: npz stores the float64 bytes
    np.testing.assert_array_equal(got["k"], arrays["k"])
    assert got_meta == {"T": 7, "inf": "inf", "name": "s_adagrad"}  # JSON has no inf: kept as its repr


def test_dotted_stems_do_not_collide(tmp_path):
    """'blocks.0.attn.q' and 'blocks.0.attn.k' are two results; with Path.with_suffix both became 'blocks.0.attn'."""
    for i, name in enumerate(["blocks.0.attn.q", "blocks.0.attn.k", "lr0.1", "lr0.01"]):
        storage.write_result(tmp_path / name, {"v": np.array([i])}, {"i": i})
    for i, name in enumerate(["blocks.0.attn.q", "blocks.0.attn.k", "lr0.1", "lr0.01"]):
        arrays, meta = storage.read_result(tmp_path / name)
        assert meta == {"i": i} and arrays["v"].tolist() == [i]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}{s}"
        for n in ["blocks.0.attn.q", "blocks.0.attn.k", "lr0.1", "lr0.01"]
        for s in (".npz", ".json")
    )


def test_object_arrays_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        storage.write_npz(tmp_path / "o.npz", {"o": np.array([{"a": 1}], dtype=object)})
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_corrupt_npz_is_a_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.npz"):
        storage.read_npz(path)


def test_missing_json_means_never_completed(tmp_path):
    storage.write_npz(tmp_path / "half.npz", {"v": np.zeros(2)})  # crashed before the JSON
    with pytest.raises(FileNotFoundError, match="never completed"):
        storage.read_result(tmp_path / "half")
