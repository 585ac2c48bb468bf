"""The shared feature layers of a source model, as one ``torch.nn.Module``.

A :class:`FeatureExtractor` holds the pretrained backbone, its preprocessor and
the pooling that turns the backbone's output into one vector per example. Each
modality plugin subclasses it and fills in :meth:`~FeatureExtractor.preprocess`
and :meth:`~FeatureExtractor.pool`; everything else (layer groups for
freezing and per-layer learning rates, the feature-cache key, saving) is shared.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class LayerGroup:
    """A named group of backbone parameters, ordered from input to output."""

    name: str
    parameters: list[nn.Parameter]

    @property
    def num_parameters(self) -> int:
        """How many weights the group holds."""
        return sum(p.numel() for p in self.parameters)


def accepts_kwarg(model_class: type, name: str) -> bool:
    """Whether ``model_class(config, name=...)`` is accepted (e.g. ``add_pooling_layer``)."""
    import inspect

    try:
        return name in inspect.signature(model_class.__init__).parameters
    except (TypeError, ValueError):
        return False


def load_backbone(source: str, *, revision: str | None = None, token: str | bool | None = None, **kwargs: Any) -> nn.Module:
    """Load the bare backbone (``AutoModel``) of *source*, without an unused pooler.

    Pooling layers that tlzoo does not use (BERT's and ViT's pooler) are left
    out, so loading reports no newly initialised weights, and the checkpoint's
    pooler weights are skipped without a report of unexpected keys.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config = AutoConfig.from_pretrained(source, revision=revision, token=token)
    model_class = MODEL_MAPPING.get(type(config), None)
    if model_class is not None and accepts_kwarg(model_class, "add_pooling_layer"):
        kwargs.setdefault("add_pooling_layer", False)
        if not kwargs["add_pooling_layer"]:
            return _without_pooler(model_class).from_pretrained(
                source, revision=revision, token=token, config=config, **kwargs
            )
    return AutoModel.from_pretrained(source, revision=revision, token=token, **kwargs)


def backbone_skeleton(config: Any) -> nn.Module | None:
    """The architecture ``AutoModel`` builds from *config*, on the meta device: module names and types, no weights.

    Instant even for large models, so a model-dependent argument (``lora``'s
    target modules) can be checked before any weights load. It holds every
    module a plugin's backbone has (pooler included; the whole encoder-decoder
    for Whisper), and possibly more. ``None`` when transformers cannot build
    the architecture from the config alone (a custom plugin's backbone).
    """
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            return AutoModel.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any failure only means: no early check; loading checks again
        logger.debug("No meta-device skeleton of %s (%s); its LoRA targets are checked when it loads.",
                     type(config).__name__, exc)
        return None


@functools.cache
def _without_pooler(model_class: type) -> type:
    """*model_class* (same name) that ignores a checkpoint's pooler weights when built without a pooler."""
    ignored = {*(getattr(model_class, "_keys_to_ignore_on_load_unexpected", None) or ()), r"(^|\.)pooler\."}
    return type(model_class.__name__, (model_class,), {"_keys_to_ignore_on_load_unexpected": ignored,
                                                       "__module__": model_class.__module__})


