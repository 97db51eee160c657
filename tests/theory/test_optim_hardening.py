"""Hardening of ``make_optimizer`` (issue 14): every registered method × {bfloat16, float16 parameters, lr or
weight decay NaN/inf, an overflowing finite gradient, 0-d…4-d parameters, another method's state dict}.

Together the parametrised tests below are the probe of the issue: each row of it is one test per method.
"""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
from torch import nn

from memopt_theory import methods
from memopt_theory.optim import make_optimizer
from tests.theory.test_optim import MLP

NAMES = methods.names()
HALF = [torch.bfloat16, torch.float16]


def _settings(name: str) -> tuple[float, dict]:
    """The digits-MLP settings of test_optim (lr, Config fields), with rank 2 so GaLore/LDAdam fit every shape
    used here (their rank must not exceed the smaller side of a 6×5 matrix)."""
    lr, kw = MLP[name]
    kw = dict(kw)
    if name in ("galore", "ldadam"):
        kw["rank"] = 2
    return lr, kw


def _config(name: str):
    lr, kw = _settings(name)
    m = methods.get(name)
    if "lr" in {f.name for f in dataclasses.fields(m.Config)}:
        kw["lr"] = lr
    return m.Config(**kw)


def _state(opt, p) -> dict:
    return {k: v.clone() for k, v in opt.state[p].items()}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(x.dtype == b[k].dtype and torch.equal(x, b[k]) for k, x in a.items())


