r"""The ``memopt`` console script: one argparse front over the three packages.

Subcommands are named by dotted module paths and imported only when run, so ``memopt_theory`` itself does
not import the simulator or the recorder (ARCHITECTURE.md: data flows one way). Each module provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from memopt_theory.errors import MemoptError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "verify": (
        "memopt_theory.verify_cli",
        "run every theorem check on random instances; print worst measured/bound",
    ),
    "memory": (
        "memopt_theory.memory_cli",
        "state memory of every method for given shapes, closed form beside counted",
    ),
    "regret": (
        "online_convex.regret_cli",
        "one OCO experiment: regret intervals with theorem bounds, results + plot",
    ),
    "sweep": ("online_convex.sweep_cli", "run a sweep file (TOML) on a local process pool or a Dask cluster"),
    "spectra": (
        "spectra.cli",
        "a reference training run with the Kronecker-factor recorder: snapshots + plot",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="memopt", description="memopt: theory toolkit for memory-efficient adaptive optimizers"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (mod_name, help_) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            sp.set_defaults(_unavailable=mod_name)
            continue
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
