"""The metric operators against their dense matrices: H·x through ``apply`` = dense() @ vec(x) in float64."""

import pytest
import torch

from memopt_theory.metric import Dense, Diagonal, Identity, Kronecker, LowRankPlusScaled


def _spd(n, gen, batch=()):
    A = torch.randn(*batch, n, n, generator=gen, dtype=torch.float64)
    return A @ A.transpose(-1, -2) + 0.1 * torch.eye(n, dtype=torch.float64)


def _check(metric, shape, batch, gen):
    x = torch.randn(*batch, *shape, generator=gen, dtype=torch.float64)
    H = metric.dense()
    n = metric.n
    ref = (H @ x.reshape(*batch, n, 1)).reshape(x.shape)
    # one matrix product each way: round-off ~n·ε·‖H‖‖x‖ ≪ 1e-12 relative
    torch.testing.assert_close(metric.apply(x), ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))
    q = (x.reshape(*batch, n) * ref.reshape(*batch, n)).sum(-1)
    torch.testing.assert_close(metric.quad(x), q, rtol=1e-12, atol=1e-12 * float(q.abs().max()))


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 3, 2)])
def test_kronecker_apply_equals_dense(batch, shape):
    gen = torch.Generator().manual_seed(len(shape) + len(batch))
    factors = tuple(_spd(n, gen, batch) for n in shape)
    _check(Kronecker(factors=factors, shape=shape), shape, batch, gen)


@pytest.mark.parametrize("batch", [(), (2,)])
def test_other_metrics_apply_equals_dense(batch):
    gen = torch.Generator().manual_seed(0)
    shape = (5,)
    _check(Identity(shape=shape, batch_shape=batch), shape, batch, gen)
    _check(
        Diagonal(h=torch.rand(*batch, 5, generator=gen, dtype=torch.float64), shape=shape), shape, batch, gen
    )
    _check(Dense(H=_spd(5, gen, batch), shape=shape), shape, batch, gen)
    U = torch.linalg.qr(torch.randn(*batch, 5, 2, generator=gen, dtype=torch.float64))[0]
    s = torch.rand(*batch, 2, generator=gen, dtype=torch.float64) + 1
    c = torch.rand(batch, generator=gen, dtype=torch.float64)
    _check(LowRankPlusScaled(U=U, s=s, c=c, shape=shape), shape, batch, gen)
