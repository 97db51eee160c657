"""Benchmark support code that decides what a benchmark measures: the ``--device`` check, and the JAX
transcription of the official testbed that ``benchmarks.step_overhead`` times memopt against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks._device import resolve_device


def test_device_cpu_and_clear_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(SystemExit, match="run on cpu or cuda; got device type 'meta'"):
        resolve_device("meta")
    if torch.cuda.is_available():
        with pytest.raises(SystemExit, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(SystemExit, match=r"--device cuda: torch .* sees no CUDA device here"):
            resolve_device("cuda")


@pytest.mark.slow  # JAX compiles each loop (~10 s on a busy 2-core box)
@pytest.mark.parametrize(
    "variant, name, ell, lr",
    [("ADA", "adagrad_diag", 0, 0.1), ("S_ADA", "s_adagrad", 4, 0.1), ("ADA_FD", "ada_fd", 4, 1e-3)],
)
def test_official_jax_loops_match_memopt(variant, name, ell, lr):
    """The JAX loops (written from the testbed's spec) and memopt's update loop on the same logistic stream
    (d = 12, T = 60, δ = 1e-4): the final iterates agree to 1e-9 relative. memopt's sketched methods are
    tested against the testbed to 1e-8 over closed loops (tests/theory/test_sketched_methods.py); single steps
    agree to ~1e-13, so a transcription error in the JAX step (a wrong α update, a missing guard) shows up far
    above this tolerance, while SVD-layout round-off stays below it."""
    pytest.importorskip("jax")
    from benchmarks.official_jax import per_step_seconds
    from benchmarks.step_overhead import _testbed_stream, memopt_loop
    from memopt_theory import methods

    X, y = _testbed_stream(60, 12, 1, seed=3)
    m = methods.get(name)
    cfg = m.Config(delta=1e-4) if ell == 0 else m.Config(ell=ell, delta=1e-4)
    _, w_off = per_step_seconds(variant, X[:, 0], y[:, 0], lr=lr, delta=1e-4, ell=max(ell, 2), repeats=1)
    _, w = memopt_loop(
        name, cfg, torch.from_numpy(X[:, 0]), torch.from_numpy(y[:, 0]), lr, torch.device("cpu")
    )
    assert np.abs(w_off).max() > 1e-3  # the learner moved
    np.testing.assert_allclose(w.numpy(), w_off, rtol=0, atol=1e-9 * np.abs(w_off).max())
