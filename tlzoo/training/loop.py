"""The one training loop, for every modality and strategy, on ``accelerate``.

What differs between strategies is which parameters train and what feeds the
head (cached features or raw examples through the backbone), never the loop.
It follows accelerate's ``nlp_example.py``: ``prepare``, ``accumulate``,
``backward``, ``gather_for_metrics``; a tqdm bar on the main process only;
``save_state`` checkpoints each epoch, from which ``resume`` continues to the
same result as an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tlzoo.errors import TrainingError
from tlzoo.evaluation import evaluate_predictions, summarise
from tlzoo.training.checkpoints import STATE_FILE, find_checkpoint, save_checkpoint  # noqa: F401 (the first two re-exported)

logger = logging.getLogger(__name__)

#: A validation score must improve by more than this to count as better (noise on near-perfect scores is not).
MIN_DELTA = 1e-4


class Diverged(TrainingError):
    """The training loss became NaN or infinite: the caller may step back and retry at a lower rate."""


class TaskModel(nn.Module):
    """The head on top of the feature extractor, or on cached features alone.

    :param freeze_norm_statistics: keep the backbone's batch-norm layers in eval
        mode while training, so their running statistics stay those the head was
        probed on (LP-FT from a probe, small batches).
    """

    def __init__(self, extractor: nn.Module | None, head: nn.Module, *, freeze_norm_statistics: bool = False) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = head
        self.freeze_norm_statistics = freeze_norm_statistics

    def train(self, mode: bool = True) -> TaskModel:
        """Set training mode; batch-norm layers of the backbone stay in eval mode when asked to."""
        super().train(mode)
        if mode and self.freeze_norm_statistics and self.extractor is not None:
            for module in self.extractor.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if "features" in batch:
            features = batch["features"]
        else:
            assert self.extractor is not None, "raw examples need the feature extractor"
            features = self.extractor(**batch["inputs"])
        return self.head(features.to(next(self.head.parameters()).dtype))


def make_loss(task: str, class_weights: list[float] | None = None) -> nn.Module:
    """Cross-entropy, binary cross-entropy with logits, or mean squared error."""
    if task == "single_label_classification":
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        return nn.CrossEntropyLoss(weight=weight)
    if task == "multi_label_classification":
        return nn.BCEWithLogitsLoss()
    return nn.MSELoss()


@dataclass
class Phase:
    """One run of the loop: a model, its data, its optimizer settings."""

    name: str
    model: TaskModel
    param_groups: list[dict[str, Any]]
    train_loader: Any
    eval_loaders: dict[str, Any]
    epochs: int
    warmup_ratio: float = 0.0
    lr_scheduler_type: str = "linear"
    #: run a learning-rate range test first and train at its suggestion (the groups' ratios kept)
    find_learning_rate: bool = False
    #: ``(validation value, weights)`` the phase starts from: it keeps them unless it does better
    baseline: tuple[float, dict[str, torch.Tensor]] | None = None
    #: filled in by :func:`run_phase`: the range test's record, when one ran, and the peak learning rate trained at
    range_test: dict[str, Any] | None = None
    peak_learning_rate: float | None = None
    #: the strategy this phase trains for, kept in its checkpoints (a resumed ``auto`` run continues it)
    strategy: str | None = None


@dataclass
class LoopSettings:
    """Settings shared by every phase of one ``adapt()`` call."""

    task: str
    label_names: list[str] | None
    loss: nn.Module
    metrics: list[str] | None = None
    early_stopping: int | None = None
    metric_for_best_model: str = "loss"
    greater_is_better: bool = False
    checkpoint_dir: Path | None = None
    save_total_limit: int = 2
    max_grad_norm: float | None = 1.0
    progress: bool = True
    history: list[dict[str, Any]] = field(default_factory=list)
    #: every phase is seeded with it as it starts (:func:`run_phase`), so whatever ran before -- a feature
    #: extraction that the cache made unnecessary, an earlier trial -- leaves no trace in its dropout and sampling
    seed: int = 0


#: Devices where torch's fused AdamW kernel runs (one kernel for all parameters: 4x faster steps on a CPU).
FUSED_DEVICES = ("cpu", "cuda")


def run_phase(phase: Phase, settings: LoopSettings, accelerator: Any, *, resume: dict[str, Any] | None = None,
              order: int = 0) -> dict[str, Any]:
    """Train *phase* for its epochs; return the final state (best epoch, metrics).

    :param resume: the trainer state of a checkpoint of this phase, whose
        accelerate state has to be loaded after ``prepare``.
    """
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    set_seed(settings.seed)  # the same seed trains the same model whether features were computed or cached
    fused = accelerator.device.type in FUSED_DEVICES
    model, train_loader = accelerator.prepare(phase.model, phase.train_loader)
    if phase.find_learning_rate and resume is None:
        _find_learning_rate(phase, model, train_loader, settings, accelerator)
    phase.peak_learning_rate = max(g["lr"] for g in phase.param_groups)
    optimizer = torch.optim.AdamW(phase.param_groups, fused=fused)
    steps_per_epoch = math.ceil(len(phase.train_loader) / accelerator.gradient_accumulation_steps)
    total = max(1, steps_per_epoch * phase.epochs)
    scheduler = get_scheduler(
        phase.lr_scheduler_type, optimizer, num_warmup_steps=int(phase.warmup_ratio * total), num_training_steps=total
    )
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    eval_loaders = {name: accelerator.prepare(loader) for name, loader in phase.eval_loaders.items()}
    state = {"phase": phase.name, "epoch": 0, "best": None, "best_epoch": None, "bad_epochs": 0, "order": order,
             "strategy": phase.strategy}
    best_weights: dict[str, torch.Tensor] | None = None
    if phase.baseline is not None:
        state.update(best=phase.baseline[0], best_epoch=0)
        best_weights = phase.baseline[1]
    if resume is not None:
        state.update({k: resume[k] for k in ("epoch", "best", "best_epoch", "bad_epochs")})
        try:
            accelerator.load_state(resume["path"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrainingError(
                f"The checkpoint {resume['path']} does not fit this model ({first}): resume with the same source, "
                "strategy, head and lora_* arguments as the run that wrote it."
            ) from exc
        settings.history[:] = resume["history"]
        best_file = Path(resume["path"]) / "best_weights.safetensors"
        if best_file.is_file():
            from safetensors.torch import load_file

            best_weights = load_file(best_file)
        logger.info("Resumed %s after epoch %d from %s", phase.name, state["epoch"], resume["path"])

    show = settings.progress and accelerator.is_local_main_process
    # each epoch's record is logged at INFO when no bar shows it, else at DEBUG (the bar's postfix shows it)
    level = logging.DEBUG if show else logging.INFO
    with _epochs_bar(phase, state["epoch"], show) as epochs_bar:
        for epoch in range(state["epoch"] + 1, phase.epochs + 1):
            started = time.perf_counter()
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            train_loss = _train_epoch(model, optimizer, scheduler, train_loader, settings, accelerator, phase.name,
                                      epoch, phase.epochs)
            record: dict[str, Any] = {"phase": phase.name, "epoch": epoch, "train_loss": train_loss,
                                      "learning_rate": scheduler.get_last_lr()[-1]}
            for name, loader in eval_loaders.items():
                result = evaluate(model, loader, settings, accelerator, details=False)
                record.update({f"{name}_{k}": v for k, v in summarise(result).items()})
            record["seconds"] = round(time.perf_counter() - started, 3)
            settings.history.append(record)
            accelerator.log({k: v for k, v in record.items() if isinstance(v, int | float)}, step=len(settings.history))
            logger.log(level, "%s epoch %d/%d: %s", phase.name, epoch, phase.epochs,
                       ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float)))
            state["epoch"] = epoch
            stop = False
            if "validation" in eval_loaders:
                value = record.get(f"validation_{settings.metric_for_best_model}")
                if value is None:
                    raise TrainingError(
                        f"metric_for_best_model={settings.metric_for_best_model!r} is not among the validation metrics "
                        f"{sorted(k[11:] for k in record if k.startswith('validation_'))}."
                    )
                best = state["best"]
                gain = (value - best if settings.greater_is_better else best - value) if best is not None else 1.0
                better = gain > MIN_DELTA
                if better:
                    state.update(best=value, best_epoch=epoch, bad_epochs=0)
                    best_weights = {k: v.detach().cpu().clone()
                                    for k, v in accelerator.unwrap_model(model).state_dict().items()}
                else:
                    state["bad_epochs"] += 1
                    stop = bool(settings.early_stopping) and state["bad_epochs"] >= settings.early_stopping
            save_checkpoint(accelerator, settings, state, best_weights)
            end_of_epoch(phase.name, epoch)
            epochs_bar.set_postfix(_postfix(record, settings.metric_for_best_model), refresh=False)
            epochs_bar.update()
            if stop:
                logger.info("Early stopping after epoch %d: no better validation %s for %d epochs.",
                            epoch, settings.metric_for_best_model, settings.early_stopping)
                break
    unwrapped = accelerator.unwrap_model(model)
    if best_weights is not None and state["best_epoch"] != state["epoch"]:
        unwrapped.load_state_dict(best_weights)
        where = f"epoch {state['best_epoch']}" if state["best_epoch"] else "the weights this phase started from"
        logger.info("Restored the best weights (%s, validation %s %.4g).", where,
                    settings.metric_for_best_model, state["best"])
    accelerator.wait_for_everyone()
    release(accelerator)
    return state


def _find_learning_rate(phase: Phase, model: Any, loader: Any, settings: LoopSettings, accelerator: Any) -> None:
    """Run a learning-rate range test and scale the phase's groups to its suggestion (their ratios kept)."""
    from tlzoo.training.lr_range import lr_range_test

    result = lr_range_test(model, phase.param_groups, loader, settings.loss.to(accelerator.device), accelerator,
                           max_grad_norm=settings.max_grad_norm)
    head_lr = max(g["lr"] for g in phase.param_groups)
    for group in phase.param_groups:
        group["lr"] = group["lr"] / head_lr * result.learning_rate
    phase.range_test = result.to_dict()
    logger.info("Learning-rate range test (%d steps, %.1f s): training %s at %.2g (%s).", len(result.rates),
                result.seconds, phase.name, result.learning_rate, result.reason)


