r"""Real data streams: scikit-learn's bundled data sets and LIBSVM-format files from disk.

Rows become rounds: a_t = (standardised features, 1) (the ones column last, as the Sketchy testbed does),
y_t ∈ {−1, +1} for classification (one-vs-rest for multi-class sets) or the standardised target for
regression. ``shuffle=True`` (default) visits the rows in a seeded random order per seed; ``shuffle=False``
is a single pass in file order, identical for every seed. T larger than the number of rows makes further
passes, each reshuffled.

LIBSVM files are parsed by ``sklearn.datasets.load_svmlight_file``; when it refuses a file, the file is
scanned line by line to name the first bad line, since the parser's own message does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn import datasets
from sklearn.preprocessing import StandardScaler

from memopt_theory.validation import check_int
from online_convex.problems import RoundData

__all__ = ["REAL", "REAL_PARAMS", "make_real_stream", "read_libsvm"]


def _classification(loader, *, positive: int | None):
    X, y = loader(return_X_y=True)
    classes = np.unique(y)
    if positive is None:
        if len(classes) != 2:
            positive = int(classes[0])
        else:
            return X, np.where(y == classes[1], 1.0, -1.0)
    if positive not in classes:
        raise ValueError(
            f"make_stream: positive must be one of the classes {classes.tolist()}; got {positive!r}"
        )
    return X, np.where(y == positive, 1.0, -1.0)  # one-vs-rest


def _load(name: str, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, str]:
    where = f"make_stream({name!r})"
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        return X, (y - y.mean()) / y.std(), "least_squares"
    if name == "libsvm":
        if "path" not in params:
            raise ValueError(f"{where}: needs path=<LIBSVM file>; got none")
        X, y = read_libsvm(params.pop("path"), n_features=params.pop("n_features", None))
        return X, np.where(y > 0, 1.0, -1.0), "logistic"  # the testbed's y = 1[y_raw > 0]
    positive = params.pop("positive", None)
    if positive is not None:
        check_int(positive, "positive", where=where)
    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }
    X, y = _classification(loader[name], positive=positive)
    return X, y, "logistic"


REAL = ("breast_cancer", "digits", "wine", "diabetes", "libsvm")
_COMMON = ("shuffle", "standardize", "problem")
REAL_PARAMS: dict[str, tuple[str, ...]] = {  # the keyword parameters of each (make_stream's **params)
    "breast_cancer": ("positive", *_COMMON),
    "digits": ("positive", *_COMMON),
    "wine": ("positive", *_COMMON),
    "diabetes": _COMMON,
    "libsvm": ("path", "n_features", *_COMMON),
}


def make_real_stream(name, *, shape, T, rngs, dtype, device, **params) -> tuple[RoundData, str]:
    """Rows of a real data set as rounds (see the module docstring); ``shape`` must be (features + 1,) or None."""
    where = f"make_stream({name!r})"
    params = dict(params)
    shuffle = params.pop("shuffle", True)
    standardize = params.pop("standardize", True)
    unknown = sorted(set(params) - set(REAL_PARAMS[name]))
    if unknown:  # checked before the data set is read
        raise TypeError(f"{where}: unknown parameter(s) {unknown}; allowed: {', '.join(REAL_PARAMS[name])}")
    X, y, problem = _load(name, params)
    problem = params.pop("problem", problem)
    if standardize:
        X = StandardScaler().fit_transform(X)  # constant columns stay 0 (sklearn keeps scale 1 there)
    X = np.hstack([X, np.ones((X.shape[0], 1))])
    want = (X.shape[1],)
    if shape is not None and tuple(shape) != want:
        raise ValueError(
            f"{where}: shape {tuple(shape)} does not match the data set: {X.shape[1] - 1} features + 1 bias give {want}"
        )
    n = X.shape[0]
    a, ys = [], []
    for rng in rngs:
        passes = -(-T // n)
        order = np.concatenate([rng.permutation(n) if shuffle else np.arange(n) for _ in range(passes)])[:T]
        a.append(X[order])
        ys.append(y[order])
    A = torch.as_tensor(np.stack(a, axis=1), dtype=dtype, device=device)
    Y = torch.as_tensor(np.stack(ys, axis=1), dtype=dtype, device=device)
    return RoundData(a=A, y=Y), problem


def _bad_line(path: Path, zero_based: bool, n_features: int | None = None) -> tuple[int, str] | None:
    """The first line that is not ``label idx:value ...`` with a finite label, finite values and increasing
    indices (at most ``n_features`` when given); line numbers are 1-based."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for no, raw in enumerate(f, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            tok = line.split()
            try:
                label = float(tok[0])
            except ValueError:
                return no, f"label {tok[0]!r} is not a number"
            if not np.isfinite(label):
                return no, f"label {tok[0]!r} is not finite"
            last = -1
            for item in tok[1:]:
                key, sep, val = item.partition(":")
                if key == "qid":
                    continue
                try:
                    idx, v = int(key), float(val)
                except ValueError:
                    return no, f"entry {item!r} is not index:value"
                if not sep or idx < (0 if zero_based else 1) or idx <= last or not np.isfinite(v):
                    return (
                        no,
                        f"entry {item!r} (indices must be >= {0 if zero_based else 1}, increasing; values finite)",
                    )
                if n_features is not None and idx > n_features - (1 if zero_based else 0):
                    return no, f"entry {item!r}: index {idx} exceeds n_features = {n_features}"
                last = idx
    return None


def read_libsvm(path, *, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A LIBSVM/svmlight file as dense (X, y); indices 1-based. Errors name the file and the bad line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_libsvm: no such file {str(path)!r}")
    if n_features is not None:
        check_int(n_features, "n_features", where="read_libsvm", low=1)
    try:
        X, y = datasets.load_svmlight_file(str(path), n_features=n_features, zero_based=False)
    except ValueError as e:
        bad = _bad_line(path, zero_based=False, n_features=n_features)
        where = f"line {bad[0]}: {bad[1]}" if bad else str(e)
        raise ValueError(f"read_libsvm: {path}: {where}; the file is corrupt or truncated") from None
    if not (np.isfinite(X.data).all() and np.isfinite(y).all()):  # the parser reads "nan"/"inf" as numbers
        bad = _bad_line(path, zero_based=False)
        where = f"line {bad[0]}: {bad[1]}" if bad else "a non-finite label or value"
        raise ValueError(f"read_libsvm: {path}: {where}; NaN/inf would poison every later step")
    if X.shape[0] == 0:
        raise ValueError(f"read_libsvm: {path}: the file holds no data rows")
    return X.toarray(), np.asarray(y, dtype=np.float64)
