"""Turn model outputs into a JSON-ready metrics dict.

:func:`evaluate_predictions` scores predictions for one of transformers' problem types
with tlzoo's built-in, offline :mod:`tlzoo.evaluation.metrics` (real :mod:`evaluate`
modules); :func:`summarise` keeps the scalars for history logs.
:func:`tlzoo.evaluation.report.format_report` prints the result.

This module never imports torch: tensors are accepted by duck typing
(``.detach().cpu().numpy()``), and :mod:`evaluate` and :mod:`sklearn` are only imported
when metrics run.
"""

from __future__ import annotations

import logging
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tlzoo.errors import ConfigurationError, MetricError, did_you_mean
from tlzoo.evaluation.hardest import hardest_examples
from tlzoo.evaluation.metrics import canonical_metric_name, load_metric
from tlzoo.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, TASKS

logger = logging.getLogger(__name__)

#: The ``task`` values :func:`evaluate_predictions` accepts (transformers' ``problem_type`` names).

_CLASSIFICATION_DEFAULTS: dict[str, tuple[str, ...]] = {
    SINGLE_LABEL: ("accuracy", "f1", "precision", "recall"),
    MULTI_LABEL: ("accuracy", "f1", "f1_micro", "precision", "recall"),
}
_REGRESSION_DEFAULTS: tuple[str, ...] = ("mse", "mae", "r2")
_AVERAGED = ("f1", "precision", "recall")
_AVERAGES = ("macro", "micro", "weighted", "samples")
_CLASSIFICATION_ONLY = ("accuracy", "f1", "precision", "recall", "confusion_matrix")
_REGRESSION_ONLY = ("mse", "mae", "r2")


# --------------------------------------------------------------------------- public API


