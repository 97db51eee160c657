r"""Snapshots on disk, crash-safely: one file pair per (step, factor), a manifest, a long-format table.

Layout of a store ``root``::

    root/manifest.json                  {"format", "run", "run_id", "snapshots": [{"step", "name", "stem"}, ...]}
    root/snapshots/<stem>.npz           eigvals (k',), eigvecs (d, k'') float64
    root/snapshots/<stem>.json          step, name, exact, trace, dim, run_id, extra, metrics, npz_sha256
                                        — written LAST

Every file goes through ``memopt_theory.storage.write_atomic`` (temp file, fsync, rename), so a crash leaves
the old file or the new one, never a torn one; the JSON sidecar written after the npz marks a snapshot
complete, and the manifest, rewritten atomically after the sidecar, lists only complete snapshots. A
snapshot finished after the last manifest write (a crash in between) is found again on resume by its
sidecar. The manifest's ``run`` (the caller's ``run_meta``) is the run's identity: opening a root that
holds another run's manifest is an error, opening one with the same ``run`` resumes it.

Each sidecar holds the sha256 of its npz: :meth:`SnapshotStore.load` refuses an npz that does not match
(truncated, altered, another snapshot's), and a writer resuming a run checks every listed snapshot, drops
one whose files do not match from the manifest (a warning names it) so that the run takes it again.
A store whose manifest is lost is rebuilt by the writer from the sidecars (each names its step, factor and
the run's id) when every file in it belongs to this run.

One writer per root (on a DDP run, rank 0); readers use ``SnapshotStore.open(root)``, which never writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from memopt_theory.errors import MemoptError
from memopt_theory.storage import read_json, read_result, result_paths, write_atomic, write_json, write_result
from spectra import metrics

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Decomposition", "SnapshotStore", "FORMAT", "TABLE_COLUMNS"]

FORMAT = "memopt.spectra.snapshots/1"
TABLE_COLUMNS = ("step", "layer", "factor", "metric", "value")


class Decomposition(NamedTuple):
    """Eigenpairs of one factor F (d × d), as ``spectra.snapshots.decompose`` returns and the store keeps.

    eigvals : ndarray (d,) if exact else (k,), float64, descending, ≥ 0
    eigvecs : ndarray (d, k'), float64, orthonormal columns for the leading eigenvalues; each column's
              largest-magnitude entry is positive (a fixed sign, so runs compare bit for bit)
    exact : bool   True when ``eigvals`` is the whole spectrum
    trace : float  tr F, computed exactly (not from the eigenvalues)
    dim : int      d
    """

    eigvals: np.ndarray
    eigvecs: np.ndarray
    exact: bool
    trace: float
    dim: int


def _canonical(run_meta: Any, where: str) -> tuple[dict, str]:
    if not isinstance(run_meta, Mapping):
        raise TypeError(f"{where}: run_meta must be a dict describing the run; got {type(run_meta).__name__}")
    try:
        text = json.dumps(run_meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{where}: run_meta must be JSON-serialisable (str keys, finite numbers); {e}"
        ) from None
    return json.loads(text), hashlib.sha256(text.encode()).hexdigest()[:16]


def _stem(step: int, name: str) -> str:
    """A file name for (step, name): readable, and unique through a hash of the exact name.

    No '.' in the slug, so that file names stay plain; storage.write_result appends '.npz'/'.json' to the
    whole stem (it once used Path.with_suffix, which cut a dotted layer name such as 'blocks.0.attn.q' at its
    last dot so that every factor of a module collided in one file pair)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:80]
    return f"{step:09d}__{slug}__{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _split(name: str) -> tuple[str, str]:
    layer, sep, factor = name.rpartition(":")
    return (layer, factor) if sep else (name, "")


