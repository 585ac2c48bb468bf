"""tlzoo plugin for text source models.

Kept light: torch and transformers are imported only when a feature extractor
is built (in :mod:`tlzoo_text.extractor`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tlzoo
from tlzoo.plugins import Modality
from tlzoo_text import pipeline

__version__ = "0.1.0"


def is_text_column(feature: Any, values: Sequence[Any]) -> bool:
    """A string column whose values are not file paths of another modality."""
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        return False
    sample = [v for v in values if v is not None]
    return bool(sample) and all(isinstance(v, str) for v in sample)


def claims_config(config: Any) -> bool:
    """Sequence-classification architectures known to transformers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES


def check_example(value: Any) -> None:
    """Raise :class:`tlzoo.errors.UnreadableExampleError` for a value that is not text."""
    if not isinstance(value, str):
        from tlzoo.errors import UnreadableExampleError

        raise UnreadableExampleError(f"Expected text (a string), got {type(value).__name__}: {value!r:.80}")


def read_file(path: str) -> str:
    """A ``.txt`` file is one example: its text (UTF-8, surrounding whitespace removed)."""
    from pathlib import Path

    return Path(path).read_text(encoding="utf-8").strip()


def build(source: str, **options: Any) -> Any:
    """Build the :class:`~tlzoo_text.extractor.TextFeatureExtractor` of *source*."""
    from tlzoo_text.extractor import TextFeatureExtractor

    return TextFeatureExtractor.from_pretrained(source, **options)


@tlzoo.hookimpl
def register_modalities(register: Callable[[Modality], None]) -> None:
    """Register the ``text`` modality."""
    register(
        Modality(
            name="text",
            build_feature_extractor=build,
            is_column=is_text_column,
            model_types=frozenset({"bert", "distilbert", "roberta", "deberta-v2", "modernbert", "electra", "xlm-roberta"}),
            claims_config=claims_config,
            pipeline_task="text-classification",
            check_example=check_example,
            priority=0,
            distribution="tlzoo-text",
            description="Text (strings) for Hub language-model encoders",
            file_extensions=(".txt",),
            read_file=read_file,
            column_names=("text", "sentence", "content", "review", "document"),
            sample_inputs=pipeline.sample_inputs,
            pipeline_class="AutoModelForSequenceClassification",
            pipeline_families=pipeline.FAMILIES,
            usage_example='"Some text to classify."',
        )
    )
