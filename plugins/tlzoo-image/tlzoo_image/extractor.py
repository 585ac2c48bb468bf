"""Image feature extractor: any ``AutoModel`` vision backbone + its image processor."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tlzoo.errors import ConfigurationError, UnreadableExampleError
from tlzoo.features import FeatureExtractor, load_backbone

POOLINGS = ("auto", "cls", "mean", "pooler")


def open_image(value: Any, *, verify_only: bool = False) -> Image.Image:
    """Turn a PIL image, array, path or ``{"bytes", "path"}`` mapping into an RGB image.

    ``verify_only=True`` is the cheap check run on the data before any model
    loads: the header is read and, for formats whose decoder can check a file
    without decoding it (PNG's chunk checksums, WebP), the whole file is
    verified, so a truncated PNG is named then. The image returned by a check
    must not be used.

    :raises UnreadableExampleError: naming the file, when it cannot be read.
    """
    name = None
    opened = False  # opened from bytes or a file (not a PIL image or an array): the decoder can verify it
    try:
        if isinstance(value, Image.Image):
            image = value
        elif isinstance(value, dict):
            name = value.get("path")
            data = value.get("bytes")
            image = Image.open(io.BytesIO(data)) if data is not None else Image.open(name)
            opened = True
        elif isinstance(value, str | os.PathLike):
            name = os.fspath(value)
            image = Image.open(name)
            opened = True
        elif isinstance(value, np.ndarray):
            array = value
            if array.dtype != np.uint8:
                scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
                array = np.clip(array * scale, 0, 255).astype(np.uint8)
            if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
                array = array.transpose(1, 2, 0)  # channels-first to channels-last
            image = Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
        else:
            raise TypeError(f"expected a PIL image, array, file path or datasets Image value, got {type(value).__name__}")
        if verify_only:
            image.size  # noqa: B018 - reading the header is the check
            if opened:
                image.verify()
            return image
        return image.convert("RGB")
    except (OSError, ValueError, TypeError, SyntaxError, EOFError, struct.error) as exc:
        what = f"image file {name!r}" if name else "an image"
        fix = "" if verify_only else " Remove or replace it, then run again."
        raise UnreadableExampleError(f"Cannot read {what}: {_reason(exc, value)}.{fix}") from exc


def _reason(exc: BaseException, value: Any) -> str:
    """Why an image cannot be read, in words (Pillow's "cannot identify" names a buffer, not the file)."""
    if isinstance(exc, UnidentifiedImageError):
        try:
            data = value.get("bytes") if isinstance(value, dict) else None
            empty = len(data) == 0 if data is not None else os.path.getsize(value["path"] if isinstance(value, dict)
                                                                            else value) == 0
        except (OSError, TypeError, KeyError):
            empty = False
        return "the file is empty" if empty else "it is not an image in a format Pillow reads"
    return str(exc).rstrip(".") or type(exc).__name__


class ImageFeatureExtractor(FeatureExtractor):
    """Features of images: the CLS token, the model's pooled output, or a spatial mean."""

    modality = "image"

    @classmethod
    def from_pretrained(
        cls, source: str, *, revision: str | None = None, token: str | bool | None = None, pooling: str = "auto"
    ) -> ImageFeatureExtractor:
        """Load backbone and image processor of a Hub id or local folder."""
        from transformers import AutoImageProcessor

        if pooling not in POOLINGS:
            raise ConfigurationError(f"Unknown image pooling {pooling!r}; expected one of {', '.join(POOLINGS)}.")
        backbone = load_backbone(source, revision=revision, token=token)
        processor = AutoImageProcessor.from_pretrained(source, revision=revision, token=token)
        return cls(backbone, processor, source=source, revision=revision, pooling=pooling)

    def resolved_pooling(self) -> str:
        """The pooling ``auto`` stands for with this backbone."""
        if self.pooling != "auto":
            return self.pooling
        embeddings = getattr(self.backbone, "embeddings", None)
        if embeddings is not None and getattr(embeddings, "cls_token", None) is not None:
            return "cls"
        return "pooler"

    @property
    def feature_size(self) -> int:
        sizes = getattr(self.backbone.config, "hidden_sizes", None)  # CNNs: width of the last stage
        return int(sizes[-1]) if sizes else int(self.backbone.config.hidden_size)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        images = [open_image(v) for v in values]
        return dict(self.processor(images=images, return_tensors="pt"))

    def pool(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooling = self.resolved_pooling()
        hidden = outputs.last_hidden_state
        if pooling == "cls" and hidden.ndim == 3:
            return hidden[:, 0]
        pooled = getattr(outputs, "pooler_output", None)
        if pooling == "pooler" and pooled is not None:
            return pooled.flatten(1)
        if hidden.ndim == 4:  # CNN feature map [B, C, H, W]
            return hidden.mean(dim=(2, 3))
        return hidden.mean(dim=1)