class SnapshotStore:
    """Crash-safe snapshot directory of one run.

    Parameters
    ----------
    root : path — created if missing; if it holds a manifest, it must be this run's (same ``run_meta``)
    run_meta : dict, JSON-serialisable — what identifies the run (model, seed, steps, β, …)

    A writer opens the store with its ``run_meta``; a reader that does not know it (a notebook, a plot
    script, a look at a run still going) uses ``SnapshotStore.open(root)``, which never writes or deletes.
    """

    @classmethod
    def open(cls, root: str | os.PathLike) -> SnapshotStore:
        """Read-only view of an existing store: the snapshots its manifest lists now; ``write`` refuses."""
        manifest = Path(root) / "manifest.json"
        if not manifest.exists():
            raise FileNotFoundError(
                f"SnapshotStore.open: {manifest} is missing; {root} is not a snapshot store"
            )
        m = read_json(manifest)
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise MemoptError(
                f"SnapshotStore.open: {manifest} is not a snapshot manifest (format {FORMAT!r})"
            )
        return cls(root, m["run"], _read_only=True)

    def __init__(
        self, root: str | os.PathLike, run_meta: Mapping[str, Any], *, _read_only: bool = False
    ) -> None:
        where = "SnapshotStore"
        self.read_only = _read_only
        self.root = Path(root)
        self.run_meta, self.run_id = _canonical(run_meta, where)
        self._dir = self.root / "snapshots"
        self._manifest = self.root / "manifest.json"
        self._entries: dict[tuple[int, str], str] = {}
        if self._manifest.exists():
            m = read_json(self._manifest)
            if not isinstance(m, dict) or m.get("format") != FORMAT:
                raise MemoptError(f"{where}: {self._manifest} is not a snapshot manifest (format {FORMAT!r})")
            if m.get("run") != self.run_meta:
                raise MemoptError(
                    f"{where}: {self.root} holds snapshots of another run: {m.get('run')!r}; this run is "
                    f"{self.run_meta!r}. Choose another directory (or delete that one)."
                )
            for e in m["snapshots"]:
                self._entries[(int(e["step"]), str(e["name"]))] = str(e["stem"])
            if not self.read_only:
                self._recover(verify_listed=True)
        else:
            if not self.read_only and self._orphaned_snapshots_of_this_run():
                warnings.warn(
                    f"{where}: {self._manifest} was missing; rebuilt from the snapshot sidecars of this run",
                    stacklevel=2,
                )
                self._recover(verify_listed=False)
                return
            if self.root.exists() and any(not p.name.startswith(".") for p in self.root.iterdir()):
                raise MemoptError(
                    f"{where}: {self.root} is not empty and has no manifest.json: not a snapshot store; "
                    "choose an empty or new directory"
                )
            self._dir.mkdir(parents=True, exist_ok=True)
            self._write_manifest()  # the run's identity is on disk before any snapshot

    # --- writing -------------------------------------------------------------------------------------------

    def _write_manifest(self) -> None:
        snaps = [{"step": s, "name": n, "stem": st} for (s, n), st in sorted(self._entries.items())]
        write_json(
            self._manifest,
            {"format": FORMAT, "run": self.run_meta, "run_id": self.run_id, "snapshots": snaps},
        )

    def _orphaned_snapshots_of_this_run(self) -> bool:
        """True if root holds only ``snapshots/`` (and temp files), whose every sidecar is of this run."""
        if not self._dir.is_dir():
            return False
        if any(p.name != "snapshots" and not p.name.startswith(".") for p in self.root.iterdir()):
            return False
        sides = sorted(self._dir.glob("*.json"))
        for side in sides:
            try:
                meta = read_json(side)
            except (ValueError, OSError):
                return False
            if (
                not isinstance(meta, dict)
                or meta.get("run_id") != self.run_id
                or meta.get("format") != FORMAT
            ):
                return False
        return bool(sides)

    def _recover(self, verify_listed: bool = True) -> None:
        """Resume: drop temp files of a killed write; drop listed snapshots whose npz no longer matches its
        sidecar's hash (warning: they are taken again); adopt snapshots completed after the last manifest."""
        self._dir.mkdir(parents=True, exist_ok=True)
        for tmp in list(self.root.glob(".*.tmp")) + list(self._dir.glob(".*.tmp")):
            tmp.unlink(missing_ok=True)
        if verify_listed:
            for key, stem in list(self._entries.items()):
                try:
                    read_result(self._dir / stem)
                except (ValueError, OSError) as e:
                    warnings.warn(
                        f"SnapshotStore: dropping snapshot {key} to take it again: {e}", stacklevel=3
                    )
                    del self._entries[key]
        known = set(self._entries.values())
        for side in sorted(self._dir.glob("*.json")):
            if side.stem in known:
                continue
            try:
                _, meta = read_result(self._dir / side.stem)
            except (ValueError, OSError):
                continue  # not ours, unreadable or not matching its hash: never listed
            if isinstance(meta, dict) and meta.get("run_id") == self.run_id and meta.get("format") == FORMAT:
                self._entries[(int(meta["step"]), str(meta["name"]))] = side.stem
        self._write_manifest()

    def write(
        self, step: int, name: str, decomposition: Decomposition, extra: Mapping[str, float] | None = None
    ) -> None:
        """Store one snapshot: npz, then its JSON sidecar, then the manifest — each atomically.

        ``extra``: finite scalars (e.g. overlap with the previous snapshot) that join the table as metrics.
        """
        where = "SnapshotStore.write"
        if self.read_only:
            raise ValueError(
                f"{where}: this store was opened read-only (SnapshotStore.open); open it with its run_meta to write"
            )
        if type(step) is not int or step < 0:
            raise ValueError(f"{where}: step must be an int >= 0; got {step!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: name must be a non-empty str like 'fc1:shampoo_L'; got {name!r}")
        if not isinstance(decomposition, Decomposition):
            raise TypeError(
                f"{where}: decomposition must be a spectra.store.Decomposition; got {type(decomposition).__name__}"
            )
        extra = dict(extra or {})
        for key, v in extra.items():
            if (
                not isinstance(key, str)
                or isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not np.isfinite(v)
            ):
                raise ValueError(f"{where}: extra must map str to finite numbers; got {key!r}: {v!r}")
        dec = decomposition
        lam = np.asarray(dec.eigvals, dtype=np.float64)
        if dec.trace > 0:
            summ = metrics.summary(lam, dim=dec.dim, total=None if dec.exact else dec.trace)
        else:
            summ = {"trace": 0.0, "lambda_max": 0.0}
        stem = _stem(step, name)
        meta = {
            "format": FORMAT,
            "run_id": self.run_id,
            "step": step,
            "name": name,
            "exact": bool(dec.exact),
            "trace": float(dec.trace),
            "dim": int(dec.dim),
            "extra": {k: float(v) for k, v in extra.items()},
            "metrics": summ,
        }
        write_result(self._dir / stem, {"eigvals": lam, "eigvecs": np.asarray(dec.eigvecs, np.float64)}, meta)
        self._entries[(step, name)] = stem
        self._write_manifest()

    # --- reading -------------------------------------------------------------------------------------------

    def has(self, step: int, name: str) -> bool:
        return (step, name) in self._entries

    def steps(self, name: str | None = None) -> list[int]:
        """Snapshot steps, ascending (of one factor when ``name`` is given)."""
        return sorted({s for s, n in self._entries if name is None or n == name})

    def names(self) -> list[str]:
        return sorted({n for _, n in self._entries})

    def _meta(self, stem: str) -> dict:
        return read_json(result_paths(self._dir / stem)[1])

    def load(self, step: int, name: str) -> Decomposition:
        """The stored decomposition; KeyError naming the steps and factors present if there is none."""
        if (step, name) not in self._entries:
            raise KeyError(
                f"SnapshotStore.load: no snapshot ({step!r}, {name!r}) in {self.root}; steps {self.steps()}, names {self.names()}"
            )
        stem = self._entries[(step, name)]
        arrays, meta = read_result(self._dir / stem)  # the npz must match its sidecar's sha256
        return Decomposition(
            arrays["eigvals"], arrays["eigvecs"], bool(meta["exact"]), float(meta["trace"]), int(meta["dim"])
        )

    def table(self) -> pd.DataFrame:
        """Long format: one row per (step, layer, factor, metric) with its value; ``name`` = 'layer:factor'."""
        import pandas as pd  # here, not at the top: writers (a training loop, a killed child) never need it

        rows = []
        for (step, name), stem in sorted(self._entries.items()):
            meta = self._meta(stem)
            layer, factor = _split(name)
            for metric, value in {**meta["metrics"], **meta["extra"]}.items():
                rows.append((step, layer, factor, metric, float(value)))
        df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        return df.astype({"step": "int64", "layer": str, "factor": str, "metric": str, "value": "float64"})

    def write_table(self, path: str | os.PathLike | None = None) -> Path:
        """Write ``table()`` atomically as parquet (``.parquet``, needs pyarrow) or CSV (``.csv``); returns the path.

        Default: ``root/table.parquet`` when pyarrow is installed, else ``root/table.csv``.
        """
        if path is None:
            try:
                import pyarrow  # noqa: F401 - only to choose the default format
            except ImportError:
                path = self.root / "table.csv"
            else:
                path = self.root / "table.parquet"
        path = Path(path)
        if path.suffix not in (".parquet", ".csv"):
            raise ValueError(
                f"SnapshotStore.write_table: path must end in .parquet or .csv; got {str(path)!r}"
            )
        df = self.table()
        if path.suffix == ".csv":
            write_atomic(path, df.to_csv(index=False).encode())
        else:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)  # ImportError naming pyarrow if it is missing
            write_atomic(path, buf.getvalue())
        return path
