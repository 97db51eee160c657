"""FactorRecorder refuses a NaN/inf statistic at accumulation, naming the layer (issue 14).

Main accumulated it silently: every later snapshot of that factor was NaN. Now ``step()`` computes every layer's
statistics, checks them, and only then adds them: a refused step leaves every total (and ``num_updates``) as it
was, so the next good step gives exactly the factors of a recorder that never saw the bad one.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spectra.recorder import FactorRecorder


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _backward(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad()
    F.cross_entropy(model(X), y).backward()


# K-FAC reads activations and output gradients, not p.grad: a bad p.grad is a Shampoo case only
@pytest.mark.parametrize("kinds, where", [("shampoo", "grad"), ("shampoo", "input"), ("kfac", "input")])
def test_a_non_finite_statistic_is_refused_naming_the_layer(kinds, where):
    """A NaN in layer 2's weight gradient (Shampoo reads p.grad) or in the input batch (K-FAC's A and the output
    gradients of every layer): step() raises naming the first affected layer; the totals equal those of a twin
    recorder that saw only the good steps, before and after one more good step (bit for bit: same operations)."""
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(8, 4, generator=gen, dtype=torch.float64), torch.randint(0, 3, (8,), generator=gen))
        for _ in range(3)
    ]
    model, twin = _model(), _model()
    with FactorRecorder(model, kinds=kinds) as rec, FactorRecorder(twin, kinds=kinds) as ref:
        for m, r in ((model, rec), (twin, ref)):
            _backward(m, *batches[0])
            r.step()
        X, y = batches[1]
        if where == "input":
            X = X.clone()
            X[0, 0] = float("nan")
        _backward(model, X, y)
        if where == "grad":
            model[2].weight.grad[1, 1] = float("inf")
        layer = "2" if where == "grad" else "0"
        with pytest.raises(
            ValueError, match=rf"FactorRecorder.step: layer '{layer}': [\w.]+ has \d+ NaN/inf entries"
        ):
            rec.step()
        assert rec.num_updates == ref.num_updates == 1
        for k, v in ref.factors().items():
            assert torch.equal(rec.factors()[k], v)
        for m, r in ((model, rec), (twin, ref)):
            _backward(m, *batches[2])
            r.step()
        for k, v in ref.factors().items():
            assert torch.isfinite(v).all() and torch.equal(rec.factors()[k], v)
