"""Battery cases for the compressed family (docs/theory/compressed.md §D): ggt, mfac, ef_mfac, ef_ggt, smmf, ldadam; memory is
checked on vectors, matrices and a conv-shaped 4-D tensor (§E.2: closed form = counted tensors)."""

from memopt_theory import methods
from tests.theory.cases import Case

_ggt, _mfac = methods.get("ggt").Config, methods.get("mfac").Config
_efm, _efg = methods.get("ef_mfac").Config, methods.get("ef_ggt").Config
_smmf, _lda = methods.get("smmf").Config, methods.get("ldadam").Config
_gal, _micro = methods.get("galore").Config, methods.get("microadam").Config

CASES = {
    "ggt": Case(
        _ggt(window=3, beta1=0.5, beta2=0.9, eps=1e-2),
        shapes=((1,), (5,), (3, 4), (2, 3, 2, 2)),
        extra_configs=(_ggt(window=2, beta1=0.0, beta2=1.0),),
    ),
    # λ = 0.5 keeps F̂ well conditioned so that float32 tracks float64 (the default 1e-5 amplifies round-off 1e5×)
    "mfac": Case(
        _mfac(window=3, damp=0.5, momentum=0.5, weight_decay=0.1),
        shapes=((1,), (5,), (3, 4), (2, 3, 2, 2)),
        extra_configs=(_mfac(window=4, damp=1.0),),
    ),
    "ef_mfac": Case(
        _efm(window=3, damp=0.5, density=0.5, momentum=0.5, lr=0.1, weight_decay=0.1, wd_mode="both"),
        shapes=((1,), (5,), (3, 4), (10, 10), (2, 3, 2, 2)),
        extra_configs=(
            _efm(window=4, damp=1.0, density=0.01),
            _efm(window=2, density=1.0, wd_mode="reg"),
            _efm(window=3, compressor="lowrank", rank=2, momentum=0.5),
        ),
    ),
    "ef_ggt": Case(
        _efg(window=3, density=0.5, eps=1e-2),
        shapes=((1,), (5,), (3, 4), (10, 10), (2, 3, 2, 2)),
        extra_configs=(_efg(window=2, density=0.01), _efg(window=3, compressor="lowrank", rank=1)),
    ),
    "smmf": Case(
        _smmf(lr=0.1, weight_decay=0.01),
        shape=(3, 4),
        shapes=((1,), (5,), (7,), (3, 4), (2, 3, 4), (1, 6), (2, 3, 2, 2)),
        extra_configs=(
            _smmf(beta1=None),
            _smmf(vector_reshape=False),
            _smmf(beta1=None, vector_reshape=False),
        ),
    ),
    # a 4×6 matrix at rank 2 exercises the moving basis; (5,) and (2, 3, 4) the AdamW path
    "ldadam": Case(
        _lda(lr=0.1, weight_decay=0.01, rank=2),
        shape=(4, 6),
        shapes=((5,), (4, 6), (6, 4), (2, 3, 4), (2, 3, 2, 2)),
        extra_configs=(_lda(rank=1, error_feedback=False), _lda(rank=2, projection="svd")),
    ),
    # T_gap = 3 refreshes the projection mid-run (steps 0, 3, 6) without re-projecting the moments
    "galore": Case(
        _gal(lr=0.1, weight_decay=0.01, rank=2, update_proj_gap=3),
        shape=(4, 6),
        shapes=((5,), (4, 6), (6, 4), (2, 3, 4), (2, 3, 2, 2)),
        extra_configs=(_gal(rank=1),),
    ),
    # window 3 < 7 steps wraps the ring; blocks of 4 (top-k) and 5 (quantiser) split the 6 entries unevenly
    "microadam": Case(
        _micro(lr=0.1, weight_decay=0.01, window=3, density=0.5, quant_block=5, topk_block=4),
        shapes=((1,), (5,), (3, 4), (2, 3, 4), (2, 3, 2, 2)),
        extra_configs=(_micro(), _micro(density=1.0, quant_block=2)),
    ),
}
