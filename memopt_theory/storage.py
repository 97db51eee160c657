r"""Crash-safe files shared by the simulator and the recorder: atomic writes, npz + JSON, never pickle.

A result is ``NAME.npz`` (arrays) plus ``NAME.json`` (metadata); the JSON is written last and marks the
pair complete, and it holds the sha256 of the npz's bytes (``"npz_sha256"``), so a reader that finds the JSON
can check that the npz beside it is the very file written with it: a truncated npz, or another run's npz
copied over it, raises :class:`~memopt_theory.errors.MemoptError` naming the file. Reads use
``allow_pickle=False``.

Files are created with mode ``0666 & ~umask`` (as ``open`` would create them), not ``mkstemp``'s 0600, so a
group-readable umask (022, 002) shares results with a cluster group and 077 keeps them private.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from memopt_theory.errors import MemoptError

__all__ = [
    "write_atomic",
    "write_json",
    "read_json",
    "write_npz",
    "read_npz",
    "write_result",
    "read_result",
    "result_paths",
    "SHA_KEY",
    "writable_dir",
]

SHA_KEY = "npz_sha256"  # the key of the npz's content hash in a result's JSON


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by set-and-restore."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data``; a crash leaves the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; a file written with open() honours the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.replace(tmp, path)  # atomic within one filesystem
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return repr(x)  # JSON has no NaN/inf; keep them readable
    return x


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_atomic(path, (json.dumps(_jsonable(obj), indent=1, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MemoptError(f"{path}: not valid JSON ({e}); the file is corrupt or not ours") from None


def _npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():  # checked before saving: np.savez would silently pickle an object array
        if v.dtype == object:
            raise TypeError(f"write_npz: array {k!r} has dtype object, which would need pickle")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> str:
    """Write ``arrays`` atomically; returns the sha256 (hex) of the bytes written."""
    data = _npz_bytes(arrays)
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_npz(path: str | os.PathLike, sha256: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of an npz file; with ``sha256``, its bytes must hash to it (else ``MemoptError``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MemoptError(f"{path}: missing; the result was not completed or was removed") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise MemoptError(
            f"{path}: its content does not match the sha256 recorded in its JSON: the file was truncated, "
            "altered or replaced by another run's; remove the pair to recompute it"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise MemoptError(f"{path}: not a readable npz file ({e}); the file is corrupt or not ours") from None


def result_paths(stem: str | os.PathLike) -> tuple[Path, Path]:
    """``(stem.npz, stem.json)``, the suffixes appended, never replacing: a stem may contain dots
    ('blocks.0.attn', 'lr0.1'), which ``Path.with_suffix`` would cut at the last one."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def write_result(stem: str | os.PathLike, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """``stem.npz`` then ``stem.json``: the JSON, written last, marks the pair complete.

    The JSON is ``meta`` (a dict) plus ``"npz_sha256"``: the content hash of the npz, checked by
    :func:`read_result`. The suffixes are appended to the whole stem, so a dotted stem such as ``lr.0.1``
    names its own pair."""
    if SHA_KEY in meta:
        raise ValueError(f"write_result: meta may not hold {SHA_KEY!r}; the storage layer writes it")
    npz, js = result_paths(stem)
    digest = write_npz(npz, arrays)
    write_json(js, {**meta, SHA_KEY: digest})


def read_result(stem: str | os.PathLike) -> tuple[dict[str, np.ndarray], Any]:
    """(arrays, meta) of a pair; the npz must hash to the JSON's ``"npz_sha256"`` (a pair written before the
    hash was recorded has none and is read unchecked). ``meta`` is returned without the hash."""
    npz, meta_path = result_paths(stem)
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: missing; the result {Path(stem).name} was never completed")
    meta = read_json(meta_path)
    digest = meta.pop(SHA_KEY, None) if isinstance(meta, dict) else None
    if digest is not None and not isinstance(digest, str):
        raise MemoptError(f"{meta_path}: {SHA_KEY} must be a hex string; got {digest!r}")
    return read_npz(npz, digest), meta


def writable_dir(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Create directory ``path`` (and parents) and prove it writable by creating and removing a temp file.

    Called before any computation, so that a command never runs for minutes and then fails to save. Raises
    :class:`MemoptError` naming ``option`` and the path when it is a file, lies under a file, or cannot be
    created or written (read-only, /proc, permissions)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MemoptError(f"{option} {str(path)!r} is a file; it must be a directory (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".memopt-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MemoptError(
            f"{option} {str(path)!r} is not a writable directory ({e.strerror or e}); choose another"
        ) from None
    return path
