"""Built-in regression metrics: mse, mae, r2 (alias ``r_squared``).

Each is an :class:`evaluate.Metric` with the argument names and output keys of the Hub
modules (``evaluate-metric/mse``, ``evaluate-metric/mae``), and like those modules it
scores with :mod:`sklearn.metrics`; ``r2`` returns ``{"r2": x}`` (the Hub's ``r_squared``
returns a bare float). Config ``"multilist"`` takes one list of values per sample for
multi-output regression.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import sklearn.metrics

from ._base import REGRESSION_FEATURES, BuiltinMetric, sklearn_reference

_VALUE_INPUTS = """
Args:
    predictions (`list` of `float`): Predicted values. With config_name="multilist": one list of
        values per sample ([N, num_outputs]).
    references (`list` of `float`): True values (same layout as `predictions`).
    sample_weight (`list` of `float`, optional): Per-sample weights.
    multioutput ({options} or array of output weights, defaults to
        "uniform_average"): How to combine the scores of several outputs; "raw_values" returns
        one score per output as a numpy array."""


class _RegressionMetric(BuiltinMetric):
    """Shared configuration of the regression metrics."""

    CONFIG_NAMES: ClassVar[tuple[str, ...]] = ("default", "multilist")
    FEATURES = REGRESSION_FEATURES


class Mse(_RegressionMetric):
    """Mean squared error. Output: ``{"mse": float}`` (array with ``multioutput="raw_values"``)."""

    DESCRIPTION = (
        "Mean Squared Error (MSE) is the average of the square of the difference between "
        "the predicted and actual values."
    )
    INPUTS_DESCRIPTION = _VALUE_INPUTS.format(options='"raw_values", "uniform_average"') + """
    squared (`bool`, defaults to True): If False, return the root mean squared error (still under "mse");
        with several outputs, the RMSE of each output is averaged.

Returns:
    mse (`float` or `numpy.ndarray`): Non-negative; 0.0 is a perfect fit.

Examples:
    >>> from tlzoo.evaluation.metrics import load_metric
    >>> load_metric("mse").compute(predictions=[2.5, 0.0, 2, 8], references=[3, -0.5, 2, 7])
    {'mse': 0.375}
"""
    REFERENCE_URLS = (sklearn_reference("mean_squared_error"), sklearn_reference("root_mean_squared_error"))

    @staticmethod
    def _score(y_true: Any, y_pred: Any, *, squared: bool = True, **options: Any) -> float | np.ndarray:
        """``mean_squared_error``, or ``root_mean_squared_error`` if not *squared* (the Hub's argument)."""
        if squared:
            return sklearn.metrics.mean_squared_error(y_true, y_pred, **options)
        if hasattr(sklearn.metrics, "root_mean_squared_error"):  # scikit-learn >= 1.4
            return sklearn.metrics.root_mean_squared_error(y_true, y_pred, **options)
        return sklearn.metrics.mean_squared_error(y_true, y_pred, squared=False, **options)


class Mae(_RegressionMetric):
    """Mean absolute error. Output: ``{"mae": float}`` (array with ``multioutput="raw_values"``)."""

    DESCRIPTION = (
        "Mean Absolute Error (MAE) is the mean of the magnitude of the difference between "
        "the predicted and actual values."
    )
    INPUTS_DESCRIPTION = _VALUE_INPUTS.format(options='"raw_values", "uniform_average"') + """

Returns:
    mae (`float` or `numpy.ndarray`): Non-negative; 0.0 is a perfect fit.

Examples:
    >>> from tlzoo.evaluation.metrics import load_metric
    >>> load_metric("mae").compute(predictions=[2.5, 0.0, 2, 8], references=[3, -0.5, 2, 7])
    {'mae': 0.5}
"""
    REFERENCE_URLS = (sklearn_reference("mean_absolute_error"),)
    _score = staticmethod(sklearn.metrics.mean_absolute_error)


class R2(_RegressionMetric):
    """Coefficient of determination R². Output: ``{"r2": float}`` (array with ``multioutput="raw_values"``)."""

    DESCRIPTION = (
        "R^2 (R squared, coefficient of determination) is the proportion of the variance of the "
        "references explained by the predictions: 1 - SS_res / SS_tot. 1.0 is a perfect fit, 0.0 is "
        "what always predicting the mean scores, and it can be negative."
    )
    CITATION = """\
@article{williams2006relationship,
title={The relationship between R2 and the correlation coefficient},
author={Williams, James},
journal={Journal of Statistics Education},
volume={14},
number={2},
year={2006}
}
"""
    INPUTS_DESCRIPTION = _VALUE_INPUTS.format(options='"raw_values", "uniform_average", "variance_weighted"') + """
    force_finite (`bool`, defaults to True): For a constant reference (SS_tot = 0) return 1.0 if
        predicted perfectly, else 0.0, instead of NaN / -inf.

Returns:
    r2 (`float` or `numpy.ndarray`): At most 1.0; NaN for fewer than two samples.

Examples:
    >>> from tlzoo.evaluation.metrics import load_metric
    >>> load_metric("r2").compute(predictions=[1, 2, 3, 4], references=[1, 2, 3, 5])
    {'r2': 0.8857142857142857}
"""
    REFERENCE_URLS = ("https://en.wikipedia.org/wiki/Coefficient_of_determination", sklearn_reference("r2_score"))
    _score = staticmethod(sklearn.metrics.r2_score)
