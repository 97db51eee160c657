r"""Crash-safe files shared by the simulator and the recorder: atomic writes, npz + JSON, never pickle.

A result is ``NAME.npz`` (arrays) plus ``NAME.json`` (metadata); the JSON is written last and marks the
pair complete, so a reader that finds the JSON can trust the npz. Reads use ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "write_atomic",
    "write_json",
    "read_json",
    "write_npz",
    "read_npz",
    "write_result",
    "read_result",
    "result_paths",
]


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data``; a crash leaves the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
        raise ValueError(f"{path}: not valid JSON ({e}); the file is corrupt or not ours") from None


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():  # checked before saving: np.savez would silently pickle an object array
        if v.dtype == object:
            raise TypeError(f"write_npz: array {k!r} has dtype object, which would need pickle")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(path, buf.getvalue())


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable npz file ({e}); the file is corrupt or not ours") from None


def result_paths(stem: str | os.PathLike) -> tuple[Path, Path]:
    """``(stem.npz, stem.json)``, the suffixes appended, never replacing: a stem may contain dots
    ('blocks.0.attn', 'lr0.1'), which ``Path.with_suffix`` would cut at the last one."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def write_result(stem: str | os.PathLike, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """``stem.npz`` then ``stem.json``: the JSON, written last, marks the pair complete.

    The suffixes are appended to the whole stem, so a dotted stem such as ``lr.0.1`` names its own pair."""
    npz, js = result_paths(stem)
    write_npz(npz, arrays)
    write_json(js, meta)


def read_result(stem: str | os.PathLike) -> tuple[dict[str, np.ndarray], Any]:
    npz, meta_path = result_paths(stem)
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: missing; the result {Path(stem).name} was never completed")
    return read_npz(npz), read_json(meta_path)
