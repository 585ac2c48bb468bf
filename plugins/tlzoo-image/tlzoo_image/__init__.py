"""tlzoo plugin for image source models.

Kept light: torch and transformers are imported only when a feature extractor
is built (in :mod:`tlzoo_image.extractor`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import tlzoo
from tlzoo.plugins import Modality, default_fingerprint, default_is_example
from tlzoo_image import pipeline

__version__ = "0.1.0"

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def is_image_column(feature: Any, values: Sequence[Any]) -> bool:
    """A ``datasets.Image`` column, or values that are PIL images or image files."""
    if type(feature).__name__ == "Image":
        return True
    sample = [v for v in values if v is not None]
    if not sample:
        return False
    if all(type(v).__module__.startswith("PIL.") for v in sample):
        return True
    return all(isinstance(v, str | os.PathLike) and str(v).lower().endswith(EXTENSIONS) for v in sample)


def claims_config(config: Any) -> bool:
    """Image-classification architectures known to transformers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES


def fingerprint(value: Any) -> bytes:
    """Content digest of an image: file bytes for paths, pixels otherwise."""
    if isinstance(value, str | os.PathLike):
        with open(value, "rb") as f:
            return default_fingerprint(f.read())
    if isinstance(value, dict) and value.get("bytes") is None and value.get("path"):
        return fingerprint(value["path"])
    if isinstance(value, dict):
        return default_fingerprint(value.get("bytes"))
    return default_fingerprint(value)


def check_example(value: Any) -> None:
    """Raise :class:`tlzoo.errors.UnreadableExampleError` if the image cannot be read."""
    from tlzoo_image.extractor import open_image

    open_image(value, verify_only=True)


def is_example(value: Any) -> bool:
    """One image, unless a list/tuple of them or a 4-D array (a stack of images)."""
    if hasattr(value, "ndim") and hasattr(value, "shape"):
        return value.ndim != 4
    return default_is_example(value)


def build(source: str, **options: Any) -> Any:
    """Build the :class:`~tlzoo_image.extractor.ImageFeatureExtractor` of *source*."""
    from tlzoo_image.extractor import ImageFeatureExtractor

    return ImageFeatureExtractor.from_pretrained(source, **options)


@tlzoo.hookimpl
def register_modalities(register: Callable[[Modality], None]) -> None:
    """Register the ``image`` modality."""
    register(
        Modality(
            name="image",
            build_feature_extractor=build,
            is_column=is_image_column,
            model_types=frozenset({"vit", "dinov2", "convnext", "resnet", "swin", "deit", "beit"}),
            claims_config=claims_config,
            pipeline_task="image-classification",
            file_extensions=EXTENSIONS,
            fingerprint=fingerprint,
            check_example=check_example,
            priority=10,
            distribution="tlzoo-image",
            description="Images (PIL, arrays, files) for Hub vision models",
            is_example=is_example,
            folder_builder="imagefolder",
            column_names=("image", "img", "picture", "photo"),
            sample_inputs=pipeline.sample_inputs,
            pipeline_class="AutoModelForImageClassification",
            pipeline_families=pipeline.FAMILIES,
            usage_example='"photo.jpg"',
        )
    )
