"""The ``memopt`` front: user errors (MemoptError, OSError) are one line with exit 2, bugs keep their traceback;
every subcommand pins torch's threads to ``--threads`` and says so; ``memopt memory`` on a huge shape."""

from __future__ import annotations

import argparse
import importlib

import pytest
import torch

from memopt_theory import methods
from memopt_theory.cli import DEFAULT_THREADS, build_parser, commands, main
from memopt_theory.errors import MemoptError, user_input


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# the registered subcommands (entry points): name -> module
SUBCOMMANDS = {ep.name: ep.value.split(":")[0] for ep in commands()}


def _patch_run(monkeypatch, exc: BaseException) -> None:
    mod = importlib.import_module(SUBCOMMANDS["memory"])

    def run(args):
        raise exc

    monkeypatch.setattr(mod, "run", run)


def test_memopt_error_is_a_value_error_and_user_input_converts():
    assert issubclass(MemoptError, ValueError)
    with pytest.raises(MemoptError, match=r"^--x: bad value$"):
        with user_input("--x"):
            raise ValueError("bad value")
    with pytest.raises(MemoptError, match=r"^--x: wrong type$"):
        with user_input("--x"):
            raise TypeError("wrong type")
    with pytest.raises(KeyError):  # only ValueError/TypeError are about the input
        with user_input("--x"):
            raise KeyError("k")


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (MemoptError("--foo must be >= 1; got 0"), "memopt memory: error: --foo must be >= 1; got 0"),
        (PermissionError(13, "Permission denied", "/x/y"), "memopt memory: error: /x/y: Permission denied"),
        (OSError(28, "No space left on device"), "memopt memory: error: [Errno 28] No space left on device"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(monkeypatch, capsys, threads, exc, line):
    _patch_run(monkeypatch, exc)
    assert main(["memory"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == line  # one line: the thread note, then the error


@pytest.mark.parametrize("exc", [TypeError("f() missing 1 required positional argument"), IndexError("3")])
def test_bugs_keep_their_traceback(monkeypatch, threads, exc):
    """Before: TypeError was caught and printed as a one-line 'error', hiding programming errors."""
    _patch_run(monkeypatch, exc)
    with pytest.raises(type(exc)):
        main(["memory"])


def test_plain_value_error_from_a_computation_is_a_traceback(monkeypatch, threads):
    _patch_run(monkeypatch, ValueError("operands could not be broadcast together"))
    with pytest.raises(ValueError, match="broadcast"):
        main(["memory"])


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_subcommand_pins_and_prints_its_threads(monkeypatch, capsys, threads, command):
    """``--threads N`` sets torch's intra-op threads before the command runs (default 1) and says so."""
    mod = importlib.import_module(SUBCOMMANDS[command])
    seen = []
    monkeypatch.setattr(mod, "run", lambda args: seen.append(torch.get_num_threads()) or 0)
    argv = [command] + (["file.toml"] if command == "sweep" else [])
    torch.set_num_threads(3)
    assert main([*argv, "--threads", "2"]) == 0
    assert seen == [2] and f"memopt {command}: torch threads 2 (--threads)" in capsys.readouterr().err
    assert main(argv) == 0
    assert seen == [2, DEFAULT_THREADS] and DEFAULT_THREADS == 1
    assert main([*argv, "--threads", "0"]) == 2
    assert "--threads must be an int >= 1; got 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_help_explains_every_option(command):
    """Every option of every subcommand has a help text; options with a non-trivial default state it."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction) or not a.option_strings:
            continue
        assert a.help, f"memopt {command} {a.option_strings[0]} has no help"
        if a.default not in (None, False, [], ""):
            assert "default" in a.help.lower(), f"memopt {command} {a.option_strings[0]}: default not stated"


def test_memory_of_a_huge_shape_is_closed_form_without_tensors(capsys, threads):
    """d = 100 000: full-matrix AdaGrad's state is 10^10 floats (80 GB in float64). Before, memopt memory
    tried to build it; now the closed form is printed, the row says it was not counted, small rows are
    counted, and the ℓ/rank each row used is printed."""
    argv = ["memory", "--shape", "100000", "--methods", "adagrad_full,s_adagrad,adagrad_diag", "--ell", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = {
        ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("  ") and "method" not in ln
    }
    full = methods.get("adagrad_full")
    assert rows["adagrad_full"][1] == f"{full.memory((100000,), full.Config()):,}" == "10,000,000,000"
    # columns: method, model scalars, counted, model bits, counted bits, fp32 bytes, ℓ/rank, agree, rec. lr
    assert rows["adagrad_full"][2] == "-" and rows["adagrad_full"][-2] == "-"
    sa = methods.get("s_adagrad")
    assert rows["s_adagrad"][1] == rows["s_adagrad"][2] == f"{sa.memory((100000,), sa.Config(ell=4)):,}"
    assert rows["s_adagrad"][-3:-1] == ["4", "yes"] and rows["adagrad_diag"][-3:-1] == ["-", "yes"]
    assert (
        "not counted (float64 state over --count-limit-mb 256; closed form shown): adagrad_full (76,294 MB)"
        in out
    )
