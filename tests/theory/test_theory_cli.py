"""``memopt memory`` and ``memopt verify`` end to end through the console script's ``main``."""

from __future__ import annotations

import re

import pytest

from memopt_theory import methods
from memopt_theory.cli import main
from memopt_theory.memory import memory_row


def _rows(out: str) -> dict[str, list[str]]:
    return {
        ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("  ") and "method" not in ln
    }


def test_memory_1024_closed_form_equals_counted_for_every_method(capsys):
    """The issue's acceptance line: ``memopt memory --shape 1024`` shows closed form = counted for every method."""
    assert main(["memory", "--shape", "1024"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert sorted(rows) == methods.names()
    for name, cols in rows.items():
        # method, model scalars, counted, model bits, counted bits, fp32 bytes, ℓ/rank, agree, rec. lr
        assert cols[1] == cols[2] and cols[3] == cols[4] and cols[7] == "yes", cols
        lr = methods.get(name).default_lr  # the recommended-lr column shows Method.default_lr
        assert cols[8] == ("relative" if lr is None else f"{lr:g}"), cols


def test_memory_ell_and_lr_apply_to_every_method_that_has_them(capsys):
    """--ell sets ℓ wherever a Config has it (before: only where ℓ had no default, so s_adagrad silently kept
    ℓ = 8). S-AdaGrad on d = 64 at ℓ = 4 keeps min(ℓ−1, d)(d+1) + 1 = 3·65 + 1 scalars (docs/theory/bounds.md §E.2)."""
    assert main(["memory", "--shape", "64", "--ell", "4", "--methods", "s_adagrad,ada_fd"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["s_adagrad"][1] == f"{3 * 65 + 1:,}" and rows["ada_fd"][1] == f"{4 * 65 + 2:,}"
    assert main(["memory", "--shape", "64", "--methods", "s_adagrad"]) == 0  # its own default ℓ = 8
    cfg = methods.get("s_adagrad").Config()
    assert (
        _rows(capsys.readouterr().out)["s_adagrad"][1]
        == f"{memory_row('s_adagrad', (64,), cfg).model_scalars:,}"
    )


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["memory", "--methods", "adagrad_ful"], "unknown method 'adagrad_ful'; registered: "),
        (["memory", "--ell", "0", "--methods", "s_adagrad"], "--ell must be >= 1; got 0"),
        (["memory", "--lr", "-1"], "--lr must be > 0; got -1.0"),
        (["verify", "--filter", "no such check"], "--filter 'no such check' matches no check"),
        (["verify", "--instances", "0"], "--instances must be >= 1; got 0"),
    ],
)
def test_bad_input_exits_2_naming_it(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err, err


def test_memory_bad_shape_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["memory", "--shape", "0x4"])
    assert e.value.code == 2 and "a shape needs ints >= 1; got '0x4'" in capsys.readouterr().err


def test_verify_prints_the_table_with_worst_ratios_at_most_one(capsys):
    """A fast run of the FD checks: one row per check (instances, worst measured, worst bound, ratio ≤ 1)."""
    assert main(["verify", "--fast", "--filter", "FD"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.rstrip().endswith(" yes") or ln.rstrip().endswith(" NO")]
    assert len(rows) >= 6 and all(ln.rstrip().endswith("yes") for ln in rows)
    ratios = [float(ln.split()[-4]) for ln in rows]  # columns: ... ratio, ratio at T, cap, holds
    assert max(ratios) <= 1.0
    assert re.search(rf"{len(rows)} of {len(rows)} checks hold \(worst ratio {max(ratios):.6f}\)", out)
