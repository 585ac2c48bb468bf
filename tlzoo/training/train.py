"""Steps "replace the task layer", "train" and "evaluate" of ``adapt()``.

Builds the head, applies the strategy, sets up ``accelerate`` and evaluates the
final model on the held-out splits. The phases:

- ``linear_probe``: with a linear head and the feature cache, the head is
  *fitted* (L-BFGS / ridge with standardisation folded in and L2 chosen on
  validation, :func:`tlzoo.training.probe.fit_probe`); other heads train by
  gradient steps in the one loop on cached features.
- ``fine_tune``: the one loop on raw examples, at a learning rate found by a
  range test unless one is given, for epochs chosen from the data size, keeping
  the best validation epoch; after a probe it starts from the probe's weights,
  keeps them unless it does better, and leaves batch-norm statistics as the
  probe saw them; a diverging run steps back to them and retries at a tenth of
  the rate.
- ``auto``: the probe, then fine-tuning (LP-FT, partial or LoRA) if
  :mod:`tlzoo.training.ladder` judges that it can pay; every trial is recorded
  (``Trained.trials``).

Before a probe, a backbone whose batch-norm statistics do not describe the
training data has them recalibrated on it (:mod:`tlzoo.training.norm_stats`).

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
from tlzoo.heads import TaskSpec, build_head, linear_layer
from tlzoo.options import AdaptOptions
from tlzoo.plugins.modality import Modality
from tlzoo.training.batches import Collate, ExampleBatches, FeatureBatches
from tlzoo.training.cross_check import Trial, cross_validate, wanted
from tlzoo.training.ladder import PATIENCE, RETRY_FACTOR, fine_tune_epochs, plan_fine_tune, step_seconds
from tlzoo.training.loop import (
    Diverged,
    LoopSettings,
    Phase,
    TaskModel,
    evaluate,
    find_checkpoint,
    make_loss,
    release,
    run_phase,
)
from tlzoo.training.lora import LoraSettings, merge_lora
from tlzoo.training.strategies import FINE_TUNE, LORA, PROBE, parameter_groups, trainable_groups

logger = logging.getLogger(__name__)

#: Batch-norm statistics are recalibrated on at most this many training examples (evenly spread over train).
RECALIBRATION_EXAMPLES = 2048



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


class _Run:
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
            save_total_limit=o.save_total_limit, max_grad_norm=o.max_grad_norm, progress=o.progress,
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
    def probe(self, strategy: str, resume: dict[str, Any] | None) -> None:
        """The linear-probe phase: fitted when the head is linear and features are cached, else by gradient steps."""
        o = self.options
        started = time.perf_counter()
        for param in self.extractor.parameters():
            param.requires_grad_(False)
        self._match_batch_norm()
        gradient_settings = o.lp_epochs is not None or (strategy == "linear_probe" and (o.epochs or o.learning_rate))
        linear = linear_layer(self.head)
        if o.use_feature_cache:
            data, collate = self.feature_data()
            model = TaskModel(None, self.head)
            batch = max(o.batch_size, 64 * self.accelerator.num_processes)
        else:
            data, collate = self.example_data()
            model = TaskModel(self.extractor, self.head)
            batch = o.batch_size
        loaders = {n: self.loader(data[n], collate, batch, shuffle=False) for n in self.eval_splits}
        if linear is not None and o.use_feature_cache and not gradient_settings and resume is None:
            self._fit_probe(data, linear, model, loaders.get("validation"))
        else:
            epochs = (o.epochs if strategy == "linear_probe" else o.lp_epochs) or PROBE.epochs
            lr = o.learning_rate if strategy == "linear_probe" and o.learning_rate else PROBE.learning_rate
            groups = parameter_groups([], self.head, learning_rate=lr, weight_decay=o.weight_decay, layer_decay=1.0)
            self.hyper.update({"probe_epochs": epochs, "probe_learning_rate": lr})
            phase = Phase(name="linear_probe", model=model, param_groups=groups,
                          train_loader=self.loader(data["train"], collate, batch, shuffle=True),
                          eval_loaders={n: loaders[n] for n in loaders if n == "validation"}, epochs=epochs,
                          lr_scheduler_type=o.lr_scheduler_type)
            run_phase(phase, self.settings, self.accelerator, resume=resume, order=0)
            if "validation" in loaders:
                self.probe_validation = self._validation(model, loaders["validation"])
        self.final = (model, loaders)
        self.timings["linear_probe"] = time.perf_counter() - started
        self.trials.append({"strategy": "linear_probe", "validation": self.probe_validation,
                            "seconds": round(self.timings["linear_probe"], 3), "kept": True,
                            "why": "the probe is the starting point and the floor every later trial must beat"})
        if self.hyper.get("batch_norm_recalibration", {}).get("recalibrated"):
            self.trials[-1]["batch_norm"] = "statistics recalibrated on train before the probe (AdaBN)"

    def _match_batch_norm(self) -> None:
        """Recalibrate the backbone's batch-norm statistics on train when they do not describe it (AdaBN)."""
        from tlzoo.training.norm_stats import MISMATCH, batch_norm_layers, recalibrate, statistics_mismatch

        if not batch_norm_layers(self.extractor):
            return
        t, started = self.target, time.perf_counter()
        train = t.splits["train"]
        if len(train) > RECALIBRATION_EXAMPLES:  # evenly spread: enough for the statistics, a bounded cost
            train = train.select(range(0, len(train), -(-len(train) // RECALIBRATION_EXAMPLES)))
        values = column_values(train, t.input_column)
        self.extractor.to(self.accelerator.device)
        mismatch = statistics_mismatch(self.extractor, values[:max(self.options.batch_size, 32)])
        record: dict[str, Any] = {"mismatch": round(mismatch, 3), "threshold": MISMATCH, "recalibrated": False}
        if mismatch > MISMATCH:
            layers = recalibrate(self.extractor, values, batch_size=max(self.options.batch_size, 32))
            record.update(recalibrated=True, layers=layers, examples=len(values))
            logger.info("Batch-norm statistics recalibrated on %d training examples (%d layers): the stored "
                        "ones were off by %.2f (over %.2f).", len(values), layers, mismatch, MISMATCH)
        record["seconds"] = round(time.perf_counter() - started, 3)
        self.hyper["batch_norm_recalibration"] = record

    def _fit_probe(self, data: dict[str, Any], linear: nn.Linear, model: TaskModel, validation: Any) -> None:
        import numpy as np

        from tlzoo.training.batches import label_tensor
        from tlzoo.training.probe import fit_probe

        t, started = self.target, time.perf_counter()

        def arrays(split: str) -> tuple[Any, Any]:
            table = data[split].table
            return table[np.arange(len(table))], label_tensor(self.labels[split], t.task, t.num_labels).numpy()

        train_x, train_y = arrays("train")
        val_x, val_y = arrays("validation") if "validation" in data else (None, None)
        if t.task == "regression" and train_y.ndim == 2 and train_y.shape[1] == 1:
            train_y = train_y[:, 0]
            val_y = val_y[:, 0] if val_y is not None else None
        fit = fit_probe(train_x, train_y, task=t.task, num_labels=t.num_labels, val_x=val_x, val_y=val_y,
                        class_weights=self.class_weights if t.task == "single_label_classification" else None,
                        seed=self.options.seed, device=str(self.accelerator.device))
        with torch.no_grad():
            linear.weight.copy_(fit.linear.weight.to(linear.weight))
            linear.bias.copy_(fit.linear.bias.to(linear.bias))
        if val_x is not None and wanted(self.options, t):  # kept only while a second opinion may be asked
            self.probe_arrays = {"train": (train_x, train_y), "validation": (val_x, val_y)}
        record: dict[str, Any] = {"phase": "linear_probe", "epoch": 1, "l2": fit.l2, "l2_selection": fit.selection}
        if validation is not None:
            self.probe_validation = self._validation(model, validation)
            record.update({f"validation_{k}": v for k, v in self.probe_validation.items()})
        record["seconds"] = round(time.perf_counter() - started, 3)
        self.settings.history.append(record)
        self.timings["probe_fit"] = fit.seconds
        chosen = fit.chosen
        if chosen is not None and "accuracy" in chosen:  # the held-out accuracy L2 was chosen on (CV when few)
            held_out = len(train_y) if fit.selection == "cross-validation" else len(val_y) if val_y is not None else 0
            self.probe_held_out = {"accuracy": float(chosen["accuracy"]), "examples": held_out,
                                   "selection": fit.selection}
        self.hyper.update({"probe_solver": fit.solver, "probe_l2": fit.l2,
                           "probe_l2_selection": fit.selection, "probe_converged": fit.converged})
        logger.info("Linear probe fitted in %.2f s (L2 %.3g, %s)%s.", fit.seconds, fit.l2, fit.selection,
                    f"; validation {self.settings.metric_for_best_model} "
                    f"{self.probe_validation[self.settings.metric_for_best_model]:.4g}" if self.probe_validation else "")

    def _validation(self, model: TaskModel, loader: Any) -> dict[str, Any]:
        from tlzoo.evaluation import summarise

        prepared = self.accelerator.prepare(model)
        try:
            return summarise(evaluate(prepared, self.accelerator.prepare(loader), self.settings, self.accelerator,
                                      details=False))
        finally:
            release(self.accelerator)

    def decide(self) -> tuple[str, str]:
        """``auto``'s choice after the probe: ``lp_ft``, ``partial`` or ``lora`` if fine-tuning can pay, else
        ``linear_probe`` (see :func:`tlzoo.training.ladder.plan_fine_tune`)."""
        o, t = self.options, self.target
        n_train = len(t.splits["train"])
        n_val = len(t.splits["validation"]) if "validation" in t.splits else 0
        epochs = o.epochs or fine_tune_epochs(n_train, o.batch_size)
        top = self.extractor.layer_groups()[-o.trainable_layers:]
        partial_fraction = sum(p.numel() for g in top for p in g.parameters) / max(self.n_params, 1)

        def plan(per_example: float) -> Any:
            return plan_fine_tune(probe_validation=self.probe_validation, probe_held_out=self.probe_held_out,
                                  n_train=n_train, n_validation=n_val, epochs=epochs, seconds_per_example=per_example,
                                  probe_seconds=self.timings["linear_probe"], time_budget=o.time_budget,
                                  backbone_parameters=self.n_params, partial_fraction=partial_fraction)

        decision, timed = plan(0.0), False  # at no cost: a "no" now (no validation split, a probe already right) is final
        if decision.fine_tune and o.time_budget != 0:
            sample = column_values(t.splits["train"].select(range(min(n_train, o.batch_size))), t.input_column)
            decision, timed = plan(step_seconds(self.extractor, sample)), True  # timed on a batch of the user's data
        if o.time_budget == 0:
            decision.fine_tune, decision.reason = False, "time_budget=0 asks for the probe only"
        if not decision.fine_tune:
            self.trials.append({"strategy": decision.strategy, "skipped": True, "why": decision.reason,
                                **({"estimated_seconds": round(decision.estimated_seconds, 1)} if timed else {}),
                                "budget_seconds": round(decision.budget_seconds, 1)})
            return "linear_probe", f"the linear probe; not fine-tuned: {decision.reason}"
        self.hyper["time_budget_seconds"] = round(decision.budget_seconds, 1)
        return decision.strategy, f"the linear probe, then fine-tuning from it: {decision.reason}"

    def fine_tune(self, strategy: str, resume: dict[str, Any] | None, learning_rate: float | None = None) -> bool:
        """The fine-tuning phase; returns whether it kept the weights it started from (the probe's).

        :param learning_rate: train at this rate (no range test); default: ``options.learning_rate`` or the
            range test's suggestion.
        """
        o, t = self.options, self.target
        started = time.perf_counter()
        probed = self.probe_validation is not None or strategy == "lp_ft"
        chosen = trainable_groups(self.extractor, strategy, o.trainable_layers, self.lora)
        tuning = LORA if strategy == "lora" else FINE_TUNE
        decay = 1.0 if strategy == "lora" else o.layer_decay  # one learning rate for every adapter
        data, collate = self.example_data()
        model = TaskModel(self.extractor, self.head, freeze_norm_statistics=probed)
        validation = "validation" in data
        epochs = o.epochs or fine_tune_epochs(len(t.splits["train"]), o.batch_size)
        if validation and not o.early_stopping and not o.epochs:
            self.settings.early_stopping = PATIENCE  # tlzoo chose the epochs: it may also stop early
        start_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        baseline = None
        if validation and self.probe_validation is not None:
            baseline = (self.probe_validation[o.metric_for_best_model], start_weights)
        tuned, head_size = sum(g.num_parameters for g in chosen), sum(p.numel() for p in self.head.parameters())
        logger.info("Training %d backbone weights (%.2f%% of its %d) and the head's %d.", tuned,
                    100 * tuned / max(self.n_params, 1), self.n_params, head_size)
        given = learning_rate or o.learning_rate
        lr = given or tuning.learning_rate
        loaders = {n: self.loader(data[n], collate, o.batch_size, shuffle=False) for n in self.eval_splits}
        for attempt in range(3):
            groups = parameter_groups(chosen, self.head, learning_rate=lr, weight_decay=o.weight_decay,
                                      layer_decay=decay)
            phase = Phase(name="fine_tune", model=model, param_groups=groups,
                          train_loader=self.loader(data["train"], collate, o.batch_size, shuffle=True),
                          eval_loaders={n: loaders[n] for n in loaders if n == "validation"}, epochs=epochs,
                          warmup_ratio=o.warmup_ratio, lr_scheduler_type=o.lr_scheduler_type,
                          find_learning_rate=given is None and attempt == 0, baseline=baseline, strategy=strategy)
            try:
                state = run_phase(phase, self.settings, self.accelerator, resume=resume, order=1)
                break
            except Diverged as exc:
                release(self.accelerator)
                if attempt == 2:
                    raise
                lr = (phase.peak_learning_rate or lr) / 10
                model.load_state_dict(start_weights)
                logger.warning("%s Stepping back to the weights fine-tuning started from and retrying at a "
                               "learning rate of %.2g.", exc, lr)
                self.trials.append({"strategy": strategy, "diverged": True, "learning_rate": lr * 10,
                                    "why": "the training loss became NaN or infinite; retried at a tenth of the rate"})
                resume = None
        lr = phase.peak_learning_rate or lr
        kept_start = baseline is not None and state["best_epoch"] == 0
        self.hyper.update({"epochs": epochs, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
                           "learning_rate": lr, "layer_decay": decay, "warmup_ratio": o.warmup_ratio,
                           "lr_scheduler_type": o.lr_scheduler_type, "early_stopping": self.settings.early_stopping,
                           "trainable_layer_groups": [g.name for g in chosen],
                           "trainable_parameters": tuned + head_size, "backbone_parameters": self.n_params,
                           "batch_norm_statistics": "frozen" if probed else "updated"})
        if phase.range_test:
            self.hyper["learning_rate_range_test"] = phase.range_test
        if strategy == "lora":
            self.hyper.update(self.lora.to_recipe())
        seconds = time.perf_counter() - started
        self.timings["fine_tune"] = self.timings.get("fine_tune", 0.0) + seconds
        best = state["best"]
        self.trials.append({
            "strategy": strategy, "learning_rate": lr, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
            f"validation_{o.metric_for_best_model}": best, "seconds": round(seconds, 3),
            "kept": not kept_start,
            "why": "it did not beat the probe on validation; the probe's weights are kept" if kept_start
            else "the best validation score" if baseline is not None else "the strategy asked for",
        })
        if baseline is not None:  # the probe's trial, first in the log, is kept only while no later one beats it
            self.trials[0].update(kept=kept_start, why="the best validation score: no later trial beat it"
                                  if kept_start else "a later trial beat it on validation")
        if not kept_start and self.probe_arrays is not None and wanted(o, t):
            trial = Trial(strategy, chosen, decay, lr, state["best_epoch"], seconds, state["epoch"], start_weights)
            kept_start = self._second_opinion(trial, model, collate, loaders["validation"])
        self.final = (model, loaders)
        return kept_start

    def _second_opinion(self, trial: Trial, model: TaskModel, collate: Collate, validation: DataLoader) -> bool:
        """Cross-validate a trial that won on a handful of validation examples; True: the probe is kept after all
        (see :mod:`tlzoo.training.cross_check`)."""
        check = cross_validate(self, trial, model, collate, validation)
        self.trials[-1]["cross_validation"] = check
        self.timings["cross_validation"] = self.timings.get("cross_validation", 0.0) + check.get("seconds", 0.0)
        if check.get("kept") == "fine_tuned":
            self.trials[-1]["why"] += f", confirmed by {check['folds']}-fold cross-validation"
        if check.get("kept") != "linear_probe":
            return False
        model.load_state_dict(trial.start)
        n_val = len(self.target.splits["validation"])
        self.trials[-1].update(kept=False, why=f"it beat the probe on the {n_val} validation examples but not in "
                                               f"{check['folds']}-fold cross-validation on {check['examples']} "
                                               "examples; the probe's weights are kept")
        self.trials[0].update(kept=True, why="the best cross-validated score: the later trial's win on validation "
                                             "did not hold up")
        return True

    def may_try_higher_rate(self) -> bool:
        """Whether ``auto`` has the time for another fine-tuning trial, as long as the last one, at a higher rate."""
        budget = self.hyper.get("time_budget_seconds")
        spent = self.timings["linear_probe"] + self.timings["fine_tune"] + self.timings.get("cross_validation", 0.0)
        judged = "kept" in self.trials[-1].get("cross_validation", {})  # cross-validation already judged this rate
        return (bool(budget) and self.options.learning_rate is None and not judged
                and spent + self.trials[-1]["seconds"] <= budget)

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
