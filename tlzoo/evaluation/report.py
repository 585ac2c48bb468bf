"""Print a metrics dict from :func:`~tlzoo.evaluation.scoring.evaluate_predictions` as plain text.

:func:`format_report` renders a per-class table and confusion matrix for the CLI
and model cards.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from tlzoo.evaluation.scoring import summarise

_CORNER = "true \\ pred"


def format_report(metrics: Mapping[str, Any], *, digits: int = 4) -> str:
    """Render *metrics* from :func:`~tlzoo.evaluation.scoring.evaluate_predictions` as plain text.

    Classification results give a per-class table like scikit-learn's
    ``classification_report`` (precision, recall, f1-score, support, then accuracy, macro
    and weighted averages), the confusion matrix (rows = true, columns = predicted), and
    any other scalar metrics. Regression results give one line per metric.
    """
    sections: list[str] = []
    per_class = metrics.get("per_class")
    shown: set[str] = set()
    if isinstance(per_class, Mapping) and per_class:
        sections.append(_per_class_table(metrics, per_class, digits))
        shown.update(("precision", "recall", "f1", "accuracy"))
    matrix = metrics.get("confusion_matrix")
    if matrix is not None and np.ndim(matrix) == 2:
        sections.append(_confusion_table(matrix, metrics.get("labels")))
    others = {k: v for k, v in summarise(metrics).items() if k not in shown}
    if others:
        width = max(len(k) for k in others)
        lines = [f"{k:<{width}}  {_format_number(v, digits)}" for k, v in others.items()]
        sections.append(("Other metrics:\n" if per_class else "") + "\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _format_number(value: Any, digits: int) -> str:
    """Format a float with *digits* decimals and an int as is."""
    if isinstance(value, numbers.Integral):
        return str(value)
    number = float(value)
    return f"{number:.{digits}f}" if math.isfinite(number) else str(number)


def _per_class_table(metrics: Mapping[str, Any], per_class: Mapping[str, Any], digits: int) -> str:
    """The classification_report-style table: one row per class, then averages."""
    names = [str(name) for name in per_class]
    width = max([len(n) for n in names] + [len("weighted avg"), len("subset accuracy")])
    col = max(digits + 5, 9)
    header = f"{'':>{width}} {'precision':>{col}} {'recall':>{col}} {'f1-score':>{col}} {'support':>{col}}"

    def row(label: str, p: Any, r: Any, f: Any, s: Any) -> str:
        cells = [_format_number(v, digits) if v is not None else "" for v in (p, r, f, s)]
        return (f"{label:>{width}} " + " ".join(f"{c:>{col}}" for c in cells)).rstrip()

    rows = [header, ""]
    stats = [per_class[name] for name in per_class]
    for name, s in zip(names, stats):
        rows.append(row(name, s.get("precision"), s.get("recall"), s.get("f1"), s.get("support")))
    rows.append("")
    supports = np.array([float(s.get("support", 0)) for s in stats])
    total = int(supports.sum())
    single_label = metrics.get("confusion_matrix") is not None
    if "accuracy" in metrics:
        label = "accuracy" if single_label else "subset accuracy"
        rows.append(row(label, None, None, metrics["accuracy"], total if single_label else None))

    def mean_of(key: str, weights: np.ndarray | None = None) -> float:
        values = np.array([float(s.get(key, 0.0)) for s in stats])
        if weights is None:
            return float(values.mean())
        return float(np.sum(values * weights) / weights.sum()) if weights.sum() else 0.0

    macro = [metrics.get(k, mean_of(k)) for k in ("precision", "recall", "f1")]
    rows.append(row("macro avg", *macro, total))
    rows.append(row("weighted avg", *(mean_of(k, supports) for k in ("precision", "recall", "f1")), total))
    return "\n".join(rows)


def _confusion_table(matrix: Any, labels: Any) -> str:
    """The confusion matrix with true labels as rows and predicted labels as columns."""
    cells = [[str(v) for v in row] for row in matrix]
    names = [str(n) for n in labels] if labels is not None else [str(i) for i in range(len(cells))]
    width = max([len(n) for n in names] + [len(_CORNER)])
    col = max([len(n) for n in names] + [len(c) for r in cells for c in r])
    lines = ["Confusion matrix (rows: true label, columns: predicted label):"]
    lines.append(f"{_CORNER:>{width}}  " + " ".join(f"{n:>{col}}" for n in names))
    for name, row in zip(names, cells):
        lines.append(f"{name:>{width}}  " + " ".join(f"{c:>{col}}" for c in row))
    return "\n".join(lines)
