"""A source model's shared feature layers, and the features they compute.

:mod:`~tlzoo.features.extractor` holds :class:`FeatureExtractor` (backbone,
preprocessor, pooling, layer groups) and loads backbones;
:mod:`~tlzoo.features.extraction` runs a frozen backbone over the target data
once, into the persistent :mod:`~tlzoo.features.cache`.

The names below are imported on first use, so ``tlzoo.features.cache`` can be
imported without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlzoo.features.extractor import (
        FeatureExtractor,
        LayerGroup,
        accepts_kwarg,
        backbone_skeleton,
        load_backbone,
    )

__all__ = ["FeatureExtractor", "LayerGroup", "accepts_kwarg", "backbone_skeleton", "load_backbone"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tlzoo.features import extractor

        value = getattr(extractor, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
