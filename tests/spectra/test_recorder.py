"""FactorRecorder against brute-force per-example float64 computations and against curvlinops' KFAC.

Conventions under test (spectra.kfac): Shampoo L = Σβ^{T−t}G_tG_tᵀ, R = Σβ^{T−t}G_tᵀG_t from p.grad as the loss
gives it; K-FAC A_t = mean over input rows of a aᵀ (ones column for a bias), G_t = (1/N_ℓ)Σ_r ĝ_rĝ_rᵀ with ĝ the
output gradient of the unreduced loss; the same A and G whether the loss is mean- or sum-reduced.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from curvlinops import KFACLinearOperator
from torch import nn

from spectra.recorder import FactorRecorder

# float64 throughout: brute force and recorder differ only by summation order, ~1e-15 relative; 1e-10
# leaves five orders of margin and still catches any scale or transposition error (those are O(1)).
TOL = dict(rtol=1e-10, atol=1e-12)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6, bias=False), nn.Tanh(), nn.Linear(6, 3)
    ).double()


def cnn() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 4, 2, stride=2, bias=False),
        nn.Flatten(),
        nn.Linear(36, 3),
    ).double()


def batch(model: nn.Sequential, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 5) if isinstance(model[0], nn.Linear) else (n, 2, 6, 6)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def patches_by_loop(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """im2col by explicit slicing (independent of F.unfold): (P, in·kh·kw) for one example x (in, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    xp = F.pad(x, (pw, pw, ph, ph))
    H, W = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    return torch.stack(
        [xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(-1) for i in range(H) for j in range(W)]
    )


def brute_force(model: nn.Sequential, X, y) -> dict[str, torch.Tensor]:
    """One step's factors from a loop over examples: per-example inputs, output gradients and weight gradients."""
    N = X.shape[0]
    layers = {str(i): m for i, m in enumerate(model) if isinstance(m, (nn.Linear, nn.Conv2d))}
    A = {k: 0.0 for k in layers}
    G = {k: 0.0 for k in layers}
    wgrad = {k: 0.0 for k in layers}
    for n in range(N):
        h, ins, outs = X[n : n + 1], {}, {}
        for i, m in enumerate(model):
            if str(i) in layers:
                ins[str(i)] = h.detach()
                h = m(h)
                outs[str(i)] = h
            else:
                h = m(h)
        loss_n = F.cross_entropy(h, y[n : n + 1])  # one example: the unreduced loss term ℓ_n
        keys = list(layers)
        grads = torch.autograd.grad(loss_n, [outs[k] for k in keys] + [layers[k].weight for k in keys])
        for j, k in enumerate(keys):
            m, g_out, gw = layers[k], grads[j][0], grads[len(keys) + j]
            if isinstance(m, nn.Conv2d):
                a = patches_by_loop(m, ins[k][0])
                g_rows = g_out.reshape(g_out.shape[0], -1).T  # (P, out), positions row-major like the patches
            else:
                a, g_rows = ins[k], g_out[None]
            if m.bias is not None:
                a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
            A[k] = A[k] + a.T @ a
            G[k] = G[k] + g_rows.T @ g_rows
            wgrad[k] = wgrad[k] + gw.reshape(gw.shape[0], -1) / N  # mean loss: gradient is the mean
    rows = {
        k: N * (patches_by_loop(m, X[0]).shape[0] if isinstance(m, nn.Conv2d) else 1)
        for k, m in layers.items()
    }
    out = {}
    for k in layers:
        out[f"{k}:kfac_A"] = A[k] / rows[k]
        out[f"{k}:kfac_G"] = G[k] / N
        out[f"{k}:shampoo_L"] = wgrad[k] @ wgrad[k].T
        out[f"{k}:shampoo_R"] = wgrad[k].T @ wgrad[k]
    return out


def record(model, batches, *, reduction="mean", **kw) -> dict[str, torch.Tensor]:
    with FactorRecorder(model, reduction=reduction, **kw) as rec:
        for X, y in batches:
            model.zero_grad()
            F.cross_entropy(model(X), y, reduction=reduction).backward()
            rec.step()
    return rec.factors()


@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
def test_every_factor_equals_brute_force_with_discount(make):
    """Three steps with β = 0.9: F = 0.81·F_1 + 0.9·F_2 + F_3 for every layer and factor."""
    model = make()
    batches = [batch(model, 4 + t, seed=t) for t in range(3)]
    got = record(model, batches, beta=0.9)
    per_step = [brute_force(model, X, y) for X, y in batches]  # weights never change: no optimizer step
    assert set(got) == set(per_step[0])
    for k, v in got.items():
        want = 0.81 * per_step[0][k] + 0.9 * per_step[1][k] + per_step[2][k]
        torch.testing.assert_close(v, want, **TOL)


def test_every_n_accumulates_only_those_steps():
    """every=2 over four step() calls: steps 0 and 2 are summed (β = None), 1 and 3 ignored."""
    model = mlp()
    batches = [batch(model, 5, seed=t) for t in range(4)]
    got = record(model, batches, every=2)
    bf = [brute_force(model, X, y) for X, y in (batches[0], batches[2])]
    for k, v in got.items():
        torch.testing.assert_close(v, bf[0][k] + bf[1][k], **TOL)


@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
def test_mean_and_sum_reduction_conventions(make):
    """K-FAC A, G are the same for a mean- and a sum-reduced loss; Shampoo follows p.grad: sum = N²·mean."""
    model = make()
    N = 6
    X, y = batch(model, N, seed=3)
    mean = record(model, [(X, y)], reduction="mean")
    summ = record(model, [(X, y)], reduction="sum")
    for k in mean:
        scale = N**2 if "shampoo" in k else 1
        torch.testing.assert_close(summ[k], scale * mean[k], **TOL)


@pytest.mark.parametrize("make", [mlp, cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_kfac_equals_curvlinops(make, reduction):
    """curvlinops' empirical-Fisher KFAC (expand, bias in A): A equal; G equal (mean) or N·ours (sum)."""
    model = make()
    N = 7
    X, y = batch(model, N, seed=4)
    params = [p for p in model.parameters()]
    op = KFACLinearOperator(
        model,
        nn.CrossEntropyLoss(reduction=reduction),
        params,
        [(X, y)],
        fisher_type="empirical",
        separate_weight_and_bias=False,
        check_deterministic=False,
    )
    op.compute_kronecker_factors()
    sd = op.state_dict()
    got = record(model, [(X, y)], kinds=("kfac",), reduction=reduction)
    for name, A in sd["input_covariances"].items():
        torch.testing.assert_close(got[f"{name}:kfac_A"], A, **TOL)
    for name, G in sd["gradient_covariances"].items():
        scale = (
            N if reduction == "sum" else 1
        )  # curvlinops approximates Σ_n for a sum loss, the mean for a mean loss
        torch.testing.assert_close(scale * got[f"{name}:kfac_G"], G, **TOL)


def test_sampled_fisher_equals_curvlinops_mc():
    """fisher='sampled' draws y ~ softmax(f) like curvlinops' MC Fisher; with the same seed the labels agree."""
    model = mlp()
    X, y = batch(model, 9, seed=5)
    seed = 123
    op = KFACLinearOperator(
        model,
        nn.CrossEntropyLoss(),
        list(model.parameters()),
        [(X, y)],
        fisher_type="mc",
        seed=seed,
        separate_weight_and_bias=False,
        check_deterministic=False,
    )
    op.compute_kronecker_factors()
    sd = op.state_dict()
    with FactorRecorder(model, kinds="kfac", fisher="sampled", seed=seed) as rec:
        out = model(X)
        rec.sampled_backward(out)
        assert all(p.grad is None for p in model.parameters())  # the sampled backward leaves p.grad alone
        F.cross_entropy(out, y).backward()  # the training backward must not feed G
        rec.step()
    got = rec.factors()
    for name, G in sd["gradient_covariances"].items():
        torch.testing.assert_close(got[f"{name}:kfac_G"], G, **TOL)


def test_sequence_terms_per_example():
    """Linear on (N, S, d), loss averaged over N·S tokens: A is the mean over N·S rows, G = (1/NS)Σ ĝĝᵀ."""
    torch.manual_seed(2)
    lin = nn.Linear(4, 5).double()
    N, S = 3, 6
    X = torch.randn(N, S, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (N, S))
    with FactorRecorder(lin, kinds="kfac", terms_per_example=S) as rec:
        F.cross_entropy(lin(X).reshape(-1, 5), y.reshape(-1)).backward()
        rec.step()
    got = rec.factors()
    a = torch.cat([X.reshape(-1, 4), torch.ones(N * S, 1, dtype=torch.float64)], 1)
    # ∂ℓ_{n,s}/∂f_{n,s} = softmax(f) − onehot(y), computed in closed form rather than by autograd
    f = lin(X).detach().reshape(-1, 5)
    g = f.softmax(1) - F.one_hot(y.reshape(-1), 5).double()
    torch.testing.assert_close(got[":kfac_A"], a.T @ a / (N * S), **TOL)
    torch.testing.assert_close(got[":kfac_G"], g.T @ g / (N * S), **TOL)


def test_filters_select_factors_and_layers():
    model = mlp()  # factor dims: 0: L7 R5 A6 G7; 2: L6 R7 A7 G6; 4: L3 R6 A7 G3
    X, y = batch(model, 4, seed=0)
    got = record(model, [(X, y)], min_dim=6, max_dim=6)
    assert set(got) == {"0:kfac_A", "2:shampoo_L", "2:kfac_G", "4:shampoo_R"}
    got = record(model, [(X, y)], kinds=("shampoo",), include="[02]", exclude="2")
    assert set(got) == {"0:shampoo_L", "0:shampoo_R"}


def test_hooks_removed_on_exit_and_factors_kept():
    model = mlp()
    X, y = batch(model, 4, seed=0)
    with FactorRecorder(model) as rec:
        F.cross_entropy(model(X), y).backward()
        rec.step()
    before = rec.factors()
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    model.zero_grad()
    F.cross_entropy(model(X), y).backward()  # no hook may fire any more
    after = rec.factors()
    assert rec.num_updates == 1 and all(torch.equal(before[k], after[k]) for k in before)


def test_factor_shapes_for_the_null():
    model = cnn()
    X, y = batch(model, 3, seed=0)
    with FactorRecorder(model) as rec:
        F.cross_entropy(model(X), y).backward()
        rec.step()
    shapes = rec.factor_shapes()
    # conv 0: weight (3, 2·3·3); 3 examples × 36 positions; conv 2: weight (4, 12), 3 × 9 positions
    assert shapes["0:shampoo_L"] == (3, 18) and shapes["0:shampoo_R"] == (18, 3)
    assert shapes["0:kfac_A"] == (19, 108) and shapes["0:kfac_G"] == (3, 108)
    assert shapes["2:kfac_A"] == (12, 27) and shapes["4:kfac_A"] == (37, 3)
    assert all(rec.factors()[k].shape == (d, d) for k, (d, _) in shapes.items())


def test_no_eligible_layers():
    with pytest.raises(ValueError, match="no eligible layers"):
        FactorRecorder(nn.Sequential(nn.ReLU(), nn.Tanh()))
    with pytest.raises(ValueError, match="no eligible layers.*min_dim=100"):
        FactorRecorder(mlp(), min_dim=100)
    with pytest.raises(ValueError, match="no eligible layers"):
        FactorRecorder(mlp(), include="nothing*")


def test_unknown_kind():
    with pytest.raises(ValueError, match="kinds entry must be one of 'shampoo', 'kfac'; got 'ekfac'"):
        FactorRecorder(mlp(), kinds=("shampoo", "ekfac"))
    with pytest.raises(ValueError, match="kinds must name at least one"):
        FactorRecorder(mlp(), kinds=())


@pytest.mark.parametrize("beta", [0, -0.5, 1.5, float("nan")])
def test_beta_outside_unit_interval(beta):
    with pytest.raises(ValueError, match=r"beta must be (in \(0, 1\]|finite)"):
        FactorRecorder(mlp(), beta=beta)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(every=0), ValueError, "every must be >= 1"),
        (dict(max_dim=0), ValueError, "max_dim must be >= 1"),
        (dict(fisher="true"), ValueError, "fisher must be one of"),
        (dict(reduction="none"), ValueError, "reduction must be one of"),
        (dict(include=3), TypeError, "include must be a glob"),
        (dict(beta="0.9"), TypeError, "beta must be a real number"),
    ],
)
def test_bad_arguments(kw, err, match):
    with pytest.raises(err, match=match):
        FactorRecorder(mlp(), **kw)


