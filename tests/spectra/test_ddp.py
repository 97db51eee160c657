"""Distributed recording: a real 2-process gloo group on CPU equals one process on the concatenated batch.

Each rank runs DistributedDataParallel on half of every batch (mean loss, equal halves, so DDP's averaged
gradient is the gradient of the mean over the whole batch); the recorder all-reduces its K-FAC (sum, count)
pairs and reads Shampoo from the already averaged p.grad. Two SGD steps with β = 0.9 make the check cover the
discount and a moving model.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from spectra.recorder import FactorRecorder

N, STEPS, BETA = 8, 2, 0.9


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 16, 5),
        nn.Tanh(),
        nn.Linear(5, 3),
    ).double()


def _batch(t: int):
    g = torch.Generator().manual_seed(100 + t)
    return torch.randn(N, 2, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (N,), generator=g)


def _train(model, rec, part: slice) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for t in range(STEPS):
        X, y = _batch(t)
        opt.zero_grad()
        F.cross_entropy(model(X[part]), y[part]).backward()
        rec.step()
        opt.step()


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        ddp = nn.parallel.DistributedDataParallel(_model())
        half = N // world
        with FactorRecorder(ddp, beta=BETA) as rec:
            _train(ddp, rec, slice(rank * half, (rank + 1) * half))
        np.savez(os.path.join(tmp, f"rank{rank}.npz"), **{k: v.numpy() for k, v in rec.factors().items()})
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # 15 s on a loaded 2-core machine: two spawned ranks each import torch
@pytest.mark.timeout(180)  # a rank that dies before the rendezvous would leave the other waiting
def test_two_rank_gloo_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    model = _model()
    with FactorRecorder(model, beta=BETA) as rec:
        _train(model, rec, slice(None))
    want = rec.factors()
    for rank in range(2):
        with np.load(tmp_path / f"rank{rank}.npz", allow_pickle=False) as z:
            assert set(z.files) == set(want)
            for k, v in want.items():
                # float64; the ranks sum two halves where one process sums all rows, and DDP averages two
                # half-batch gradients: only summation order differs, ~1e-16 relative per step
                np.testing.assert_allclose(z[k], v.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
