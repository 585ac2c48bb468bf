"""Common base class of tlzoo's built-in :class:`evaluate.Metric` modules.

A built-in metric declares its description, input features and scikit-learn scoring
function; :class:`BuiltinMetric` turns them into evaluate's ``_info`` and ``_compute``.

Importing this module imports :mod:`evaluate`, which (in evaluate 0.4.6) imports
``transformers`` and therefore torch when they are installed. That is why
:mod:`tlzoo.evaluation.metrics` only imports it on first use.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import datasets
import evaluate
import numpy as np


def _features(dtype: str, multi_config: str) -> dict[str, datasets.Features]:
    """Input features: one *dtype* value per sample (``"default"``), or a list of them (*multi_config*)."""
    value = datasets.Value(dtype)
    return {
        "default": datasets.Features({"predictions": value, "references": value}),
        multi_config: datasets.Features(
            {"predictions": datasets.Sequence(value), "references": datasets.Sequence(value)}
        ),
    }


CLASSIFICATION_FEATURES = _features("int64", "multilabel")
REGRESSION_FEATURES = _features("float64", "multilist")


def sklearn_reference(function_name: str) -> str:
    """The scikit-learn documentation page of ``sklearn.metrics.<function_name>``."""
    return f"https://scikit-learn.org/stable/modules/generated/sklearn.metrics.{function_name}.html"


SKLEARN_CITATION = """\
@article{scikit-learn,
    title={Scikit-learn: Machine Learning in {P}ython},
    author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V.
            and Thirion, B. and Grisel, O. and Blondel, M. and Prettenhofer, P.
            and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
            Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
    journal={Journal of Machine Learning Research},
    volume={12},
    pages={2825--2830},
    year={2011}
}
"""


class BuiltinMetric(evaluate.Metric):
    """An :class:`evaluate.Metric` shipped inside tlzoo, usable with no network.

    Differences from a plain :class:`evaluate.Metric`:

    * ``config_name`` is checked against :attr:`CONFIG_NAMES` (a typo raises instead of
      silently meaning "default").
    * ``keep_in_memory`` defaults to ``True`` when ``num_process == 1``: predictions are
      buffered in memory, so no Arrow cache file or lock file is written and several
      processes (e.g. every rank of a distributed run computing on its own, gathered
      predictions) never contend for ``<cache>/<name>/default/default_experiment-1-0.arrow``.
      For evaluate's own multi-process gathering (``num_process > 1``) files are required:
      pass a shared ``cache_dir`` and a run-specific ``experiment_id``.
    * With ``keep_in_memory`` nothing is created on disk, not even the empty
      ``<HF cache>/metrics/<name>/<config>`` folder that evaluate makes in ``__init__``.
    """

    #: Accepted ``config_name`` values; the first is the default.
    CONFIG_NAMES: ClassVar[tuple[str, ...]] = ("default",)
    #: Input features per config name.
    FEATURES: ClassVar[dict[str, datasets.Features]] = {}
    #: What the metric measures (``MetricInfo.description``).
    DESCRIPTION: ClassVar[str] = ""
    #: The arguments ``compute`` takes, its output and an example (appended to its docstring).
    INPUTS_DESCRIPTION: ClassVar[str] = ""
    CITATION: ClassVar[str] = SKLEARN_CITATION
    REFERENCE_URLS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        config_name: str | None = None,
        keep_in_memory: bool | None = None,
        num_process: int = 1,
        process_id: int = 0,
        **kwargs: Any,
    ) -> None:
        """Create the module; see :class:`evaluate.EvaluationModule` for the keyword arguments."""
        if config_name is not None and config_name not in self.CONFIG_NAMES:
            raise ValueError(
                f"Unknown config_name {config_name!r} for metric {type(self).__name__}; "
                f"expected one of {list(self.CONFIG_NAMES)}."
            )
        if keep_in_memory is None:
            keep_in_memory = num_process == 1
        super().__init__(
            config_name=config_name,
            keep_in_memory=keep_in_memory,
            num_process=num_process,
            process_id=process_id,
            **kwargs,
        )

    def _info(self) -> evaluate.MetricInfo:
        """Describe the metric and its input features for this config."""
        return evaluate.MetricInfo(
            description=self.DESCRIPTION,
            citation=self.CITATION,
            inputs_description=self.INPUTS_DESCRIPTION,
            features=self.FEATURES[self.config_name],
            reference_urls=list(self.REFERENCE_URLS),
        )

    def _compute(self, predictions: Any, references: Any, **options: Any) -> dict[str, Any]:
        """Return ``{name: score}``, the metric's name as the only key.

        *options* (``average``, ``sample_weight``, ``multioutput``, ...) go to :meth:`_score`
        unchanged; their defaults are scikit-learn's, which are also the Hub modules' defaults.
        """
        return {self.name: self._score(references, predictions, **options)}

    def _score(self, y_true: Any, y_pred: Any, **options: Any) -> Any:
        """Score *y_pred* against *y_true* (scikit-learn's argument order); defined by each metric."""
        raise NotImplementedError

    def compute_arrays(self, *, predictions: Any, references: Any, **kwargs: Any) -> dict[str, Any]:
        """Compute on in-memory arrays, skipping evaluate's Arrow round trip.

        Gives the same result as ``compute(predictions=..., references=..., **kwargs)`` but
        does not convert the inputs to Arrow rows and back, which dominates the run time for
        large inputs (for 100k x 50 multi-label matrices it is more than ten times faster).
        Data queued with ``add``/``add_batch`` is not used, and nothing is gathered across
        processes: call it on the process that holds all predictions.
        """
        return self._compute(predictions=np.asarray(predictions), references=np.asarray(references), **kwargs)

    def _build_data_dir(self) -> str:
        """Return the cache folder, creating it only when predictions are written to files."""
        if getattr(self, "keep_in_memory", False):
            return os.path.join(self._data_dir_root, self.name, self.config_name)
        return str(super()._build_data_dir())
