"""The ``linear_probe`` phase of :func:`tlzoo.training.train.train`: the head on a frozen backbone.

With a linear head and the feature cache, the head is *fitted* on cached features
(standardisation folded in, L2 chosen on validation or by cross-validation:
:func:`tlzoo.training.probe.fit_probe`); other heads, or explicit epochs and a learning
rate, train by gradient steps in the one loop. Before it, a backbone whose batch-norm
statistics do not describe the training data has them recalibrated (AdaBN,
:mod:`tlzoo.training.norm_stats`).

:class:`ProbePhase` is a part of the run object of :func:`~tlzoo.training.train.train`
(``_Run``), whose ``__init__`` sets the attributes it reads (``options``, ``target``,
``extractor``, ``head``, ``accelerator``, ``settings``, ``hyper``, ``timings``, ``trials``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from torch import nn

from tlzoo.data import column_values
from tlzoo.heads import linear_layer
from tlzoo.training.cross_check import wanted
from tlzoo.training.loop import Phase, TaskModel, run_phase
from tlzoo.training.strategies import PROBE, parameter_groups

logger = logging.getLogger(__name__)

#: Batch-norm statistics are recalibrated on at most this many training examples (evenly spread over train).
RECALIBRATION_EXAMPLES = 2048


class ProbePhase:
    """The probe phase's methods of the run object (see the module docstring)."""

    # set by the run object
    options: Any
    target: Any
    extractor: Any
    head: nn.Module
    accelerator: Any
    settings: Any
    hyper: dict[str, Any]
    timings: dict[str, float]
    trials: list[dict[str, Any]]
    labels: dict[str, Any]
    eval_splits: list[str]
    class_weights: list[float] | None
    probe_validation: dict[str, Any] | None
    probe_held_out: dict[str, Any] | None
    probe_arrays: dict[str, tuple[Any, Any]] | None
    final: Any

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
        linear.load_state_dict(fit.linear.state_dict())  # copies into the head's own dtype and device
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
