"""``auto``'s second opinion when a fine-tuned trial beat the probe on a handful of validation examples.

Asked for with ``cross_validate_trials=True`` (``--cross-validate-trials``); off by default,
because on ``bench/auto.py`` it cost about a quarter more time and won nothing (docs/user-guide.md).
On fewer than :data:`~tlzoo.training.ladder.MIN_EVIDENCE` validation examples a
win is often one or two examples: as likely noise as a better model. So ``auto``
first asks whether the handful settles it: the trial's loss and the probe's on
each validation example, paired; a mean gain of :data:`DECISIVE` standard errors
or more is a clear win, kept on the validation split's word (a fine-tuned model
that is better on nearly every example needs no second opinion, and gets none
at no cost). A smaller gain is judged again by K-fold cross-validation on train
and validation together: on every fold it fits the probe on the other
folds (at the L2 it chose, from the cached features), fine-tunes from that probe
as the trial did (same layers, learning rate, and the epochs at which the trial
was best), and scores both on the fold. The fine-tuned model is kept only if
it does better on the folds pooled (the same metric that picks the best epoch);
otherwise the probe is. The folds' scores, their cost and the verdict are
recorded in the trial (``recipe["trials"][i]["cross_validation"]``).

It runs only when the time budget allows :data:`FOLDS` more such runs; when it
does not, the trial is kept on the validation split's word, and the trial says so.
The paired gain is recorded either way (``standard_errors``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tlzoo.heads import linear_layer
from tlzoo.training.batches import Collate, ExampleBatches
from tlzoo.training.ladder import MIN_EVIDENCE
from tlzoo.training.loop import MIN_DELTA, Phase, predict_loader, release, run_phase
from tlzoo.training.strategies import parameter_groups

logger = logging.getLogger(__name__)

#: Folds of the second opinion (stratified; fewer when a class has fewer examples).
FOLDS = 3
#: A paired per-example loss gain of this many standard errors or more settles the comparison on validation.
DECISIVE = 2.0


@dataclass
class Trial:
    """What the fold runs repeat of the trial under review."""

    strategy: str
    groups: list[Any]  # the backbone's trainable layer groups
    layer_decay: float
    learning_rate: float
    epochs: int  # the trial's best epoch
    seconds: float  # the trial's cost
    epochs_run: int
    start: dict[str, torch.Tensor]  # the weights the trial started from (backbone and probe head)


def wanted(options: Any, target: Any) -> bool:
    """Whether a kept trial gets the second opinion: asked for, ``auto`` chose it, on a handful of validation
    examples."""
    n_val = len(target.splits["validation"]) if "validation" in target.splits else 0
    return options.cross_validate_trials and options.strategy == "auto" and 0 < n_val < MIN_EVIDENCE


def estimated_seconds(trial: Trial, rows: int, train_rows: int, folds: int) -> float:
    """The fold runs' cost, scaled from the trial's: fewer epochs, K-1 folds of the rows each."""
    per_epoch = trial.seconds / max(trial.epochs_run, 1)
    return folds * per_epoch * trial.epochs * (rows * (folds - 1) / folds) / max(train_rows, 1)


def pooled(results: list[dict[str, Any]], sizes: list[int], metric: str) -> float:
    """The folds' *metric*, each weighted by its number of examples."""
    return float(np.average([r[metric] for r in results], weights=sizes))


