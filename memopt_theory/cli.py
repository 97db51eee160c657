r"""The ``memopt`` console script: one argparse front over every registered subcommand.

Subcommands are found by registration: each entry point of the group ``memopt.commands`` (pyproject.toml)
names a module providing ``add_arguments(parser)`` and ``run(args) -> int`` (and optionally ``HELP``, a
one-line help; else the first line of its docstring). This module never names a package above it, so
``memopt_theory`` does not import the simulator or the recorder; a package outside memopt adds a subcommand
by declaring its own entry point. ``ORDER`` fixes where the built-in commands appear in ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import EntryPoint

from memopt_theory._entry_points import registered

COMMAND_GROUP = "memopt.commands"
ORDER = ("verify", "memory", "regret", "sweep", "spectra")  # display order; others follow sorted


def commands() -> list[EntryPoint]:
    """The registered subcommands' entry points, in display order."""
    eps = {e.name: e for e in registered(COMMAND_GROUP)}
    if not eps:
        raise RuntimeError(f"memopt: no {COMMAND_GROUP!r} entry points found; install it (pip install -e .)")
    order = [n for n in ORDER if n in eps] + sorted(set(eps) - set(ORDER))
    return [eps[n] for n in order]


def _help(mod) -> str:
    h = getattr(mod, "HELP", None)
    if h:
        return str(h)
    doc = (mod.__doc__ or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else ""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memopt", description="memopt: theory toolkit for memory-efficient adaptive optimizers"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for ep in commands():
        mod_name = ep.value.split(":")[0]
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            sp = sub.add_parser(ep.name, help=f"(unavailable: {mod_name} missing)")
            sp.set_defaults(_unavailable=mod_name)
            continue
        help_ = _help(mod)
        sp = sub.add_parser(ep.name, help=help_, description=help_)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_unavailable", None):
        print(
            f"memopt {args.command}: not available in this build ({args._unavailable} missing)",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"memopt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
