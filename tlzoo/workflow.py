"""``adapt()``: source model → target data → new task layer → train → evaluate.

Every step has its own module or package (registry, data, heads, training,
evaluation, model); this one runs them in order, checks the arguments and the
data before any model is loaded, and writes nothing to ``output_dir`` until the
expensive work starts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlzoo.errors import ConfigurationError
from tlzoo.heads import TaskSpec, get_head_factory, parse_head
from tlzoo.hub import unreachable_source_error
from tlzoo.progress import library_progress_bars
from tlzoo.training.lora import LoraSettings, lora_settings
from tlzoo.training.strategies import check_strategy

if TYPE_CHECKING:
    from tlzoo.model import AdaptedModel
    from tlzoo.registry import SourceModel

logger = logging.getLogger(__name__)

MIXED_PRECISION = (None, "no", "fp16", "bf16", "fp8")


@dataclass
class AdaptResult:
    """What ``adapt()`` returns.

    :ivar model: the adapted model (backbone + new head), ready to predict, save and push.
    :ivar metrics: final metrics per held-out split, e.g. ``{"test": {"accuracy": ...}, "validation": {...}}``.
    :ivar history: one record per epoch (phase, losses, validation metrics, learning rate, seconds).
    :ivar recipe: what was trained and how: strategy (and why, when ``auto`` chose it), hyper-parameters, data summary.
    :ivar output_dir: where the model, checkpoints and plots were written (``None`` if nowhere).
    :ivar commit_url: the Hub commit, when ``push_to_hub`` was given.
    """

    model: AdaptedModel
    metrics: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    recipe: dict[str, Any]
    output_dir: Path | None = None
    commit_url: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _check_arguments(*, strategy: str, head: Any, mixed_precision: str | None, gradient_accumulation_steps: int,
                     batch_size: int, epochs: int | None, learning_rate: float | None, output_dir: Any,
                     overwrite_output_dir: bool, resume_from: Any, early_stopping: int | None,
                     lora: LoraSettings) -> None:
    check_strategy(strategy)
    if strategy != "lora" and lora != LoraSettings():
        logger.warning("The lora_* arguments apply to strategy='lora' only; ignored for strategy=%r.", strategy)
    get_head_factory(parse_head(head)[0])
    if mixed_precision not in MIXED_PRECISION:
        raise ConfigurationError(f"mixed_precision must be one of 'no', 'fp16', 'bf16', 'fp8', got {mixed_precision!r}.")
    for name, value in (("gradient_accumulation_steps", gradient_accumulation_steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ConfigurationError(f"epochs must be a positive integer, got {epochs!r}.")
    if learning_rate is not None and not (learning_rate > 0):
        raise ConfigurationError(f"learning_rate must be positive, got {learning_rate!r}.")
    if early_stopping is not None and (not isinstance(early_stopping, int) or early_stopping < 1):
        raise ConfigurationError(f"early_stopping is a patience in epochs (a positive integer), got {early_stopping!r}.")
    if output_dir is not None and not resume_from and not overwrite_output_dir:
        model_dir = Path(output_dir) / "model"
        if model_dir.exists() and any(model_dir.iterdir()):
            raise ConfigurationError(
                f"{model_dir} already holds a model; pass overwrite_output_dir=True (--overwrite-output-dir) to "
                "replace it, resume_from=True (--resume) to continue its training, or choose another output_dir."
            )


def _bars_follow_progress(function: Callable[..., AdaptResult]) -> Callable[..., AdaptResult]:
    """With ``progress=False``, also hide the libraries' bars (downloads, weight loading, data mapping) in the call."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> AdaptResult:
        if kwargs.get("progress", True):
            return function(*args, **kwargs)
        with library_progress_bars(hub=False, transformers=False, datasets=False):
            return function(*args, **kwargs)

    return wrapper


