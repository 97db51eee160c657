"""memopt_theory — the math of memory-efficient adaptive optimizers.

Sketches, compressors, matrix functions, regret bounds and the memory model; ``methods`` holds one pure
``init``/``update`` pair per update rule of the specification (docs: ALGORITHMS.md).
"""

__version__ = "0.1.0"
