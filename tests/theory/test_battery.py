"""One battery over every registered method (STYLE.md §2.5): no method escapes it."""

from __future__ import annotations

import pytest
import torch

from memopt_theory import methods
from memopt_theory.memory import counted_bits, counted_scalars, state_bytes
from tests.theory.cases import CASES, grads, run

NAMES = methods.names()
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_every_method_has_a_case():
    assert sorted(CASES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_numbers(name):
    a, b = run(name, seed=0)[0], run(name, seed=0)[0]
    assert torch.equal(a, b)  # bitwise, not allclose


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_keeps_dtype_and_device(name, dtype, device):
    out, _ = run(name, seed=0, dtype=dtype, device=device)
    assert out.dtype == dtype and out.device.type == device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_float32_tracks_float64(name):
    """A float32 run follows the float64 one: 7 steps of well-conditioned updates lose at most ~1e-4 relative
    (float32 ε ≈ 1.2e-7 amplified by eigendecompositions/SVDs with condition numbers ≲ 1e3)."""
    a = run(name, seed=3, dtype=torch.float32)[0].double()
    b = run(name, seed=3, dtype=torch.float64)[0]
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))


@pytest.mark.parametrize("name", NAMES)
def test_batch_axis_equals_loop(name):
    """Three seeds in one batched state give the numbers of three separate runs (to float64 round-off:
    batched BLAS/LAPACK calls may sum in another order, ~1e-15 relative)."""
    case = CASES[name]
    G = grads(case.shape, case.steps, seed=5, batch=(3,))
    batched, _ = run(name, batch=(3,), G=G, seed=5)
    for i in range(3):
        m = methods.get(name)
        st = m.init(case.shape, case.config)
        w = grads(case.shape, 1, seed=1005, batch=(3,))[0][i]
        outs = []
        for g in G[:, i]:
            u, st = m.update(g, st, case.config, param=w)
            w = w - (u if m.full_step else 0.1 * u)
            outs.append(u)
        torch.testing.assert_close(batched[:, i], torch.stack(outs), rtol=1e-9, atol=1e-12)


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*[_clone(v) for v in x])
    if isinstance(x, tuple):
        return type(x)(_clone(v) for v in x) if type(x) is tuple else x
    return x


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)


@pytest.mark.parametrize("name", NAMES)
def test_update_never_mutates_its_input(name):
    m, case = methods.get(name), CASES[name]
    st = m.init(case.shape, case.config)
    w = grads(case.shape, 1, seed=7)[0]
    for g in grads(case.shape, 3, seed=2):
        before = _clone(st)
        _, new = m.update(g, st, case.config, param=w)
        _assert_same(st, before)
        st = new


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nonfinite_grad_is_refused_and_state_kept(name, bad):
    m, case = methods.get(name), CASES[name]
    st = m.init(case.shape, case.config)
    w = torch.zeros(case.shape, dtype=torch.float64)
    _, st = m.update(grads(case.shape, 1)[0], st, case.config, param=w)
    g = grads(case.shape, 1, seed=1)[0]
    g.view(-1)[0] = float(bad)
    before = _clone(st)
    with pytest.raises(ValueError, match="grad must be finite"):
        m.update(g, st, case.config, param=w)
    _assert_same(st, before)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shape_and_dtype_are_refused(name):
    m, case = methods.get(name), CASES[name]
    st = m.init(case.shape, case.config)
    w = torch.zeros(case.shape, dtype=torch.float64)
    wrong = torch.zeros((*case.shape[:-1], case.shape[-1] + 1), dtype=torch.float64)
    with pytest.raises(ValueError, match="shape"):
        m.update(wrong, st, case.config, param=w)
    with pytest.raises(TypeError, match="floating"):
        m.update(torch.zeros(case.shape, dtype=torch.int64), st, case.config, param=w)


@pytest.mark.parametrize("name", NAMES)
def test_state_memory_equals_closed_form(name):
    """Counted from the tensors of an initialised and a stepped state = ALGORITHMS.md §E.2."""
    m, case = methods.get(name), CASES[name]
    for cfg in (case.config, *case.extra_configs):
        for shape in case.shapes:
            st = m.init(shape, cfg)
            g = grads(shape, 2, seed=1)
            w = torch.zeros(shape, dtype=torch.float64)
            for gi in g:
                _, st = m.update(gi, st, cfg, param=w)
            assert counted_scalars(st) == m.memory(shape, cfg), (shape, cfg)
            assert counted_bits(st) == m.bits(shape, cfg), (shape, cfg)
            # float64 scalars are 8 bytes; bits are stored whole bytes per tensor
            assert state_bytes(st) == 8 * m.memory(shape, cfg) + m.bits(shape, cfg) // 8


def test_unknown_method_lists_known_names():
    with pytest.raises(ValueError, match="registered: .*adagrad_full"):
        methods.get("adagrad_ful")
