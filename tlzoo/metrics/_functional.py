"""Numpy implementations of the built-in metrics (no scikit-learn).

The functions follow scikit-learn's definitions and argument names
(``average``, ``labels``, ``pos_label``, ``sample_weight``, ``zero_division``,
``multioutput``) so the :mod:`evaluate` wrappers in this package behave like the
Hub's ``evaluate-metric/*`` modules, which call scikit-learn.

Everything here is pure numpy: it imports neither :mod:`evaluate` nor torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

logger = logging.getLogger(__name__)

#: ``average`` values accepted by :func:`precision_recall_f1`.
AVERAGE_OPTIONS: tuple[str | None, ...] = (None, "binary", "micro", "macro", "weighted", "samples")
#: ``multioutput`` strings accepted by the regression functions.
MULTIOUTPUT_OPTIONS: tuple[str, ...] = ("raw_values", "uniform_average", "variance_weighted")

ZeroDivision = Union[str, float, int]
ArrayLike = Any


# --------------------------------------------------------------------------- helpers


def _as_weights(sample_weight: ArrayLike | None, n: int) -> np.ndarray:
    """Return per-sample weights as a float array of length *n* (ones if ``None``)."""
    if sample_weight is None:
        return np.ones(n, dtype=np.float64)
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weights.shape[0] != n:
        raise ValueError(f"sample_weight has {weights.shape[0]} entries but there are {n} samples.")
    return weights


def _zero_division_value(zero_division: ZeroDivision) -> float:
    """Map scikit-learn's ``zero_division`` argument to the number substituted for 0/0."""
    if isinstance(zero_division, str):
        if zero_division != "warn":
            raise ValueError(f"zero_division must be 'warn', 0, 1 or nan; got {zero_division!r}.")
        return 0.0
    value = float(zero_division)
    if not (value in (0.0, 1.0) or np.isnan(value)):
        raise ValueError(f"zero_division must be 'warn', 0, 1 or nan; got {zero_division!r}.")
    return value


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray, fill: float) -> np.ndarray:
    """Element-wise ``numerator / denominator`` with *fill* where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, fill, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _check_lengths(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    """Raise ``ValueError`` unless references and predictions have the same number of samples."""
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"Found {y_true.shape[0]} references but {y_pred.shape[0]} predictions; they must match."
        )


def as_label_array(values: ArrayLike, *, multilabel: bool) -> np.ndarray:
    """Return class ids ``[N]`` (or a 0/1 indicator matrix ``[N, L]`` if *multilabel*) as int64."""
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"Expected integer labels; got an array of dtype {array.dtype}.")
    if np.issubdtype(array.dtype, np.inexact) and array.size and not np.all(np.mod(array, 1) == 0):
        raise ValueError("Expected integer labels; got non-integer values (pass class ids, not scores).")
    if multilabel:
        if array.ndim != 2:
            raise ValueError(
                "Multi-label inputs must be a 0/1 indicator matrix of shape [N, num_labels]; "
                f"got an array of shape {array.shape}."
            )
        if not is_binary_matrix(array):
            raise ValueError("Multi-label inputs must contain only 0 and 1.")
        return array.astype(np.int64, copy=False)
    array = array.reshape(-1) if array.ndim == 2 and array.shape[1:] == (1,) else array
    if array.ndim != 1:
        raise ValueError(
            f"Expected class ids of shape [N]; got shape {array.shape}. "
            "For 0/1 indicator matrices load the metric with config_name='multilabel'."
        )
    return array.astype(np.int64, copy=False)


def is_binary_matrix(array: np.ndarray) -> bool:
    """True if every entry of *array* is 0 or 1 (True/False); fast for large integer arrays."""
    if array.size == 0 or array.dtype == bool:
        return True
    if np.issubdtype(array.dtype, np.integer):
        return bool(array.min() >= 0 and array.max() <= 1)
    return bool(np.all((array == 0) | (array == 1)))


def unique_labels(*arrays: np.ndarray) -> np.ndarray:
    """Sorted union of the values in *arrays* (like ``sklearn.utils.multiclass.unique_labels``)."""
    if not arrays:
        return np.array([], dtype=np.int64)
    return np.unique(np.concatenate([np.asarray(a).reshape(-1) for a in arrays]))


# --------------------------------------------------------------------------- classification


def accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    normalize: bool = True,
    sample_weight: ArrayLike | None = None,
    multilabel: bool = False,
) -> float:
    """Fraction (or weighted count if ``normalize=False``) of exactly-correct samples.

    For multi-label indicator matrices a sample counts only if every label matches
    (subset accuracy), like :func:`sklearn.metrics.accuracy_score`.
    """
    y_true_arr = as_label_array(y_true, multilabel=multilabel)
    y_pred_arr = as_label_array(y_pred, multilabel=multilabel)
    _check_lengths(y_true_arr, y_pred_arr)
    if multilabel and y_true_arr.shape[1] != y_pred_arr.shape[1]:
        raise ValueError(
            f"References have {y_true_arr.shape[1]} labels but predictions have {y_pred_arr.shape[1]}."
        )
    correct = (y_true_arr == y_pred_arr).all(axis=1) if multilabel else (y_true_arr == y_pred_arr)
    weights = _as_weights(sample_weight, y_true_arr.shape[0])
    total = float(np.sum(weights * correct))
    if not normalize:
        return total
    weight_sum = float(np.sum(weights))
    return total / weight_sum if weight_sum else 0.0


def _label_index(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each value in *labels* and a mask of the values that are in *labels*."""
    if labels.size == 0:
        return np.zeros(values.shape, dtype=np.int64), np.zeros(values.shape, dtype=bool)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    positions = np.clip(np.searchsorted(sorted_labels, values), 0, labels.size - 1)
    return order[positions], sorted_labels[positions] == values


