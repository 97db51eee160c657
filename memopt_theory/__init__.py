"""memopt_theory — the math of memory-efficient adaptive optimizers.

Sketches, compressors, matrix functions, regret bounds and the memory model; ``methods`` holds one pure
``init``/``update`` pair per update rule, each with its guarantee (docs/theory/ explains the mathematics).

>>> import memopt_theory as mt
>>> m = mt.methods.get("adagrad_full")
>>> m.guarantee.kind, mt.methods.get("s_adagrad").field_for("sketch_size")
('upper bound', 'ell')
"""

__version__ = "0.1.0"

from memopt_theory import bounds, methods, metric, testing
from memopt_theory.guarantee import BoundInputs, EtaInputs, Guarantee, Setting
from memopt_theory.layers import LAYER_SHAPES, layer_config
from memopt_theory.memory import counted_bits, counted_scalars, state_bytes
from memopt_theory.methods import Method
from memopt_theory.optim import MethodOptimizer, make_optimizer
from memopt_theory.protocols import InitFn, MemoryFn, MetricFn, UpdateFn
from memopt_theory.verify import Check, CheckResult, all_checks, run_check

__all__ = [
    "__version__",
    # methods: the registry (get/names/register), one Method per update rule, its typed interface
    "methods",
    "Method",
    "InitFn",
    "UpdateFn",
    "MemoryFn",
    "MetricFn",
    # the theory a method carries
    "Guarantee",
    "Setting",
    "BoundInputs",
    "EtaInputs",
    # torch optimizers wrapping the same pure pairs
    "make_optimizer",
    "MethodOptimizer",
    # closed-form bounds and the metrics H_t
    "bounds",
    "metric",
    # memory model
    "counted_scalars",
    "counted_bits",
    "state_bytes",
    "LAYER_SHAPES",
    "layer_config",
    # theorem checks (memopt verify) and the shipped method battery
    "Check",
    "CheckResult",
    "all_checks",
    "run_check",
    "testing",
]
