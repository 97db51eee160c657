r"""The sweep result store: one ``KEY.npz`` + ``KEY.json`` pair per :class:`~online_convex.sweep.RunSpec`.

``KEY`` is the spec's content hash (which covers ``SPEC_VERSION``). Each pair is written with
:func:`memopt_theory.storage.write_result` — atomic writes (temp + fsync + rename), the JSON last, so a JSON on
disk means a complete result. A directory holds a ``manifest.json`` naming the format and the spec version
it was written with; a store opened with another version, a file the store did not write, or a result that
cannot be read raises :class:`~memopt_theory.errors.MemoptError` (a ``ValueError``) naming the file: nothing
is silently skipped. Each ``KEY.json`` holds the sha256 of its ``KEY.npz`` and reading checks it, so another
run's npz copied over ``KEY.npz`` (or a truncated one) is refused, not tabulated. A lost ``manifest.json`` is
rebuilt when every file left is a store file and every result JSON describes itself as one of this spec
version (its spec hashes to its file name): nothing is lost, a warning says so. Two things are not errors:
an ``.npz`` whose JSON is missing (a run killed between the two writes: it is simply not finished and is
run again) and the hidden ``.NAME.*.tmp`` files an interrupted atomic write leaves behind.

:func:`load` turns a directory into a tidy table, one row per run × seed × checkpoint;
:func:`write_table` saves it as parquet when pyarrow is installed, CSV otherwise.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from memopt_theory.errors import MemoptError
from memopt_theory.storage import read_json, read_result, result_paths, write_atomic, write_json, write_result
from online_convex.sweep import SPEC_VERSION, RunSpec, spec_key

__all__ = ["FORMAT", "MANIFEST", "ResultStore", "load", "write_table"]

FORMAT = "memopt.sweep-results"
MANIFEST = "manifest.json"
_KEY = re.compile(r"^[0-9a-f]{20}$")
_TEMP = re.compile(r"^\..+\.tmp$")  # memopt_theory.storage.write_atomic's temp files


class ResultStore:
    """A results directory; created (with its manifest) if it does not exist or is empty.

    Raises ``MemoptError`` if ``root`` is a file, holds files but no manifest that are not all results of
    this spec version (not a sweep directory; when they are, the manifest is rebuilt), or its manifest
    names another format or spec version.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise MemoptError(f"results_dir {str(self.root)!r} is a file; it must be a directory")
        manifest = self.root / MANIFEST
        if manifest.exists():
            m = read_json(manifest)
            if not isinstance(m, dict) or m.get("format") != FORMAT:
                raise MemoptError(
                    f"{manifest}: not a memopt sweep manifest (format {FORMAT!r} expected); a foreign directory"
                )
            if m.get("spec_version") != SPEC_VERSION:
                raise MemoptError(
                    f"{manifest}: results written with spec version {m.get('spec_version')!r}; this memopt reads "
                    f"spec version {SPEC_VERSION}. Use a new results directory (or the memopt that wrote it)."
                )
            return
        present = [p.name for p in self.root.iterdir()] if self.root.exists() else []
        if present and self._all_results(present):
            warnings.warn(
                f"{manifest} was missing; rebuilt it from the {sum(n.endswith('.json') for n in present)} "
                "result JSONs, each of which names its spec and spec version",
                stacklevel=2,
            )
        elif present:
            raise MemoptError(
                f"results_dir {str(self.root)!r} holds {sorted(present)[:5]} but no {MANIFEST}: not a sweep "
                "results directory; use an empty or new directory"
            )
        write_json(manifest, {"format": FORMAT, "spec_version": SPEC_VERSION})

    def _all_results(self, names: list[str]) -> bool:
        """True if every file is a KEY.json/KEY.npz/temp file and every KEY.json reads as a complete result of
        this spec version whose spec hashes to KEY (npz hash checked): then the manifest can be rebuilt."""
        jsons = [n for n in names if n.endswith(".json") and _KEY.match(n[: -len(".json")])]
        for n in names:
            if not (_TEMP.match(n) or (n.endswith((".json", ".npz")) and _KEY.match(Path(n).stem))):
                return False
        try:
            for n in jsons:
                self._read(self.root / n[: -len(".json")])
        except (ValueError, OSError):
            return False
        return bool(jsons)

    def stem(self, key: str) -> Path:
        return self.root / key

    def has(self, spec: RunSpec) -> bool:
        """True if the spec's result is complete; a present but unreadable or mismatched result raises."""
        stem = self.stem(spec.key)
        if not result_paths(stem)[1].exists():
            return False
        got = self._read(stem)[0]
        if got != spec:
            raise MemoptError(
                f"{result_paths(stem)[1]}: holds the result of another spec than the one named {spec.key}"
            )
        return True

    def write(self, spec: RunSpec, trace: Any) -> Path:
        """Store ``trace`` (a RegretTrace: ``to_arrays()`` and ``meta()``) as the result of ``spec``."""
        meta = {
            "format": FORMAT,
            "spec_version": SPEC_VERSION,
            "key": spec.key,
            "spec": spec.to_dict(),
            "trace": trace.meta(),
        }
        write_result(self.stem(spec.key), trace.to_arrays(), meta)
        return self.stem(spec.key)

    def keys(self) -> list[str]:
        """Keys of the complete results, sorted; any file the store does not know raises naming it."""
        keys = []
        for p in sorted(self.root.iterdir()):
            if p.name == MANIFEST or _TEMP.match(p.name):
                continue
            if p.suffix in (".json", ".npz") and _KEY.match(p.stem) and p.is_file():
                if p.suffix == ".json":
                    keys.append(p.stem)
                continue
            raise MemoptError(
                f"{p}: not a file of this sweep results directory (expected KEY.json / KEY.npz); remove it"
            )
        return keys

    def read(self, key: str) -> tuple[RunSpec, dict[str, np.ndarray], dict[str, Any]]:
        """(spec, arrays, trace meta) of one complete result."""
        return self._read(self.stem(key))

    def _read(self, stem: Path) -> tuple[RunSpec, dict[str, np.ndarray], dict[str, Any]]:
        path = result_paths(stem)[1]
        arrays, meta = read_result(stem)  # unreadable npz / JSON: ValueError naming the file
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "spec" not in meta:
            raise MemoptError(f"{path}: not a memopt sweep result (no format {FORMAT!r}); a foreign file")
        if meta.get("spec_version") != SPEC_VERSION:
            raise MemoptError(
                f"{path}: written with spec version {meta.get('spec_version')!r}; this memopt reads {SPEC_VERSION}"
            )
        try:
            spec = RunSpec.from_dict(meta["spec"])
        except (TypeError, ValueError) as e:
            raise MemoptError(f"{path}: its spec is not valid here ({e})") from None
        if spec_key(meta["spec"]) != stem.name or spec.key != stem.name:
            raise MemoptError(
                f"{path}: its spec hashes to {spec.key}, not to its file name; the file was altered or moved"
            )
        return spec, arrays, meta.get("trace", {})