def _multiclass_counts(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label weighted (true positives, predicted count, true count) for class-id inputs."""
    true_idx, true_in = _label_index(y_true, labels)
    pred_idx, pred_in = _label_index(y_pred, labels)
    hit = true_in & (y_true == y_pred)
    size = labels.size
    tp = np.bincount(true_idx[hit], weights=weights[hit], minlength=size).astype(np.float64)
    pred_sum = np.bincount(pred_idx[pred_in], weights=weights[pred_in], minlength=size).astype(np.float64)
    true_sum = np.bincount(true_idx[true_in], weights=weights[true_in], minlength=size).astype(np.float64)
    return tp, pred_sum, true_sum


def _resolve_labels(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    labels: Sequence[int] | None,
    pos_label: int | None,
    average: str | None,
    multilabel: bool,
) -> np.ndarray:
    """Choose the labels to score, applying scikit-learn's rules for ``average='binary'``."""
    if average not in AVERAGE_OPTIONS:
        raise ValueError(f"average must be one of {list(AVERAGE_OPTIONS)}; got {average!r}.")
    if average == "samples" and not multilabel:
        raise ValueError("average='samples' is only meaningful for multi-label inputs (config_name='multilabel').")
    if average == "binary":
        if multilabel:
            raise ValueError(
                "Target is multilabel-indicator but average='binary'. Please choose another average setting, "
                "one of [None, 'micro', 'macro', 'weighted', 'samples']."
            )
        present = unique_labels(y_true, y_pred)
        if present.size > 2:
            raise ValueError(
                "Target is multiclass but average='binary'. Please choose another average setting, "
                "one of [None, 'micro', 'macro', 'weighted']."
            )
        if pos_label not in present.tolist() and present.size >= 2:
            raise ValueError(f"pos_label={pos_label} is not a valid label. It should be one of {present.tolist()}.")
        return np.array([pos_label], dtype=np.int64)
    if labels is not None:
        return np.asarray(list(labels), dtype=np.int64).reshape(-1)
    if multilabel:
        return np.arange(y_true.shape[1], dtype=np.int64)
    return unique_labels(y_true, y_pred).astype(np.int64)


def precision_recall_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: Sequence[int] | None = None,
    pos_label: int = 1,
    average: str | None = "binary",
    sample_weight: ArrayLike | None = None,
    zero_division: ZeroDivision = "warn",
    multilabel: bool = False,
) -> tuple[Any, Any, Any, np.ndarray | None]:
    """Precision, recall, F1 and support, like ``sklearn.metrics.precision_recall_fscore_support``.

    Args:
        y_true: Reference class ids ``[N]`` or a 0/1 indicator matrix ``[N, L]`` if *multilabel*.
        y_pred: Predicted class ids / indicator matrix, same shape as *y_true*.
        labels: Labels (class ids, or column indices for multi-label) to include. Default: every
            label present in *y_true* or *y_pred* (all columns for multi-label).
        pos_label: The positive class when ``average='binary'``.
        average: ``'binary'``, ``'micro'``, ``'macro'``, ``'weighted'``, ``'samples'`` (multi-label
            only) or ``None`` for one score per label.
        sample_weight: Optional per-sample weights.
        zero_division: Value used for 0/0 (``'warn'`` behaves as 0 and logs at debug level).
        multilabel: Whether the inputs are indicator matrices.

    Returns:
        ``(precision, recall, f1, support)``: floats for an average, arrays of length
        ``len(labels)`` for ``average=None``; *support* is the per-label true count for
        ``average=None`` and ``None`` otherwise.
    """
    y_true_arr = as_label_array(y_true, multilabel=multilabel)
    y_pred_arr = as_label_array(y_pred, multilabel=multilabel)
    _check_lengths(y_true_arr, y_pred_arr)
    if multilabel and y_true_arr.shape[1] != y_pred_arr.shape[1]:
        raise ValueError(
            f"References have {y_true_arr.shape[1]} labels but predictions have {y_pred_arr.shape[1]}."
        )
    fill = _zero_division_value(zero_division)
    weights = _as_weights(sample_weight, y_true_arr.shape[0])
    chosen = _resolve_labels(
        y_true_arr, y_pred_arr, labels=labels, pos_label=pos_label, average=average, multilabel=multilabel
    )

    if multilabel and chosen.size and (chosen.min() < 0 or chosen.max() >= y_true_arr.shape[1]):
        raise ValueError(f"labels must be column indices in [0, {y_true_arr.shape[1]}); got {chosen.tolist()}.")

    if multilabel:
        every_column = np.array_equal(chosen, np.arange(y_true_arr.shape[1]))
        cols_true = (y_true_arr if every_column else y_true_arr[:, chosen]).astype(bool)
        cols_pred = (y_pred_arr if every_column else y_pred_arr[:, chosen]).astype(bool)
        both = cols_true & cols_pred
    if average == "samples":
        tp = np.count_nonzero(both, axis=1).astype(np.float64)
        pred_sum = np.count_nonzero(cols_pred, axis=1).astype(np.float64)
        true_sum = np.count_nonzero(cols_true, axis=1).astype(np.float64)
    elif multilabel and sample_weight is None:
        tp = np.count_nonzero(both, axis=0).astype(np.float64)
        pred_sum = np.count_nonzero(cols_pred, axis=0).astype(np.float64)
        true_sum = np.count_nonzero(cols_true, axis=0).astype(np.float64)
    elif multilabel:
        tp = weights @ both.astype(np.float64)
        pred_sum = weights @ cols_pred.astype(np.float64)
        true_sum = weights @ cols_true.astype(np.float64)
    else:
        tp, pred_sum, true_sum = _multiclass_counts(y_true_arr, y_pred_arr, chosen, weights)

    if average == "micro":
        tp, pred_sum, true_sum = np.array([tp.sum()]), np.array([pred_sum.sum()]), np.array([true_sum.sum()])

    if zero_division == "warn" and (np.any(pred_sum == 0) or np.any(true_sum == 0)):
        logger.debug("Some labels have no predicted or no true samples; their scores are set to 0.0.")
    precision = _safe_divide(tp, pred_sum, fill)
    recall = _safe_divide(tp, true_sum, fill)
    # F1 = 2tp / (2tp + fp + fn) = 2tp / (pred_sum + true_sum), as in scikit-learn >= 1.3.
    f1 = _safe_divide(2.0 * tp, pred_sum + true_sum, fill)

    if average is None:
        return precision, recall, f1, true_sum
    if average in ("micro", "binary"):
        return float(precision[0]), float(recall[0]), float(f1[0]), None

    mean = np.nanmean if np.isnan(fill) else np.mean
    if average == "weighted":
        total = true_sum.sum()
        if total == 0:
            return fill, fill, fill, None
        weights_per_label = true_sum / total
        return (
            float(np.sum(precision * weights_per_label)),
            float(np.sum(recall * weights_per_label)),
            float(np.sum(f1 * weights_per_label)),
            None,
        )
    if average == "samples":
        sample_weights = weights / weights.sum() if weights.sum() else weights
        return (
            float(np.sum(precision * sample_weights)),
            float(np.sum(recall * sample_weights)),
            float(np.sum(f1 * sample_weights)),
            None,
        )
    # macro
    if precision.size == 0:
        return fill, fill, fill, None
    return float(mean(precision)), float(mean(recall)), float(mean(f1)), None


