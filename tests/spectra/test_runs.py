"""Reference runs: determinism in the seed, data as described, causal attention, hooks firing, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from spectra.recorder import FactorRecorder
from spectra.runs import RUNS, char_corpus, make_run, train

SMALL = dict(width=8, batch_size=8, context=16)


@pytest.mark.parametrize("name", RUNS)
def test_same_seed_same_numbers(name):
    a = train(make_run(name, seed=3, **SMALL), 3)
    b = train(make_run(name, seed=3, **SMALL), 3)
    c = train(make_run(name, seed=4, **SMALL), 3)
    assert a == b  # bitwise: model init and batches depend on the seed only
    assert a != c


@pytest.mark.parametrize("name", RUNS)
def test_batch_depends_on_step_only(name):
    run = make_run(name, **SMALL)
    x3 = run.batch(3)[0].clone()
    run.batch(1)
    assert torch.equal(run.batch(3)[0], x3) and not torch.equal(run.batch(2)[0], x3)
    assert all(p.device.type == "cpu" for p in run.model.parameters())


def test_digits_mlp_learns_and_starts_at_chance():
    run = make_run("digits_mlp", width=32, batch_size=64)
    losses = train(run, 60, lr=1e-2)
    # small random init: logits near 0, so the first loss is near log 10 (cross entropy at chance)
    assert abs(losses[0] - math.log(10)) < 0.3
    assert sum(losses[-10:]) / 10 < 0.5 * losses[0]


def test_char_data_is_pydoc_text_shifted_by_one():
    from pydoc_data.topics import topics

    text = char_corpus()
    assert len(text) == sum(len(v) for v in topics.values())
    run = make_run("char_transformer", **SMALL)
    x, y = run.batch(0)
    assert x.shape == y.shape == (8, 16) and torch.equal(x[:, 1:], y[:, :-1])  # next-character targets
    assert run.terms_per_example == 16


def test_transformer_attention_is_causal_and_hooked():
    run = make_run("char_transformer", **SMALL)
    x, _ = run.batch(0)
    out = run.model(x)
    x2 = x.clone()
    x2[:, 10:] = (x2[:, 10:] + 1) % 5  # change the future only
    out2 = run.model(x2)
    torch.testing.assert_close(out[:, :10], out2[:, :10], rtol=0, atol=1e-6)  # float32 rounding only
    assert not torch.allclose(out[:, 10:], out2[:, 10:])
    with FactorRecorder(run.model, kinds="kfac") as rec:
        train(run, 1, recorder=rec)
    F = rec.factors()
    for proj in "qkvo":
        assert F[f"blocks.0.attn.{proj}:kfac_A"].trace() > 0 and F[f"blocks.1.attn.{proj}:kfac_G"].trace() > 0


def test_autoencoder_targets_are_inputs():
    run = make_run("patch_autoencoder", **SMALL)
    x, y = run.batch(0)
    assert x.shape == (8, 64) and torch.equal(x, y)
    # each patch has its mean removed (only its texture is to be coded)
    torch.testing.assert_close(x.mean(1), torch.zeros(8), rtol=0, atol=1e-5)


def test_sampled_fisher_training_runs():
    run = make_run("patch_autoencoder", **SMALL)
    with FactorRecorder(run.model, kinds="kfac", fisher="sampled") as rec:
        train(run, 2, recorder=rec)
    assert rec.num_updates == 2 and all(torch.isfinite(v).all() for v in rec.factors().values())


def test_default_mlp_is_1024_wide():
    run = make_run("digits_mlp")
    assert tuple(run.model[2].weight.shape) == (1024, 1024)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(name="mnist"), ValueError, "name must be one of"),
        (dict(name="char_transformer", width=10), ValueError, "multiple of the 4 attention heads"),
        (dict(name="digits_mlp", seed=-1), ValueError, "seed must be >= 0"),
        (dict(name="digits_mlp", batch_size=0), ValueError, "batch_size must be >= 1"),
    ],
)
def test_bad_input(kw, err, match):
    with pytest.raises(err, match=match):
        make_run(**kw)
