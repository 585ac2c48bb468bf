"""Export an adapted model as a plain transformers classifier, for ``pipeline()``.

When the head is linear (an ``nn.Linear``, possibly after dropout) and the
modality's plugin names a transformers classifier class
(:attr:`~tlzoo.plugins.Modality.pipeline_class`) and a
:class:`~tlzoo.plugins.PipelineFamily` for the backbone's ``model_type`` whose
pooling equals tlzoo's, the family's ``place`` folds the head into that class's
own classifier layers, so its logits equal tlzoo's exactly. The built-in
plugins' tables list which families they export and how (docs/plugin-guide.md).

Every export is checked numerically on the modality's
:attr:`~tlzoo.plugins.Modality.sample_inputs`, one at a time as ``pipeline()``
runs them; a family that is not listed, a pooling that differs, or a check that
fails gives no export (the reason is returned and logged), and ``pipeline()``
then refuses the folder instead of building a random head.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tlzoo.heads import linear_layer

if TYPE_CHECKING:
    from tlzoo.features import FeatureExtractor
    from tlzoo.heads import TaskSpec

logger = logging.getLogger(__name__)

#: Largest difference between tlzoo's and the exported model's logits that passes the check.
ATOL = 1e-4

@dataclass
class PipelineExport:
    """The result of :func:`export_classifier`.

    :param model: the transformers classification model, or ``None`` when not exported.
    :param info: what ``tlzoo.json`` records under ``"pipeline"``: ``exported``,
        and ``task``/``architecture``/``head_keys``/``max_abs_diff`` or ``reason``.
    """

    model: Any | None
    info: dict[str, Any] = field(default_factory=dict)


def copy_linear(target: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Copy *weight* and *bias* into the ``nn.Linear`` *target* (for :attr:`PipelineFamily.place`)."""
    with torch.no_grad():
        target.weight.copy_(weight)
        target.bias.copy_(bias)


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
    except Exception as exc:  # noqa: BLE001 - an export is a bonus: never fail the save because of it
        return _refuse(f"export failed: {type(exc).__name__}: {exc}", level=logging.WARNING)


def _refuse(reason: str, *, level: int = logging.INFO) -> PipelineExport:
    logger.log(level, "The saved folder is not also a transformers pipeline() classifier (%s); it loads with "
               "tlzoo.load().", reason)
    return PipelineExport(None, {"exported": False, "reason": reason})


def _export(extractor: FeatureExtractor, head: nn.Module, task: TaskSpec, label_names: list[str]) -> PipelineExport:
    import transformers

    from tlzoo.plugins import get_modality

    modality = get_modality(extractor.modality)
    if not (modality.pipeline_class and modality.pipeline_task and modality.sample_inputs):
        return _refuse(f"the {modality.name!r} plugin exports no pipeline() classifier")
    linear = linear_layer(head)
    if linear is None:
        return _refuse(f"the head ({type(head).__name__}) is not linear; only a linear head folds into a classifier")
    config = copy.deepcopy(extractor.backbone.config)
    family = modality.pipeline_families.get(config.model_type)
    if family is None:
        supported = ", ".join(modality.pipeline_families) or "none"
        return _refuse(f"the {config.model_type!r} family is not supported (supported: {supported})")
    pooling = extractor.resolved_pooling()
    if pooling not in family.poolings:
        pools = "/".join(family.poolings)
        return _refuse(f"transformers' {config.model_type} classifiers pool with {pools}, this model with {pooling!r}")
    num_labels = task.num_labels
    if family.max_labels is not None and num_labels > family.max_labels(config):
        return _refuse(f"a {config.model_type} classifier holds at most {family.max_labels(config)} labels "
                       f"exactly, this task has {num_labels}")

    config.num_labels = num_labels
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    config.problem_type = task.problem_type
    for key, value in family.config.items():
        setattr(config, key, num_labels if value == "num_labels" else value)
    auto_class = getattr(transformers, modality.pipeline_class)
    model = auto_class.from_config(config)
    config.architectures = [type(model).__name__]
    base = getattr(model, model.base_model_prefix)
    base.load_state_dict(extractor.backbone.state_dict(), strict=True)
    family.place(model, linear.weight.detach().float().cpu(), linear.bias.detach().float().cpu())
    model.eval()

    diff = verify(model, extractor, head, modality.sample_inputs(extractor))
    if not diff <= ATOL:
        return _refuse(f"the exported {type(model).__name__} differs from tlzoo by {diff:.2e} (> {ATOL})")
    head_keys = sorted(k for k in model.state_dict() if not k.startswith(model.base_model_prefix + "."))
    info = {
        "exported": True,
        "task": modality.pipeline_task,
        "architecture": type(model).__name__,
        "head_keys": head_keys,
        "max_abs_diff": float(diff),
    }
    logger.info("Exported %s for pipeline(%r) (max |diff| %.1e).", info["architecture"], info["task"], diff)
    return PipelineExport(model, info)


@torch.no_grad()
def verify(model: Any, extractor: FeatureExtractor, head: nn.Module, values: list[Any]) -> float:
    """Largest |difference| between the exported and tlzoo's logits on the raw examples *values*.

    Examples are run one at a time, as ``pipeline()`` does.
    """
    device = next(extractor.parameters()).device
    was_training = extractor.training, head.training
    extractor.eval()
    head.eval()
    model.to(device)
    try:
        worst = 0.0
        for value in values:
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