def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: Sequence[int] | None = None,
    sample_weight: ArrayLike | None = None,
    normalize: str | None = None,
) -> np.ndarray:
    """Confusion matrix ``C`` with ``C[i, j]`` = samples of true label ``labels[i]`` predicted as ``labels[j]``.

    Rows are references, columns are predictions. Samples whose reference or prediction
    is not in *labels* are ignored. ``normalize`` is ``None``, ``'true'`` (rows sum to 1),
    ``'pred'`` (columns sum to 1) or ``'all'``.
    """
    y_true_arr = as_label_array(y_true, multilabel=False)
    y_pred_arr = as_label_array(y_pred, multilabel=False)
    _check_lengths(y_true_arr, y_pred_arr)
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be one of None, 'true', 'pred', 'all'; got {normalize!r}.")
    label_arr = (
        unique_labels(y_true_arr, y_pred_arr) if labels is None else np.asarray(list(labels), dtype=np.int64)
    )
    if label_arr.size == 0:
        raise ValueError("'labels' should contain at least one label.")
    if sample_weight is None:
        weights: np.ndarray = np.ones(y_true_arr.shape[0], dtype=np.int64)
    else:
        weights = np.asarray(sample_weight).reshape(-1)
        if weights.shape[0] != y_true_arr.shape[0]:
            raise ValueError(
                f"sample_weight has {weights.shape[0]} entries but there are {y_true_arr.shape[0]} samples."
            )
        weights = weights.astype(np.int64 if np.issubdtype(weights.dtype, np.integer) else np.float64)
    rows, rows_in = _label_index(y_true_arr, label_arr)
    cols, cols_in = _label_index(y_pred_arr, label_arr)
    keep = rows_in & cols_in
    matrix = np.zeros((label_arr.size, label_arr.size), dtype=weights.dtype)
    np.add.at(matrix, (rows[keep], cols[keep]), weights[keep])
    if normalize == "true":
        return _safe_divide(matrix, matrix.sum(axis=1, keepdims=True), 0.0)
    if normalize == "pred":
        return _safe_divide(matrix, matrix.sum(axis=0, keepdims=True), 0.0)
    if normalize == "all":
        return _safe_divide(matrix, np.asarray(matrix.sum()), 0.0)
    return matrix


