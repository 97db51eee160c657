r"""The project's exception for user errors: raised on purpose, caught by the ``memopt`` CLI as one line.

:class:`MemoptError` subclasses ``ValueError``, so every existing ``except ValueError`` /
``pytest.raises(ValueError)`` keeps working. The CLI (``memopt_theory.cli``) catches ``MemoptError`` and
``OSError`` (a user's path that cannot be read or written) and prints ``memopt CMD: error: MESSAGE`` with exit
status 2; anything else — a ``TypeError`` from a wrong call, an ``IndexError``, a plain ``ValueError`` from deep
inside a computation — is a bug and shows its traceback.

:func:`user_input` marks a block that only turns the command line into objects (parsing, validating,
constructing Configs, streams, domains): a ``ValueError``/``TypeError`` raised there is about the user's input
and becomes a ``MemoptError`` naming what was being read. Computation (the OCO loop, training) is never
wrapped, so its errors keep their tracebacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MemoptError", "user_input"]


class MemoptError(ValueError):
    """A user error (bad argument, unusable path, foreign or corrupt file): one line, naming what is wrong."""


@contextmanager
def user_input(what: str = "") -> Iterator[None]:
    """Re-raise a ``ValueError``/``TypeError`` of the block as :class:`MemoptError` (prefixed ``what: ``)."""
    try:
        yield
    except MemoptError:
        raise
    except (ValueError, TypeError) as e:
        raise MemoptError(f"{what}: {e}" if what else str(e)) from e
