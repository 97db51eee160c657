r"""Plain SGD — ``template`` (the layout every method module follows; not registered: the name starts with ``_``).

Copy this file to ``memopt_theory/methods/<name>.py``, rename, and replace each section. The registry imports every
module of this package whose name does not start with ``_`` and reads its ``METHODS`` tuple; nothing else changes.
tests/theory/test_method_docs.py checks that each module docstring has the sections below, in this order, and the
shipped battery (memopt_theory.testing) runs on the new method once a case for it exists in tests/theory/cases_*.py.

Update
------
The rule in formulas, in the module's own words, with every convention a reader needs to reproduce it (where the
state is read — before or after g_t is absorbed —, the order of operations, the defaults and why). Here: the
direction is u_t = g_t; the caller steps x_{t+1} = Π_K(x_t − η·u_t). Metric H_t = I.

Memory
------
The closed form ``memory(shape, config)`` of the persistent floating scalars of one run (and ``bits`` for signs
and indices), as in docs/theory/bounds.md §E.2; the battery checks it against the tensors of a real state. Here: 0.

Guarantee
---------
One of: **upper bound** (the theorem, its hypotheses and the step size it prescribes, carried as
``GUARANTEE = Guarantee(...)`` and passed to ``Method(..., guarantee=GUARANTEE)``), **tight** (a bound with a
matching lower-bound construction), or **none** (say why, e.g. a counterexample). Here: upper bound — plain SGD with
η = D/(G√T) is OGD's constant-step case, R^lin_T ≤ G·D·√T (``ogd`` carries it).

References
----------
Paper, section / theorem, official code (repository and file) and the docs page section, e.g.
Zinkevich 2003; docs/theory/baselines.md §A1.

Example
-------
>>> import torch
>>> from memopt_theory.methods._template import METHODS
>>> m = METHODS[0]
>>> state = m.init((3,), m.Config())
>>> u, state = m.update(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), state, m.Config())
>>> u.tolist(), m.memory((3,), m.Config())
([1.0, -2.0, 0.5], 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from memopt_theory.memory import Static
from memopt_theory.methods import Method
from memopt_theory.methods._common import check_batch, check_param, check_shape, prepare_grad, resolve_dtype
from memopt_theory.metric import Identity


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every field validated in ``__post_init__`` with memopt_theory.validation's check_* helpers: the battery
    generates its refusal tests from those calls. (Plain SGD has no field.)"""


class State(NamedTuple):
    batch: Tensor  # an empty tensor (0 scalars) that carries the batch shape, dtype and device
    shape: Static  # the parameter shape (static metadata, not counted)


def init(shape, config: Config, *, batch=(), dtype=torch.float64, device=None) -> State:
    shape = check_shape(shape, where="template.init")
    batch = check_batch(batch)
    dtype = resolve_dtype(dtype, where="template.init")
    return State(batch=torch.empty(batch + (0,), dtype=dtype, device=device), shape=Static(shape))


def update(
    grad: Tensor, state: State, config: Config, *, param: Tensor | None = None
) -> tuple[Tensor, State]:
    """u_t = g_t."""
    full = tuple(state.batch.shape[:-1]) + tuple(state.shape)
    g = prepare_grad(grad, full, state.batch.dtype, where="template.update")
    check_param(param, full, where="template.update", needed=False)
    return g.to(grad.dtype), state


def memory(shape, config: Config) -> int:
    return 0


def metric(state: State, config: Config) -> Identity:
    return Identity(
        shape=tuple(state.shape),
        batch_shape=tuple(state.batch.shape[:-1]),
        dtype=state.batch.dtype,
        device=state.batch.device,
    )


METHODS = (Method("template", Config, init, update, memory, metric, reference="Zinkevich 2003"),)
