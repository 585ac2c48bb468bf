"""Metrics that work offline, as real :class:`evaluate.Metric` modules.

``evaluate.load("accuracy")`` downloads a metric script from the Hub, so it fails without
network access. tlzoo ships the common metrics inside the package instead:

==================  ==================================  ====================================
name                configs                             output
==================  ==================================  ====================================
accuracy            default, multilabel                 ``{"accuracy": float}``
f1                  default, multilabel                 ``{"f1": float | ndarray}``
precision           default, multilabel                 ``{"precision": float | ndarray}``
recall              default, multilabel                 ``{"recall": float | ndarray}``
confusion_matrix    default, multilabel                 ``{"confusion_matrix": ndarray}``
mse                 default, multilist                  ``{"mse": float | ndarray}``
mae                 default, multilist                  ``{"mae": float | ndarray}``
r2 (r_squared)      default, multilist                  ``{"r2": float | ndarray}``
==================  ==================================  ====================================

Like the Hub's ``evaluate-metric/*`` modules, each one scores with the scikit-learn
function of the same name (``sklearn.metrics.accuracy_score``, ``f1_score``,
``confusion_matrix``, ``mean_squared_error``, ...) and takes its arguments: ``average``
(default ``"binary"``), ``labels``, ``pos_label``, ``sample_weight``, ``zero_division``,
``normalize``, ``multioutput``, ``force_finite``, plus the Hub's ``squared`` for ``mse``.
Invalid inputs raise scikit-learn's ``ValueError``.

Use :func:`load_metric`; any other name is passed on to :func:`evaluate.load`.

Importing this package is cheap: :mod:`evaluate` (which in 0.4.6 imports
``transformers`` and torch when they are installed) and :mod:`sklearn` are only imported
when a metric is loaded or a metric class is accessed.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from tlzoo.errors import MetricError, did_you_mean, setting

if TYPE_CHECKING:  # pragma: no cover - typing only
    import evaluate

    from ._base import BuiltinMetric  # noqa: F401 - exported lazily by __getattr__
    from .classification import F1, Accuracy, ConfusionMatrix, Precision, Recall  # noqa: F401
    from .regression import R2, Mae, Mse  # noqa: F401

logger = logging.getLogger(__name__)

#: Canonical metric name -> (module, class) of its built-in implementation.
_BUILTIN_CLASSES: dict[str, tuple[str, str]] = {
    "accuracy": (".classification", "Accuracy"),
    "f1": (".classification", "F1"),
    "precision": (".classification", "Precision"),
    "recall": (".classification", "Recall"),
    "confusion_matrix": (".classification", "ConfusionMatrix"),
    "mse": (".regression", "Mse"),
    "mae": (".regression", "Mae"),
    "r2": (".regression", "R2"),
}

#: Canonical names of the built-in metrics.
BUILTIN_METRICS: tuple[str, ...] = tuple(_BUILTIN_CLASSES)

#: Accepted spellings (after lower-casing, ``-`` -> ``_``) mapped to canonical names.
_ALIASES: dict[str, str] = {**{name: name for name in BUILTIN_METRICS}, "r_squared": "r2"}

#: Public class name -> (module, attribute) for lazy access.
_LAZY_CLASSES: dict[str, tuple[str, str]] = {
    "BuiltinMetric": ("._base", "BuiltinMetric"),
    **{class_name: (module, class_name) for module, class_name in _BUILTIN_CLASSES.values()},
}

#: ``evaluate.load`` keyword arguments that make no sense for a built-in module.
_LOAD_ONLY_KWARGS: tuple[str, ...] = (
    "module_type",
    "download_config",
    "download_mode",
    "revision",
    "trust_remote_code",
)

__all__ = [  # noqa: PLE0604 - the lazily imported metric classes are names too
    "BUILTIN_METRICS",
    "MetricError",
    "canonical_metric_name",
    "higher_is_better",
    "load_metric",
    *_LAZY_CLASSES,
]


def __getattr__(name: str) -> Any:
    """Import the metric classes on first access (PEP 562)."""
    if name in _LAZY_CLASSES:
        module_name, attribute = _LAZY_CLASSES[name]
        value = getattr(importlib.import_module(module_name, __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the public names, including the lazily imported classes."""
    return sorted(set(globals()) | set(__all__))