def example_losses(loss: nn.Module, logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Each example's *loss* (its per-label or per-output terms averaged), as the mean reduction weighs them."""
    each = copy.copy(loss)  # shares the class weights; only the reduction differs
    each.reduction = "none"
    per_example = each(logits.float(), labels)
    return per_example.reshape(len(labels), -1).mean(dim=1).double().numpy()


def paired_gain(probe: np.ndarray, tuned: np.ndarray) -> float:
    """The mean of the ``probe - tuned`` per-example losses, in standard errors (0 on fewer than two examples)."""
    gain = probe - tuned
    if len(gain) < 2:
        return 0.0
    return float(gain.mean() / max(gain.std(ddof=1) / np.sqrt(len(gain)), 1e-12))


def validation_losses(run: Any, model: Any, loader: Any) -> np.ndarray:
    """*model*'s loss on each example of *loader* (the whole split, gathered across processes)."""
    try:
        logits, labels, _ = predict_loader(run.accelerator.prepare(model), run.accelerator.prepare(loader),
                                           run.accelerator)
    finally:
        release(run.accelerator)
    return example_losses(run.settings.loss.cpu(), logits, labels)


def beats(candidate: float, incumbent: float, greater_is_better: bool) -> bool:
    """Whether *candidate* is better than *incumbent* by more than the loop's ``MIN_DELTA``."""
    gain = candidate - incumbent if greater_is_better else incumbent - candidate
    return gain > MIN_DELTA


def cross_validate(run: Any, trial: Trial, model: Any, collate: Collate, validation: Any) -> dict[str, Any]:
    """Unless the *validation* loader's examples settle it, score the probe and the fine-tuned trial on K folds
    of train + validation (see the module docstring).

    *run* is the :func:`~tlzoo.training.train.train` call's ``_Run``, whose ``probe_arrays`` hold
    the probe's cached features; *model* the trial's ``TaskModel``, which holds the trial's
    weights again afterwards. Returns the record
    (``kept``: ``"fine_tuned"`` or ``"linear_probe"``), or one with ``skipped`` and why.
    """
    from datasets import concatenate_datasets

    from tlzoo.training.probe import fit_probe, fold_ids

    o, t = run.options, run.target
    started = time.perf_counter()
    kept_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tuned_losses = validation_losses(run, model, validation)
    model.load_state_dict(trial.start)
    gain = paired_gain(validation_losses(run, model, validation), tuned_losses)
    model.load_state_dict(kept_weights)
    record: dict[str, Any] = {"standard_errors": round(min(gain, 1e6), 2)}
    if gain >= DECISIVE:
        return {**record, "skipped": True, "seconds": round(time.perf_counter() - started, 3),
                "why": f"its loss is lower than the probe's on the {len(tuned_losses)} validation examples by "
                       f"{record['standard_errors']:g} standard errors (paired): the validation split settles it"}
    (train_x, train_y), (val_x, val_y) = run.probe_arrays["train"], run.probe_arrays["validation"]
    x, y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    groups, why = fold_ids(t.task, y, FOLDS, o.seed)
    if groups is None:
        return {**record, "skipped": True, "why": f"no cross-validation: {why}"}
    folds = int(groups.max()) + 1
    estimate = estimated_seconds(trial, len(y), len(train_y), folds)
    spent = run.timings["linear_probe"] + run.timings.get("fine_tune", 0.0)
    budget = run.hyper.get("time_budget_seconds")
    if budget is not None and spent + estimate > budget:
        return {**record, "skipped": True, "estimated_seconds": round(estimate, 1),
                "why": f"{folds}-fold cross-validation would take about {estimate:.0f} s, over what is left of the "
                       f"{budget:.0f} s budget; the trial is kept on the validation split's word"}
    pool = concatenate_datasets([t.splits["train"], t.splits["validation"]])
    settings = dataclasses.replace(run.settings, early_stopping=None, checkpoint_dir=None, history=[])
    linear = linear_layer(run.head)
    scores: dict[str, list[dict[str, Any]]] = {"linear_probe": [], "fine_tuned": []}
    sizes = []
    for fold in range(folds):
        rest, held = np.flatnonzero(groups != fold), np.flatnonzero(groups == fold)
        fit = fit_probe(x[rest], y[rest], task=t.task, num_labels=t.num_labels, l2=run.hyper["probe_l2"],
                        class_weights=run.class_weights if t.task == "single_label_classification" else None,
                        seed=o.seed, device=str(run.accelerator.device))
        model.load_state_dict(trial.start)
        linear.load_state_dict(fit.linear.state_dict())  # copies into the head's own dtype and device
        examples = ExampleBatches(pool.select(held), t.input_column, t.label_column)
        held_loader = run.loader(examples, collate, o.batch_size, shuffle=False)
        scores["linear_probe"].append(run._validation(model, held_loader))
        phase = Phase(name=f"cross_validation_{fold + 1}", model=model,
                      param_groups=parameter_groups(trial.groups, run.head, learning_rate=trial.learning_rate,
                                                    weight_decay=o.weight_decay, layer_decay=trial.layer_decay),
                      train_loader=run.loader(ExampleBatches(pool.select(rest), t.input_column, t.label_column),
                                              collate, o.batch_size, shuffle=True),
                      eval_loaders={}, epochs=trial.epochs, warmup_ratio=o.warmup_ratio,
                      lr_scheduler_type=o.lr_scheduler_type, strategy=trial.strategy)
        run_phase(phase, settings, run.accelerator, order=1)
        scores["fine_tuned"].append(run._validation(model, held_loader))
        sizes.append(len(held))
    model.load_state_dict(kept_weights)
    metric, greater = o.metric_for_best_model, run.settings.greater_is_better
    probe, tuned = (pooled(scores[side], sizes, metric) for side in ("linear_probe", "fine_tuned"))
    keep = "fine_tuned" if beats(tuned, probe, greater) else "linear_probe"
    seconds = time.perf_counter() - started
    logger.info("Cross-validation (%d folds of %d examples, %.1f s): %s %.4g fine-tuned, %.4g probe: the %s is kept.",
                folds, len(y), seconds, metric, tuned, probe, "fine-tuned model" if keep == "fine_tuned" else "probe")
    return {**record, "folds": folds, "examples": len(y), "metric": metric, "linear_probe": probe, "fine_tuned": tuned,
            "fold_sizes": sizes, "epochs": trial.epochs, "learning_rate": trial.learning_rate,
            "seconds": round(seconds, 3), "kept": keep}