class FeatureExtractor(nn.Module):
    """Pretrained backbone + preprocessor + pooling: one feature vector per example.

    Subclasses (one per modality plugin) implement :meth:`preprocess` and
    :meth:`pool`, and may override :attr:`feature_size`.

    :param backbone: the transformers model (``AutoModel``) with the feature layers.
    :param processor: its image processor, feature extractor or tokenizer; ``None``
        for models that take tensors as they are (the extractor's
        :meth:`preprocess` makes them).
    :param source: the Hub id or folder it was loaded from.
    :param revision: the Hub revision, if pinned.
    :param pooling: the pooling name (``"auto"`` lets the plugin choose).
    """

    modality: str = ""

    def __init__(
        self, backbone: nn.Module, processor: Any, *, source: str, revision: str | None = None, pooling: str = "auto"
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.processor = processor
        self.source = source
        self.revision = revision
        self.pooling = pooling

    # --- what a plugin fills in -------------------------------------------------
    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Turn raw examples into a batch of CPU tensors for :meth:`forward`.

        Runs in data-loader workers, so it must not touch the backbone.
        """
        raise NotImplementedError

    def pool(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reduce the backbone's outputs to ``[batch, feature_size]``."""
        raise NotImplementedError

    def resolved_pooling(self) -> str:
        """The pooling :meth:`pool` applies: :attr:`pooling`, with ``"auto"`` replaced by the plugin's choice.

        Read when saving (a transformers classifier is exported only when its own
        pooling is this one). The default returns :attr:`pooling` unchanged; a
        plugin whose ``"auto"`` stands for a named pooling overrides it.
        """
        return self.pooling

    # --- shared ------------------------------------------------------------------
    @property
    def config(self) -> Any:
        """The backbone's transformers config."""
        return self.backbone.config

    @property
    def feature_size(self) -> int:
        """Width of the pooled feature vector."""
        return int(self.backbone.config.hidden_size)

    def backbone_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The part of a preprocessed batch the backbone takes as keyword arguments."""
        return {k: v for k, v in batch.items() if not k.startswith("tlzoo_")}

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        """Features ``[batch, feature_size]`` for a batch made by :meth:`preprocess`."""
        outputs = self.backbone(**self.backbone_inputs(batch))
        return self.pool(outputs, batch)

    @torch.no_grad()
    def extract(self, values: Sequence[Any]) -> torch.Tensor:
        """Features of raw examples in one call (eval mode, no gradients)."""
        was_training = self.training
        self.eval()
        try:
            first = next(self.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
            batch = {k: v.to(device) for k, v in self.preprocess(values).items()}
            return self(**batch).float().cpu()
        finally:
            self.train(was_training)

    def layer_groups(self) -> list[LayerGroup]:
        """The backbone's parameters in ordered groups: embeddings, each block, top.

        The blocks are the largest ``nn.ModuleList`` in the backbone (the
        encoder layers, or the stages of a CNN); parameters registered before
        them form ``embeddings`` and those after them (final norms) ``top``.
        """
        lists = [(name, mod) for name, mod in self.backbone.named_modules() if isinstance(mod, nn.ModuleList) and len(mod)]
        if not lists:
            return [LayerGroup("backbone", list(self.backbone.parameters()))]
        blocks_name, blocks = max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))
        before: list[nn.Parameter] = []
        after: list[nn.Parameter] = []
        seen = False
        for name, param in self.backbone.named_parameters():
            if name.startswith(blocks_name + "."):
                seen = True
            elif seen:
                after.append(param)
            else:
                before.append(param)
        groups = [LayerGroup("embeddings", before)] if before else []
        groups += [LayerGroup(f"{blocks_name}.{i}", list(block.parameters())) for i, block in enumerate(blocks)]
        if after:
            groups.append(LayerGroup("top", after))
        return groups

    def processor_fingerprint(self) -> str:
        """A stable description of the preprocessing (part of the cache key)."""
        proc = self.processor
        backend = getattr(proc, "backend_tokenizer", None)
        if backend is not None:
            # a call with padding/truncation leaves them set on the backend: the key must not change with use
            state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
            return json.dumps(state, sort_keys=True) + str(getattr(proc, "model_max_length", ""))
        if hasattr(proc, "to_json_string"):
            return proc.to_json_string()
        return repr(proc)

    def weights_fingerprint(self) -> str:
        """A cheap digest of the backbone weights (a sample of every tensor)."""
        h = hashlib.blake2b(digest_size=16)
        for name, tensor in sorted(self.backbone.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            sample = torch.cat([flat[:64], flat[-64:]]).float().cpu().numpy()
            h.update(f"{name}{tuple(tensor.shape)}".encode())
            h.update(sample.tobytes())
        return h.hexdigest()

    def cache_key(self) -> str:
        """Key of this extractor's features in the feature cache.

        Made of the source id and revision (and the Hub commit when known), the
        preprocessing config, the pooling, and a digest of the weights.
        """
        parts = {
            "class": type(self).__qualname__,
            "source": os.path.basename(os.path.normpath(self.source)),
            "revision": self.revision,
            "commit": getattr(self.backbone.config, "_commit_hash", None),
            "processor": hashlib.sha256(self.processor_fingerprint().encode()).hexdigest(),
            "pooling": self.pooling,
            "options": self.options(),
            "weights": self.weights_fingerprint(),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def options(self) -> dict[str, Any]:
        """The keyword options that rebuild this extractor (saved with the model)."""
        return {"pooling": self.pooling}

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Save the backbone and its preprocessor (when it has one) in transformers format."""
        self.backbone.save_pretrained(path)
        if self.processor is not None:
            self.processor.save_pretrained(path)
