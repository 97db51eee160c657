from memopt_theory import methods
from tests.theory.cases import Case

CASES = {
    "ogd": Case(methods.get("ogd").Config(), extra_configs=(methods.get("ogd").Config(schedule="constant"),)),
    "adagrad_diag": Case(
        methods.get("adagrad_diag").Config(),
        shapes=((1,), (5,), (3, 4), (2, 3, 4)),
        extra_configs=(methods.get("adagrad_diag").Config(delta=0.1, delta_mode="outside"),),
    ),
    "adagrad_full": Case(
        methods.get("adagrad_full").Config(delta=1e-3),
        shapes=((1,), (5,), (3, 4)),
        extra_configs=(
            methods.get("adagrad_full").Config(delta=0.1, delta_mode="outside"),
            methods.get("adagrad_full").Config(delta=1e-3, solver="incremental", refresh=3, nodes=24),
        ),
    ),
    "adam": Case(methods.get("adam").Config(weight_decay=0.01), shapes=((1,), (5,), (3, 4), (2, 3, 4))),
}
