"""Steps "replace the task layer", "train" and "evaluate" of ``adapt()``.

Builds the head, applies the strategy (which parameters train, whether the
backbone's features come from the cache), sets up ``accelerate``, runs the one
loop for each phase, and evaluates the final model on the held-out splits.
``lora`` trains peft adapters in the ``fine_tune`` phase and merges them into
the backbone before the final evaluation, so what is evaluated is what is saved.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from tlzoo.data import TargetData, column_values
from tlzoo.errors import ConfigurationError
from tlzoo.evaluation.metrics import higher_is_better
from tlzoo.features import FeatureExtractor
from tlzoo.heads import TaskSpec, build_head
from tlzoo.options import AdaptOptions
from tlzoo.plugins.modality import Modality
from tlzoo.training.batches import Collate, ExampleBatches, FeatureBatches
from tlzoo.training.loop import LoopSettings, Phase, TaskModel, evaluate, find_checkpoint, make_loss, run_phase
from tlzoo.training.lora import LoraSettings, merge_lora
from tlzoo.training.strategies import FINE_TUNE, LORA, PROBE, choose_strategy, parameter_groups, trainable_groups

logger = logging.getLogger(__name__)



@dataclass
class Trained:
    """The trained extractor and head, with everything ``adapt()`` reports."""

    extractor: FeatureExtractor
    head: nn.Module
    strategy: str
    reason: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    cache_stats: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    num_processes: int = 1
    is_main_process: bool = True


def make_accelerator(*, mixed_precision: str | None, gradient_accumulation_steps: int, report_to: Any,
                     output_dir: Path | None, seed: int) -> Any:
    """An ``accelerate.Accelerator`` whose data order does not depend on the process count."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    try:
        accelerator = Accelerator(
            # without an accelerator, cpu=True is what makes torchrun's processes a MULTI_CPU (gloo) group
            cpu=not (torch.cuda.is_available() or torch.backends.mps.is_available()),
            mixed_precision=mixed_precision,
            gradient_accumulation_steps=gradient_accumulation_steps,
            log_with=report_to,
            project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs"))
            if output_dir is not None else None,
            # split_batches: each global batch is shared out, so N processes see the same batches as one
            dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigurationError(f"Cannot set up accelerate with mixed_precision={mixed_precision!r}: {exc}") from exc
    set_seed(seed)
    return accelerator


def _loader(dataset: Any, collate: Collate, batch_size: int, *, shuffle: bool, seed: int, workers: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, num_workers=workers,
                      generator=generator if shuffle else None, persistent_workers=False)


def train(
    extractor: FeatureExtractor, modality: Modality, target: TargetData, *, options: AdaptOptions,
    output_dir: Path | None, class_weights: list[float] | None, lora: LoraSettings | None = None,
) -> Trained:
    """Train a new head (and, per the strategy, the backbone or its *lora* adapters) on *target*; evaluate it."""
    o = options
    strategy, head, epochs, lp_epochs, batch_size = o.strategy, o.head_spec, o.epochs, o.lp_epochs, o.batch_size
    learning_rate, weight_decay, warmup_ratio = o.learning_rate, o.weight_decay, o.warmup_ratio
    lr_scheduler_type, layer_decay, trainable_layers, metrics = o.lr_scheduler_type, o.layer_decay, o.trainable_layers, o.metrics
    seed, mixed_precision, gradient_accumulation_steps = o.seed, o.mixed_precision, o.gradient_accumulation_steps
    max_grad_norm, early_stopping, metric_for_best_model = o.max_grad_norm, o.early_stopping, o.metric_for_best_model
    greater_is_better, resume_from, save_strategy, save_total_limit = (o.greater_is_better, o.resume_from,
                                                                      o.save_strategy, o.save_total_limit)
    report_to, use_feature_cache, dataloader_num_workers, progress = (o.report_to, o.use_feature_cache,
                                                                      o.dataloader_num_workers, o.progress)
    from accelerate.utils import set_seed

    lora = lora or LoraSettings()
    timings: dict[str, float] = {}
    accelerator = make_accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps,
                                   report_to=report_to, output_dir=output_dir, seed=seed)
    if batch_size % accelerator.num_processes:
        raise ConfigurationError(
            f"batch_size={batch_size} must be divisible by the {accelerator.num_processes} processes "
            "(the global batch is shared out between them)."
        )
    if report_to:
        accelerator.init_trackers("tlzoo", config={"strategy": strategy, "batch_size": batch_size, "seed": seed})
    n_params = sum(p.numel() for p in extractor.backbone.parameters())
    reason = "chosen by the user"
    if strategy == "auto":
        strategy, reason = choose_strategy(len(target.splits["train"]), target.num_labels, n_params,
                                           on_gpu=accelerator.device.type != "cpu")
        logger.info("Strategy 'auto' chose %s: %s.", strategy, reason)
    task = TaskSpec(target.task, target.num_labels)
    set_seed(seed)
    head_module = build_head(head, extractor.feature_size, task)
    settings = LoopSettings(
        task=target.task, label_names=target.label_names, loss=make_loss(target.task, class_weights), metrics=metrics,
        early_stopping=early_stopping, metric_for_best_model=metric_for_best_model,
        greater_is_better=greater_is_better if greater_is_better is not None else higher_is_better(metric_for_best_model),
        checkpoint_dir=output_dir / "checkpoints" if output_dir is not None and save_strategy == "epoch" else None,
        save_total_limit=save_total_limit, max_grad_norm=max_grad_norm, progress=progress,
    )
    resume_path = find_checkpoint(resume_from, settings.checkpoint_dir) if resume_from else None
    resume_state = _read_resume(resume_path)
    eval_splits = {n: ds for n, ds in target.splits.items() if n != "train"}
    hyper: dict[str, Any] = {"batch_size": batch_size, "weight_decay": weight_decay, "seed": seed,
                             "gradient_accumulation_steps": gradient_accumulation_steps,
                             "mixed_precision": mixed_precision or "no", "early_stopping": early_stopping,
                             "metric_for_best_model": metric_for_best_model, "class_weights": class_weights}
    probe_epochs = (epochs or PROBE.epochs) if strategy == "linear_probe" else (lp_epochs or PROBE.epochs)
    cache_stats: dict[str, int] = {}
    labels = {n: column_values(ds, target.label_column) for n, ds in target.splits.items()}
    phases: list[tuple[str, Any]] = []
    if strategy in ("linear_probe", "lp_ft"):
        phases.append(("linear_probe", probe_epochs))
    tuning = LORA if strategy == "lora" else FINE_TUNE
    if strategy in ("partial", "full", "lp_ft", "lora"):
        phases.append(("fine_tune", epochs or tuning.epochs))
    if resume_state and resume_state["phase"] == "fine_tune" and phases[0][0] == "linear_probe":
        phases = phases[1:]  # the probe finished before the checkpoint was taken

    for order, (phase_name, phase_epochs) in enumerate(phases):
        t0 = time.perf_counter()
        if phase_name == "linear_probe":
            for param in extractor.parameters():
                param.requires_grad_(False)
            if use_feature_cache:
                from tlzoo.features.extraction import cached_features

                tables, cache_stats = cached_features(extractor, modality, target.splits, target.input_column, accelerator,
                                                      batch_size=batch_size, num_workers=dataloader_num_workers, progress=progress)
                timings["features"] = time.perf_counter() - t0
                data = {n: FeatureBatches(tables[n], labels[n]) for n in target.splits}
                collate = Collate(None, target.task, target.num_labels)
                model = TaskModel(None, head_module)
            else:
                data = {n: ExampleBatches(ds, target.input_column, target.label_column) for n, ds in target.splits.items()}
                collate = Collate(extractor.preprocess, target.task, target.num_labels)
                model = TaskModel(extractor, head_module)
            lr = learning_rate if strategy == "linear_probe" and learning_rate else PROBE.learning_rate
            groups = parameter_groups([], head_module, learning_rate=lr, weight_decay=weight_decay, layer_decay=1.0)
            warmup, batch = 0.0, max(batch_size, 64 * accelerator.num_processes) if use_feature_cache else batch_size
            hyper.update({"probe_epochs": phase_epochs, "probe_learning_rate": lr})
        else:
            chosen = trainable_groups(extractor, strategy, trainable_layers, lora)
            lr = learning_rate or tuning.learning_rate
            decay = 1.0 if strategy == "lora" else layer_decay  # one learning rate for every adapter
            groups = parameter_groups(chosen, head_module, learning_rate=lr, weight_decay=weight_decay,
                                      layer_decay=decay)
            data = {n: ExampleBatches(ds, target.input_column, target.label_column) for n, ds in target.splits.items()}
            collate = Collate(extractor.preprocess, target.task, target.num_labels)
            model = TaskModel(extractor, head_module)
            warmup, batch = warmup_ratio, batch_size
            tuned, head_size = sum(g.num_parameters for g in chosen), sum(p.numel() for p in head_module.parameters())
            logger.info("Training %d backbone weights (%.2f%% of its %d) and the head's %d.", tuned,
                        100 * tuned / max(n_params, 1), n_params, head_size)
            hyper.update({"epochs": phase_epochs, "learning_rate": lr, "layer_decay": decay,
                          "warmup_ratio": warmup_ratio, "lr_scheduler_type": lr_scheduler_type,
                          "trainable_layer_groups": [g.name for g in chosen], "trainable_parameters": tuned + head_size,
                          "backbone_parameters": n_params})
            if strategy == "lora":
                hyper.update(lora.to_recipe())
        phase = Phase(
            name=phase_name, model=model, param_groups=groups,
            train_loader=_loader(data["train"], collate, batch, shuffle=True, seed=seed, workers=dataloader_num_workers),
            eval_loaders={n: _loader(data[n], collate, batch, shuffle=False, seed=seed, workers=dataloader_num_workers)
                          for n in eval_splits if n == "validation"},
            epochs=phase_epochs, warmup_ratio=warmup, lr_scheduler_type=lr_scheduler_type,
        )
        resume = resume_state if resume_state and resume_state["phase"] == phase_name else None
        run_phase(phase, settings, accelerator, resume=resume, order=order)
        timings[phase_name] = time.perf_counter() - t0
        final_loaders = {n: _loader(data[n], collate, batch, shuffle=False, seed=seed, workers=dataloader_num_workers)
                         for n in eval_splits}

    if strategy == "lora":
        merge_lora(extractor)
    t0 = time.perf_counter()
    final_model = accelerator.prepare(TaskModel(model.extractor, head_module))
    results = {n: evaluate(final_model, accelerator.prepare(loader), settings, accelerator) for n, loader in final_loaders.items()}
    timings["evaluate"] = time.perf_counter() - t0
    if report_to:
        accelerator.end_training()
    extractor.eval()
    head_module.eval()
    for param in extractor.parameters():
        param.requires_grad_(False)
    return Trained(
        extractor=extractor.cpu(), head=head_module.cpu(), strategy=strategy, reason=reason, hyperparameters=hyper,
        metrics=results, history=list(settings.history), cache_stats=cache_stats, timings=timings,
        num_processes=accelerator.num_processes, is_main_process=accelerator.is_main_process,
    )


def _read_resume(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    import json

    from tlzoo.training.loop import STATE_FILE

    state = json.loads((path / STATE_FILE).read_text())
    state["path"] = str(path)
    return state