def test_factors_before_any_step_and_sampled_without_flag():
    rec = FactorRecorder(mlp())
    with pytest.raises(ValueError, match="no step accumulated yet"):
        rec.factors()
    with pytest.raises(ValueError, match="needs fisher='sampled'"):
        rec.sampled_backward(torch.zeros(2, 3))
    rec.close()


def test_layers_sharing_an_input_get_their_own_factors():
    """q, k, v read one tensor: the input Gram is computed once and shared, yet each layer's A is its own sum
    (an in-place add on the shared Gram would double-count); checked against separate brute-force sums."""

    class QKV(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(4, 3, bias=False)

        def forward(self, x):
            return self.q(x) * self.k(x) + self.v(x)

    torch.manual_seed(0)
    model = QKV().double()
    xs = [torch.randn(5, 4, dtype=torch.float64) for _ in range(2)]
    with FactorRecorder(model, kinds="kfac") as rec:
        for x in xs:
            model(x).sum().backward()
            model(2 * x).sum().backward()  # a second forward in the same step adds its rows
            rec.step()
    got = rec.factors()
    ones = torch.ones(5, 1, dtype=torch.float64)
    want = sum((x.T @ x + 4 * x.T @ x) / 10 for x in xs)
    torch.testing.assert_close(got["v:kfac_A"], want, **TOL)
    wb = sum(
        (
            torch.cat([x, ones], 1).T @ torch.cat([x, ones], 1)
            + torch.cat([2 * x, ones], 1).T @ torch.cat([2 * x, ones], 1)
        )
        / 10
        for x in xs
    )
    torch.testing.assert_close(got["q:kfac_A"], wb, **TOL)
    torch.testing.assert_close(got["k:kfac_A"], wb, **TOL)


def test_inplace_activation_and_dtype_device():
    """An in-place ReLU after a layer must not change G (the tensor hook sees the pre-activation gradient);
    a float32 model recorded in float64 keeps float64 factors on the requested device."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    inplace = nn.Sequential(nn.Linear(5, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)).double()
    inplace.load_state_dict(plain.state_dict())
    X, y = batch(mlp(), 6, seed=1)
    a, b = record(plain, [(X, y)]), record(inplace, [(X, y)])
    for k in a:
        torch.testing.assert_close(a[k], b[k], **TOL)
    f32 = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    f32.load_state_dict({k: v.float() for k, v in plain.state_dict().items()})
    got = record(f32, [(X.float(), y)], dtype=torch.float64, device="cpu")
    assert all(v.dtype == torch.float64 and v.device.type == "cpu" for v in got.values())
    assert all(
        v.dtype == torch.float32 for v in record(f32, [(X.float(), y)]).values()
    )  # default: the model's
    for k in a:
        # the float32 forward/backward carries ~1e-7 relative error into the factors; 1e-5 leaves margin
        torch.testing.assert_close(got[k], a[k], rtol=1e-5, atol=1e-6)
