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
from memopt_theory.errors import MemoptError

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
        sp.add_argument(
            "--threads",
            type=int,
            default=DEFAULT_THREADS,
            help=f"torch intra-op threads of this process (default {DEFAULT_THREADS}: results do not depend on "
            "the machine's load or core count; raise it on an idle machine of your own)",
        )
        sp.set_defaults(_run=mod.run)
    return p


DEFAULT_THREADS = 1  # as the sweep workers: several processes share a machine, and one thread each is fastest


def _set_threads(args: argparse.Namespace) -> None:
    """Pin torch (and the BLAS it calls) to ``--threads`` and say so on stderr, before any work."""
    if args.threads < 1:
        raise MemoptError(f"--threads must be an int >= 1; got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    extra = "; sweep workers use 1 thread each" if args.command == "sweep" else ""
    print(
        f"memopt {args.command}: torch threads {torch.get_num_threads()} (--threads){extra}", file=sys.stderr
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_unavailable", None):
        print(
            f"memopt {args.command}: not available in this build ({args._unavailable} missing)",
            file=sys.stderr,
        )
        return 2
    try:
        _set_threads(args)
        return int(args._run(args) or 0)
    except (MemoptError, OSError) as e:  # user errors, raised on purpose; anything else is a bug: traceback
        print(f"memopt {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    """The message on one line; an OSError without its own text (e.g. from os.open) names errno and path."""
    if isinstance(e, OSError) and e.filename is not None:
        msg = f"{e.filename}: {e.strerror or e}"
    else:
        msg = str(e)
    return " ".join(msg.split())


if __name__ == "__main__":
    sys.exit(main())
