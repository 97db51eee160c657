r"""Closed-form regret bounds and the quantities inside them (docs/theory/baselines.md §A, docs/theory/sketching.md §B, docs/theory/bounds.md §E).

Every theorem is a function whose docstring states it (and derives it where docs/theory/README.md tags it
[reconstructed]); all return float64 tensors of the batch shape.
"""

from memopt_theory.bounds.adagrad import *  # noqa: F401,F403
from memopt_theory.bounds.quantities import *  # noqa: F401,F403
from memopt_theory.bounds.sketchy import *  # noqa: F401,F403
from memopt_theory.bounds.tensored import *  # noqa: F401,F403
