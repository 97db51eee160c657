"""memopt_theory.optim: the torch.optim adapter over every registered method (issue 6, item 6)."""

from __future__ import annotations

import dataclasses
import io
import warnings

import pytest
import torch

from memopt_theory import methods
from memopt_theory.optim import make_optimizer
from tests.theory.cases import CASES, grads

NAMES = methods.names()

# (lr, Config overrides) for the digits MLP: chosen once by a coarse grid (1e-3 … 1) and kept; small windows
# and ranks because the model has ≤ 256 weights per tensor. A method missing here gets its battery config
# and lr 0.1.
MLP = {
    "ogd": (3.0, {}),
    "adagrad_diag": (0.1, {}),
    "adagrad_full": (1.0, {"delta": 1e-3}),
    "adam": (0.1, {}),
    "s_adagrad": (1.0, {"ell": 4}),
    "ada_fd": (1.0, {"ell": 4, "delta": 0.1}),
    "fd_son": (0.1, {"ell": 4}),
    "rfd_son": (0.1, {"ell": 4}),
    "shampoo": (1.0, {"eps": 1e-4}),
    "s_shampoo": (1.0, {"ell": 4, "eps": 1e-4}),
    "extreme_tensoring": (1.0, {"eps": 1e-8}),
    "adafactor": (0.1, {}),
    "sm3": (1.0, {}),
    "came": (0.01, {}),
    "ggt": (1.0, {"beta1": 0.0, "eps": 1e-2}),
    "mfac": (1.0, {"window": 8, "damp": 1.0}),
    "ef_mfac": (1.0, {"window": 8, "damp": 1.0, "density": 0.1}),
    "ef_ggt": (1.0, {"window": 8, "density": 0.1, "eps": 1e-2}),
    "smmf": (0.1, {}),
    "ldadam": (0.1, {"rank": 4}),
    "galore": (0.3, {"rank": 4, "update_proj_gap": 20, "scale": 1.0}),
    "microadam": (0.1, {"window": 10, "density": 0.1}),
}
MLP_STEPS = 60
# cross-entropy starts at ≈ ln 10 = 2.30 (uniform prediction); every method in the table reached ≤ 0.52 in the
# grid, most ≤ 0.2, so 0.6 (a quarter of the start) separates training from not training with margin
MLP_THRESHOLD = 0.6


def _config_kwargs(name: str, config) -> dict:
    kw = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    kw.pop("lr", None)
    kw.pop("weight_decay", None)
    return kw


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32).reshape(-1, 1, 8, 8)
    X = torch.nn.functional.avg_pool2d(X, 2).reshape(
        -1, 16
    )  # 4×4 images: small tensors for full-matrix methods
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    return X[:512], torch.tensor(y[:512])


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10))


@pytest.mark.parametrize("name", NAMES)
def test_every_method_trains_the_digits_mlp(name):
    X, y = _digits()
    net = _mlp()
    if name in MLP:
        lr, kw = MLP[name]
    else:
        lr, kw = 0.1, _config_kwargs(name, CASES[name].config)
    opt = make_optimizer(name, net.parameters(), lr=lr, **kw)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X), y)
        loss.backward()
        return loss

    first = float(opt.step(closure).detach())
    for _ in range(MLP_STEPS - 1):
        opt.step(closure)
    with torch.no_grad():
        final = float(torch.nn.functional.cross_entropy(net(X), y))
    assert final < MLP_THRESHOLD < first, (name, first, final)


@pytest.mark.parametrize("name", NAMES)
def test_trajectory_equals_the_oco_learner(name):
    """Linear losses f_t(x) = ⟨a_t, x⟩ (gradient a_t whatever x is): the optimizer's parameter and the OCO
    learner's iterate follow the same path. Both call the same update; they differ only in how the step is
    applied (p.sub_(u, alpha=η) vs x − η·u), which can differ by one rounding per step: 1e-12 relative."""
    from online_convex.domains import make_domain
    from online_convex.learners import Learner

    case = CASES[name]
    m = methods.get(name)
    shape, T = case.shape, case.steps
    cfg = case.config
    lr = getattr(cfg, "lr", None) or 0.1
    if m.full_step and getattr(cfg, "lr", None) is None:
        cfg = dataclasses.replace(cfg, lr=lr)
    learner = Learner(name, cfg, eta=lr, domain=make_domain("unconstrained", shape))
    G = grads(shape, T, seed=11)
    x0 = grads(shape, 1, seed=12)[0]
    state = learner.init(shape, (), dtype=torch.float64)
    x = x0.clone()
    p = torch.nn.Parameter(x0.clone())
    kw = _config_kwargs(name, cfg)
    wd = (
        getattr(cfg, "weight_decay", 0.0)
        if "weight_decay" in {f.name for f in dataclasses.fields(cfg)}
        else 0.0
    )
    opt = make_optimizer(name, [p], lr=lr, weight_decay=wd, **kw)
    for g in G:
        x, state = learner.step(g, x, state)
        p.grad = g.clone()
        opt.step()
        torch.testing.assert_close(p.detach(), x, rtol=1e-12, atol=1e-12 * float(x.abs().max() + 1))


