"""memopt_theory.storage: what a reader gets back is what the writer wrote, and a bad file is named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from memopt_theory import storage
from memopt_theory.errors import MemoptError


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


def test_npz_of_another_result_or_truncated_is_refused(tmp_path):
    """The JSON records the sha256 of its npz: another result's npz copied over it (same array names, so
    np.load alone accepts it) or a truncated one is refused naming the file, not read as this result."""
    storage.write_result(tmp_path / "a", {"v": np.arange(4.0)}, {"run": "a"})
    storage.write_result(tmp_path / "b", {"v": np.arange(4.0) + 1}, {"run": "b"})
    (tmp_path / "a.npz").write_bytes((tmp_path / "b.npz").read_bytes())
    with pytest.raises(MemoptError, match=r"a.npz: its content does not match the sha256"):
        storage.read_result(tmp_path / "a")
    got, meta = storage.read_result(tmp_path / "b")  # the untouched pair still reads, hash key removed
    assert np.array_equal(got["v"], np.arange(4.0) + 1) and meta == {"run": "b"}
    data = (tmp_path / "b.npz").read_bytes()
    (tmp_path / "b.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(MemoptError, match=r"b.npz: its content does not match the sha256"):
        storage.read_result(tmp_path / "b")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    """A file written through write_atomic gets 0666 & ~umask, as open() would give it (mkstemp alone: 0600)."""
    old = os.umask(umask)
    try:
        storage.write_result(tmp_path / "r", {"v": np.zeros(2)}, {"k": 1})
    finally:
        os.umask(old)
    for name in ("r.npz", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_writable_dir_refuses_a_file_proc_and_a_path_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(MemoptError, match=r"--out '.*f' is a file"):
        storage.writable_dir(tmp_path / "f")
    with pytest.raises(MemoptError, match=r"--out '.*f/sub' is not a writable directory"):
        storage.writable_dir(tmp_path / "f" / "sub")
    if Path("/proc/self").is_dir():
        with pytest.raises(MemoptError, match=r"--out '/proc/memopt' is not a writable directory"):
            storage.writable_dir("/proc/memopt")
    assert storage.writable_dir(tmp_path / "new" / "dir").is_dir()
    assert list((tmp_path / "new" / "dir").iterdir()) == []  # the probe file is gone


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_writable_dir_refuses_a_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(MemoptError, match=r"is not a writable directory"):
        storage.writable_dir(ro)
