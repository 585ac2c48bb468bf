"""Export an adapted model as a plain transformers classifier, for ``pipeline()``.

When the head is linear (an ``nn.Linear``, possibly after dropout) and the
backbone family has a transformers ``*ForImageClassification``,
``*ForAudioClassification`` or ``*ForSequenceClassification`` class whose own
pooling equals tlzoo's, the head folds into that class's classifier so its
logits equal tlzoo's exactly:

========================  ==========================================================
family (tlzoo pooling)    how the head is placed
========================  ==========================================================
ViT, DeiT (cls)           ``classifier`` on the CLS token
ConvNeXt, Swin            ``classifier`` on the pooled output
ResNet                    ``classifier[1]`` (``Sequential(Flatten, Linear)``)
DINOv2 (cls)              ``classifier`` on ``concat(CLS, mean patch)``: the head on
                          the CLS half, zeros on the other
wav2vec2, HuBERT,         ``projector`` = the head (``classifier_proj_size`` =
WavLM (mean)              labels), ``classifier`` = identity: exact, the mean is linear
BERT (pooler)             ``classifier`` on the pooler output
DistilBERT (cls)          ``pre_classifier`` rows ``[W; -W]``, ``classifier``
                          ``[I, -I]``: ``relu(z) - relu(-z) = z``
========================  ==========================================================

Every export is checked numerically on a probe batch made by the extractor's
own preprocessing; a family that is not listed, a pooling that differs, or a
check that fails gives no export (the reason is returned and logged).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from tlzoo.features import FeatureExtractor
    from tlzoo.heads import TaskSpec

logger = logging.getLogger(__name__)

#: Largest difference between tlzoo's and the exported model's logits that passes the check.
ATOL = 1e-4

PIPELINE_TASKS = {"image": "image-classification", "audio": "audio-classification", "text": "text-classification"}
_AUTO_CLASSES = {
    "image": "AutoModelForImageClassification",
    "audio": "AutoModelForAudioClassification",
    "text": "AutoModelForSequenceClassification",
}


@dataclass
class PipelineExport:
    """The result of :func:`export_classifier`.

    :param model: the transformers classification model, or ``None`` when not exported.
    :param info: what ``tlzoo.json`` records under ``"pipeline"``: ``exported``,
        and ``task``/``architecture``/``head_keys``/``max_abs_diff`` or ``reason``.
    """

    model: Any | None
    info: dict[str, Any] = field(default_factory=dict)


def linear_layer(head: nn.Module) -> nn.Linear | None:
    """The head's only ``nn.Linear`` if the head is linear (dropout/identity allowed), else ``None``."""
    if isinstance(head, nn.Linear):
        return head
    if isinstance(head, nn.Sequential):
        layers = list(head)
        rest = [m for m in layers if not isinstance(m, nn.Dropout | nn.Identity)]
        if len(rest) == 1 and isinstance(rest[0], nn.Linear) and layers[-1] is rest[0]:
            return rest[0]
    return None


