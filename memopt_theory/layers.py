r"""Real layer shapes and a deep-learning configuration per method: what memory comparisons run on.

>>> from memopt_theory.layers import LAYER_SHAPES, layer_config
>>> LAYER_SHAPES["transformer 768x768"]
(768, 768)
>>> layer_config("s_adagrad").ell          # Sketchy's deep-learning runs use ℓ = 256
256

``layer_config(name)`` is the method's entry of :func:`layer_configs` (paper / official defaults where they
exist), else its default Config, else None (a Config with required fields and no entry).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from memopt_theory import methods

__all__ = ["LAYER_SHAPES", "layer_configs", "layer_config"]

# ResNet convs (out, in, kh, kw), Transformer projections (GPT-2 small), the GPT-2 token embedding, and a
# 2^20-element vector (the Extreme Tensoring target).
LAYER_SHAPES: dict[str, tuple[int, ...]] = {
    "resnet conv 64x64x3x3": (64, 64, 3, 3),
    "resnet conv 256x128x3x3": (256, 128, 3, 3),
    "resnet conv 512x512x3x3": (512, 512, 3, 3),
    "transformer 768x768": (768, 768),
    "transformer 768x3072": (768, 3072),
    "embedding 50257x768": (50257, 768),
    "vector 2^20": (2**20,),
}


def _cfg(name: str, **kw: Any) -> Any:
    return methods.get(name).Config(**kw)


@cache
def layer_configs() -> dict[str, Any]:
    """Method name → a sensible configuration for a deep-learning layer (built on first use)."""
    return {
        "shampoo": _cfg("shampoo", eps=1e-12),
        "s_shampoo": _cfg("s_shampoo", ell=256, eps=1e-12),  # Sketchy's DL runs: ℓ = 256 per factor
        "extreme_tensoring": _cfg("extreme_tensoring", order=3),
        "sm3": _cfg("sm3"),
        "adafactor": _cfg("adafactor"),
        "came": _cfg("came", lr=2e-4),
        "s_adagrad": _cfg("s_adagrad", ell=256),
        # compressed family: paper defaults; EFCP at 1 % density (99 % sparsity), m = 1024
        "ggt": _cfg("ggt", window=200),  # paper r = 200
        "mfac": _cfg("mfac", window=1024),
        "ef_mfac": _cfg("ef_mfac", window=1024, density=0.01),
        "ef_ggt": _cfg("ef_ggt", window=100, density=0.01),  # EFCP's sparse-GGT example
        "smmf": _cfg("smmf"),
        "ldadam": _cfg("ldadam", rank=16),  # matrices at rank 16; conv kernels (4-D) take the AdamW path
    }


def layer_config(name: str) -> Any:
    """:func:`layer_configs` [name], else the default Config; None if the Config needs arguments."""
    configs = layer_configs()
    if name in configs:
        return configs[name]
    try:
        return methods.get(name).Config()
    except TypeError:
        return None
