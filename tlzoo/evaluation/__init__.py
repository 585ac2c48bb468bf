"""Step "evaluate" of ``adapt()``: score predictions, and print or plot the scores.

:mod:`~tlzoo.evaluation.scoring` turns model outputs into a JSON-ready metrics
dict with the offline :mod:`~tlzoo.evaluation.metrics`;
:mod:`~tlzoo.evaluation.report` prints it; :mod:`~tlzoo.evaluation.plots` draws
training curves and confusion matrices (matplotlib, imported only there).
"""

from tlzoo.evaluation.report import format_report
from tlzoo.evaluation.scoring import evaluate_predictions, summarise

__all__ = ["evaluate_predictions", "format_report", "summarise"]
