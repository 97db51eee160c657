"""``memopt regret``: a small run end to end (files, table, PNG, stored traces = a direct simulate.run), and bad
input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from memopt_theory import storage
from memopt_theory.cli import main
from online_convex import simulate
from online_convex.domains import make_domain
from online_convex.learners import Learner
from online_convex.streams import make_stream

SMALL = ["--d", "6", "--T", "40", "--seeds", "2", "--checkpoints", "8"]


def test_small_run_writes_results_plot_and_table(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["regret", *SMALL, "--ranks", "2,4", "--stream-param", "rank=3", "--out", str(out)])
    assert rc == 0  # every bound held
    printed = capsys.readouterr().out
    for label in ("adagrad_full", "adagrad_diag", "s_adagrad (ℓ=2)", "s_adagrad (ℓ=4)", "ogd"):
        assert label in printed
    assert "regret interval at T" in printed and "max ratio" in printed
    png = (out / "regret.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]][:2] == ["adagrad_full", "adagrad_diag"]
    assert all(r["ratio"] <= 1 for r in summary["rows"])
    # the stored trace is exactly what a direct run gives (same stream, same learner, same checkpoints)
    arrays, meta = storage.read_result(out / "adagrad_full")
    data, prob = make_stream("low_rank_noise", shape=(6,), T=40, seeds=2, rank=3)
    direct = simulate.run(
        Learner("adagrad_full", domain=make_domain("l2_ball", (6,), radius=1.0)),
        prob,
        data,
        checkpoints=simulate.geometric_checkpoints(40, 8),
    )
    np.testing.assert_array_equal(arrays["cum_loss"], direct.cum_loss)
    np.testing.assert_array_equal(arrays["bound"], direct.bound)
    assert meta["memory_scalars"] == 36  # d² for full-matrix AdaGrad
    # ratio at T beside the max ratio: the largest regret_upper/bound over seeds at the last checkpoint
    assert "ratio at T" in printed
    row = {r["method"]: r for r in summary["rows"]}["adagrad_full"]
    at_T = float(np.max(direct.regret_upper[-1] / direct.bound[-1]))
    assert row["ratio_at_T"] == at_T and at_T <= row["ratio"] == float(
        np.max(direct.regret_upper / direct.bound)
    )
    # the table's memory column is the closed form (docs/theory/bounds.md §E.2): S-AdaGrad min(ℓ−1, d)(d+1) + 1
    assert {r["method"]: r["memory"] for r in summary["rows"]}["s_adagrad (ℓ=4)"] == 3 * 7 + 1


def test_real_stream_and_box_domain(tmp_path, capsys):
    rc = main(
        ["regret", "--stream", "wine", "--T", "30", "--seeds", "2", "--methods", "adagrad_diag,ogd", "--domain", "box",
         "--checkpoints", "5", "--out", str(tmp_path), "--no-plot"]
    )  # fmt: skip
    assert rc == 0
    assert "logistic" in capsys.readouterr().out
    assert not (tmp_path / "regret.png").exists()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--T", "0"], "--T must be >= 1"),
        (["--T", "-5"], "--T must be >= 1"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--radius", "0"], "--radius must be a finite number > 0"),
        (["--radius", "-1"], "--radius must be a finite number > 0"),
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--ranks", "0"], "--ranks must be ints >= 1"),
        (["--ranks", "a"], "--ranks must be comma-separated ints"),
        (["--stream", "nope"], "unknown stream"),
        (["--stream-param", "rank"], "KEY=VALUE"),
        (["--stream", "breast_cancer", "--methods", "adam"], "unconstrained only"),
        (["--domain", "nuclear_ball"], "nuclear"),
        (["--device", "nodevice"], "--device 'nodevice' is not usable here"),
        (["--device", "meta"], "--device 'meta' is not usable here"),  # parses, but holds no data
        (["--config", "variant=I"], "--config must be METHOD.FIELD=VALUE"),
        (["--config", "sm3.variant=I"], "method 'sm3' is not among --methods"),
        (["--config", "adagrad_full.delt=1"], "adagrad_full.Config has no field 'delt'"),
        (["--config", "s_adagrad.ell=3"], "set by --ranks"),
        (["--config", "adagrad_full.delta=-1"], "delta"),  # the Config's own validation
        # a bad value of a method with a default lr is reported as such, not as "no default lr"
        (["--methods", "adam", "--config", "adam.beta1=x"], "beta1 must be a real number; got 'x'"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, argv, match):
    rc = main(["regret", *SMALL, "--out", str(tmp_path), "--no-plot", *argv])
    assert rc == 2
    assert match in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: --device cuda is valid here")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, capsys):
    assert main(["regret", *SMALL, "--out", str(tmp_path), "--no-plot", "--device", "cuda"]) == 2
    assert "--device 'cuda' is not usable here" in capsys.readouterr().err


def test_plot_lines_are_the_trace_medians_and_bounds():
    """The regret panel draws median regret_upper over seeds and the median bound; the ratio panel their ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from online_convex import plots

    data, prob = make_stream("power_law", shape=(4,), T=30, seeds=3)
    ck = simulate.geometric_checkpoints(30, 6)
    tr = simulate.run(
        Learner("adagrad_full", domain=make_domain("l2_ball", (4,), radius=1.0)), prob, data, checkpoints=ck
    )
    fig, (a, b) = plt.subplots(1, 2)
    plots.regret_with_bound([tr], a)
    plots.ratio_panel([tr], b)
    lines = [ln for ln in a.get_lines() if len(ln.get_xdata())]
    np.testing.assert_array_equal(lines[0].get_xdata(), ck)
    np.testing.assert_allclose(lines[0].get_ydata(), np.clip(np.median(tr.regret_upper, axis=1), 1e-3, None))
    np.testing.assert_allclose(lines[1].get_ydata(), np.median(tr.bound, axis=1))
    ratio_line = [ln for ln in b.get_lines() if len(ln.get_xdata()) == len(ck)][0]
    np.testing.assert_allclose(ratio_line.get_ydata(), np.median(tr.regret_upper / tr.bound, axis=1))
    plt.close(fig)


def test_config_option_reaches_the_learner_and_its_bound(tmp_path, capsys):
    """``--config sm3.variant=I``: the stored trace is that of a direct run of SM3-I (whose regret theorem,
    docs/theory/tensored.md §C4, gives a bound; the default variant II has none), and the bound is drawn and holds."""
    argv = ["regret", "--problem", "matrix-linear", "--d", "3", "--T", "40", "--seeds", "2", "--checkpoints", "6",
            "--methods", "sm3", "--config", "sm3.variant=I", "--config", "sm3.eps=0", "--out", str(tmp_path), "--no-plot"]  # fmt: skip
    assert main(argv) == 0  # rc 0: every drawn bound held
    arrays, meta = storage.read_result(tmp_path / "sm3")
    assert np.isfinite(arrays["bound"]).all()
    data, prob = make_stream("low_rank_noise", shape=(3, 3), T=40, seeds=2, rank=8)
    from memopt_theory import methods

    direct = simulate.run(
        Learner(
            "sm3",
            methods.get("sm3").Config(variant="I", eps=0.0),
            domain=make_domain("l2_ball", (3, 3), radius=1.0),
        ),
        prob,
        data,
        checkpoints=simulate.geometric_checkpoints(40, 6),
    )
    np.testing.assert_array_equal(arrays["cum_loss"], direct.cum_loss)
    np.testing.assert_array_equal(arrays["bound"], direct.bound)