def _epochs_bar(phase: Phase, done: int, show: bool) -> Any:
    """The bar over *phase*'s epochs (its postfix: the last epoch's loss and validation score)."""
    from tlzoo.progress import progress_bar

    return progress_bar(total=phase.epochs, initial=done, desc=phase.name, unit="epoch", rate=False, disable=not show)


def _postfix(record: dict[str, Any], metric: str) -> dict[str, str]:
    """The training loss, the first validation metric and the one that picks the best epoch."""
    scores = [k for k in record if k.startswith("validation_") and k not in ("validation_loss", "validation_num_examples")]
    keys = ["train_loss", *scores[:1], f"validation_{metric}"]
    from tlzoo.progress import short_postfix

    return short_postfix({k: record[k] for k in dict.fromkeys(keys) if isinstance(record.get(k), int | float)})


def release(accelerator: Any) -> None:
    """Drop accelerate's references to this phase's model, optimizer, scheduler and loaders.

    ``free_memory()`` also runs ``gc.collect()`` and empties the device cache,
    which frees device memory for the next phase on a GPU but only costs time
    (0.2 s per phase with transformers loaded) on a CPU, where the references
    are all there is to drop.
    """
    if accelerator.device.type != "cpu":
        accelerator.free_memory()
        return
    for name in ("_models", "_optimizers", "_schedulers", "_dataloaders"):  # what free_memory() resets
        getattr(accelerator, name).clear()
    accelerator.step = 0


