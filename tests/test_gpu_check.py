"""benchmarks/gpu_check.py: skips cleanly without CUDA; its --smoke run drives all four steps to 'ok'."""

from __future__ import annotations

import pytest
import torch

from benchmarks import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path is for CPU-only machines")
def test_cpu_only_machine_is_told_and_exits_0(capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_full_check_fits_the_8_minute_budget():
    """The four steps' own time limits add up to at most the issue's 8 minutes."""
    full = gpu_check.steps("cuda", "/tmp/x", smoke=False)
    assert len(full) == 4 and sum(b for _, _, b in full) <= gpu_check.BUDGET_S == 480
    assert all("--device" in argv and argv[argv.index("--device") + 1] == "cuda" for _, argv, _ in full)


@pytest.mark.slow
def test_smoke_run_reports_every_step_ok(capsys):
    """The CPU dry run runs the same four commands at toy sizes; each must finish and print its ratios."""
    assert gpu_check.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 steps ok" in out
    assert out.count("| ok |") == 4
