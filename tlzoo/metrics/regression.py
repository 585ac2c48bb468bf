"""Built-in regression metrics: mse, mae, r2 (alias ``r_squared``).

Each is an :class:`evaluate.Metric` with the argument names and output keys of the Hub
modules (``evaluate-metric/mse``, ``evaluate-metric/mae``); ``r2`` returns ``{"r2": x}``
(the Hub's ``r_squared`` returns a bare float). Config ``"multilist"`` takes one list of
values per sample for multi-output regression.
"""

from __future__ import annotations

from typing import Any, ClassVar

import evaluate
import numpy as np

from . import _functional as F
from ._base import REGRESSION_FEATURES, SKLEARN_CITATION, BuiltinMetric

_VALUE_INPUTS = """
Args:
    predictions (`list` of `float`): Predicted values. With config_name="multilist": one list of
        values per sample ([N, num_outputs]).
    references (`list` of `float`): True values (same layout as `predictions`).
    sample_weight (`list` of `float`, optional): Per-sample weights.
    multioutput ("raw_values", "uniform_average" or array of output weights, defaults to
        "uniform_average"): How to combine the scores of several outputs; "raw_values" returns
        one score per output as a numpy array."""


class _RegressionMetric(BuiltinMetric):
    """Shared configuration of the regression metrics."""

    CONFIG_NAMES: ClassVar[tuple[str, ...]] = ("default", "multilist")


class Mse(_RegressionMetric):
    """Mean squared error. Output: ``{"mse": float}`` (array with ``multioutput="raw_values"``)."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features."""
        return evaluate.MetricInfo(
            description="Mean Squared Error (MSE) is the average of the square of the difference between "
            "the predicted and actual values.",
            citation=SKLEARN_CITATION,
            inputs_description=_VALUE_INPUTS
            + """
    squared (`bool`, defaults to True): If False, return the root mean squared error (still under "mse").

Returns:
    mse (`float` or `numpy.ndarray`): Non-negative; 0.0 is a perfect fit.

Examples:
    >>> from tlzoo.metrics import load_metric
    >>> load_metric("mse").compute(predictions=[2.5, 0.0, 2, 8], references=[3, -0.5, 2, 7])
    {'mse': 0.375}
""",
            features=REGRESSION_FEATURES[self.config_name],
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.mean_squared_error.html"
            ],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        sample_weight: Any = None,
        multioutput: str | Any = "uniform_average",
        squared: bool = True,
    ) -> dict[str, float | np.ndarray]:
        """Return ``{"mse": value}``."""
        value = F.mean_squared_error(
            references, predictions, sample_weight=sample_weight, multioutput=multioutput, squared=squared
        )
        return {"mse": value}


class Mae(_RegressionMetric):
    """Mean absolute error. Output: ``{"mae": float}`` (array with ``multioutput="raw_values"``)."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features."""
        return evaluate.MetricInfo(
            description="Mean Absolute Error (MAE) is the mean of the magnitude of the difference between "
            "the predicted and actual values.",
            citation=SKLEARN_CITATION,
            inputs_description=_VALUE_INPUTS
            + """

Returns:
    mae (`float` or `numpy.ndarray`): Non-negative; 0.0 is a perfect fit.

Examples:
    >>> from tlzoo.metrics import load_metric
    >>> load_metric("mae").compute(predictions=[2.5, 0.0, 2, 8], references=[3, -0.5, 2, 7])
    {'mae': 0.5}
""",
            features=REGRESSION_FEATURES[self.config_name],
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.mean_absolute_error.html"
            ],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        sample_weight: Any = None,
        multioutput: str | Any = "uniform_average",
    ) -> dict[str, float | np.ndarray]:
        """Return ``{"mae": value}``."""
        value = F.mean_absolute_error(references, predictions, sample_weight=sample_weight, multioutput=multioutput)
        return {"mae": value}


class R2(_RegressionMetric):
    """Coefficient of determination R². Output: ``{"r2": float}`` (array with ``multioutput="raw_values"``)."""

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features."""
        return evaluate.MetricInfo(
            description=(
                "R^2 (R squared, coefficient of determination) is the proportion of the variance of the "
                "references explained by the predictions: 1 - SS_res / SS_tot. 1.0 is a perfect fit, 0.0 is "
                "what always predicting the mean scores, and it can be negative."
            ),
            citation="""\
@article{williams2006relationship,
title={The relationship between R2 and the correlation coefficient},
author={Williams, James},
journal={Journal of Statistics Education},
volume={14},
number={2},
year={2006}
}
""",
            inputs_description=_VALUE_INPUTS.replace(
                '"raw_values", "uniform_average"', '"raw_values", "uniform_average", "variance_weighted"'
            )
            + """
    force_finite (`bool`, defaults to True): For a constant reference (SS_tot = 0) return 1.0 if
        predicted perfectly, else 0.0, instead of NaN / -inf.

Returns:
    r2 (`float` or `numpy.ndarray`): At most 1.0.

Examples:
    >>> from tlzoo.metrics import load_metric
    >>> load_metric("r2").compute(predictions=[1, 2, 3, 4], references=[1, 2, 3, 5])
    {'r2': 0.8857142857142857}
""",
            features=REGRESSION_FEATURES[self.config_name],
            reference_urls=["https://en.wikipedia.org/wiki/Coefficient_of_determination"],
        )

    def _compute(
        self,
        predictions: Any,
        references: Any,
        sample_weight: Any = None,
        multioutput: str | Any = "uniform_average",
        force_finite: bool = True,
    ) -> dict[str, float | np.ndarray]:
        """Return ``{"r2": value}``."""
        value = F.r2_score(
            references,
            predictions,
            sample_weight=sample_weight,
            multioutput=multioutput,
            force_finite=force_finite,
        )
        return {"r2": value}
