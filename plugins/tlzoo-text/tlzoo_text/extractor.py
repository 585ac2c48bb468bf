"""Text feature extractor: any ``AutoModel`` text encoder + its tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tlzoo.errors import ConfigurationError, UnreadableExampleError
from tlzoo.features import FeatureExtractor, load_backbone

POOLINGS = ("auto", "mean", "cls", "pooler")
_UNBOUNDED = 100_000  # tokenizers without a limit report a huge model_max_length


class TextFeatureExtractor(FeatureExtractor):
    """Features of texts: mean over real tokens (default), the CLS token, or the pooler."""

    modality = "text"

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        pooling: str = "auto",
        max_length: int | None = None,
    ) -> TextFeatureExtractor:
        """Load encoder and tokenizer of a Hub id or local folder."""
        from transformers import AutoTokenizer

        if pooling not in POOLINGS:
            raise ConfigurationError(f"Unknown text pooling {pooling!r}; expected one of {', '.join(POOLINGS)}.")
        kwargs = {"add_pooling_layer": True} if pooling == "pooler" else {}
        backbone = load_backbone(source, revision=revision, token=token, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, token=token)
        extractor = cls(backbone, tokenizer, source=source, revision=revision, pooling=pooling)
        extractor.max_length = max_length or extractor._model_limit()
        return extractor

    def _model_limit(self) -> int:
        limit = getattr(self.processor, "model_max_length", None) or _UNBOUNDED
        if limit >= _UNBOUNDED:
            positions = getattr(self.backbone.config, "max_position_embeddings", 512)
            limit = min(positions, 512)
        return int(limit)

    def options(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "max_length": getattr(self, "max_length", None)}

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        for value in values:
            if not isinstance(value, str):
                raise UnreadableExampleError(f"Expected text (a string), got {type(value).__name__}: {value!r:.80}")
        batch = self.processor(
            list(values), truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        return dict(batch)

    def resolved_pooling(self) -> str:
        """The pooling ``auto`` stands for: the mean over the tokens (what sentence encoders are trained with)."""
        return "mean" if self.pooling == "auto" else self.pooling

    def pool(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooling = self.resolved_pooling()
        hidden = outputs.last_hidden_state
        if pooling == "cls":
            return hidden[:, 0]
        if pooling == "pooler":
            return outputs.pooler_output
        mask = batch["attention_mask"].to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