def _copy(target: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    with torch.no_grad():
        target.weight.copy_(weight)
        target.bias.copy_(bias)


def _place_plain(model: Any, w: torch.Tensor, b: torch.Tensor) -> None:
    _copy(model.classifier, w, b)


def _place_resnet(model: Any, w: torch.Tensor, b: torch.Tensor) -> None:
    _copy(model.classifier[-1], w, b)


def _place_dinov2(model: Any, w: torch.Tensor, b: torch.Tensor) -> None:
    _copy(model.classifier, torch.cat([w, torch.zeros_like(w)], dim=1), b)


def _place_speech(model: Any, w: torch.Tensor, b: torch.Tensor) -> None:
    _copy(model.projector, w, b)
    n = w.shape[0]
    _copy(model.classifier, torch.eye(n, dtype=w.dtype), torch.zeros(n, dtype=w.dtype))


def _place_distilbert(model: Any, w: torch.Tensor, b: torch.Tensor) -> None:
    n, dim = w.shape
    pre_w = torch.zeros(dim, dim, dtype=w.dtype)
    pre_b = torch.zeros(dim, dtype=w.dtype)
    pre_w[:n], pre_w[n : 2 * n] = w, -w
    pre_b[:n], pre_b[n : 2 * n] = b, -b
    out_w = torch.zeros(n, dim, dtype=w.dtype)
    out_w[:, :n], out_w[:, n : 2 * n] = torch.eye(n), -torch.eye(n)
    _copy(model.pre_classifier, pre_w, pre_b)
    _copy(model.classifier, out_w, torch.zeros(n, dtype=w.dtype))


@dataclass(frozen=True)
class _Family:
    poolings: tuple[str, ...]  # tlzoo poolings the exported class reproduces
    place: Callable[[Any, torch.Tensor, torch.Tensor], None]
    config: dict[str, Any] = field(default_factory=dict)  # config fields that depend on num_labels


_SPEECH = _Family(
    ("auto", "mean"), _place_speech, {"classifier_proj_size": "num_labels", "use_weighted_layer_sum": False}
)
FAMILIES: dict[str, _Family] = {
    "vit": _Family(("cls",), _place_plain),
    "deit": _Family(("cls",), _place_plain),
    "convnext": _Family(("pooler",), _place_plain),
    "swin": _Family(("pooler",), _place_plain),
    "resnet": _Family(("pooler",), _place_resnet),
    "dinov2": _Family(("cls",), _place_dinov2),
    "wav2vec2": _SPEECH,
    "hubert": _SPEECH,
    "wavlm": _SPEECH,
    "bert": _Family(("pooler",), _place_plain),
    "distilbert": _Family(("cls",), _place_distilbert),
}


def _probe_values(extractor: FeatureExtractor) -> list[Any]:
    """A few made-up raw examples for the extractor's own preprocessing."""
    rng = np.random.default_rng(0)
    if extractor.modality == "image":
        from PIL import Image

        sizes = ((40, 48), (33, 33), (64, 20))
        return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    if extractor.modality == "audio":
        rate = int(getattr(extractor, "sampling_rate", 16000))
        return [(rng.standard_normal(int(rate * s)) * 0.1).astype(np.float32) for s in (0.25, 0.4, 0.6)]
    return ["a short sentence", "another made up example with a few more words in it", "x"]


def export_classifier(
    extractor: FeatureExtractor, head: nn.Module, task: TaskSpec, label_names: list[str]
) -> PipelineExport:
    """Build the transformers classifier whose logits equal ``head(extractor(x))``, if one exists.

    Never raises for an unsupported model: the returned :class:`PipelineExport`
    has ``model=None`` and the reason (also logged: at INFO when the model is
    simply not one a pipeline can hold exactly, as a warning when the export failed).
    """
    try:
        return _export(extractor, head, task, label_names)
    except Exception as exc:  # an export is a bonus: never fail the save because of it
        return _refuse(f"export failed: {type(exc).__name__}: {exc}", level=logging.WARNING)


def _refuse(reason: str, *, level: int = logging.INFO) -> PipelineExport:
    logger.log(level, "The saved folder is not also a transformers pipeline() classifier (%s); it loads with "
               "tlzoo.load().", reason)
    return PipelineExport(None, {"exported": False, "reason": reason})


def _export(extractor: FeatureExtractor, head: nn.Module, task: TaskSpec, label_names: list[str]) -> PipelineExport:
    import transformers

    modality = extractor.modality
    if modality not in _AUTO_CLASSES:
        return _refuse(f"no pipeline() task for the {modality!r} modality")
    linear = linear_layer(head)
    if linear is None:
        return _refuse(f"the head ({type(head).__name__}) is not linear; only a linear head folds into a classifier")
    config = copy.deepcopy(extractor.backbone.config)
    family = FAMILIES.get(config.model_type)
    if family is None:
        return _refuse(f"the {config.model_type!r} family is not supported (supported: {', '.join(FAMILIES)})")
    pooling = extractor.resolved_pooling()
    if pooling not in family.poolings:
        pools = "/".join(family.poolings)
        return _refuse(f"transformers' {config.model_type} classifiers pool with {pools}, this model with {pooling!r}")
    num_labels = task.num_labels
    if config.model_type == "distilbert" and 2 * num_labels > config.dim:
        return _refuse(f"DistilBERT's pre_classifier ({config.dim} wide) cannot hold 2 x {num_labels} labels")

    config.num_labels = num_labels
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    config.problem_type = task.problem_type
    for key, value in family.config.items():
        setattr(config, key, num_labels if value == "num_labels" else value)
    auto_class = getattr(transformers, _AUTO_CLASSES[modality])
    model = auto_class.from_config(config)
    config.architectures = [type(model).__name__]
    base = getattr(model, model.base_model_prefix)
    base.load_state_dict(extractor.backbone.state_dict(), strict=True)
    family.place(model, linear.weight.detach().float().cpu(), linear.bias.detach().float().cpu())
    model.eval()

    diff = verify(model, extractor, head)
    if not diff <= ATOL:
        return _refuse(f"the exported {type(model).__name__} differs from tlzoo by {diff:.2e} (> {ATOL})")
    head_keys = sorted(k for k in model.state_dict() if not k.startswith(model.base_model_prefix + "."))
    info = {
        "exported": True,
        "task": PIPELINE_TASKS[modality],
        "architecture": type(model).__name__,
        "head_keys": head_keys,
        "max_abs_diff": float(diff),
    }
    logger.info("Exported %s for pipeline(%r) (max |diff| %.1e).", info["architecture"], info["task"], diff)
    return PipelineExport(model, info)


@torch.no_grad()
def verify(model: Any, extractor: FeatureExtractor, head: nn.Module) -> float:
    """Largest |difference| between the exported and tlzoo's logits on probe inputs.

    Examples are run one at a time, as ``pipeline()`` does.
    """
    device = next(extractor.parameters()).device
    was_training = extractor.training, head.training
    extractor.eval()
    head.eval()
    model.to(device)
    try:
        worst = 0.0
        for value in _probe_values(extractor):
            batch = {k: v.to(device) for k, v in extractor.preprocess([value]).items()}
            expected = head(extractor(**batch)).float()
            got = model(**extractor.backbone_inputs(batch)).logits.float()
            if got.shape != expected.shape:
                return float("inf")
            worst = max(worst, float((got - expected).abs().max()))
        return worst
    finally:
        model.cpu()
        extractor.train(was_training[0])
        head.train(was_training[1])


class _HeadKeysFilter(logging.Filter):
    """Drops transformers' LOAD REPORT when it only lists the exported classifier's keys as unexpected."""

    def __init__(self, head_keys: list[str]) -> None:
        super().__init__()
        self.head_keys = set(head_keys)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        rows = re.findall(r"^(\S+)\s*\|\s*(?:\x1b\[[0-9;]*m)?([A-Z]+)", message, flags=re.MULTILINE)
        rows = [(key, status) for key, status in rows if key not in ("Key",) and not key.startswith("-")]
        expected = bool(rows) and all(status == "UNEXPECTED" and key in self.head_keys for key, status in rows)
        return not expected


@contextlib.contextmanager
def quiet_exported_head(head_keys: list[str] | None) -> Iterator[None]:
    """While a backbone loads from an exported folder, hide the report of the classifier keys it skips.

    Only a report whose every row is one of *head_keys* marked UNEXPECTED is
    hidden; missing or mismatched weights are still reported.
    """
    if not head_keys:
        yield
        return
    target = logging.getLogger("transformers.modeling_utils")
    flt = _HeadKeysFilter(head_keys)
    target.addFilter(flt)
    try:
        yield
    finally:
        target.removeFilter(flt)
