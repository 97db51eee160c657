"""spectra — eigenspectra of Kronecker-factored gradient covariances during training (not the PyPI colour library).

>>> from spectra import metrics
>>> import numpy as np
>>> round(float(metrics.top_k_mass(np.array([3.0, 1.0, 0.0]), 1)), 6)
0.75
"""

from spectra import metrics
from spectra.null import null_factors
from spectra.recorder import FactorRecorder
from spectra.runs import make_run, train
from spectra.snapshots import Snapshotter, decompose
from spectra.store import SnapshotStore

__all__ = [
    # recording Kronecker factors during training
    "FactorRecorder",
    "Snapshotter",
    "SnapshotStore",
    "decompose",
    # spectral metrics and the null model
    "metrics",
    "null_factors",
    # reference training runs
    "make_run",
    "train",
]
