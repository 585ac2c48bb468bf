"""Built-in classification metrics: accuracy, f1, precision, recall, confusion_matrix.

Each is an :class:`evaluate.Metric` with the same argument names, defaults and output keys
as the Hub module of the same name (``evaluate-metric/accuracy`` etc.), and like those
modules it scores with :mod:`sklearn.metrics`. Config ``"multilabel"`` takes 0/1 indicator
matrices ``[N, num_labels]`` with at least two label columns.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import sklearn.metrics

from ._base import CLASSIFICATION_FEATURES, BuiltinMetric, sklearn_reference

_LABEL_INPUTS = """
Args:
    predictions (`list` of `int`): Predicted class ids. With config_name="multilabel": a list of
        0/1 lists (indicator matrix [N, num_labels], num_labels >= 2).
    references (`list` of `int`): True class ids (same layout as `predictions`)."""

_PRF_INPUTS = _LABEL_INPUTS + """
    labels (`list` of `int`, optional): Labels to include (column indices for multi-label).
        Defaults to every label present in references or predictions (all columns for multi-label).
    pos_label (`int`, defaults to 1): The positive class when average="binary".
    average (`str` or `None`, defaults to "binary"): "binary" (score of `pos_label`, binary data
        only), "micro" (global counts), "macro" (unweighted mean over labels), "weighted" (mean
        weighted by support), "samples" (multi-label only: mean over samples) or None (one score
        per label, returned as a numpy array).
    sample_weight (`list` of `float`, optional): Per-sample weights.
    zero_division ("warn", 0, 1 or nan, defaults to "warn"): Value used when a ratio is 0/0;
        "warn" acts as 0 and emits scikit-learn's UndefinedMetricWarning.

Returns:
    {key} (`float` or `numpy.ndarray`): The score(s), between 0 and 1.

Examples:
    >>> from tlzoo.evaluation.metrics import load_metric
    >>> metric = load_metric("{key}")
    >>> metric.compute(predictions=[0, 2, 1, 0, 0, 1], references=[0, 1, 2, 0, 1, 2], average="macro")
    {{'{key}': {example}}}
"""


def _reject_non_integral(**inputs: Any) -> None:
    """Raise ``ValueError`` if any of *inputs* (name -> values) holds non-integer numbers.

    datasets encodes ``Value("int64")`` with ``int(value)``, so without this check a score
    such as 0.9 would silently become class 0.
    """
    for what, values in inputs.items():
        if values is None:
            continue
        try:
            array = np.asarray(values)
        except ValueError:  # ragged nested lists: left to evaluate's own checks
            continue
        if array.dtype.kind == "f" and array.size and not np.all(np.mod(array, 1) == 0):
            raise ValueError(
                f"{what} must be integer class ids (or 0/1 for multi-label); got non-integer values such as "
                f"{array[np.mod(array, 1) != 0].flat[0]!r}. Take the argmax of logits (or threshold them) first."
            )


class _ClassificationMetric(BuiltinMetric):
    """Classification metric: checks that inputs are integers before evaluate encodes them."""

    CONFIG_NAMES: ClassVar[tuple[str, ...]] = ("default", "multilabel")
    FEATURES = CLASSIFICATION_FEATURES

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """Queue a batch of predictions and references (see :meth:`evaluate.EvaluationModule.add_batch`)."""
        _reject_non_integral(predictions=predictions, references=references)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction: Any = None, reference: Any = None, **kwargs: Any) -> None:
        """Queue one prediction and reference (see :meth:`evaluate.EvaluationModule.add`)."""
        _reject_non_integral(prediction=prediction, reference=reference)
        super().add(prediction=prediction, reference=reference, **kwargs)

    def compute_arrays(self, *, predictions: Any, references: Any, **kwargs: Any) -> dict[str, Any]:
        """Compute on in-memory arrays (see :meth:`BuiltinMetric.compute_arrays`), class ids only."""
        _reject_non_integral(predictions=predictions, references=references)
        return super().compute_arrays(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions: Any, references: Any, **options: Any) -> dict[str, Any]:
        """Return ``{name: score}``; a one-column multi-label matrix is refused.

        scikit-learn reads an ``[N, 1]`` indicator matrix as binary class ids ``[N]``, so
        per-label scores would describe the negatives and the multi-label confusion matrix
        would have two blocks instead of one.
        """
        if self.config_name == "multilabel" and np.shape(references)[1:] == (1,):
            raise ValueError(
                "Multi-label inputs need at least two label columns; got one. A single 0/1 label is binary "
                "classification: load the metric without config_name and pass the column as class ids."
            )
        return super()._compute(predictions, references, **options)


class Accuracy(_ClassificationMetric):
    """Accuracy: the fraction of samples whose prediction equals the reference.

    Output: ``{"accuracy": float}``. With config ``"multilabel"`` a sample counts only if all
    its labels match (subset / exact-match accuracy).
    """

    DESCRIPTION = (
        "Accuracy is the proportion of correct predictions among the total number of cases "
        "processed: (TP + TN) / (TP + TN + FP + FN). For multi-label inputs it is the subset "
        "accuracy: the fraction of samples whose full label set is predicted exactly."
    )
    INPUTS_DESCRIPTION = _LABEL_INPUTS + """
    normalize (`bool`, defaults to True): If False, return the (weighted) number of correct samples.
    sample_weight (`list` of `float`, optional): Per-sample weights.

