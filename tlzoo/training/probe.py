"""Linear probes on frozen features, fitted to convergence instead of for a few epochs.

:func:`fit_probe` standardises the features, fits the probe exactly (Newton's
method on few examples, full-batch L-BFGS on more, for classification; closed-form
ridge for regression) at every L2 strength
of a grid, picks one on a validation split or by cross-validation, and returns an
``nn.Linear`` that takes the *raw* features (the standardisation folded in).
:mod:`~tlzoo.training.probe_data` checks and standardises the inputs,
:mod:`~tlzoo.training.probe_solvers` holds the solvers and the selection rule,
:mod:`~tlzoo.training.lbfgs` the L-BFGS they use, and :mod:`~tlzoo.training.probe_newton`
the Newton solver for few examples.

Conventions
-----------
* The objective is the per-example weighted *mean* loss plus ``l2 / 2 * ||W||^2``
  (W in standardised-feature units; the bias is not penalised):

  - single-label: ``sum_i w_i * CE(x_i, y_i) / sum_i w_i`` (softmax cross-entropy;
    the same as ``nn.CrossEntropyLoss(weight=class_weights)``). scikit-learn's
    ``LogisticRegression(C=C)`` is ``l2 = 1 / (C * sum_i w_i)``.
  - multi-label: the sigmoid binary cross-entropy, averaged over examples and
    *summed* over labels, so each label is its own binary logistic regression at
    the same ``l2`` (``nn.BCEWithLogitsLoss()`` averages over labels too: its
    ``l2`` would be ``num_labels`` times smaller).
  - regression: ``sum_i w_i * ||y_i - W x_i - b||^2 / (2 * sum_i w_i)``; scikit-learn's
    ``Ridge(alpha=alpha)`` is ``l2 = alpha / sum_i w_i``.
* Sample weights and class weights scale each example's loss term; the mean divides by
  their sum, so scaling all weights changes nothing. Selection metrics are unweighted.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tlzoo.errors import ConfigurationError, DataError
from tlzoo.training.probe_data import (
    TASKS,
    StandardisedFeatures,
    check_targets,
    column_moments,
    example_weights,
)
from tlzoo.training.probe_newton import fit_logistic_newton_path, newton_applies
from tlzoo.training.probe_solvers import fit_logistic_path, fit_ridge_path

__all__ = ["FALLBACK_L2", "LOGISTIC_L2_GRID", "MIN_VALIDATION_EXAMPLES", "RIDGE_L2_GRID", "TASKS", "ProbeFit",
           "fit_probe", "fold_ids"]

logger = logging.getLogger(__name__)

#: Logistic L2 grid (strongest first): 13 values, 10 down to 1e-5, half a decade apart (see the module docstring).
LOGISTIC_L2_GRID = tuple(float(v) for v in np.logspace(1, -5, 13))
#: Ridge L2 grid: every value costs one matrix product, so it is wide and fine.
RIDGE_L2_GRID = tuple(float(v) for v in np.logspace(3, -6, 28))
#: The L2 used when there is neither a validation split nor enough examples for 2-fold CV.
FALLBACK_L2 = 1e-2
#: A validation split selects L2 when it has at least this many examples (and 2 per class).
MIN_VALIDATION_EXAMPLES = 20


@dataclass
class ProbeFit:
    """A fitted probe.

    :ivar linear: float32 ``nn.Linear`` from RAW features to logits (classification) or
        values (regression): weight ``W / scale``, bias ``b - (W / scale) @ mean``, where
        ``W, b`` (:attr:`standardized`) act on ``(x - mean) / scale``. Its outputs carry the
        float32 rounding of ``|W / scale| @ |x|``: negligible, unless features sit at offsets
        far larger than their spread (a thousand times: logits off by ~1e-2).
    :ivar l2: the L2 strength of ``linear`` (the module docstring's convention).
    :ivar selection: ``"validation"``, ``"cross-validation"`` or ``"fixed"``; :attr:`reason` says why.
    :ivar scores: one row per L2 evaluated on the selection data (the validation split, or the
        pooled held-out folds), strongest first: ``l2``, ``score`` (what selection maximises:
        minus the mean log-loss, or the accuracy with ``select_by="accuracy"``; minus the MSE
        over standardised targets for regression), ``loss`` (mean unweighted log-loss, binary
        cross-entropy summed over labels, or MSE in target units) and ``accuracy`` /
        ``micro_f1`` / ``mse``. Empty for a fixed L2 without a validation split.
    :ivar chosen: the row of :attr:`scores` that was selected (under cross-validation its
        ``l2`` is the folds'; :attr:`l2` is the refit's), or None without scores.
    :ivar seconds: wall time of the whole fit.
    :ivar converged: False when any L-BFGS or Newton run stopped at ``max_iter``.
    :ivar solver: ``"newton"``, ``"lbfgs"`` or ``"ridge"``: what fitted it.
    :ivar reason: how L2 was chosen, in words.
    :ivar standardized: the same probe (float64) on ``(x - mean) / scale``, for inspection.
    :ivar mean: the train features' column means (float64).
    :ivar scale: their standard deviations (1 for constant columns).
    :ivar evaluations: full passes over the train features by L-BFGS or Newton (0 for ridge, which
        makes one or two passes in all): the cost of the fit in units of one pass.
    """

    linear: torch.nn.Linear
    l2: float
    selection: str
    scores: list[dict[str, float]]
    seconds: float
    converged: bool
    reason: str
    standardized: torch.nn.Linear
    mean: np.ndarray
    scale: np.ndarray
    evaluations: int = 0
    chosen: dict[str, float] | None = None
    solver: str = "lbfgs"


def fold_ids(task: str, y: Any, cv_folds: int, seed: int) -> tuple[np.ndarray | None, str]:
    """The cross-validation fold (0..K-1) of every train row, or None, and why.

    Single-label: stratified, ``K = min(cv_folds, smallest class count)``: each class's rows,
    shuffled, are dealt to the folds in turn. Otherwise ``K = min(cv_folds, rows // 2)``
    random folds. Deterministic for *seed*; K < 2 gives None.
    """
    labels = np.asarray(y)
    rows = len(labels)
    rng = np.random.default_rng(seed)
    if task == "single_label_classification":
        counts = np.bincount(labels)
        smallest = int(counts[counts > 0].min())
        folds = min(cv_folds, smallest)
        if folds < 2:
            return None, f"the smallest class of train has {smallest} example(s), too few for 2-fold cross-validation"
        order = np.lexsort((rng.random(rows), labels))  # by class, shuffled within each
    else:
        folds = min(cv_folds, rows // 2)
        if folds < 2:
            return None, f"train has {rows} example(s), too few for 2-fold cross-validation"
        order = rng.permutation(rows)
    groups = np.empty(rows, dtype=np.int64)
    groups[order] = np.arange(rows) % folds
    return groups, f"{folds}-fold cross-validation on train"


def fit_probe(train_x: Any, train_y: Any, *, task: str, num_labels: int, val_x: Any = None, val_y: Any = None,
              sample_weight: Any = None, class_weights: list[float] | None = None, l2: float | None = None,
              l2_grid: list[float] | None = None, cv_folds: int = 5, seed: int = 0, max_iter: int = 1000,
              chunk_rows: int = 65536, max_memory_bytes: int = 2 << 30, dtype: str = "auto", path_patience: int = 3,
              select_by: str = "log_loss", solver: str = "auto", device: str = "cpu") -> ProbeFit:
    """Fit a linear probe on frozen features and select its L2 strength.

    :param train_x: [N, D] features: numpy array, numpy memmap or torch tensor (never modified).
    :param train_y: class ids [N] (single-label), a 0/1 matrix [N, C] (multi-label) or values
        [N] / [N, K] (regression).
    :param task: one of ``TASKS``. ``num_labels``: classes, labels or regression outputs.
    :param val_x, val_y: a validation split; it selects L2 when it has at least
        ``MIN_VALIDATION_EXAMPLES`` examples (and 2 per class present in train for single-label),
        else K-fold cross-validation on train (stratified, ``min(cv_folds, smallest class)`` folds)
        selects it and the probe is refitted on all of train at the same total L2.
    :param sample_weight: [N] non-negative weights; ``class_weights``: one per class (single-label).
    :param l2: a fixed L2 strength (no selection); ``l2_grid``: the strengths to select from
        (default ``LOGISTIC_L2_GRID`` or ``RIDGE_L2_GRID``). Logistic fits run strongest first,
        each warm-started from the previous one.
    :param max_memory_bytes: above this estimate of the standardised matrix's size, the data are
        streamed from ``train_x`` in chunks of ``chunk_rows`` rows on every L-BFGS evaluation.
    :param dtype: ``"float32"``, ``"float64"`` or ``"auto"``: float32 for L-BFGS fits (as
        accurate here as float64 at the tolerance used, and faster), float64 for ridge and Newton.
    :param solver: classification only: ``"newton"`` (Newton's method in the span of the train
        rows, float64, in memory: exact in a handful of steps while a block has few parameters),
        ``"lbfgs"``, or ``"auto"``: Newton while its steps are cheap
        (:func:`~tlzoo.training.probe_newton.newton_applies`: a few dozen examples or features)
        and ``dtype`` is not ``"float32"``, else L-BFGS. Both reach the same optimum.
    :param path_patience: stop the L2 path once this many successive L2s after the chosen one
        each raised the selection loss (0: always the whole grid).
    :param select_by: single-label only: ``"log_loss"``, the lowest held-out log-loss (a proper
        score, far less noisy than accuracy on a few hundred examples: as accurate as accuracy
        selection, and better calibrated), or ``"accuracy"``: of the L2s within one standard error
        of the best held-out accuracy, the lowest log-loss. Multi-label and regression select
        by the held-out loss (binary cross-entropy, MSE over standardised targets).
    :param seed: the cross-validation folds' shuffle; everything else is deterministic.
    :param device: where the fit runs (``"cpu"``, ``"cuda"``); the result is on the CPU.
    :raises DataError: on non-finite features or targets, wrong shapes, labels or weights.
    :raises ConfigurationError: on an unknown task, ``select_by``, ``solver`` or ``dtype``, or a bad L2.
    """
    began = time.perf_counter()
    if task not in TASKS:
        raise ConfigurationError(f"task must be one of {TASKS}, got {task!r}.")
    if select_by not in ("accuracy", "log_loss"):
        raise ConfigurationError(f"select_by must be 'accuracy' or 'log_loss', got {select_by!r}.")
    if solver not in ("auto", "lbfgs", "newton"):
        raise ConfigurationError(f"solver must be 'auto', 'lbfgs' or 'newton', got {solver!r}.")
    torch_dtype = _torch_dtype(dtype, task)
    mean, scale = column_moments(train_x, "train_x", chunk_rows)
    rows, dim = train_x.shape
    newton = task != "regression" and (solver == "newton" or (solver == "auto" and dtype != "float32"
                                       and newton_applies(rows, dim, num_labels, task == "multi_label_classification")))
    if newton:
        torch_dtype = torch.float64
    used = "ridge" if task == "regression" else "newton" if newton else "lbfgs"
    y = check_targets(train_y, task, num_labels, rows, "train_y")
    weight = example_weights(sample_weight, class_weights, task, y, num_labels)
    itemsize = torch.finfo(torch_dtype).bits // 8

    def features(x: Any) -> StandardisedFeatures:
        return StandardisedFeatures(x, mean, scale, dtype=torch_dtype, device=device, chunk_rows=chunk_rows,
                                    in_memory=newton or len(x) * dim * itemsize <= max_memory_bytes)

    val = None
    if (val_x is None) != (val_y is None):
        raise ConfigurationError("give both val_x and val_y, or neither.")
    if val_x is not None:
        column_moments(val_x, "val_x", chunk_rows)  # only to check it
        if val_x.ndim != 2 or val_x.shape[1] != dim:
            raise DataError(f"val_x has shape {tuple(val_x.shape)}; expected [rows, {dim}] like train_x.")
        val = (features(val_x), check_targets(val_y, task, num_labels, len(val_x), "val_y"))
    selection, grid, reason, groups = _plan(task, y, val, l2, l2_grid, cv_folds, seed)
    train = features(train_x)
    if task == "regression":
        result = fit_ridge_path(train, y, weight, val, grid, groups)
    else:
        logistic = fit_logistic_newton_path if newton else fit_logistic_path
        result = logistic(train, y, weight, val, grid, groups, num_labels=num_labels,
                          multi=task == "multi_label_classification", max_iter=max_iter,
                          patience=path_patience, by_loss=select_by == "log_loss")
    if selection == "cross-validation":
        reason += f"; refitted on all of train at l2={result.l2:.3g} (the folds' choice, same total L2)"
    if not result.converged:
        logger.warning("The probe's %s solver stopped at max_iter=%d before converging.", used, max_iter)
    linear, standardized = _fold(result.theta.double().cpu(), mean, scale)
    return ProbeFit(linear=linear, l2=result.l2, selection=selection, scores=result.scores,
                    seconds=time.perf_counter() - began, converged=result.converged, reason=reason,
                    standardized=standardized, mean=mean, scale=scale, evaluations=result.evaluations,
                    chosen=result.chosen, solver=used)


def _torch_dtype(dtype: str, task: str) -> torch.dtype:
    if dtype == "auto":
        dtype = "float64" if task == "regression" else "float32"
    if dtype not in ("float32", "float64"):
        raise ConfigurationError(f"dtype must be 'float32', 'float64' or 'auto', got {dtype!r}.")
    return torch.float64 if dtype == "float64" else torch.float32


def _plan(task: str, y: torch.Tensor, val: Any, l2: float | None, l2_grid: list[float] | None, cv_folds: int,
          seed: int) -> tuple[str, list[float], str, np.ndarray | None]:
    """How L2 is chosen: (selection, grid strongest first, reason, the train rows' folds or None)."""
    if task == "single_label_classification":
        needed = max(MIN_VALIDATION_EXAMPLES, 2 * len(np.unique(y.numpy())))
    else:
        needed = MIN_VALIDATION_EXAMPLES
    groups = None
    if l2 is not None:
        selection, grid, reason = "fixed", [float(l2)], "l2 was given"
    elif val is not None and len(val[1]) >= needed:
        selection, reason = "validation", f"selected on the validation split ({len(val[1])} examples)"
    else:
        groups, why = fold_ids(task, y.numpy(), cv_folds, seed)
        short = "no validation split" if val is None else f"the validation split has {len(val[1])} examples, under {needed}"
        if groups is None:
            selection, grid, reason = "fixed", [FALLBACK_L2], f"{short} and {why}: L2 fixed at {FALLBACK_L2}"
            logger.warning("Probe L2 not selected: %s.", reason)
        else:
            selection, reason = "cross-validation", f"{short}: selected by {why}"
    if selection != "fixed":
        default = RIDGE_L2_GRID if task == "regression" else LOGISTIC_L2_GRID
        grid = sorted((float(v) for v in (l2_grid or default)), reverse=True)
    if not grid or any(not (v > 0 and math.isfinite(v)) for v in grid):
        raise ConfigurationError(f"L2 strengths must be positive and finite, got {grid}.")
    return selection, grid, reason, groups


def _fold(theta: torch.Tensor, mean: np.ndarray, scale: np.ndarray) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """(the float32 head on raw features, the float64 head on standardised ones) of *theta*."""
    outputs, dim = theta.shape[0], theta.shape[1] - 1
    standardized = torch.nn.Linear(dim, outputs, dtype=torch.float64)
    linear = torch.nn.Linear(dim, outputs)
    folded = theta[:, :-1] / torch.from_numpy(scale)
    with torch.no_grad():
        standardized.weight.copy_(theta[:, :-1])
        standardized.bias.copy_(theta[:, -1])
        linear.weight.copy_(folded)
        linear.bias.copy_(theta[:, -1] - folded @ torch.from_numpy(mean))
    return linear, standardized
