"""spectra.plots rendered with the Agg backend: the plotted data must equal the inputs, not merely draw."""

from __future__ import annotations

import io
import os

os.environ.setdefault("MPLBACKEND", "Agg")  # before matplotlib is imported anywhere in this process

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from spectra import plots
from spectra.store import Decomposition, SnapshotStore


def _ax():
    return Figure(figsize=(5, 4)).subplots()


def _render(ax) -> bytes:
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png")  # the whole draw path, text and colour bars included
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return buf.getvalue()


def _line(ax, gid: str):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


def test_cumulative_mass_lines_are_the_cumulative_sums():
    rng = np.random.default_rng(0)
    d = 40
    spectra = {0: rng.exponential(size=d) ** 3, 100: np.arange(1, d + 1) ** -2.0}
    null = rng.exponential(size=d)
    ax = plots.cumulative_mass(_ax(), spectra, null=null)
    for gid, lam in [("step:0", spectra[0]), ("step:100", spectra[100]), ("null", null)]:
        x, y = _line(ax, gid).get_data()
        s = np.sort(lam)[::-1]
        np.testing.assert_array_equal(x, np.arange(1, d + 1) / d)
        # brute force: partial sums in a Python loop; float64 summation orders differ by a few ulps
        np.testing.assert_allclose(y, [sum(s[: k + 1]) / sum(s) for k in range(d)], rtol=1e-13)
    assert ax.get_xscale() == "log" and "k / d" in ax.get_xlabel() and "fraction" in ax.get_ylabel()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "step 0",
        "step 100",
        "null (Gaussian gradients)",
    }
    assert _line(ax, "mark:0.9").get_ydata()[0] == 0.9 and _line(ax, "mark:0.99").get_ydata()[0] == 0.99
    # the title's numbers: the largest k/d any snapshot needs for 90 % of its trace, and the null's
    k90 = [
        np.argmax(np.cumsum(np.sort(v)[::-1]) >= 0.9 * v.sum()) + 1 for v in (spectra[0], spectra[100], null)
    ]
    assert (
        ax.get_title()
        .replace("\n", " ")
        .startswith(f"90 % of tr F in k/d ≤ {max(k90[:2]) / d:.3g} (null: {k90[2] / d:.3g})")
    )
    _render(ax)


def test_cumulative_mass_of_a_truncated_decomposition_stops_below_one():
    lam = np.arange(1, 101) ** -1.0
    dec = Decomposition(lam[:10], np.eye(100)[:, :10], False, float(lam.sum()), 100)
    x, y = _line(plots.cumulative_mass(_ax(), {5: dec}), "step:5").get_data()
    np.testing.assert_array_equal(x, np.arange(1, 11) / 100)
    np.testing.assert_allclose(y, np.cumsum(lam[:10]) / lam.sum(), rtol=1e-14)
    assert y[-1] < 1


def _table(tmp_path):
    store = SnapshotStore(tmp_path, {"run": "plots"})
    truth = {}
    for step in (0, 10, 20):
        for j, name in enumerate(["fc1:shampoo_L", "fc2:kfac_A"]):
            lam = np.arange(1, 21, dtype=np.float64) ** -(1.0 + 0.05 * step + j)
            store.write(step, name, Decomposition(lam, np.eye(20)[:, :3], True, float(lam.sum()), 20))
            truth[(name, step)] = lam[:5].sum() / lam.sum()  # ⌈0.25·20⌉ = 5
    return store.table(), truth


