"""Start-up of local sweep workers: preloaded once by the pool's fork server, inherited by every worker.

Imported (by name) in the ``forkserver`` process that :func:`online_convex.sweep.local_executor` starts: it
pins every thread pool to one thread *before* torch loads (OpenMP and BLAS read these variables once, at
load), then imports torch and the simulator. Workers forked from that server start warm in milliseconds
instead of each importing torch again, and they are forked from a process that never ran a parallel region,
which is what makes forking torch safe. The server and every worker ask the kernel to kill them when their
parent dies, so a ``kill -9`` of the sweep leaves no process behind.
"""

import os

from online_convex.sweep import die_with_parent

die_with_parent()  # the fork server dies with the sweep that started it; its workers die with it

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)

import online_convex.simulate  # noqa: E402, F401
import online_convex.streams  # noqa: E402, F401
from memopt_theory import methods  # noqa: E402

methods.names()  # import every method module once, in the server
