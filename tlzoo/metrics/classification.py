"""Built-in classification metrics: accuracy, f1, precision, recall, confusion_matrix.

Each is an :class:`evaluate.Metric` with the same argument names and output keys as
the Hub module of the same name (``evaluate-metric/accuracy`` etc.), computed with
numpy instead of scikit-learn. Config ``"multilabel"`` takes 0/1 indicator matrices.
"""

from __future__ import annotations

from typing import Any, ClassVar

import evaluate
import numpy as np

from . import _functional as F
from ._base import CLASSIFICATION_FEATURES, SKLEARN_CITATION, BuiltinMetric

_LABEL_INPUTS = """
Args:
    predictions (`list` of `int`): Predicted class ids. With config_name="multilabel": a list of
        0/1 lists (indicator matrix [N, num_labels]).
    references (`list` of `int`): True class ids (same layout as `predictions`)."""

_PRF_KWARGS = _LABEL_INPUTS + """
    labels (`list` of `int`, optional): Labels to include (column indices for multi-label).
        Defaults to every label present in references or predictions (all columns for multi-label).
    pos_label (`int`, defaults to 1): The positive class when average="binary".
    average (`str` or `None`, defaults to "binary"): "binary" (score of `pos_label`, binary data
        only), "micro" (global counts), "macro" (unweighted mean over labels), "weighted" (mean
        weighted by support), "samples" (multi-label only: mean over samples) or None (one score
        per label, returned as a numpy array).
    sample_weight (`list` of `float`, optional): Per-sample weights.
    zero_division ("warn", 0, 1 or nan, defaults to "warn"): Value used when a ratio is 0/0;
        "warn" acts as 0.

Returns:
    {key} (`float` or `numpy.ndarray`): The score(s), between 0 and 1.

Examples:
    >>> from tlzoo.metrics import load_metric
    >>> metric = load_metric("{key}")
    >>> metric.compute(predictions=[0, 2, 1, 0, 0, 1], references=[0, 1, 2, 0, 1, 2], average="macro")
    {{'{key}': {example}}}
"""


def _reject_non_integral(values: Any, what: str) -> None:
    """Raise ``ValueError`` if *values* holds non-integer numbers.

    datasets encodes ``Value("int64")`` with ``int(value)``, so without this check a score
    such as 0.9 would silently become class 0.
    """
    if values is None:
        return
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nested lists: left to evaluate's own checks
        return
    if array.dtype.kind == "f" and array.size and not np.all(np.mod(array, 1) == 0):
        raise ValueError(
            f"{what} must be integer class ids (or 0/1 for multi-label); got non-integer values such as "
            f"{array[np.mod(array, 1) != 0].flat[0]!r}. Take the argmax of logits (or threshold them) first."
        )


class _ClassificationMetric(BuiltinMetric):
    """Classification metric: checks that inputs are integers before evaluate encodes them."""

    CONFIG_NAMES: ClassVar[tuple[str, ...]] = ("default", "multilabel")

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """Queue a batch of predictions and references (see :meth:`evaluate.EvaluationModule.add_batch`)."""
        _reject_non_integral(predictions, "predictions")
        _reject_non_integral(references, "references")
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction: Any = None, reference: Any = None, **kwargs: Any) -> None:
        """Queue one prediction and reference (see :meth:`evaluate.EvaluationModule.add`)."""
        _reject_non_integral(prediction, "prediction")
        _reject_non_integral(reference, "reference")
        super().add(prediction=prediction, reference=reference, **kwargs)


class Accuracy(_ClassificationMetric):
    """Accuracy: the fraction of samples whose prediction equals the reference.

    Output: ``{"accuracy": float}``. With config ``"multilabel"`` a sample counts only if all
    its labels match (subset / exact-match accuracy).
    """

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features."""
        return evaluate.MetricInfo(
            description=(
                "Accuracy is the proportion of correct predictions among the total number of cases "
                "processed: (TP + TN) / (TP + TN + FP + FN). For multi-label inputs it is the subset "
                "accuracy: the fraction of samples whose full label set is predicted exactly."
            ),
            citation=SKLEARN_CITATION,
            inputs_description=_LABEL_INPUTS
            + """
    normalize (`bool`, defaults to True): If False, return the (weighted) number of correct samples.
    sample_weight (`list` of `float`, optional): Per-sample weights.

Returns:
    accuracy (`float`): Between 0 and 1 (or a count if normalize=False).

Examples:
    >>> from tlzoo.metrics import load_metric
    >>> load_metric("accuracy").compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0])
    {'accuracy': 0.75}