def test_topk_heatmap_cells_are_the_top_quarter_masses(tmp_path):
    table, truth = _table(tmp_path)
    ax = plots.topk_heatmap(_ax(), table, frac=0.25, null={"fc1:shampoo_L": 0.3})
    (im,) = [a for a in ax.get_images() if a.get_gid() == "heatmap"]
    want = np.array([[truth[(n, s)] for s in (0, 10, 20)] for n in ["fc1:shampoo_L", "fc2:kfac_A"]])
    np.testing.assert_allclose(np.ma.getdata(im.get_array()), want, rtol=1e-14)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "10", "20"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fc1:shampoo_L  (null 0.30)", "fc2:kfac_A"]
    assert im.get_clim() == (0.0, 1.0)
    last = want[:, -1]
    above = int(last[0] > 0.3)  # only fc1:shampoo_L has a null value
    assert ax.get_title().replace("\n", " ") == (
        f"top 25 % of eigenvectors: median mass {np.median(last):.2f} at the last step, "
        f"above the null in {above}/1 factors"
    )
    _render(ax)


def test_topk_heatmap_leaves_missing_cells_blank(tmp_path):
    table, _ = _table(tmp_path)
    table = table[~((table.step == 10) & (table.layer == "fc2"))]
    (im,) = plots.topk_heatmap(_ax(), table).get_images()
    assert np.ma.getmaskarray(im.get_array()).tolist() == [[False, False, False], [False, True, False]]


def test_overlap_matrix_is_the_pairwise_overlaps():
    rng = np.random.default_rng(1)
    d, k = 16, 3
    bases = {s: np.linalg.qr(rng.standard_normal((d, 5)))[0] for s in (0, 50, 100)}
    bases[150] = bases[100][:, [2, 0, 1, 3, 4]]  # same top-3 subspace, permuted basis: overlap 1
    ax = plots.overlap_matrix(_ax(), bases, k=k)
    (im,) = [a for a in ax.get_images() if a.get_gid() == "overlap"]
    O = np.asarray(im.get_array())
    steps = sorted(bases)
    # brute force: ‖UᵀV‖_F² / k as a double loop over entries
    want = [[sum((bases[a][:, :k].T @ bases[b][:, :k]).ravel() ** 2) / k for b in steps] for a in steps]
    np.testing.assert_allclose(O, want, atol=1e-14)
    assert O[2, 3] == pytest.approx(1.0, abs=1e-14) and np.allclose(np.diag(O), 1.0)
    # the colour bar states the random baseline, the title the consecutive and first-vs-last overlaps
    assert f"k/d = {k / d:.3f}" in ax.figure.axes[-1].get_ylabel()
    cons = [want[i][i + 1] for i in range(3)]
    assert ax.get_title().replace("\n", " ") == (
        f"top-3 eigenspace: overlap of consecutive snapshots {min(cons):.2f}–{max(cons):.2f}, "
        f"first vs last {want[0][3]:.2f} (random {k / d:.2f})"
    )
    _render(ax)


def test_plots_bad_input(tmp_path):
    with pytest.raises(TypeError, match=r"ax must be a matplotlib Axes; got NoneType"):
        plots.cumulative_mass(None, {0: np.ones(3)})
    with pytest.raises(ValueError, match=r"spectra must be a non-empty dict"):
        plots.cumulative_mass(_ax(), {})
    with pytest.raises(ValueError, match=r"lam must be eigenvalues of a PSD matrix"):
        plots.cumulative_mass(_ax(), {0: np.array([1.0, -1.0])})
    table, _ = _table(tmp_path)
    with pytest.raises(ValueError, match=r"frac must be a real in \(0, 1\]; got 0"):
        plots.topk_heatmap(_ax(), table, frac=0)
    with pytest.raises(ValueError, match=r"no 'top_mass@0.3' rows.*top_mass@0.25"):
        plots.topk_heatmap(_ax(), table, frac=0.3)
    with pytest.raises(ValueError, match=r"must have columns .* missing \['factor'\]"):
        plots.topk_heatmap(_ax(), pd.DataFrame(columns=["step", "layer", "metric", "value"]))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 2\].*got 3"):
        plots.overlap_matrix(_ax(), {0: np.eye(4)[:, :2]}, k=3)
    with pytest.raises(ValueError, match=r"V must have orthonormal columns"):
        plots.overlap_matrix(_ax(), {0: np.eye(4)[:, :2], 1: 2 * np.eye(4)[:, :2]})