def _config_columns(spec: RunSpec) -> dict[str, Any]:
    out = {}
    for k, v in spec.config:
        out[f"cfg_{k}"] = (
            json.dumps(v) if isinstance(v, tuple) else v
        )  # tuples as JSON text: one type a column
    return out


def _rows(spec: RunSpec, arrays: dict[str, np.ndarray], meta: dict[str, Any]):
    import pandas as pd

    t = np.asarray(arrays["checkpoints"]).reshape(-1)
    n_ck, n_s = len(t), spec.seeds
    cols: dict[str, Any] = {
        "key": spec.key,
        "method": spec.method,
        "label": spec.label,
        "config": json.dumps(dict(spec.config), sort_keys=True),
        "stream": spec.stream,
        "problem": spec.problem or meta.get("problem", ""),
        "domain": spec.domain,
        "T": spec.T,
        "entropy": spec.entropy,
        "eta_spec": str(spec.eta),
        **_config_columns(spec),
        "seed": np.tile(np.arange(n_s), n_ck),
        "t": np.repeat(t, n_s),
    }
    for name, a in sorted(arrays.items()):
        if name == "checkpoints" or not np.issubdtype(a.dtype, np.number):
            continue
        if a.shape == (n_ck, n_s):
            cols[name] = a.reshape(-1)  # row-major: checkpoint-major, seed-minor, as "seed" and "t" above
        elif a.shape == (n_s,):
            cols[name] = np.tile(a, n_ck)
        elif a.shape == ():
            cols[name] = a.item()
    for name in ("memory_scalars", "D", "bound_name"):
        if name not in cols and isinstance(meta.get(name), (int, float, str)):
            cols[name] = meta[name]
    return pd.DataFrame(cols)


def load(root: str | os.PathLike):
    """Tidy ``pandas.DataFrame`` of a results directory: one row per run × seed × checkpoint ``t``.

    Columns: the spec (``key, method, label, config`` as JSON, ``cfg_<field>`` per Config field, ``stream,
    problem, domain, T, entropy, eta_spec``), ``seed``, ``t``, then every per-checkpoint-and-seed array of
    the RegretTrace (``cum_loss, regret_lower, regret_upper, …``) and its per-seed / scalar ones (``eta``,
    ``memory_scalars``, …). Rows sorted by key, seed, t.
    """
    import pandas as pd

    store = ResultStore(root) if (Path(root) / MANIFEST).exists() else None
    if store is None:
        raise MemoptError(f"{str(root)!r}: no {MANIFEST}; not a sweep results directory")
    frames = [_rows(*store.read(k)) for k in store.keys()]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["key", "seed", "t"], kind="stable").reset_index(drop=True)


def write_table(df, stem: str | os.PathLike) -> Path:
    """``stem.parquet`` when pyarrow is installed, else ``stem.csv``; written atomically. Returns the path."""
    stem = Path(stem)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path = stem.with_name(stem.name + ".csv")  # appended: a dotted stem keeps its dots
        write_atomic(path, df.to_csv(index=False).encode())
        return path
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    path = stem.with_name(stem.name + ".parquet")
    write_atomic(path, buf.getvalue())
    return path
