"""Battery cases for the tensored family (docs/theory/tensored.md §C, S-Shampoo §B5): matrix-shaped runs, memory
checked on vectors, matrices, 3-D and conv-shaped 4-D tensors (§E.2: closed form = counted tensors)."""

from memopt_theory import methods
from tests.theory.cases import Case

_SHAPES = ((1,), (5,), (3, 4), (4, 1), (2, 3, 4), (4, 3, 3, 3))


def _cfg(name, **kw):
    return methods.get(name).Config(**kw)


CASES = {
    "shampoo": Case(
        _cfg("shampoo", eps=1e-3),
        shapes=_SHAPES,
        shape=(3, 4),
        extra_configs=(_cfg("shampoo"), _cfg("shampoo", eps=0.1, exponent=0.5)),
    ),
    "extreme_tensoring": Case(
        _cfg("extreme_tensoring", order=2, eps=1e-3),
        shapes=((5,), (3, 4), (2, 3, 4), (4, 3, 3, 3)),
        shape=(3, 4),
        extra_configs=(_cfg("extreme_tensoring"), _cfg("extreme_tensoring", order=1)),
    ),
    "sm3": Case(
        _cfg("sm3"),
        shapes=_SHAPES,
        shape=(3, 4),
        extra_configs=(
            _cfg("sm3", variant="I"),
            _cfg("sm3", cover="singletons", momentum=0.9),
            _cfg("sm3", cover="all", eps=1e-8),
        ),
    ),
    "adafactor": Case(
        _cfg("adafactor"),
        shapes=_SHAPES,
        shape=(3, 4),
        extra_configs=(_cfg("adafactor", beta1=0.9, weight_decay=0.1, lr=1e-2, scale_parameter=False),),
    ),
    "came": Case(
        _cfg("came", lr=1e-2, weight_decay=0.01),
        shapes=_SHAPES,
        shape=(3, 4),
        extra_configs=(_cfg("came", lr=1e-3),),
    ),
}

CASES["s_shampoo"] = Case(
    _cfg("s_shampoo", ell=3, eps=1e-3),
    shapes=_SHAPES,
    shape=(3, 4),
    extra_configs=(_cfg("s_shampoo", ell=1), _cfg("s_shampoo", ell=5), _cfg("s_shampoo", ell=2, beta2=0.9)),
)