# --- mixed precision ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_parameters_follow_the_float32_trajectory(name, dtype):
    """A bf16/fp16 parameter and a float32 one get the same gradients (values exact in both dtypes, and a linear
    loss, so the gradient does not depend on the iterate). The method state is float32 in both runs and the
    direction does not read the parameter (no weight decay; Adafactor without parameter scaling), so the states
    — hence the float32 directions d_t — must be bit-identical.

    Each step is rounded to the half dtype once: h_t = fl_half(y'_t), y'_t the float32 value of
    y_t = h_{t−1} − lr·d_t (h_{t−1} − d_t for full-step methods). The float32 arithmetic (lr rounded, a product, a
    subtraction) puts y'_t within δ = 4·u32·(|h_{t−1}| + |lr·d_t|) of y_t computed in float64 from the same
    float32 inputs (u32 = 2^-24), and rounding is monotone, so h_t must lie in [fl_half(y_t − δ), fl_half(y_t + δ)]
    — one half value, or two neighbours where y_t is within δ of a midpoint of the half grid (δ is ~2^-13 of a
    bf16 spacing, ~2^-10 of an fp16 one). d_t comes from the pure update on a float32 state stepped beside the
    optimizer. Rounding twice — the direction to half first, then the update — is off by up to lr·u_half·|d_t|
    and leaves that interval; the test checks that its data make the two roundings differ (so it would fail).

    Over the run, the half trajectory stays near the float32 one: round to nearest gives |fl(y) − y| ≤ u·|fl(y)|
    (u = eps/2, plus half the subnormal spacing below the normal range), and each float32 subtraction/product
    errs by ≤ u32·(|x| + |lr·d|), so elementwise
        |h_t − r_t| ≤ Σ_{s≤t} [u_half·|h_s| + sub/2 + 2·u32·(|h_{s−1}| + |r_{s−1}| + 2·|r_s − r_{s−1}|)]
    (|lr·d_s| ≤ 2·|r_s − r_{s−1}| with room to spare). State kept in half precision, a doubly rounded step or a
    NaN (main: MicroAdam's first bf16 step, Adam's third fp16 step, 12 methods' raw errors) all break this."""
    lr, kw = _settings(name)
    if name == "adafactor":
        kw["scale_parameter"] = False  # its step scales with RMS(param): the direction would read the iterate
    m = methods.get(name)
    cfg = m.Config(**kw, **({"lr": lr} if "lr" in {f.name for f in dataclasses.fields(m.Config)} else {}))
    shape, T = (6, 5), 12
    gen = torch.Generator().manual_seed(5)
    p0 = (0.1 * torch.randn(shape, generator=gen)).to(dtype)  # small start: the steps dominate |p|
    G = torch.randn((T, *shape), generator=gen).to(dtype)
    half, ref = nn.Parameter(p0.clone()), nn.Parameter(p0.float())
    opt_h = make_optimizer(name, [half], lr=lr, **kw)
    opt_r = make_optimizer(name, [ref], lr=lr, **kw)
    st = m.init(shape, cfg, dtype=torch.float32)
    fi = torch.finfo(dtype)
    u_h, u_32, sub = fi.eps / 2, torch.finfo(torch.float32).eps / 2, fi.tiny * fi.eps
    tol = torch.zeros(shape)
    twice_differs = 0
    for g in G:
        hp, rp = half.detach().float(), ref.detach().clone()
        half.grad, ref.grad = g.clone(), g.float()
        opt_h.step()
        opt_r.step()
        h, r = half.detach().float(), ref.detach()
        assert half.dtype == dtype and torch.isfinite(h).all()
        assert _same_state(opt_h.state[half], opt_r.state[ref])  # float32 state, identical arithmetic
        d, st = m.update(g.float(), st, cfg, param=hp)
        step = d.double() if m.full_step else lr * d.double()
        y, delta = hp.double() - step, 4 * u_32 * (hp.double().abs() + step.abs())
        lo, hi = (y - delta).to(dtype).double(), (y + delta).to(dtype).double()
        assert ((lo <= h.double()) & (h.double() <= hi)).all(), (name, float((h.double() - y).abs().max()))
        d2 = d.to(dtype).float()  # the direction rounded to half first: the double-rounding mutation
        twice = hp.sub(d2 if m.full_step else d2 * lr).to(dtype).double()
        twice_differs += int(((twice < lo) | (twice > hi)).sum())
        tol += u_h * h.abs() + sub / 2 + 2 * u_32 * (hp.abs() + rp.abs() + 2 * (r - rp).abs())
        assert ((h - r).abs() <= tol).all(), (name, float((h - r).abs().max()), float(tol.max()))
    # the checks have power: double rounding leaves the interval somewhere, and the trajectory moved far more
    # than the rounding allowance
    assert twice_differs > 0
    assert float((ref.detach() - p0.float()).abs().max()) > 4 * float(tol.max())


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_pure_update_in_half_precision_keeps_float32_state(name, dtype):
    """The pure API: ``init(dtype=half)`` keeps float32 state (stated in ``resolve_dtype``) and ``update`` with a
    half gradient returns the float32-state direction rounded once to the gradient's dtype, with the same new
    state as a float32 run (exact: the half gradient is exactly representable in float32)."""
    m, cfg = methods.get(name), _config(name)
    gen = torch.Generator().manual_seed(2)
    st_h, st_f = m.init((6, 5), cfg, dtype=dtype), m.init((6, 5), cfg, dtype=torch.float32)
    x = (0.1 * torch.randn(6, 5, generator=gen)).to(dtype)
    for _ in range(3):
        g = torch.randn(6, 5, generator=gen).to(dtype)
        d_h, st_h = m.update(g, st_h, cfg, param=x)
        d_f, st_f = m.update(g.float(), st_f, cfg, param=x.float())
        assert d_h.dtype == dtype and torch.equal(d_h, d_f.to(dtype))
        leaves_h = [t for t in _tensors(st_h)]
        leaves_f = [t for t in _tensors(st_f)]
        assert all(a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(leaves_h, leaves_f, strict=True))
        assert all(t.dtype == torch.float32 for t in leaves_h if t.is_floating_point())


def _tensors(state) -> list:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, tuple):
        return [t for x in state for t in _tensors(x)]
    return []


