r"""Closed-form regret bounds and the quantities inside them (ALGORITHMS.md §A, §B, §E).

Every theorem is a function whose docstring states it (and derives it where ALGORITHMS.md tags it
[reconstructed]); all return float64 tensors of the batch shape.
"""

from memopt_theory.bounds.adagrad import *  # noqa: F401,F403
from memopt_theory.bounds.quantities import *  # noqa: F401,F403
from memopt_theory.bounds.sketchy import *  # noqa: F401,F403
from memopt_theory.bounds.tensored import *  # noqa: F401,F403