def end_of_epoch(phase: str, epoch: int) -> None:
    """Called after each epoch's checkpoint; a seam for tests that interrupt training."""


def _train_epoch(model: Any, optimizer: Any, scheduler: Any, loader: Any, settings: LoopSettings, accelerator: Any,
                 phase: str, epoch: int, epochs: int) -> float:
    from tlzoo.progress import progress_bar

    model.train()
    total, count = torch.zeros((), device=accelerator.device), 0
    bar = progress_bar(loader, desc=f"epoch {epoch}/{epochs}", leave=False, delay=1.0,
                       disable=not (settings.progress and accelerator.is_local_main_process))
    loss_fn = settings.loss.to(accelerator.device)
    for batch in bar:
        with accelerator.accumulate(model):
            logits = model(batch)
            loss = loss_fn(logits.float(), batch["labels"])
            if not torch.isfinite(loss.detach()):
                raise Diverged(
                    f"The training loss became {loss.item()} in {phase} epoch {epoch}; stopping before a broken model "
                    "is saved. Lower the learning rate, or check the labels and inputs for NaN/inf values."
                )
            accelerator.backward(loss)
            if settings.max_grad_norm and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        total += loss.detach() * len(batch["labels"])
        count += len(batch["labels"])
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    totals = accelerator.reduce(torch.stack([total, torch.tensor(float(count), device=accelerator.device)]), "sum")
    return float(totals[0] / totals[1].clamp(min=1))


@torch.no_grad()
def predict_loader(model: Any, loader: Any, accelerator: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, labels and example indices of every example, each exactly once (across processes)."""
    model.eval()
    logits, labels, indices = [], [], []
    for batch in loader:
        out = model(batch).float()
        out, lab, idx = accelerator.gather_for_metrics((out, batch["labels"], batch["index"]))
        logits.append(out.cpu())
        labels.append(lab.cpu())
        indices.append(idx.cpu())
    return torch.cat(logits), torch.cat(labels), torch.cat(indices)


def evaluate(model: Any, loader: Any, settings: LoopSettings, accelerator: Any, *, details: bool = True) -> dict[str, Any]:
    """Metrics (and the loss) of *model* on one split; ``details=False``: the scalars only (see ``evaluate_predictions``)."""
    logits, labels, _ = predict_loader(model, loader, accelerator)
    loss = settings.loss.cpu()(logits, labels).item()
    references = labels if settings.task != "regression" else labels.squeeze(-1) if labels.shape[-1] == 1 else labels
    result = evaluate_predictions(settings.task, logits.numpy(), references.numpy(),
                                  label_names=settings.label_names, metrics=settings.metrics, details=details)
    result["loss"] = loss
    result["num_examples"] = len(labels)
    return result

