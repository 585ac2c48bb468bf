"""Helpers for tests, demos and benchmarks: tiny Hugging Face models built offline.

The builders live in :mod:`tlzoo.testing.builders`, the plugin conformance kit
in :mod:`tlzoo.testing.conformance`; everything public is re-exported here, so
plugin authors write ``from tlzoo.testing import build_tiny_vit, check_plugin``.
"""

from tlzoo.testing.builders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TINY_BUILDERS,
    TINY_MODALITIES,
    build_tiny,
    build_tiny_ast,
    build_tiny_bert,
    build_tiny_convnext,
    build_tiny_dinov2,
    build_tiny_distilbert,
    build_tiny_hubert,
    build_tiny_resnet,
    build_tiny_roberta,
    build_tiny_swin,
    build_tiny_vit,
    build_tiny_wav2vec2,
    build_tiny_wavlm,
    build_tiny_whisper,
    feature_size,
    text_vocabulary,
)
from tlzoo.testing.conformance import (
    CHECKS,
    CheckResult,
    ConformanceError,
    ConformanceReport,
    PluginConformance,
    check_plugin,
)

__all__ = [
    "CHECKS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TINY_BUILDERS",
    "TINY_MODALITIES",
    "CheckResult",
    "ConformanceError",
    "ConformanceReport",
    "PluginConformance",
    "build_tiny",
    "build_tiny_ast",
    "build_tiny_bert",
    "build_tiny_convnext",
    "build_tiny_dinov2",
    "build_tiny_distilbert",
    "build_tiny_hubert",
    "build_tiny_resnet",
    "build_tiny_roberta",
    "build_tiny_swin",
    "build_tiny_vit",
    "build_tiny_wav2vec2",
    "build_tiny_wavlm",
    "build_tiny_whisper",
    "check_plugin",
    "feature_size",
    "text_vocabulary",
]
