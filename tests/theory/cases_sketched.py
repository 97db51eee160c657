"""Battery cases for the sketched AdaGrad family (s_adagrad, ada_fd, fd_son, rfd_son)."""

from memopt_theory import methods
from tests.theory.cases import Case

_SHAPES = ((1,), (5,), (3, 4))

CASES = {
    # ℓ = 3 < N = 6 with 7 steps: the sketch shrinks from step 3 on, so the ρ path is exercised
    "s_adagrad": Case(
        methods.get("s_adagrad").Config(ell=3),
        shapes=_SHAPES,
        extra_configs=(
            methods.get("s_adagrad").Config(ell=1),
            methods.get("s_adagrad").Config(ell=9, delta=0.1),
        ),
    ),
    "ada_fd": Case(
        methods.get("ada_fd").Config(ell=3, delta=0.1),
        shapes=_SHAPES,
        extra_configs=(methods.get("ada_fd").Config(ell=1, delta=1.0), methods.get("ada_fd").Config(ell=9)),
    ),
    "fd_son": Case(
        methods.get("fd_son").Config(ell=3, lr=0.5, delta=0.1, weight_decay=0.01),
        shapes=_SHAPES,
        extra_configs=(methods.get("fd_son").Config(ell=9, delta=0.1),),
    ),
    "rfd_son": Case(
        methods.get("rfd_son").Config(ell=3, lr=0.5, delta=0.1),
        shapes=_SHAPES,
        extra_configs=(methods.get("rfd_son").Config(ell=1), methods.get("rfd_son").Config(ell=9)),
    ),
}