def multilabel_confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: Sequence[int] | None = None,
    sample_weight: ArrayLike | None = None,
) -> np.ndarray:
    """One 2x2 matrix ``[[tn, fp], [fn, tp]]`` per label column, shape ``[L, 2, 2]``."""
    y_true_arr = as_label_array(y_true, multilabel=True)
    y_pred_arr = as_label_array(y_pred, multilabel=True)
    _check_lengths(y_true_arr, y_pred_arr)
    columns = np.arange(y_true_arr.shape[1]) if labels is None else np.asarray(list(labels), dtype=np.int64)
    if sample_weight is None:
        weights: np.ndarray = np.ones(y_true_arr.shape[0], dtype=np.int64)
    else:
        weights = np.asarray(sample_weight).reshape(-1)
        weights = weights.astype(np.int64 if np.issubdtype(weights.dtype, np.integer) else np.float64)
    t = y_true_arr[:, columns]
    p = y_pred_arr[:, columns]
    w = weights[:, None]
    tp = (w * (t & p)).sum(axis=0)
    fp = (w * ((1 - t) & p)).sum(axis=0)
    fn = (w * (t & (1 - p))).sum(axis=0)
    tn = (w * ((1 - t) & (1 - p))).sum(axis=0)
    return np.stack([np.stack([tn, fp], axis=-1), np.stack([fn, tp], axis=-1)], axis=1)