def _train(opt, net, X, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()


# full-matrix d×d roots on the 256-weight first layer: ~10-20 s for 15 steps on two cores (STYLE: slow)
_SLOW_ROUND_TRIP = ("adagrad_full", "ada_fd")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_ROUND_TRIP else n for n in NAMES]
)
def test_state_dict_round_trip_with_weights_only_load(name):
    """Every registered method: save after 5 steps, load into a fresh optimizer on a copy of the model: the next
    5 steps are identical (bit for bit: the same float operations on the same stored tensors)."""
    X, y = _digits()
    lr, kw = MLP[name]
    net = _mlp()
    opt = make_optimizer(name, net.parameters(), lr=lr, **kw)
    _train(opt, net, X, y, 5)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)  # raises if anything but tensors and plain data was saved
    net2 = _mlp(seed=1)
    net2.load_state_dict(net.state_dict())
    opt2 = make_optimizer(name, net2.parameters(), lr=lr, **kw)
    opt2.load_state_dict(loaded)
    _train(opt, net, X, y, 5)
    _train(opt2, net2, X, y, 5)
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_param_groups_and_decoupled_weight_decay():
    """Groups carry their own lr/wd/config; a non-full-step method gets decoupled decay p ← p − lr·wd·p − lr·u."""
    a = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor([0.5, 0.5], dtype=torch.float64))
    opt = make_optimizer(
        "ogd",
        [{"params": [a], "lr": 0.1, "weight_decay": 0.5}, {"params": [b], "schedule": "constant"}],
        lr=0.2,
    )
    g_a = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    g_b = torch.tensor([2.0, -2.0], dtype=torch.float64)
    a0, b0 = a.detach().clone(), b.detach().clone()
    a.grad, b.grad = g_a, g_b
    opt.step()
    # ogd "sqrt" at t = 1: u = g/√1; "constant": u = g
    torch.testing.assert_close(a.detach(), a0 - 0.1 * 0.5 * a0 - 0.1 * g_a, rtol=1e-15, atol=0)
    torch.testing.assert_close(b.detach(), b0 - 0.2 * g_b, rtol=1e-15, atol=0)


