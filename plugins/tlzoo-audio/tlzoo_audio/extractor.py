"""Audio feature extractor: any ``AutoModel`` audio backbone + its feature extractor.

A backbone needs a minimum number of samples per clip (:func:`minimum_samples`:
a convolutional feature encoder's receptive field, one filterbank frame for
AST). A shorter clip is padded with silence to that length, with a warning
naming it, so training and prediction never fail inside the backbone on it.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import soundfile
import torch

from tlzoo.errors import ConfigurationError, UnreadableExampleError
from tlzoo.features import FeatureExtractor, load_backbone

logger = logging.getLogger(__name__)

POOLINGS = ("auto", "mean", "pooler")
#: Samples in one filterbank frame of AST's feature extractor (25 ms at 16 kHz).
AST_FRAME_SAMPLES = 400


def _samples_for_frames(config: Any, frames: int) -> int:
    """The fewest input samples a convolutional feature encoder turns into *frames* frames."""
    need = frames
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        need = (need - 1) * int(stride) + int(kernel)
    return need


def minimum_samples(config: Any) -> int:
    """The fewest samples one clip must have for a backbone with this *config* to give it a feature vector.

    Read from the config alone (no weights needed): a convolutional feature
    encoder (wav2vec 2.0, HuBERT, WavLM, ...) needs the input length that its
    ``conv_kernel``/``conv_stride`` layers turn into one frame (400 samples,
    25 ms at 16 kHz, for ``wav2vec2-base``); AST needs one 25 ms filterbank
    frame; Whisper pads every clip to 30 s itself.
    """
    if getattr(config, "conv_kernel", None) and getattr(config, "conv_stride", None):
        return _samples_for_frames(config, 1)
    if getattr(config, "model_type", None) == "audio-spectrogram-transformer":
        return AST_FRAME_SAMPLES
    return 1


def training_samples(config: Any) -> int:
    """The fewest samples a batch must span while the backbone trains: SpecAugment masks spans of time frames.

    With ``mask_time_prob > 0`` a wav2vec 2.0-style backbone in training mode
    refuses a batch of fewer than ``mask_time_length`` frames (3360 samples,
    210 ms, for ``wav2vec2-base``); otherwise :func:`minimum_samples`.
    """
    floor = minimum_samples(config)
    masks = getattr(config, "apply_spec_augment", False) and getattr(config, "mask_time_prob", 0) > 0
    if masks and getattr(config, "conv_kernel", None):
        return max(floor, _samples_for_frames(config, int(getattr(config, "mask_time_length", 1))))
    return floor


def _read(value: Any) -> tuple[np.ndarray, int | None, str | None]:
    """Samples (any shape), their rate (``None``: the model's), and a file name."""
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"]), value.get("sampling_rate"), value.get("path")
    if isinstance(value, dict):
        name = value.get("path")
        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else name
        data, rate = soundfile.read(source, dtype="float32", always_2d=True)
        return data.T, rate, name
    if isinstance(value, str | os.PathLike):
        data, rate = soundfile.read(os.fspath(value), dtype="float32", always_2d=True)
        return data.T, rate, os.fspath(value)
    if hasattr(value, "get_all_samples"):  # datasets' torchcodec AudioDecoder
        samples = value.get_all_samples()
        return samples.data.numpy(), int(samples.sample_rate), None
    if isinstance(value, np.ndarray | list | torch.Tensor):
        return np.asarray(value, dtype=np.float32), None, None
    raise TypeError(f"expected an array, a datasets Audio value or a file path, got {type(value).__name__}")


#: What an error about a clip found while features are computed or the model trains tells the user to do.
FIX = "Remove or replace it, then run again."


def _reason(exc: BaseException) -> str:
    return str(exc).rstrip(".") or type(exc).__name__


def _describe(value: Any) -> str:
    if isinstance(value, dict) and value.get("path"):
        return f"audio file {value['path']!r}"
    if isinstance(value, str | os.PathLike):
        return f"audio file {os.fspath(value)!r}"
    return "an audio clip"


def load_audio(value: Any, sampling_rate: int) -> np.ndarray:
    """Decode one clip to mono float32 samples at *sampling_rate* (resampled with soxr)."""
    try:
        data, rate, _ = _read(value)
    except (OSError, RuntimeError, TypeError, ValueError, soundfile.LibsndfileError) as exc:
        raise UnreadableExampleError(f"Cannot read {_describe(value)}: {_reason(exc)}. {FIX}") from exc
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:  # mix channels to mono; the channel axis is the short one
        data = data.mean(axis=0 if data.shape[0] <= data.shape[1] else 1)
    if data.ndim != 1 or data.size == 0:
        raise UnreadableExampleError(f"Cannot read {_describe(value)}: expected mono or multi-channel samples, got "
                                     f"shape {data.shape}. {FIX}")
    if rate is not None and rate != sampling_rate:
        import soxr

        data = soxr.resample(data, rate, sampling_rate).astype(np.float32)
    return data


def check_audio(value: Any) -> None:
    """Check a clip can be read and holds samples, from its header alone when it is a file.

    :raises UnreadableExampleError: naming the file, when it cannot be read or is empty.
    """
    try:
        if isinstance(value, str | os.PathLike):
            frames = soundfile.info(os.fspath(value)).frames
        elif isinstance(value, dict) and "array" not in value:
            source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value.get("path")
            frames = soundfile.info(source).frames
        else:
            frames = np.asarray(_read(value)[0]).size
    except (OSError, RuntimeError, TypeError, ValueError, KeyError, soundfile.LibsndfileError) as exc:
        raise UnreadableExampleError(f"Cannot read {_describe(value)}: {_reason(exc)}.") from exc
    if not frames:
        raise UnreadableExampleError(f"Cannot read {_describe(value)}: it holds no samples.")


class AudioFeatureExtractor(FeatureExtractor):
    """Features of audio clips: the mean over valid frames, or AST's pooled output."""

    modality = "audio"

    @classmethod
    def from_pretrained(
        cls, source: str, *, revision: str | None = None, token: str | bool | None = None, pooling: str = "auto"
    ) -> AudioFeatureExtractor:
        """Load backbone and feature extractor of a Hub id or local folder."""
        from transformers import AutoConfig, AutoFeatureExtractor

        if pooling not in POOLINGS:
            raise ConfigurationError(f"Unknown audio pooling {pooling!r}; expected one of {', '.join(POOLINGS)}.")
        config = AutoConfig.from_pretrained(source, revision=revision, token=token)
        if config.model_type == "whisper":  # keep only the encoder of an encoder-decoder
            from transformers import WhisperModel
            from transformers.models.whisper.modeling_whisper import WhisperEncoder

            if (config.architectures or [""])[0] == "WhisperEncoder":
                backbone = WhisperEncoder.from_pretrained(source, revision=revision, token=token)
            else:
                backbone = WhisperModel.from_pretrained(source, revision=revision, token=token).get_encoder()
        else:
            backbone = load_backbone(source, revision=revision, token=token)
        processor = AutoFeatureExtractor.from_pretrained(source, revision=revision, token=token)
        return cls(backbone, processor, source=source, revision=revision, pooling=pooling)

    @property
    def sampling_rate(self) -> int:
        """The rate the model was trained at; every clip is resampled to it."""
        return int(self.processor.sampling_rate)

    @property
    def feature_size(self) -> int:
        config = self.backbone.config
        return int(getattr(config, "d_model", None) or config.hidden_size)

    @property
    def _is_whisper(self) -> bool:
        return self.backbone.config.model_type == "whisper"

    @property
    def _needs_unpadded(self) -> bool:
        # Group-norm convolutions (wav2vec2-base) see padding; run those clips one by one.
        return getattr(self.backbone.config, "feat_extract_norm", None) == "group"

    @property
    def minimum_samples(self) -> int:
        """The fewest samples a clip must have (:func:`minimum_samples`); shorter clips are padded with silence."""
        return minimum_samples(self.backbone.config)

    def processor_fingerprint(self) -> str:
        """The feature extractor's settings and the length short clips are padded to: both shape the features."""
        return f"{super().processor_fingerprint()}\nshort clips padded to {self.minimum_samples} samples"

    def _pad_short(self, clips: list[np.ndarray], values: Sequence[Any]) -> list[np.ndarray]:
        """Clips shorter than the backbone's minimum, padded at the end with silence; a warning names each, once."""
        need = self.minimum_samples
        short = [i for i, clip in enumerate(clips) if len(clip) < need]
        if not short:
            return clips
        warned = getattr(self, "_warned_short", None)
        if warned is None:
            self._warned_short = warned = set()
        named = []
        for i in short:
            name = f"{_describe(values[i])} ({1000 * len(clips[i]) / self.sampling_rate:.1f} ms)"
            if name not in warned:
                warned.add(name)
                named.append(name)
            clips[i] = np.pad(clips[i], (0, need - len(clips[i])))
        if named:
            logger.warning(
                "%s shorter than the %d samples (%.0f ms at %d Hz) that %s needs: %s. Padded with silence to that "
                "length; remove such clips from the data if they should not count.",
                "A clip is" if len(named) == 1 else f"{len(named)} clips are", need,
                1000 * need / self.sampling_rate, self.sampling_rate, self.source, ", ".join(named[:5])
                + (f" and {len(named) - 5} more" if len(named) > 5 else ""),
            )
        return clips

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        clips = self._pad_short([load_audio(v, self.sampling_rate) for v in values], values)
        kwargs: dict[str, Any] = {"sampling_rate": self.sampling_rate, "return_tensors": "pt"}
        if self._is_whisper:
            kwargs["return_attention_mask"] = True
        elif self.backbone.config.model_type != "audio-spectrogram-transformer":
            kwargs.update(padding=True, return_attention_mask=True)
        batch = dict(self.processor(clips, **kwargs))
        batch["tlzoo_lengths"] = torch.tensor([len(c) for c in clips])
        return batch

    def backbone_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = super().backbone_inputs(batch)
        if self._is_whisper:
            inputs.pop("attention_mask", None)
        return inputs

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        if self._needs_unpadded and "input_values" in batch and len(batch["input_values"]) > 1:
            parts = []
            for i, length in enumerate(batch["tlzoo_lengths"].tolist()):
                one = {"input_values": batch["input_values"][i : i + 1, :length], "tlzoo_lengths": batch["tlzoo_lengths"][i : i + 1]}
                parts.append(super().forward(**self._long_enough_to_train(one)))
            return torch.cat(parts)
        return super().forward(**self._long_enough_to_train(batch))

    def _long_enough_to_train(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """While the backbone trains, a batch too short for SpecAugment's time masks, padded to :func:`training_samples`.

        The padding is masked out where the backbone takes an attention mask
        (the features stay those of the clips); without one (group-norm
        encoders, run one clip at a time) the clip trains with silence after it.
        """
        values = batch.get("input_values")
        if not self.backbone.training or values is None or values.ndim != 2:
            return batch
        missing = training_samples(self.backbone.config) - values.shape[-1]
        if missing <= 0:
            return batch
        padded = dict(batch, input_values=torch.nn.functional.pad(values, (0, missing)))
        if "attention_mask" in batch:
            padded["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, missing))
        return padded

    def pool(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = getattr(outputs, "pooler_output", None)
        if self.pooling == "pooler" or (self.pooling == "auto" and pooled is not None):
            if pooled is None:
                raise ConfigurationError(f"{self.source!r} has no pooled output; use pooling='mean'.")
            return pooled
        hidden = outputs.last_hidden_state
        mask = self._frame_mask(hidden, batch)
        if mask is None:
            return hidden.mean(dim=1)
        mask = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def _frame_mask(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        frames = hidden.shape[1]
        if self._is_whisper and "attention_mask" in batch:  # mel-frame mask, the encoder halves time
            return batch["attention_mask"][:, ::2][:, :frames].bool()
        attention_mask = batch.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones_like(batch["input_values"], dtype=torch.long) if "input_values" in batch else None
        if attention_mask is not None and hasattr(self.backbone, "_get_feature_vector_attention_mask"):
            return self.backbone._get_feature_vector_attention_mask(frames, attention_mask).bool()
        return None
