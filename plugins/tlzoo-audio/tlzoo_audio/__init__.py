"""tlzoo plugin for audio source models.

Kept light: torch and transformers are imported only when a feature extractor
is built (in :mod:`tlzoo_audio.extractor`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import tlzoo
from tlzoo.plugins import Modality, default_fingerprint, default_is_example
from tlzoo_audio import pipeline

__version__ = "0.1.0"

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


def is_audio_column(feature: Any, values: Sequence[Any]) -> bool:
    """A ``datasets.Audio`` column, or values that are audio dicts or audio files."""
    if type(feature).__name__ == "Audio":
        return True
    sample = [v for v in values if v is not None]
    if not sample:
        return False
    if all(isinstance(v, dict) and "array" in v and "sampling_rate" in v for v in sample):
        return True
    return all(isinstance(v, str | os.PathLike) and str(v).lower().endswith(EXTENSIONS) for v in sample)


def claims_config(config: Any) -> bool:
    """Audio-classification architectures known to transformers (and Whisper)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES


def fingerprint(value: Any) -> bytes:
    """Content digest of a clip: file bytes for paths, samples and rate otherwise."""
    if isinstance(value, str | os.PathLike):
        with open(value, "rb") as f:
            return default_fingerprint(f.read())
    if isinstance(value, dict) and "array" not in value and value.get("bytes") is None and value.get("path"):
        return fingerprint(value["path"])
    if isinstance(value, dict):
        return default_fingerprint({k: value.get(k) for k in ("bytes", "array", "sampling_rate") if k in value})
    return default_fingerprint(value)


def check_example(value: Any) -> None:
    """Raise :class:`tlzoo.errors.UnreadableExampleError` if the clip cannot be read."""
    from tlzoo_audio.extractor import check_audio

    check_audio(value)


def is_example(value: Any) -> bool:
    """One clip: a path, a dict, a 1-D/2-D array, or a list of plain numbers (its samples)."""
    if isinstance(value, list | tuple) and value and all(isinstance(v, numbers.Number) for v in value):
        return True
    return default_is_example(value)


def build(source: str, **options: Any) -> Any:
    """Build the :class:`~tlzoo_audio.extractor.AudioFeatureExtractor` of *source*."""
    from tlzoo_audio.extractor import AudioFeatureExtractor

    return AudioFeatureExtractor.from_pretrained(source, **options)


@tlzoo.hookimpl
def register_modalities(register: Callable[[Modality], None]) -> None:
    """Register the ``audio`` modality."""
    register(
        Modality(
            name="audio",
            build_feature_extractor=build,
            is_column=is_audio_column,
            model_types=frozenset({"wav2vec2", "hubert", "wavlm", "audio-spectrogram-transformer", "whisper"}),
            claims_config=claims_config,
            pipeline_task="audio-classification",
            file_extensions=EXTENSIONS,
            fingerprint=fingerprint,
            check_example=check_example,
            priority=10,
            distribution="tlzoo-audio",
            description="Audio clips (arrays, datasets Audio, files) for Hub speech and sound models",
            is_example=is_example,
            folder_builder="audiofolder",
            column_names=("audio", "clip", "speech", "sound"),
            sample_inputs=pipeline.sample_inputs,
            pipeline_class="AutoModelForAudioClassification",
            pipeline_families=pipeline.FAMILIES,
            usage_example='"clip.wav"',
        )
    )