Returns:
    accuracy (`float`): Between 0 and 1 (or a count if normalize=False).

Examples:
    >>> from tlzoo.evaluation.metrics import load_metric
    >>> load_metric("accuracy").compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0])
    {'accuracy': 0.75}
"""
    REFERENCE_URLS = (sklearn_reference("accuracy_score"),)
    _score = staticmethod(sklearn.metrics.accuracy_score)


class Precision(_ClassificationMetric):
    """Precision TP / (TP + FP). Output: ``{"precision": float}`` (array if ``average=None``)."""

    DESCRIPTION = (
        "Precision is the fraction of correctly labeled positive examples out of all of the examples "
        "that were labeled as positive: TP / (TP + FP)."
    )
    INPUTS_DESCRIPTION = _PRF_INPUTS.format(key="precision", example="0.2222222222222222")
    REFERENCE_URLS = (sklearn_reference("precision_score"),)
    _score = staticmethod(sklearn.metrics.precision_score)


class Recall(_ClassificationMetric):
    """Recall TP / (TP + FN). Output: ``{"recall": float}`` (array if ``average=None``)."""

    DESCRIPTION = (
        "Recall is the fraction of the positive examples that were correctly labeled by the model as "
        "positive: TP / (TP + FN)."
    )
    INPUTS_DESCRIPTION = _PRF_INPUTS.format(key="recall", example="0.3333333333333333")
    REFERENCE_URLS = (sklearn_reference("recall_score"),)
    _score = staticmethod(sklearn.metrics.recall_score)


class F1(_ClassificationMetric):
    """F1, the harmonic mean of precision and recall. Output: ``{"f1": float}`` (array if ``average=None``)."""

    DESCRIPTION = (
        "The F1 score is the harmonic mean of the precision and recall: "
        "F1 = 2 * (precision * recall) / (precision + recall) = 2TP / (2TP + FP + FN)."
    )
    INPUTS_DESCRIPTION = _PRF_INPUTS.format(key="f1", example="0.26666666666666666")
    REFERENCE_URLS = (sklearn_reference("f1_score"),)
    _score = staticmethod(sklearn.metrics.f1_score)


class ConfusionMatrix(_ClassificationMetric):
    """Confusion matrix. Output: ``{"confusion_matrix": numpy.ndarray}``.

    Rows are references, columns predictions (``C[i, j]`` = true ``labels[i]`` predicted as
    ``labels[j]``). With config ``"multilabel"`` the result has shape ``[L, 2, 2]``, one
    ``[[tn, fp], [fn, tp]]`` block per label column.
    """

    DESCRIPTION = (
        "The confusion matrix evaluates classification accuracy. Each row corresponds to a true "
        "class and each column to a predicted class: entry (i, j) counts samples of true class i "
        "predicted as class j."
    )
    INPUTS_DESCRIPTION = _LABEL_INPUTS + """
    labels (`list` of `int`, optional): Labels indexing the matrix, in this order (column indices for
        multi-label). Defaults to the sorted labels present in references or predictions (all columns
        for multi-label). Samples outside `labels` are ignored; at least one must occur in references.
    sample_weight (`list` of `float`, optional): Per-sample weights.
    normalize ("true", "pred", "all" or None): Normalise over rows, columns or the whole matrix.
        (Not supported with config_name="multilabel".)

Returns:
    confusion_matrix (`numpy.ndarray`): [n_labels, n_labels] (or [n_labels, 2, 2] for multi-label).

Examples:
    >>> from tlzoo.evaluation.metrics import load_metric
    >>> load_metric("confusion_matrix").compute(references=[0, 1, 2, 0, 1, 2], predictions=[0, 1, 1, 2, 1, 0])
    {'confusion_matrix': array([[1, 0, 1], [0, 2, 0], [1, 1, 0]])}
"""
    REFERENCE_URLS = (sklearn_reference("confusion_matrix"), sklearn_reference("multilabel_confusion_matrix"))

    def _score(self, y_true: Any, y_pred: Any, *, normalize: str | None = None, **options: Any) -> np.ndarray:
        """``confusion_matrix``, or ``multilabel_confusion_matrix`` for config ``"multilabel"``."""
        if self.config_name != "multilabel":
            return sklearn.metrics.confusion_matrix(y_true, y_pred, normalize=normalize, **options)
        if normalize is not None:
            raise ValueError("normalize is not supported with config_name='multilabel'.")
        return sklearn.metrics.multilabel_confusion_matrix(y_true, y_pred, **options)