""",
            features=CLASSIFICATION_FEATURES[self.config_name],
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        normalize: bool = True,
        sample_weight: Any = None,
    ) -> dict[str, float]:
        """Return ``{"accuracy": score}``."""
        score = F.accuracy(
            references,
            predictions,
            normalize=normalize,
            sample_weight=sample_weight,
            multilabel=self.config_name == "multilabel",
        )
        return {"accuracy": score}


class _PrecisionRecallF1(_ClassificationMetric):
    """Shared implementation of :class:`Precision`, :class:`Recall` and :class:`F1`."""

    #: Output key, also selects which of (precision, recall, f1) is returned.
    KEY: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""
    EXAMPLE: ClassVar[str] = ""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features."""
        return evaluate.MetricInfo(
            description=self.DESCRIPTION,
            citation=SKLEARN_CITATION,
            inputs_description=_PRF_KWARGS.format(key=self.KEY, example=self.EXAMPLE),
            features=CLASSIFICATION_FEATURES[self.config_name],
            reference_urls=[
                f"https://scikit-learn.org/stable/modules/generated/sklearn.metrics.{self.KEY}_score.html"
            ],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        labels: list[int] | None = None,
        pos_label: int = 1,
        average: str | None = "binary",
        sample_weight: Any = None,
        zero_division: F.ZeroDivision = "warn",
    ) -> dict[str, float | np.ndarray]:
        """Return ``{KEY: score}`` (a numpy array per label when ``average=None``)."""
        precision, recall, f1, _ = F.precision_recall_f1(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
            multilabel=self.config_name == "multilabel",
        )
        score = {"precision": precision, "recall": recall, "f1": f1}[self.KEY]
        return {self.KEY: score}


class Precision(_PrecisionRecallF1):
    """Precision TP / (TP + FP). Output: ``{"precision": float}`` (array if ``average=None``)."""

    KEY = "precision"
    DESCRIPTION = (
        "Precision is the fraction of correctly labeled positive examples out of all of the examples "
        "that were labeled as positive: TP / (TP + FP)."
    )
    EXAMPLE = "0.2222222222222222"


class Recall(_PrecisionRecallF1):
    """Recall TP / (TP + FN). Output: ``{"recall": float}`` (array if ``average=None``)."""

    KEY = "recall"
    DESCRIPTION = (
        "Recall is the fraction of the positive examples that were correctly labeled by the model as "
        "positive: TP / (TP + FN)."
    )
    EXAMPLE = "0.3333333333333333"


class F1(_PrecisionRecallF1):
    """F1, the harmonic mean of precision and recall. Output: ``{"f1": float}`` (array if ``average=None``)."""

    KEY = "f1"
    DESCRIPTION = (
        "The F1 score is the harmonic mean of the precision and recall: "
        "F1 = 2 * (precision * recall) / (precision + recall) = 2TP / (2TP + FP + FN)."
    )
    EXAMPLE = "0.26666666666666666"


class ConfusionMatrix(_ClassificationMetric):
    """Confusion matrix. Output: ``{"confusion_matrix": numpy.ndarray}``.

    Rows are references, columns predictions (``C[i, j]`` = true ``labels[i]`` predicted as
    ``labels[j]``). With config ``"multilabel"`` the result has shape ``[L, 2, 2]``, one
    ``[[tn, fp], [fn, tp]]`` block per label column.
    """

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features."""
        return evaluate.MetricInfo(
            description=(
                "The confusion matrix evaluates classification accuracy. Each row corresponds to a true "
                "class and each column to a predicted class: entry (i, j) counts samples of true class i "
                "predicted as class j."
            ),
            citation=SKLEARN_CITATION,
            inputs_description=_LABEL_INPUTS
            + """
    labels (`list` of `int`, optional): Labels indexing the matrix, in this order. Defaults to the
        sorted labels present in references or predictions. Samples outside `labels` are ignored.
    sample_weight (`list` of `float`, optional): Per-sample weights.
    normalize ("true", "pred", "all" or None): Normalise over rows, columns or the whole matrix.
        (Not supported with config_name="multilabel".)

Returns:
    confusion_matrix (`numpy.ndarray`): [n_labels, n_labels] (or [n_labels, 2, 2] for multi-label).

Examples:
    >>> from tlzoo.metrics import load_metric
    >>> load_metric("confusion_matrix").compute(references=[0, 1, 2, 0, 1, 2], predictions=[0, 1, 1, 2, 1, 0])
    {'confusion_matrix': array([[1, 0, 1], [0, 2, 0], [1, 1, 0]])}
""",
            features=CLASSIFICATION_FEATURES[self.config_name],
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.confusion_matrix.html"],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        labels: list[int] | None = None,
        sample_weight: Any = None,
        normalize: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Return ``{"confusion_matrix": matrix}``."""
        if self.config_name == "multilabel":
            if normalize is not None:
                raise ValueError("normalize is not supported with config_name='multilabel'.")
            matrix = F.multilabel_confusion_matrix(references, predictions, labels=labels, sample_weight=sample_weight)
        else:
            matrix = F.confusion_matrix(
                references, predictions, labels=labels, sample_weight=sample_weight, normalize=normalize
            )
        return {"confusion_matrix": matrix}
