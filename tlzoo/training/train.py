"""Steps "replace the task layer", "train" and "evaluate" of ``adapt()``.

Builds the head, applies the strategy, sets up ``accelerate`` and evaluates the
final model on the held-out splits. :func:`train` runs the phases, each a module:

- ``linear_probe`` (:mod:`tlzoo.training.probe_phase`): with a linear head and
  the feature cache, the head is *fitted* (standardisation folded in, L2 chosen
  on validation or by cross-validation, :func:`tlzoo.training.probe.fit_probe`);
  other heads train by gradient steps in the one loop on cached features. Before
  it, batch-norm statistics that do not describe the training data are
  recalibrated on it (:mod:`tlzoo.training.norm_stats`).
- ``fine_tune`` (:mod:`tlzoo.training.fine_tune_phase`): the one loop on raw
  examples, at a learning rate found by a range test unless one is given, for
  epochs chosen from the data size, keeping the best validation epoch; after a
  probe it starts from the probe's weights and keeps them unless it does better.
- ``auto``: the probe, then fine-tuning (LP-FT, partial or LoRA) if
  :mod:`tlzoo.training.ladder` judges that it can pay; every trial is recorded
  (``Trained.trials``).

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
from tlzoo.training.fine_tune_phase import FineTunePhase
from tlzoo.training.ladder import RETRY_FACTOR
from tlzoo.training.loop import (
    LoopSettings,
    TaskModel,
    evaluate,
    find_checkpoint,
    make_loss,
    release,
)
from tlzoo.training.lora import LoraSettings, merge_lora
from tlzoo.training.probe_phase import ProbePhase

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
    trials: list[dict[str, Any]] = field(default_factory=list)


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
    run = _Run(extractor, modality, target, options, output_dir, class_weights, lora or LoraSettings())
    strategy, reason = options.strategy, "chosen by the user"
    resume = run.resume_state
    if resume and resume["phase"] == "fine_tune" and strategy in ("auto", "lp_ft"):
        # the probe (and auto's decision to fine-tune, and how deep) happened before the checkpoint
        strategy = (resume.get("strategy") or "lp_ft") if options.strategy == "auto" else "lp_ft"
        reason = reason if options.strategy == "lp_ft" else "auto had chosen to fine-tune after its probe (resumed)"
    elif strategy in ("auto", "linear_probe", "lp_ft"):
        run.probe(strategy, resume if resume and resume["phase"] == "linear_probe" else None)
    if strategy == "auto":
        strategy, reason = run.decide()
    if strategy in ("partial", "full", "lp_ft", "lora"):
        kept_probe = run.fine_tune(strategy, resume if resume and resume["phase"] == "fine_tune" else None)
        if kept_probe and options.strategy == "auto" and run.may_try_higher_rate():
            # a range test run from a fitted probe sees the loss rise at once and errs low: one step up
            kept_probe = run.fine_tune(strategy, None, learning_rate=run.trials[-1]["learning_rate"] * RETRY_FACTOR)
        if kept_probe and options.strategy == "auto":
            strategy, reason = "linear_probe", reason + "; fine-tuning did not beat the probe on validation, so the probe is kept"
    logger.info("Strategy %s: %s.", strategy, reason)
    return run.finish(strategy, reason)


class _Run(ProbePhase, FineTunePhase):
    """One call of :func:`train`: its accelerator, loop settings, head and records."""

    def __init__(self, extractor: FeatureExtractor, modality: Modality, target: TargetData, options: AdaptOptions,
                 output_dir: Path | None, class_weights: list[float] | None, lora: LoraSettings) -> None:
        from accelerate.utils import set_seed

        o = self.options = options
        self.extractor, self.modality, self.target, self.lora = extractor, modality, target, lora
        self.timings: dict[str, float] = {}
        self.trials: list[dict[str, Any]] = []
        self.cache_stats: dict[str, int] = {}
        self.accelerator = make_accelerator(mixed_precision=o.mixed_precision,
                                            gradient_accumulation_steps=o.gradient_accumulation_steps,
                                            report_to=o.report_to, output_dir=output_dir, seed=o.seed)
        if o.batch_size % self.accelerator.num_processes:
            raise ConfigurationError(
                f"batch_size={o.batch_size} must be divisible by the {self.accelerator.num_processes} processes "
                "(the global batch is shared out between them)."
            )
        if o.report_to:
            self.accelerator.init_trackers("tlzoo", config={"strategy": o.strategy, "batch_size": o.batch_size,
                                                            "seed": o.seed})
        self.n_params = sum(p.numel() for p in extractor.backbone.parameters())
        self.task = TaskSpec(target.task, target.num_labels)
        set_seed(o.seed)
        self.head = build_head(o.head_spec, extractor.feature_size, self.task)
        greater = o.greater_is_better if o.greater_is_better is not None else higher_is_better(o.metric_for_best_model)
        self.settings = LoopSettings(
            task=target.task, label_names=target.label_names, loss=make_loss(target.task, class_weights),
            metrics=o.metrics, early_stopping=o.early_stopping, metric_for_best_model=o.metric_for_best_model,
            greater_is_better=greater,
            checkpoint_dir=output_dir / "checkpoints" if output_dir is not None and o.save_strategy == "epoch" else None,
            save_total_limit=o.save_total_limit, max_grad_norm=o.max_grad_norm, progress=o.progress, seed=o.seed,
        )
        self.class_weights = class_weights
        self.resume_state = _read_resume(find_checkpoint(o.resume_from, self.settings.checkpoint_dir)
                                         if o.resume_from else None)
        self.labels = {n: column_values(ds, target.label_column) for n, ds in target.splits.items()}
        self.eval_splits = [n for n in target.splits if n != "train"]
        self.hyper: dict[str, Any] = {
            "batch_size": o.batch_size, "weight_decay": o.weight_decay, "seed": o.seed,
            "gradient_accumulation_steps": o.gradient_accumulation_steps, "mixed_precision": o.mixed_precision or "no",
            "early_stopping": o.early_stopping, "metric_for_best_model": o.metric_for_best_model,
            "class_weights": class_weights,
        }
        self.probe_validation: dict[str, Any] | None = None
        self.probe_held_out: dict[str, Any] | None = None  # the probe's accuracy where its L2 was chosen
        self.probe_arrays: dict[str, tuple[Any, Any]] | None = None  # its features, for the trials' cross-validation
        self.final: tuple[Any, dict[str, DataLoader]] | None = None  # (model, loaders) of the final evaluation

    # --- data ------------------------------------------------------------------------------------------------------
    def loader(self, dataset: Any, collate: Collate, batch_size: int, *, shuffle: bool) -> DataLoader:
        return _loader(dataset, collate, batch_size, shuffle=shuffle, seed=self.options.seed,
                       workers=self.options.dataloader_num_workers)

    def feature_data(self) -> tuple[dict[str, Any], Collate]:
        from tlzoo.features.extraction import cached_features

        o, t = self.options, self.target
        started = time.perf_counter()
        tables, self.cache_stats = cached_features(self.extractor, self.modality, t.splits, t.input_column,
                                                   self.accelerator, batch_size=o.batch_size,
                                                   num_workers=o.dataloader_num_workers, progress=o.progress)
        self.timings["features"] = time.perf_counter() - started
        return {n: FeatureBatches(tables[n], self.labels[n]) for n in t.splits}, Collate(None, t.task, t.num_labels)

    def example_data(self) -> tuple[dict[str, Any], Collate]:
        t = self.target
        data = {n: ExampleBatches(ds, t.input_column, t.label_column) for n, ds in t.splits.items()}
        return data, Collate(self.extractor.preprocess, t.task, t.num_labels)

    # --- phases ----------------------------------------------------------------------------------------------------
    def _validation(self, model: TaskModel, loader: Any) -> dict[str, Any]:
        from tlzoo.evaluation import summarise

        prepared = self.accelerator.prepare(model)
        try:
            return summarise(evaluate(prepared, self.accelerator.prepare(loader), self.settings, self.accelerator,
                                      details=False))
        finally:
            release(self.accelerator)

    def finish(self, strategy: str, reason: str) -> Trained:
        """Merge LoRA adapters, evaluate on every held-out split, and hand the results over."""
        if strategy == "lora":
            merge_lora(self.extractor)
        started = time.perf_counter()
        results: dict[str, dict[str, Any]] = {}
        if self.final is not None:
            model, loaders = self.final
            final_model = self.accelerator.prepare(TaskModel(model.extractor, self.head))
            results = {n: evaluate(final_model, self.accelerator.prepare(loader), self.settings, self.accelerator)
                       for n, loader in loaders.items()}
        self.timings["evaluate"] = time.perf_counter() - started
        if self.options.report_to:
            self.accelerator.end_training()
        self.extractor.eval()
        self.head.eval()
        for param in self.extractor.parameters():
            param.requires_grad_(False)
        return Trained(
            extractor=self.extractor.cpu(), head=self.head.cpu(), strategy=strategy, reason=reason,
            hyperparameters=self.hyper, metrics=results, history=list(self.settings.history),
            cache_stats=self.cache_stats, timings=self.timings, num_processes=self.accelerator.num_processes,
            is_main_process=self.accelerator.is_main_process, trials=self.trials,
        )


def _read_resume(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    import json

    from tlzoo.training.loop import STATE_FILE

    state = json.loads((path / STATE_FILE).read_text())
    state["path"] = str(path)
    return state
