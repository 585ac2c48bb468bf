"""The ``fine_tune`` phase of :func:`tlzoo.training.train.train`, and what ``auto`` decides before it.

``decide`` asks :func:`tlzoo.training.ladder.plan_fine_tune` whether fine-tuning after
the probe can pay and how deep (timing one batch of the user's data only when the cost
can decide). ``fine_tune`` runs the one loop on raw examples, at a learning rate found by a
range test unless one is given, for epochs chosen from the data size, keeping the best
validation epoch; after a probe it starts from the probe's weights, keeps them unless it
does better, and leaves batch-norm statistics as the probe saw them; a diverging run steps
back to them and retries at a tenth of the rate. With ``cross_validate_trials``, a win on a
handful of validation examples is judged again (:mod:`tlzoo.training.cross_check`).

:class:`FineTunePhase` is a part of the run object of :func:`~tlzoo.training.train.train`
(``_Run``), whose ``__init__`` sets the attributes it reads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from tlzoo.data import column_values
from tlzoo.training.batches import Collate
from tlzoo.training.cross_check import Trial, cross_validate, wanted
from tlzoo.training.ladder import PATIENCE, fine_tune_epochs, plan_fine_tune, step_seconds
from tlzoo.training.loop import Diverged, Phase, TaskModel, release, run_phase
from tlzoo.training.strategies import FINE_TUNE, LORA, parameter_groups, trainable_groups

logger = logging.getLogger(__name__)


class FineTunePhase:
    """The fine-tuning phase's methods of the run object (see the module docstring)."""

    # set by the run object
    options: Any
    target: Any
    extractor: Any
    head: nn.Module
    lora: Any
    accelerator: Any
    settings: Any
    hyper: dict[str, Any]
    timings: dict[str, float]
    trials: list[dict[str, Any]]
    eval_splits: list[str]
    n_params: int
    probe_validation: dict[str, Any] | None
    probe_held_out: dict[str, Any] | None
    probe_arrays: dict[str, tuple[Any, Any]] | None
    final: Any

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