# --------------------------------------------------------------------------- regression


def _regression_arrays(
    y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(y_true, y_pred, weights)`` as float arrays of shape ``[N, K]`` and ``[N]``."""
    true_arr = np.asarray(y_true, dtype=np.float64)
    pred_arr = np.asarray(y_pred, dtype=np.float64)
    true_arr = true_arr.reshape(-1, 1) if true_arr.ndim == 1 else true_arr
    pred_arr = pred_arr.reshape(-1, 1) if pred_arr.ndim == 1 else pred_arr
    if true_arr.ndim != 2 or pred_arr.ndim != 2:
        raise ValueError("Regression inputs must be of shape [N] or [N, num_outputs].")
    if true_arr.shape != pred_arr.shape:
        raise ValueError(f"References have shape {true_arr.shape} but predictions have shape {pred_arr.shape}.")
    if true_arr.shape[0] == 0:
        raise ValueError("Regression metrics need at least one sample.")
    return true_arr, pred_arr, _as_weights(sample_weight, true_arr.shape[0])


def _aggregate_outputs(values: np.ndarray, multioutput: str | ArrayLike, variance: np.ndarray | None = None) -> Any:
    """Combine per-output *values* according to scikit-learn's ``multioutput`` argument."""
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return values
        if multioutput == "uniform_average":
            return float(np.mean(values))
        if multioutput == "variance_weighted" and variance is not None:
            total = variance.sum()
            return float(np.mean(values)) if total == 0 else float(np.sum(values * variance / total))
        allowed = MULTIOUTPUT_OPTIONS if variance is not None else MULTIOUTPUT_OPTIONS[:2]
        raise ValueError(f"multioutput must be one of {list(allowed)} or an array of weights; got {multioutput!r}.")
    output_weights = np.asarray(multioutput, dtype=np.float64).reshape(-1)
    if output_weights.shape[0] != values.shape[0]:
        raise ValueError(f"multioutput has {output_weights.shape[0]} weights but there are {values.shape[0]} outputs.")
    return float(np.average(values, weights=output_weights))


def mean_squared_error(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: str | ArrayLike = "uniform_average",
    squared: bool = True,
) -> Any:
    """Mean squared error (root mean squared error if ``squared=False``), per output or averaged."""
    true_arr, pred_arr, weights = _regression_arrays(y_true, y_pred, sample_weight)
    per_output = np.average((true_arr - pred_arr) ** 2, axis=0, weights=weights)
    if not squared:
        per_output = np.sqrt(per_output)
    return _aggregate_outputs(per_output, multioutput)


def mean_absolute_error(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: str | ArrayLike = "uniform_average",
) -> Any:
    """Mean absolute error, per output or averaged."""
    true_arr, pred_arr, weights = _regression_arrays(y_true, y_pred, sample_weight)
    per_output = np.average(np.abs(true_arr - pred_arr), axis=0, weights=weights)
    return _aggregate_outputs(per_output, multioutput)


def r2_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    multioutput: str | ArrayLike = "uniform_average",
    force_finite: bool = True,
) -> Any:
    """Coefficient of determination ``1 - SS_res / SS_tot``, per output or averaged.

    With ``force_finite`` (the default) a constant reference column scores 1.0 if it is
    predicted perfectly and 0.0 otherwise, instead of NaN / -inf (scikit-learn's rule).
    """
    true_arr, pred_arr, weights = _regression_arrays(y_true, y_pred, sample_weight)
    w = weights[:, None]
    ss_res = np.sum(w * (true_arr - pred_arr) ** 2, axis=0)
    mean_true = np.average(true_arr, axis=0, weights=weights)
    ss_tot = np.sum(w * (true_arr - mean_true) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = 1.0 - ss_res / ss_tot
    if force_finite:
        scores = np.where(ss_tot == 0, np.where(ss_res == 0, 1.0, 0.0), scores)
    return _aggregate_outputs(scores, multioutput, variance=ss_tot)