def test_full_step_lr_comes_from_the_group_so_schedulers_work():
    """With a constant gradient Adam's m̂/√v̂ = g/|g| (up to ε) at every step, so the step is lr·sign(g):
    after StepLR halves the group's lr, the second step is half the first."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = make_optimizer("adam", [p], lr=0.2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    g = torch.tensor([1.0, -2.0, 3.0, -4.0], dtype=torch.float64)
    p.grad = g
    opt.step()
    sched.step()
    p1 = p.detach().clone()
    torch.testing.assert_close(p1, -0.2 * torch.sign(g), rtol=1e-7, atol=0)  # ε = 1e-8 vs |g| ≥ 1
    p.grad = g
    opt.step()
    torch.testing.assert_close(p.detach() - p1, -0.1 * torch.sign(g), rtol=1e-7, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_parameter_with_a_late_first_gradient(name):
    """p2 gets no gradient for 3 steps (no state, untouched), then starts at its own t = 0: its next 3 steps equal
    those of a fresh optimizer that sees only p2's gradients (so nothing of p1's count or window leaks in)."""
    lr, kw = MLP[name]
    kw = {**kw, **({"rank": 2} if name in ("ldadam", "galore") else {})}
    p1 = torch.nn.Parameter(torch.ones(4, 5, dtype=torch.float64))
    p2 = torch.nn.Parameter(torch.ones(5, 4, dtype=torch.float64))
    alone = torch.nn.Parameter(torch.ones(5, 4, dtype=torch.float64))
    opt = make_optimizer(name, [p1, p2], lr=lr, **kw)
    ref = make_optimizer(name, [alone], lr=lr, **kw)
    gen = torch.Generator().manual_seed(0)
    for t in range(6):
        p1.grad = torch.randn(4, 5, generator=gen, dtype=torch.float64)
        p2.grad = torch.randn(5, 4, generator=gen, dtype=torch.float64) if t >= 3 else None
        opt.step()
        if t < 3:
            assert torch.equal(p2.detach(), torch.ones(5, 4, dtype=torch.float64)) and len(opt.state[p2]) == 0
        else:
            alone.grad = p2.grad.clone()
            ref.step()
            assert torch.equal(p2.detach(), alone.detach())
    assert torch.isfinite(p2).all() and not torch.equal(p2.detach(), torch.ones(5, 4, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_route_lr_and_weight_decay_for_every_method(name):
    """Two groups (own lr and weight decay) move exactly as two single-group optimizers with those settings.
    Decay is never dropped: for a direction method the first step with decay differs from the one without by
    exactly −lr·wd·p_0 (decoupled; the direction does not read p), up to one rounding of p (1e-15 relative);
    methods with their own decay rule (full_step, and M-FAC's L2 mode) only have to differ."""
    lr, kw = MLP[name]
    wd = 0.1
    gen = torch.Generator().manual_seed(3)
    G = torch.randn(3, 2, 4, 5, generator=gen, dtype=torch.float64)
    p0 = torch.linspace(-1.0, 1.0, 20, dtype=torch.float64).reshape(4, 5)
    a, b = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    opt = make_optimizer(
        name, [{"params": [a], "lr": lr / 2, "weight_decay": wd}, {"params": [b]}], lr=lr, **kw
    )
    ra, rb = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    opt_a = make_optimizer(name, [ra], lr=lr / 2, weight_decay=wd, **kw)
    opt_b = make_optimizer(name, [rb], lr=lr, **kw)
    for t, (ga, gb) in enumerate(G):
        a.grad, b.grad, ra.grad, rb.grad = ga.clone(), gb.clone(), ga.clone(), gb.clone()
        opt.step()
        opt_a.step()
        opt_b.step()
        assert torch.equal(a.detach(), ra.detach()) and torch.equal(b.detach(), rb.detach())
        if t == 0:
            c = torch.nn.Parameter(p0.clone())  # group a's settings without decay
            opt_c = make_optimizer(name, [c], lr=lr / 2, **kw)
            c.grad = ga.clone()
            opt_c.step()
            diff = a.detach() - c.detach()
            own_rule = methods.get(name).full_step or "weight_decay" in {
                f.name for f in dataclasses.fields(methods.get(name).Config)
            }
            if own_rule:
                assert float(diff.abs().max()) > 0
            else:
                torch.testing.assert_close(diff, -(lr / 2) * wd * p0, rtol=0, atol=1e-15 * (1 + lr))


@pytest.mark.parametrize("bad", ["sparse", "nan"])
def test_bad_gradient_leaves_parameters_and_state_unchanged(bad):
    p1 = torch.nn.Parameter(torch.ones(3, 4, dtype=torch.float64))
    p2 = torch.nn.Parameter(torch.ones(6, dtype=torch.float64))
    opt = make_optimizer("ef_mfac", [p1, p2], lr=0.1, window=4, density=0.5)
    gen = torch.Generator().manual_seed(0)
    p1.grad, p2.grad = (
        torch.randn(3, 4, generator=gen, dtype=torch.float64),
        torch.randn(6, generator=gen, dtype=torch.float64),
    )
    opt.step()
    before = {k: v.clone() for k, v in opt.state[p1].items()}
    w1, w2 = p1.detach().clone(), p2.detach().clone()
    p1.grad = torch.randn(3, 4, generator=gen, dtype=torch.float64)  # fine, but p2's is bad: nothing may move
    g2 = torch.randn(6, generator=gen, dtype=torch.float64)
    if bad == "sparse":
        p2.grad = g2.to_sparse()
        match = "sparse gradient"
    else:
        g2[0] = float("nan")
        p2.grad = g2
        match = "grad must be finite"
    with pytest.raises(ValueError, match=match):
        opt.step()
    assert torch.equal(p1.detach(), w1) and torch.equal(p2.detach(), w2)
    assert all(torch.equal(opt.state[p1][k], v) for k, v in before.items())


def test_bad_options_are_refused():
    p = [torch.nn.Parameter(torch.ones(3))]
    with pytest.raises(ValueError, match="densty is not a ef_mfac.Config field; allowed: .*density"):
        make_optimizer("ef_mfac", p, densty=0.1)
    with pytest.raises(ValueError, match=r"density must be in \(0.0, 1.0\]"):
        make_optimizer("ef_mfac", p, density=2.0)
    with pytest.raises(ValueError, match="lr must be a real number > 0"):
        make_optimizer("adam", p, lr=0.0)
    with pytest.raises(ValueError, match="unknown method 'adamw'"):
        make_optimizer("adamw", p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"projection='identity' needs rank >= min\(n, c\) = 3"):
            opt = make_optimizer(
                "ldadam", [torch.nn.Parameter(torch.ones(3, 8))], rank=2, projection="identity"
            )
            opt.param_groups[0]["params"][0].grad = torch.ones(3, 8)
            opt.step()