def evaluate_predictions(
    task: str,
    predictions: Any,
    references: Any,
    *,
    label_names: list[str] | None = None,
    metrics: list[str] | None = None,
    threshold: float = 0.5,
    details: bool = True,
) -> dict[str, Any]:
    """Score *predictions* against *references* for a transformers problem type.

    Args:
        task: ``"single_label_classification"``, ``"multi_label_classification"`` or
            ``"regression"``.
        predictions: numpy array, torch tensor or nested list.
            Single-label: logits/scores ``[N, C]`` (argmax is taken) or class ids ``[N]``.
            Multi-label: logits ``[N, C]`` (sigmoid, then ``>= threshold``) or 0/1 ``[N, C]``,
            ``C >= 2``.
            Regression: ``[N]``, ``[N, 1]`` or ``[N, K]`` for K outputs (scores averaged).
        references: Class ids ``[N]`` (single-label), 0/1 ``[N, C]`` (multi-label) or values
            shaped like *predictions* (regression).
        label_names: Class names in id order (classification). Defaults to ``"0"``, ``"1"``, ...
        metrics: Metric names replacing the defaults. Built-in: ``accuracy``, ``f1``,
            ``precision``, ``recall`` (macro averages; add ``_micro``, ``_macro``, ``_weighted``,
            or ``_samples`` for multi-label, e.g. ``"f1_micro"``), ``confusion_matrix``, ``mse``,
            ``rmse``, ``mae``, ``r2`` / ``r_squared``. Other names go through
            :func:`tlzoo.evaluation.metrics.load_metric` (network or a local script) and their result dict is
            merged in; loaded :class:`evaluate.EvaluationModule` objects are accepted too. ``None``
            means the defaults below; ``[]`` means none (only the per-class entries). For
            multi-label, ``"confusion_matrix"`` adds ``multilabel_confusion_matrix`` ([C][2][2],
            ``[[tn, fp], [fn, tp]]`` per label).
        threshold: Probability threshold for multi-label logits.
        details: Also compute ``per_class``, ``confusion_matrix`` and ``labels`` (classification),
            and ``hardest``, the worst-predicted examples (see :func:`~tlzoo.evaluation.hardest.hardest_examples`).
            ``False`` gives the scalar metrics only, faster: the training loop's per-epoch
            validation passes need no more.

    Returns:
        A JSON-serialisable dict of plain Python values.

        * single-label: ``{"accuracy", "f1", "precision", "recall": float, "per_class": {name:
          {"precision", "recall", "f1": float, "support": int}}, "confusion_matrix":
          list[list[int]] (rows = true, columns = predicted, all C classes), "labels": list[str]}``
        * multi-label: ``{"accuracy" (exact match), "f1", "f1_micro", "precision", "recall":
          float, "per_class": {...} (support = positive references), "labels": list[str]}``
        * regression: ``{"mse", "mae", "r2": float}``

        ``f1``/``precision``/``recall`` are macro averages over the labels present in the
        references or predictions (scikit-learn's default); ``per_class`` lists every class,
        absent ones with zeros. Zero divisions give 0.0.

    Raises:
        ConfigurationError: Unknown *task* or invalid *threshold*.
        MetricError: Shapes or values that do not fit the task, or a metric that cannot be loaded.
    """
    if task not in TASKS:
        raise ConfigurationError(
            f"Unknown task {task!r}; expected one of {', '.join(TASKS)}.{did_you_mean(str(task), TASKS)}"
        )
    preds = _to_numpy(predictions, "predictions")
    refs = _to_numpy(references, "references")
    if preds.shape[:1] != refs.shape[:1]:
        raise MetricError(
            f"predictions have {preds.shape[0] if preds.ndim else 0} samples (shape {preds.shape}) but "
            f"references have {refs.shape[0] if refs.ndim else 0} (shape {refs.shape}); they must match."
        )
    if preds.ndim == 0 or preds.shape[0] == 0:
        raise MetricError("No samples to evaluate: predictions and references are empty.")

    if task == REGRESSION:
        if label_names is not None:
            logger.debug("label_names is ignored for regression.")
        preds, refs = _regression_inputs(preds, refs)
        result = _score(task, preds, refs, _REGRESSION_DEFAULTS if metrics is None else metrics)
        if details:
            result["hardest"] = hardest_examples(task, preds, refs, [])
        return _to_builtin(result)

    if task == SINGLE_LABEL:
        pred_ids, refs, num_labels = _single_label_inputs(preds, refs, label_names)
        names = _label_names(label_names, num_labels)
        result = _score(task, pred_ids, refs, _CLASSIFICATION_DEFAULTS[task] if metrics is None else metrics)
        if not details:
            return _to_builtin(result)
        result["per_class"] = _per_class(pred_ids, refs, names)
        cm = _run(load_metric("confusion_matrix"), pred_ids, refs, labels=list(range(num_labels)))["confusion_matrix"]
        result["confusion_matrix"] = cm
        result["labels"] = names
        result["hardest"] = hardest_examples(task, preds, refs, names)
        return _to_builtin(result)

    pred_matrix, refs = _multi_label_inputs(preds, refs, threshold)
    names = _label_names(label_names, refs.shape[1])
    result = _score(task, pred_matrix, refs, _CLASSIFICATION_DEFAULTS[task] if metrics is None else metrics)
    if not details:
        return _to_builtin(result)
    result["per_class"] = _per_class(pred_matrix, refs, names)
    result["labels"] = names
    if np.issubdtype(preds.dtype, np.floating) and not _is_binary_matrix(preds):  # logits, not 0/1 decisions
        result["hardest"] = hardest_examples(task, preds, refs, names)
    return _to_builtin(result)


