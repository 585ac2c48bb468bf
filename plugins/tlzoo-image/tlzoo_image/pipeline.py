"""How image models export to transformers' ``*ForImageClassification``, for ``pipeline()``.

========================  ==========================================================
family (tlzoo pooling)    how the head is placed
========================  ==========================================================
ViT, DeiT (cls)           ``classifier`` on the CLS token
ConvNeXt, Swin (pooler)   ``classifier`` on the pooled output
ResNet (pooler)           ``classifier[1]`` (``Sequential(Flatten, Linear)``)
DINOv2 (cls)              ``classifier`` on ``concat(CLS, mean patch)``: the head on
                          the CLS half, zeros on the other
========================  ==========================================================

Kept free of torch at import: the ``place`` functions import what they need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlzoo.plugins import PipelineFamily


def place_plain(model: Any, weight: Any, bias: Any) -> None:
    """The head is the model's ``classifier``."""
    from tlzoo.model.export import copy_linear

    copy_linear(model.classifier, weight, bias)


def place_resnet(model: Any, weight: Any, bias: Any) -> None:
    """The head is the last layer of ResNet's ``classifier`` (``Sequential(Flatten, Linear)``)."""
    from tlzoo.model.export import copy_linear

    copy_linear(model.classifier[-1], weight, bias)


def place_dinov2(model: Any, weight: Any, bias: Any) -> None:
    """DINOv2's classifier reads ``concat(CLS, mean patch)``: the head on the CLS half, zeros on the other."""
    import torch

    from tlzoo.model.export import copy_linear

    copy_linear(model.classifier, torch.cat([weight, torch.zeros_like(weight)], dim=1), bias)


FAMILIES = {
    "vit": PipelineFamily(("cls",), place_plain),
    "deit": PipelineFamily(("cls",), place_plain),
    "convnext": PipelineFamily(("pooler",), place_plain),
    "swin": PipelineFamily(("pooler",), place_plain),
    "resnet": PipelineFamily(("pooler",), place_resnet),
    "dinov2": PipelineFamily(("cls",), place_dinov2),
}


def sample_inputs(extractor: Any) -> list[Any]:
    """Three made-up RGB images of different sizes and aspect ratios."""
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((40, 48), (33, 33), (64, 20))]