def canonical_metric_name(name: str) -> str | None:
    """Return the built-in metric *name* refers to, or ``None`` if it is not built in.

    Matching ignores case and surrounding spaces, treats ``-`` as ``_``, accepts an
    ``evaluate-metric/`` prefix, and maps ``r_squared`` to ``r2``.
    """
    key = name.strip().lower()
    key = key.removeprefix("evaluate-metric/")
    return _ALIASES.get(key.replace("-", "_"))


def load_metric(name: str, config_name: str | None = None, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load a metric as an :class:`evaluate.EvaluationModule`, offline for the built-in names.

    Args:
        name: A built-in name (see :data:`BUILTIN_METRICS`; case-insensitive, ``r_squared``
            is accepted for ``r2``), or anything :func:`evaluate.load` accepts: a Hub id such as
            ``"bleu"`` / ``"user/metric"`` (needs network or a cached copy) or the path of a
            local metric script or folder.
        config_name: Metric configuration, e.g. ``"multilabel"`` for the classification
            metrics or ``"multilist"`` for multi-output regression.
        **kwargs: Passed to the module constructor / :func:`evaluate.load` (``cache_dir``,
            ``experiment_id``, ``num_process``, ``process_id``, ``keep_in_memory``, ...).
            Built-in modules keep predictions in memory by default (no cache files, safe with
            concurrent processes); pass ``num_process > 1`` with a shared ``cache_dir`` and an
            ``experiment_id`` to use evaluate's multi-process gathering.

    Returns:
        The evaluation module; call ``.compute(predictions=..., references=..., **options)``.

    Raises:
        MetricError: The name is not built in and :func:`evaluate.load` failed (for instance
            offline), or the built-in module rejected *config_name* / *kwargs*.
    """
    canonical = canonical_metric_name(name)
    if canonical is not None:
        for key in _LOAD_ONLY_KWARGS:
            if key in kwargs:
                logger.debug("Ignoring %s=%r for built-in metric %r.", key, kwargs.pop(key), canonical)
        metric_class = __getattr__(_BUILTIN_CLASSES[canonical][1])
        try:
            return metric_class(config_name=config_name, **kwargs)
        except (TypeError, ValueError) as exc:
            raise MetricError(f"Cannot create built-in metric {canonical!r}: {exc}") from exc

    import evaluate

    try:
        return evaluate.load(name, config_name, **kwargs)
    except Exception as exc:  # evaluate raises FileNotFoundError, ConnectionError, ImportError, ...
        raise MetricError(_unknown_metric_message(name, exc)) from exc


def _unknown_metric_message(name: str, exc: BaseException) -> str:
    """Explain why *name* could not be loaded and what would work instead."""
    return (
        f"Cannot load metric {name!r}: it is not built into tlzoo and evaluate.load({name!r}) failed "
        f"({type(exc).__name__}: {exc}).{did_you_mean(name, BUILTIN_METRICS)} "
        f"Built-in metrics (no network needed): {', '.join(BUILTIN_METRICS)} (also 'r_squared'). "
        "Any other metric is loaded with evaluate.load and needs network access to the Hugging Face Hub "
        "(or a copy in the local evaluate cache), or pass the path of a local metric script or folder."
    )


#: Built-in metrics (and the loss) by whether a larger value is better.
_DIRECTION: dict[str, bool] = {"accuracy": True, "f1": True, "precision": True, "recall": True, "r2": True,
                               "mse": False, "mae": False, "rmse": False, "loss": False}


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric *name* is better: ``f1_weighted`` and ``precision_macro`` are,
    ``loss``, ``mse`` and ``mae`` are not.

    Averaged names (``<metric>_<macro|micro|weighted|samples>``) take their base
    metric's direction. Raises :class:`MetricError` for a metric whose direction
    is not known (a Hub metric): give ``greater_is_better`` then.
    """
    key = name.strip().lower().removeprefix("evaluate-metric/").replace("-", "_")
    base, _, suffix = key.rpartition("_")
    if base and suffix in ("macro", "micro", "weighted", "samples"):
        key = base
    key = _ALIASES.get(key, key)
    if key not in _DIRECTION:
        raise MetricError(
            f"tlzoo does not know whether a larger {name!r} is better; pass {setting('greater_is_better', True)} "
            f"or {setting('greater_is_better', False)}." + did_you_mean(name, _DIRECTION)
        )
    return _DIRECTION[key]