@pytest.mark.parametrize("dtype", HALF, ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_state_dict_keeps_float32_state(name, dtype):
    """torch's ``load_state_dict`` casts floating state to the parameter's dtype; a bf16/fp16 parameter's float32
    state must come back float32, so 3 steps after save → ``torch.load(weights_only=True)`` → load equal (bit for
    bit) the 3 steps of the optimizer that was never saved."""
    lr, kw = _settings(name)
    gen = torch.Generator().manual_seed(4)
    p = nn.Parameter(torch.randn(6, 5, generator=gen).to(dtype))
    opt = make_optimizer(name, [p], lr=lr * 0.1, **kw)
    G = torch.randn(6, 6, 5, generator=gen).to(dtype)
    for g in G[:3]:
        p.grad = g.clone()
        opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    q = nn.Parameter(p.detach().clone())
    opt2 = make_optimizer(name, [q], lr=lr * 0.1, **kw)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    assert _same_state(opt2.state[q], opt.state[p])
    for g in G[3:]:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
    assert torch.equal(p.detach(), q.detach())


# --- learning rate and weight decay ---------------------------------------------------------------------------

BAD_LR = [float("nan"), float("inf"), -float("inf"), -0.1, 0.0]
BAD_WD = [float("nan"), float("inf"), -0.1]


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_or_negative_lr_and_weight_decay_are_refused_at_construction(name):
    """``value < 0`` is False for NaN: every bad value must be named, for every method (main: 13 took lr=nan)."""
    lr, kw = _settings(name)
    for bad in BAD_LR:
        with pytest.raises(
            ValueError, match=rf"make_optimizer: lr must be a real number > 0 and finite; got {bad}"
        ):
            make_optimizer(name, [nn.Parameter(torch.ones(3))], lr=bad, **kw)
    for bad in BAD_WD:
        with pytest.raises(
            ValueError, match=rf"make_optimizer: weight_decay must be .*>= 0 and finite; got {bad}"
        ):
            make_optimizer(name, [nn.Parameter(torch.ones(3))], lr=lr, weight_decay=bad, **kw)
    with pytest.raises(ValueError, match=r"param group 1: lr must be a real number > 0 and finite; got nan"):
        make_optimizer(
            name, [{"params": [nn.Parameter(torch.ones(3))]}, {"params": [], "lr": math.nan}], **kw
        )


@pytest.mark.parametrize("name", NAMES)
def test_a_group_lr_made_non_finite_or_negative_later_is_refused_at_step(name):
    """A scheduler or a hand edit sets the group's lr (or decay) to NaN/inf/negative after construction: step()
    refuses it naming the group, and the parameter and state stay as they were."""
    lr, kw = _settings(name)
    gen = torch.Generator().manual_seed(1)
    p = nn.Parameter(torch.randn(6, 5, generator=gen, dtype=torch.float64))
    opt = make_optimizer(name, [p], lr=lr, **kw)
    p.grad = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    opt.step()
    before, w = _state(opt, p), p.detach().clone()
    p.grad = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    for key, bad in [("lr", math.nan), ("lr", math.inf), ("lr", -lr), ("weight_decay", math.nan)]:
        opt.param_groups[0][key] = bad
        with pytest.raises(
            ValueError, match=rf"{name} optimizer: param group 0: {key} must be .* finite; got"
        ):
            opt.step()
        assert torch.equal(p.detach(), w) and _same_state(opt.state[p], before)
        opt.param_groups[0][key] = lr if key == "lr" else 0.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["fp64", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_a_step_at_lr_0_advances_the_state_and_leaves_the_parameter(name, dtype):
    """torch's semantics of lr = 0 (a schedule annealed to 0): the parameter stays bit for bit — with weight decay
    0.1, so decoupled decay (lr·wd·p), GaLore's lr·wd·(p − step) and EFCP's η-free decay must all vanish — and the
    method state advances exactly as in the limit lr → 0. The limit is a twin optimizer that took the same two
    steps and then the same gradient at lr = 1e-300: a state that does not carry lr is bit-identical to the
    twin's; one that does (Adafactor's momentum m ← β1·m + (1 − β1)·α·U, α = lr·RMS(p), β1 = 0.9 here) differs
    from the twin's by (1 − β1)·1e-300·|α·U|/lr ≪ 1e-280 — where the optimizer stepping with a placeholder lr
    would be off by ~1e-2. FD-SON/RFD-SON, whose lr scales the absorbed rows by (lr·√t)^{-1/2}, keep their state
    (stated in the module). A state dict saved at lr = 0 loads back. Main/before: every full-step method refused
    lr = 0 ('adam.Config: lr must be in (0.0, inf]'), and a saved group with lr = 0 was refused on load."""
    lr, kw = _settings(name)
    if name == "adafactor":
        kw["beta1"] = 0.9
    gen = torch.Generator().manual_seed(11)
    p0 = torch.randn(6, 5, generator=gen).to(dtype)
    G = torch.randn(3, 6, 5, generator=gen).to(dtype)
    p, twin = nn.Parameter(p0.clone()), nn.Parameter(p0.clone())
    opt = make_optimizer(name, [p], lr=lr, weight_decay=0.1, **kw)
    opt_t = make_optimizer(name, [twin], lr=lr, weight_decay=0.1, **kw)
    for g in G[:2]:
        p.grad, twin.grad = g.clone(), g.clone()
        opt.step()
        opt_t.step()
    before, w = _state(opt, p), p.detach().clone()
    assert not torch.equal(w, p0)  # the first steps moved: lr = 0 is what stops it
    opt.param_groups[0]["lr"], opt_t.param_groups[0]["lr"] = 0.0, 1e-300
    p.grad, twin.grad = G[2].clone(), G[2].clone()
    opt.step()
    assert p.dtype == dtype and torch.equal(p.detach(), w)
    if name in ("fd_son", "rfd_son"):  # (their twin has no limit: (1e-300·t)^{-1/2} overflows float32)
        assert _same_state(opt.state[p], before)
    else:
        opt_t.step()
        assert not _same_state(opt.state[p], before)  # the gradient was absorbed
        got, want = opt.state[p], opt_t.state[twin]
        assert got.keys() == want.keys()
        for k in got:
            assert got[k].dtype == want[k].dtype
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-280)
    q = nn.Parameter(w.clone())
    opt2 = make_optimizer(name, [q], lr=lr, weight_decay=0.1, **kw)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == 0.0 and _same_state(opt2.state[q], opt.state[p])


def test_a_cosine_schedule_annealed_to_0_runs_to_its_end():
    """CosineAnnealingLR(T_max=6, eta_min=0) gives lr = 0 exactly at its last step: Adam must take all 7 steps,
    the last leaving the weights where step 6 put them."""
    p = nn.Parameter(torch.ones(4, 3, dtype=torch.float64))
    opt = make_optimizer("adam", [p], lr=0.1, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6, eta_min=0.0)
    for i in range(7):
        if i == 6:
            assert opt.param_groups[0]["lr"] == 0.0
            w = p.detach().clone()
        p.grad = torch.full((4, 3), 1.0 + i, dtype=torch.float64)
        opt.step()
        sched.step()
    assert torch.equal(p.detach(), w) and float(opt.state[p]["s2"]) == 7  # Adam's t advanced at lr = 0


# --- overflowing gradients --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_an_update_that_overflows_is_refused_and_leaves_everything_as_it_was(name):
    """A finite float32 gradient of 1e20 (its square, 1e40, exceeds float32's 3.4e38). Either the step is refused
    with one ValueError — then parameter and state are unchanged, and the next good step equals that of a twin
    optimizer that never saw the bad gradient — or it is taken, and then the state did change (no silent skip)
    and state and parameter are finite. Main: 14 methods stored inf/NaN state (s_adagrad then raised a raw
    LinAlgError, adagrad_diag never moved again), mfac/ef_mfac/ef_ggt raised raw LinAlgErrors."""
    lr, kw = _settings(name)
    gen = torch.Generator().manual_seed(3)
    p0 = torch.randn(6, 5, generator=gen)
    G = torch.randn(2, 6, 5, generator=gen)
    p, twin = nn.Parameter(p0.clone()), nn.Parameter(p0.clone())
    opt, opt_t = make_optimizer(name, [p], lr=lr, **kw), make_optimizer(name, [twin], lr=lr, **kw)
    p.grad, twin.grad = G[0].clone(), G[0].clone()
    opt.step()
    opt_t.step()
    before, w = _state(opt, p), p.detach().clone()
    p.grad = torch.full((6, 5), 1e20)
    try:
        opt.step()
    except ValueError as e:
        assert f"{name} optimizer: parameter 0 of param group 0 (shape (6, 5)): step refused" in str(e)
        assert "largest |grad| = 1e+20; its square overflows float32" in str(e)
        assert torch.equal(p.detach(), w) and _same_state(opt.state[p], before)
        p.grad, twin.grad = G[1].clone(), G[1].clone()
        opt.step()
        opt_t.step()
        assert torch.equal(p.detach(), twin.detach()) and _same_state(opt.state[p], opt_t.state[twin])
    else:
        assert not _same_state(opt.state[p], before)
        assert torch.isfinite(p).all()
        assert all(torch.isfinite(v).all() for v in opt.state[p].values() if v.is_floating_point())


@pytest.mark.parametrize("name", ["adagrad_full", "shampoo"])
def test_a_float64_overflow_in_an_eigendecomposition_is_one_clear_error(name):
    """adagrad_full/shampoo with a 1e200 float64 gradient: the factor holds 1e400 = inf, which the
    eigendecomposition refuses; main raised 'sym_eigh: A must be finite' without naming the method or the cause."""
    lr, kw = _settings(name)
    p = nn.Parameter(torch.ones(3, 2, dtype=torch.float64))
    opt = make_optimizer(name, [p], lr=lr, **kw)
    p.grad = torch.full((3, 2), 1e200, dtype=torch.float64)
    with pytest.raises(ValueError) as info:
        opt.step()
    msg = str(info.value)
    assert msg.startswith(f"{name} optimizer: parameter 0 of param group 0 (shape (3, 2)): step refused")
    assert "largest |grad| = 1e+200; its square overflows float64" in msg and "\n" not in msg
    assert len(opt.state[p]) == 0 and torch.equal(p.detach(), torch.ones(3, 2, dtype=torch.float64))


def test_a_gradient_on_the_meta_device_is_refused():
    p = nn.Parameter(torch.empty(4, 3, device="meta"))
    opt = make_optimizer("adam", [p], lr=0.1)
    p.grad = torch.empty(4, 3, device="meta")
    with pytest.raises(ValueError, match=r"adam optimizer: parameter 0 .* is on the meta device"):
        opt.step()
    m = methods.get("adagrad_full")
    cfg = m.Config()
    with pytest.raises(ValueError, match=r"adagrad_full.update: grad is on the meta device"):
        m.update(torch.empty(3, device="meta", dtype=torch.float64), m.init((3,), cfg), cfg)


# --- parameter shapes ---------------------------------------------------------------------------------------------

SHAPES = [(), (5,), (3, 4), (2, 3, 2, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("name", NAMES)
def test_every_method_steps_parameters_of_any_order(name, shape):
    """0-d to 4-d float64 parameters: the optimizer's 4 steps equal the pure update's, applied by hand
    (x ← x − lr·d, or x ← x − d for full-step methods) on the method's shape — (1,) for a 0-d parameter (the
    optimizer's stated convention) — up to the one rounding by which x.sub(d, alpha=lr) and x − lr·d may differ
    (1e-13 relative over 4 steps). Main: 7 methods crashed on 0-d with 'reshape() missing 1 required argument'."""
    lr, kw = _settings(name)
    m, cfg = methods.get(name), _config(name)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    p = nn.Parameter(x.clone())
    opt = make_optimizer(name, [p], lr=lr, **kw)
    mshape = shape or (1,)
    st = m.init(mshape, cfg, dtype=torch.float64)
    for _ in range(4):
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        d, st = m.update(g.reshape(mshape), st, cfg, param=x.reshape(mshape))
        x = x - (d if m.full_step else lr * d).reshape(shape)
        assert p.shape == shape
        torch.testing.assert_close(p.detach(), x, rtol=1e-13, atol=1e-13)
    assert torch.isfinite(p).all()


@pytest.mark.parametrize("name", NAMES)
def test_pure_update_on_a_0d_shape_equals_the_length_1_vector(name):
    """Where ``init`` accepts shape () the scalar runs its own code path (no axes to reduce or reshape); it must
    give the (1,) vector's directions exactly. Methods defined only for ≥ 1 axes refuse () with a clear error."""
    m, cfg = methods.get(name), _config(name)
    try:
        s0 = m.init((), cfg, dtype=torch.float64)
    except ValueError as e:
        assert "shape must have at least 1 axes; got ()" in str(e)
        return
    s1 = m.init((1,), cfg, dtype=torch.float64)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn((), generator=gen, dtype=torch.float64)
    for _ in range(4):
        g = torch.randn((), generator=gen, dtype=torch.float64)
        d0, s0 = m.update(g, s0, cfg, param=x)
        d1, s1 = m.update(g.reshape(1), s1, cfg, param=x.reshape(1))
        assert d0.shape == () and torch.equal(d0, d1.reshape(()))


# --- state dicts --------------------------------------------------------------------------------------------------


def _other(name: str) -> str:
    return NAMES[(NAMES.index(name) + 1) % len(NAMES)]


@pytest.mark.parametrize("name", NAMES)
def test_another_methods_state_dict_is_refused_naming_the_mismatch(name):
    """The next registered method's state dict (after one step on the same parameter): refused before anything
    changes, naming both methods; with its ``method`` key removed (a dict saved before the key existed) the
    refusal names the foreign Config options or the stored tensors against this method's. torch.optim.Adam's
    dict is refused too. Main: IndexError 'pop from empty list', size mismatches at the next step, or a silent
    load."""
    other = _other(name)
    gen = torch.Generator().manual_seed(9)
    p = nn.Parameter(torch.randn(6, 5, generator=gen))
    lr_o, kw_o = _settings(other)
    o = make_optimizer(other, [p], lr=lr_o, **kw_o)
    p.grad = torch.randn(6, 5, generator=gen)
    o.step()
    foreign = o.state_dict()
    lr, kw = _settings(name)
    opt = make_optimizer(name, [p], lr=lr, **kw)
    opt.step()
    mine = opt.state_dict()
    with pytest.raises(
        ValueError, match=rf"^{name} optimizer: this state dict was saved by the '{other}' optimizer"
    ):
        opt.load_state_dict(foreign)
    unnamed = {k: v for k, v in foreign.items() if k != "method"}
    with pytest.raises(
        ValueError,
        match=rf"^{name} optimizer: the (state dict's param group 0 (has option\(s\) \w+|does not fit parameter 0|is not a configuration of {name})|"
        rf"saved state of parameter 0 "
        rf"\(shape \(6, 5\)\) is not a state of {name})",
    ):
        opt.load_state_dict(unnamed)
    t = torch.optim.Adam([p], lr=0.1)
    t.step()
    with pytest.raises(
        ValueError, match=rf"^{name} optimizer: the state dict's param group 0 has option\(s\)"
    ):
        opt.load_state_dict(t.state_dict())
    after = opt.state_dict()
    assert after["param_groups"] == mine["param_groups"] and after["state"].keys() == mine["state"].keys()
    assert all(_same_state(after["state"][i], mine["state"][i]) for i in mine["state"])


def test_the_same_method_with_other_settings_is_refused_naming_the_tensors():
    """s_adagrad with ℓ = 4 keeps a 30×3 basis; a dict saved with ℓ = 8 holds 30×7: the message lists both. The
    same dict with its own ℓ and without the ``method`` key (as saved before the key existed) still loads, and
    continues exactly as the optimizer that saved it."""
    gen = torch.Generator().manual_seed(10)
    p = nn.Parameter(torch.randn(6, 5, generator=gen))
    a = make_optimizer("s_adagrad", [p], lr=0.1, ell=8)
    p.grad = torch.randn(6, 5, generator=gen)
    a.step()
    sd = a.state_dict()
    bad = {**sd, "param_groups": [{**sd["param_groups"][0], "ell": 4}]}
    q = nn.Parameter(p.detach().clone())
    b = make_optimizer("s_adagrad", [q], lr=0.1, ell=4)
    with pytest.raises(
        ValueError, match=r"saved \{s0: \(30, 7\) float32.*s_adagrad keeps 3 tensors \[\(30, 3\)"
    ):
        b.load_state_dict(bad)
    assert len(b.state) == 0 and b.param_groups[0]["ell"] == 4
    c = make_optimizer("s_adagrad", [q], lr=0.1, ell=8)
    c.load_state_dict({k: v for k, v in sd.items() if k != "method"})
    p.grad = torch.randn(6, 5, generator=gen)
    q.grad = p.grad.clone()
    a.step()
    c.step()
    assert torch.equal(p.detach(), q.detach())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_agrees_with_isfinite(dtype):
    """``validation.all_finite`` (one aminmax reduction) against the elementwise definition
    ``torch.isfinite(x).all()``: NaN, ±inf anywhere (first, middle, last), the dtype's extremes and subnormals,
    0-d and empty tensors."""
    from memopt_theory.validation import all_finite

    fi = torch.finfo(dtype)
    base = torch.tensor([fi.max, -fi.max, fi.tiny * fi.eps, -0.0, 0.0, 1.0], dtype=dtype)
    cases = [
        base,
        torch.tensor(2.0, dtype=dtype),
        torch.empty(0, dtype=dtype),
        torch.empty(3, 0, dtype=dtype),
    ]
    for v in (math.nan, math.inf, -math.inf):
        for i in (0, 2, 5):
            x = base.clone()
            x[i] = v
            cases.append(x)
        cases.append(torch.tensor(v, dtype=dtype))
    for x in cases:
        assert bool(all_finite(x)) == bool(torch.isfinite(x).all()), x
