r"""Closed-form regret bounds and the quantities inside them (ALGORITHMS.md §A, §B, §E).

Every theorem is a function whose docstring states it; all return tensors of the batch shape.
"""

from memopt_theory.bounds.quantities import *  # noqa: F401,F403