def summarise(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """Return only the numeric scalar top-level entries of *metrics* (for history logs).

    Nested values (``per_class``, ``confusion_matrix``), lists, strings and booleans are
    dropped; numpy scalars become Python numbers.
    """
    summary: dict[str, float | int] = {}
    for key, value in metrics.items():
        if isinstance(value, np.generic) and value.ndim == 0:
            value = value.item()
        if isinstance(value, (bool, np.bool_)):
            continue
        if isinstance(value, numbers.Integral):
            summary[str(key)] = int(value)
        elif isinstance(value, numbers.Real):
            summary[str(key)] = float(value)
    return summary


# --------------------------------------------------------------------------- inputs


def _to_numpy(values: Any, what: str) -> np.ndarray:
    """Convert a tensor (duck-typed), array or nested list to a numpy array."""
    if hasattr(values, "detach"):
        values = values.detach()
        if hasattr(values, "cpu"):
            values = values.cpu()
        try:
            return np.asarray(values.numpy())
        except TypeError:  # e.g. bfloat16 tensors have no numpy equivalent
            return np.asarray(values.float().numpy())
    try:
        return np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise MetricError(f"{what} cannot be converted to a rectangular array: {exc}") from exc


def _as_int_ids(values: np.ndarray, what: str) -> np.ndarray:
    """Return *values* (``[N]`` or ``[N, 1]``) as int64 class ids, refusing non-integral values."""
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise MetricError(f"{what} must be class ids of shape [N]; got shape {values.shape}.")
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise MetricError(f"{what} must be integer class ids; got dtype {values.dtype}.")
    if not np.issubdtype(values.dtype, np.integer) and (
            not np.all(np.isfinite(values)) or not np.all(values == np.round(values))):
            raise MetricError(
                f"{what} must be integer class ids; got non-integer values. Pass logits of shape [N, C] "
                "(argmax is taken) or class ids."
            )
    return values.astype(np.int64)


def _is_binary_matrix(array: np.ndarray) -> bool:
    """True if every entry of *array* is 0 or 1 (True/False); fast for large integer arrays."""
    if array.size == 0 or array.dtype == bool:
        return True
    if np.issubdtype(array.dtype, np.integer):
        return bool(array.min() >= 0 and array.max() <= 1)
    return bool(np.all((array == 0) | (array == 1)))


def _single_label_inputs(
    preds: np.ndarray, refs: np.ndarray, label_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(predicted ids, reference ids, number of classes)`` for single-label inputs."""
    num_labels: int | None = None
    if preds.ndim == 2 and preds.shape[1] > 1:
        if not np.issubdtype(preds.dtype, np.number):
            raise MetricError(f"predictions must be numeric logits; got dtype {preds.dtype}.")
        num_labels = int(preds.shape[1])
        pred_ids = np.argmax(preds, axis=1).astype(np.int64)
    elif preds.ndim in (1, 2):
        pred_ids = _as_int_ids(preds, "predictions")
    else:
        raise MetricError(
            f"predictions must be logits [N, C] or class ids [N] for {SINGLE_LABEL}; got shape {preds.shape}."
        )
    ref_ids = _as_int_ids(refs, "references")
    if label_names is not None:
        if num_labels is not None and len(label_names) != num_labels:
            raise MetricError(
                f"predictions have {num_labels} columns (classes) but {len(label_names)} label_names were given."
            )
        num_labels = len(label_names)
    if num_labels is None:
        num_labels = int(max(pred_ids.max(), ref_ids.max())) + 1
    for what, ids in (("predictions", pred_ids), ("references", ref_ids)):
        bad = ids[(ids < 0) | (ids >= num_labels)]
        if bad.size:
            raise MetricError(
                f"{what} contain class id {int(bad[0])}, outside [0, {num_labels}) for {num_labels} classes "
                "(ignored-index values such as -100 must be removed before evaluation)."
            )
    return pred_ids, ref_ids, num_labels


def _multi_label_inputs(preds: np.ndarray, refs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Return 0/1 int64 ``(predictions, references)`` of shape ``[N, C]``."""
    if preds.ndim != 2 or refs.ndim != 2:
        raise MetricError(
            f"{MULTI_LABEL} needs predictions and references of shape [N, num_labels]; got "
            f"{preds.shape} and {refs.shape}."
        )
    if preds.shape != refs.shape:
        raise MetricError(f"predictions have shape {preds.shape} but references have shape {refs.shape}.")
    if refs.shape[1] < 2:
        raise MetricError(
            f"{MULTI_LABEL} needs at least two label columns; got {refs.shape[1]}. A single 0/1 label is "
            f"{SINGLE_LABEL} with two classes: pass the column as class ids [N]."
        )
    if not np.issubdtype(refs.dtype, np.number) and refs.dtype != bool:
        raise MetricError(f"references must be 0/1 values; got dtype {refs.dtype}.")
    if not _is_binary_matrix(refs):
        raise MetricError("references must be a 0/1 indicator matrix for multi-label classification.")
    if _is_binary_matrix(preds):
        pred_matrix = preds.astype(np.int64)
    elif np.issubdtype(preds.dtype, np.floating):
        if not 0.0 < threshold < 1.0:
            raise ConfigurationError(f"threshold must be strictly between 0 and 1; got {threshold!r}.")
        probabilities = 0.5 * (1.0 + np.tanh(0.5 * preds.astype(np.float64)))  # stable sigmoid
        pred_matrix = (probabilities >= threshold).astype(np.int64)
    else:
        raise MetricError(
            "Multi-label predictions must be float logits or a 0/1 matrix; got integer values other than 0 and 1."
        )
    return pred_matrix, refs.astype(np.int64)


def _regression_inputs(preds: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return float arrays ``[N]`` (single output) or ``[N, K]`` with matching shapes."""
    def squeeze(values: np.ndarray, what: str) -> np.ndarray:
        if not np.issubdtype(values.dtype, np.number) or values.dtype == bool:
            raise MetricError(f"{what} must be numbers for regression; got dtype {values.dtype}.")
        if values.ndim == 2 and values.shape[1] == 1:
            return values[:, 0].astype(np.float64)
        if values.ndim not in (1, 2):
            raise MetricError(f"{what} must have shape [N] or [N, num_outputs]; got {values.shape}.")
        return values.astype(np.float64)

    preds, refs = squeeze(preds, "predictions"), squeeze(refs, "references")
    if preds.shape != refs.shape:
        raise MetricError(f"predictions have shape {preds.shape} but references have shape {refs.shape}.")
    if not (np.all(np.isfinite(preds)) and np.all(np.isfinite(refs))):
        logger.warning("Regression predictions or references contain NaN/inf; the scores will not be finite.")
    return preds, refs


def _label_names(label_names: Sequence[str] | None, num_labels: int) -> list[str]:
    """Validate *label_names* against *num_labels*, or make ``["0", "1", ...]``."""
    if label_names is None:
        return [str(i) for i in range(num_labels)]
    names = [str(name) for name in label_names]
    if len(names) != num_labels:
        raise MetricError(f"Got {len(names)} label_names for {num_labels} labels; give one name per label.")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise MetricError(f"label_names must be unique; repeated: {duplicates}.")
    return names


# --------------------------------------------------------------------------- scoring


def _score(task: str, preds: np.ndarray, refs: np.ndarray, names: Iterable[Any]) -> dict[str, Any]:
    """Compute each requested metric and merge the results into one dict."""
    result: dict[str, Any] = {}
    config = None
    if task == MULTI_LABEL:
        config = "multilabel"
    elif task == REGRESSION and preds.ndim == 2:
        config = "multilist"
    prf: dict[str, dict[str, Any]] = {}  # average -> {precision, recall, f1}: one scikit-learn call for all three
    for name in names:
        if not isinstance(name, str):  # an already-loaded evaluate module
            result.update(_as_result_dict(getattr(name, "name", "metric"), _run(name, preds, refs)))
            continue
        builtin = _builtin_score(task, name, preds, refs, config, prf)
        if builtin is not None:
            result.update(builtin)
            continue
        module = load_metric(name)
        result.update(_as_result_dict(name, _run(module, preds, refs)))
    return result


def _builtin_score(
    task: str, name: str, preds: np.ndarray, refs: np.ndarray, config: str | None, prf: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """Score one built-in metric name, or return ``None`` if *name* is not built in.

    Precision, recall and F1 of one averaging come from one
    ``sklearn.metrics.precision_recall_fscore_support`` call, kept in *prf*: the
    same numbers as the ``precision``/``recall``/``f1`` modules (which call it
    too, through ``precision_score`` etc.), a third of the input checks.
    """
    key = name.strip().lower()
    base, average = key, "macro"
    prefix, _, suffix = key.rpartition("_")
    if prefix in _AVERAGED and suffix in _AVERAGES:
        base, average = prefix, suffix
    if base in _AVERAGED:
        if task == REGRESSION:
            raise MetricError(f"Metric {name!r} is for classification, not {task}.")
        if average == "samples" and task != MULTI_LABEL:
            raise MetricError(f"Metric {name!r} (average='samples') is only defined for {MULTI_LABEL}.")
        if average not in prf:
            prf[average] = _precision_recall_f1(preds, refs, average)
        return {key: prf[average][base]}
    if key == "rmse":
        if task != REGRESSION:
            raise MetricError(f"Metric {name!r} is for regression, not {task}.")
        return {"rmse": _run(load_metric("mse", config), preds, refs, squared=False)["mse"]}
    canonical = canonical_metric_name(name)
    if canonical is None:
        return None
    if task == REGRESSION and canonical in _CLASSIFICATION_ONLY:
        raise MetricError(f"Metric {name!r} is for classification, not {task}.")
    if task != REGRESSION and canonical in _REGRESSION_ONLY:
        raise MetricError(f"Metric {name!r} is for regression, not {task}.")
    if canonical == "confusion_matrix":
        if task == SINGLE_LABEL:
            return {}  # always included for single-label classification
        matrix = _run(load_metric("confusion_matrix", config), preds, refs)
        return {"multilabel_confusion_matrix": matrix["confusion_matrix"]}
    return _run(load_metric(canonical, config), preds, refs)


def _precision_recall_f1(preds: np.ndarray, refs: np.ndarray, average: str) -> dict[str, Any]:
    """``{"precision", "recall", "f1"}`` for one averaging; zero divisions give 0."""
    from sklearn.metrics import precision_recall_fscore_support

    try:
        precision, recall, f1, _ = precision_recall_fscore_support(refs, preds, average=average, zero_division=0)
    except ValueError as exc:
        raise MetricError(f"Metrics precision/recall/f1 (average={average!r}) cannot score these inputs: {exc}") from exc
    return {"precision": precision, "recall": recall, "f1": f1}


def _per_class(preds: np.ndarray, refs: np.ndarray, names: list[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support for every class (zeros for absent classes).

    *preds* and *refs* are class ids ``[N]`` or 0/1 matrices ``[N, C]`` with ``C >= 2``; the
    support of a multi-label class is its number of positive references.
    """
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        refs, preds, labels=list(range(len(names))), average=None, zero_division=0
    )
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }


def _run(module: Any, preds: np.ndarray, refs: np.ndarray, **kwargs: Any) -> Any:
    """Compute *module* on in-memory arrays.

    tlzoo's built-in modules are run through ``compute_arrays`` (same result as
    ``compute`` without evaluate's Arrow round trip, which is slow for large inputs);
    any other evaluate module through ``compute``. A ``ValueError`` from the module
    (scikit-learn's input checks) becomes a :class:`MetricError`.
    """
    compute_arrays = getattr(module, "compute_arrays", None)
    try:
        if callable(compute_arrays):
            return compute_arrays(predictions=preds, references=refs, **kwargs)
        return module.compute(predictions=preds, references=refs, **kwargs)
    except ValueError as exc:
        name = getattr(module, "name", type(module).__name__)
        raise MetricError(f"Metric {name!r} cannot score these inputs: {exc}") from exc


def _as_result_dict(name: str, value: Any) -> dict[str, Any]:
    """Wrap a non-dict metric result (e.g. the Hub's ``r_squared`` float) as ``{name: value}``."""
    if isinstance(value, Mapping):
        return dict(value)
    return {name: value}


def _to_builtin(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays and tuples to plain Python objects."""
    if isinstance(value, Mapping):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _to_builtin(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    return value