@_bars_follow_progress
def adapt(
    source: Any,
    data: Any,
    *,
    task: str = "auto",
    input_column: str | None = None,
    label_column: str | None = None,
    strategy: str = "auto",
    head: str | dict[str, Any] = "linear",
    epochs: int | None = None,
    batch_size: int = 32,
    learning_rate: float | None = None,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    lr_scheduler_type: str = "linear",
    layer_decay: float = 0.75,
    trainable_layers: int = 2,
    lp_epochs: int | None = None,
    metrics: list[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    overwrite_output_dir: bool = False,
    seed: int = 0,
    mixed_precision: str | None = None,
    gradient_accumulation_steps: int = 1,
    max_grad_norm: float | None = 1.0,
    early_stopping: int | None = None,
    metric_for_best_model: str = "loss",
    greater_is_better: bool | None = None,
    resume_from: str | os.PathLike[str] | bool | None = None,
    save_strategy: str = "epoch",
    save_total_limit: int = 2,
    report_to: str | list[str] | None = None,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    class_weights: str | list[float] | None = None,
    pooling: str = "auto",
    revision: str | None = None,
    token: str | bool | None = None,
    registry: str | os.PathLike[str] | None = None,
    use_feature_cache: bool = True,
    dataloader_num_workers: int = 0,
    push_to_hub: str | None = None,
    hub_private: bool | None = None,
    hub_endpoint: str | None = None,
    progress: bool = True,
    lora_rank: int = 8,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.0,
    lora_target_modules: str | list[str] = "all-linear",
) -> AdaptResult:
    """Adapt a pretrained *source* model to the labelled target *data*.

    >>> result = tlzoo.adapt("all-minilm-l6-v2", "reviews.csv", label_column="sentiment")  # doctest: +SKIP

    :param source: a zoo name (``tlzoo models``), a Hub id, or a local model folder.
    :param data: a ``datasets.Dataset``/``DatasetDict``, a pandas DataFrame, a
        Hub dataset id, a folder (one sub-folder per class), or a CSV/JSON/Parquet file.
    :param task: ``auto``, ``single_label_classification``, ``multi_label_classification`` or ``regression``.
    :param input_column: the column of inputs (found by modality when ``None``).
    :param label_column: the column of labels (a ClassLabel or a usual name when ``None``).
    :param strategy: ``auto``, ``linear_probe``, ``partial``, ``full``, ``lp_ft`` or ``lora`` (see
        docs/user-guide.md); ``auto`` never picks ``lora``.
    :param head: a head name (``linear``, ``mlp``, or a plugin's) or ``{"name": ..., **options}``.
    :param epochs: training epochs (fine-tuning epochs for ``lp_ft``); default 30 for a
        linear probe, 5 for fine-tuning, 10 for ``lora``.
    :param batch_size: examples per optimizer step and device, before accumulation (global
        across processes: each of N processes takes ``batch_size / N``).
    :param learning_rate: peak learning rate of the head; default 3e-3 for a linear probe,
        5e-5 for fine-tuning, 5e-4 for ``lora`` (its adapters start at zero and hold few
        weights, so they want a higher rate than full fine-tuning; head and adapters share
        it). Backbone layers get ``learning_rate * layer_decay ** depth``.
    :param weight_decay: AdamW weight decay (not on biases and norms).
    :param warmup_ratio: fraction of fine-tuning steps spent warming up the learning rate.
    :param lr_scheduler_type: a ``transformers.get_scheduler`` name (``linear``, ``cosine``, ...).
    :param layer_decay: layer-wise learning-rate decay for ``full``/``partial``/``lp_ft``.
    :param trainable_layers: layer groups (counted from the top) that ``partial`` trains.
    :param lp_epochs: linear-probe epochs of ``lp_ft`` (default 30).
    :param metrics: metric names (default accuracy, F1, precision, recall; or MSE, MAE, R²).
    :param output_dir: where to write the model (``output_dir/model``, with its plots in
        ``output_dir/model/plots``), checkpoints and ``results.json``.
    :param overwrite_output_dir: replace a model already in ``output_dir``.
    :param seed: seeds data splits, head initialisation, shuffling and dropout.
    :param mixed_precision: ``no``, ``fp16``, ``bf16`` or ``fp8`` (accelerate's).
    :param gradient_accumulation_steps: batches per optimizer step.
    :param max_grad_norm: gradient clipping (``None`` to disable).
    :param early_stopping: stop after this many epochs without a better validation
        ``metric_for_best_model``, and restore the best weights.
    :param metric_for_best_model: validation metric for early stopping (``loss``, ``accuracy``, ``f1``, ``mse``, ...).
    :param greater_is_better: whether that metric improves upwards (default: by its name).
    :param resume_from: a checkpoint folder, or ``True`` for the latest in ``output_dir``.
    :param save_strategy: ``epoch`` (checkpoint each epoch when ``output_dir`` is set) or ``no``.
    :param save_total_limit: checkpoints kept.
    :param report_to: accelerate trackers (``tensorboard``, ``wandb``, ...).
    :param test_size: held-out test fraction when the data has no test split.
    :param validation_size: validation fraction of train when the data has none (0: none).
    :param class_weights: ``"balanced"`` or one weight per class, for imbalanced data.
    :param pooling: the feature extractor's pooling (``auto``, or a plugin's: ``mean``, ``cls``, ``pooler``).
    :param revision: Hub revision of the source model.
    :param token: Hub token for private source models.
    :param registry: a registry file merged over the zoo.
    :param use_feature_cache: keep frozen-backbone features on disk between runs.
    :param dataloader_num_workers: worker processes that preprocess batches.
    :param push_to_hub: a repo id (``org/name``) to push the adapted model to.
    :param hub_private: create the Hub repo private.
    :param hub_endpoint: a private Hub deployment's URL.
    :param progress: show progress bars; ``False`` hides huggingface_hub's, transformers' and datasets'
        bars inside the call as well as tlzoo's.
    :param lora_rank: rank of ``lora``'s adapters (peft ``LoraConfig.r``).
    :param lora_alpha: their scale numerator (update ``alpha / rank * B @ A``); default ``2 * lora_rank``.
    :param lora_dropout: dropout on the adapters' inputs while training.
    :param lora_target_modules: the backbone modules that get adapters: ``"all-linear"``,
        a regular expression matched against whole module names, or a list of names
        (each matching the modules whose name ends in it, e.g. ``["query", "value"]``).
    :raises tlzoo.TlzooError: a subclass naming the problem, before any model loads
        when the arguments or the data are at fault.
    """
    started = time.perf_counter()
    from tlzoo.data import class_weights as balanced_weights
    from tlzoo.data import load_target_data
    from tlzoo.plugins import get_modality
    from tlzoo.registry import resolve_source

    lora = lora_settings(lora_rank, lora_alpha, lora_dropout, lora_target_modules)
    _check_arguments(strategy=strategy, head=head, mixed_precision=mixed_precision,
                     gradient_accumulation_steps=gradient_accumulation_steps, batch_size=batch_size, epochs=epochs,
                     learning_rate=learning_rate, output_dir=output_dir, overwrite_output_dir=overwrite_output_dir,
                     resume_from=resume_from, early_stopping=early_stopping, lora=lora)
    if push_to_hub:
        from tlzoo.hub import check_push_target

        check_push_target(push_to_hub, token=token if isinstance(token, str) else None, endpoint=hub_endpoint)
    src = resolve_source(source, revision=revision, registry=registry, token=token)
    modality = get_modality(src.modality)
    if strategy == "lora":
        _check_lora_targets(lora, src, token)
    target = load_target_data(data, modality, input_column=input_column, label_column=label_column, task=task,
                              seed=seed, test_size=test_size, validation_size=validation_size)
    if early_stopping and "validation" not in target.splits:
        raise ConfigurationError("early_stopping needs a validation split: give one, or set validation_size > 0.")
    weights = _class_weights(class_weights, target, balanced_weights)
    timings = {"data": time.perf_counter() - started}

    extractor = _build_extractor(modality, src, token=token, pooling=pooling)
    timings["load_model"] = time.perf_counter() - started - timings["data"]
    from tlzoo.training.train import train

    trained = train(
        extractor, modality, target, strategy=strategy, head=head, epochs=epochs, lp_epochs=lp_epochs,
        batch_size=batch_size, learning_rate=learning_rate, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
        lr_scheduler_type=lr_scheduler_type, layer_decay=layer_decay, trainable_layers=trainable_layers,
        metrics=metrics, output_dir=Path(output_dir) if output_dir is not None else None, seed=seed,
        mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps,
        max_grad_norm=max_grad_norm, early_stopping=early_stopping, metric_for_best_model=metric_for_best_model,
        greater_is_better=greater_is_better, resume_from=resume_from, save_strategy=save_strategy,
        save_total_limit=save_total_limit, report_to=report_to, class_weights=weights,
        use_feature_cache=use_feature_cache, dataloader_num_workers=dataloader_num_workers, progress=progress,
        lora=lora,
    )
    timings.update(trained.timings)
    recipe = {
        "source": src.to_dict(),
        "data": target.summary(),
        "strategy": trained.strategy,
        "strategy_reason": trained.reason,
        "requested_strategy": strategy,
        "head": head,
        "hyperparameters": trained.hyperparameters,
        "feature_cache": trained.cache_stats,
        "num_processes": trained.num_processes,
    }
    from tlzoo.model import AdaptedModel

    model = AdaptedModel(
        trained.extractor, trained.head, task=TaskSpec(target.task, target.num_labels), label_names=target.label_names,
        head_spec=head, recipe=recipe, metrics=trained.metrics, history=trained.history,
        source={"name": src.name, "hub_id": src.hub_id, "revision": src.revision, "license": src.license,
                "modality": src.modality},
    )
    timings["total"] = time.perf_counter() - started
    result = AdaptResult(model=model, metrics=trained.metrics, history=trained.history, recipe=recipe,
                         output_dir=Path(output_dir) if output_dir is not None else None, timings=timings)
    if (output_dir is not None or push_to_hub) and trained.is_main_process:
        model.attachments.update(_render_plots(result))
    if output_dir is not None and trained.is_main_process:
        _write_outputs(result)
    if push_to_hub and trained.is_main_process:
        result.commit_url = model.push_to_hub(push_to_hub, token=token if isinstance(token, str) else None,
                                              private=hub_private, endpoint=hub_endpoint)
    return result


def _build_extractor(modality: Any, src: SourceModel, *, token: str | bool | None, pooling: str) -> Any:
    """The plugin's feature extractor of *src*; a Hub that cannot be reached is a :class:`HubError` with advice."""
    try:
        return modality.build_feature_extractor(src.hub_id, revision=src.revision, token=token, pooling=pooling)
    except OSError as exc:
        if (unreachable := unreachable_source_error(exc, src.hub_id)) is not None:
            raise unreachable from exc
        raise


def _check_lora_targets(lora: LoraSettings, src: SourceModel, token: str | bool | None) -> None:
    """``lora_target_modules`` that match nothing in the source's architecture fail here, before any weights load."""
    from tlzoo.features import backbone_skeleton
    from tlzoo.training.lora import check_lora_targets

    config = src.config
    if config is None:  # a zoo entry: its config.json is all that is read here
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(src.hub_id, revision=src.revision, token=token)
        except (OSError, ValueError) as exc:
            if (unreachable := unreachable_source_error(exc, src.hub_id)) is not None:
                raise unreachable from exc
            logger.debug("No config of %s (%s); the LoRA targets are checked when it loads.", src.hub_id, exc)
            return
    skeleton = backbone_skeleton(config)
    if skeleton is not None:
        check_lora_targets(lora, skeleton)


def _class_weights(value: Any, target: Any, balanced: Any) -> list[float] | None:
    if value is None:
        return None
    if target.task != "single_label_classification":
        raise ConfigurationError("class_weights apply to single-label classification only.")
    if value == "balanced":
        return balanced(target)
    if isinstance(value, list | tuple) and len(value) == target.num_labels:
        return [float(v) for v in value]
    raise ConfigurationError(f"class_weights must be 'balanced' or {target.num_labels} numbers, got {value!r}.")


def _render_plots(result: AdaptResult) -> dict[str, bytes]:
    """The training-curve and confusion-matrix PNGs that are saved and pushed with the model."""
    from tlzoo.evaluation.plots import render_model_plots

    return render_model_plots(result.history, result.metrics)


def _write_outputs(result: AdaptResult) -> None:
    assert result.output_dir is not None
    result.output_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(result.output_dir / "model")
    summary = {"metrics": result.metrics, "recipe": result.recipe, "timings": result.timings}
    (result.output_dir / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    logger.info("Saved the metrics, recipe and timings to %s", result.output_dir / "results.json")
