"""The combined score of ``tlzoo.rank`` and the order it puts the candidates in.

The estimators (:mod:`tlzoo.ranking.estimators`) measure different things on
different scales: k-NN and the linear probe an accuracy (or micro-F1, R²),
LogME a log evidence that is unbounded and comparable only between models
scored on the same data. :func:`combined_scores` therefore combines their
*rank positions*, not their values (a Borda count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tlzoo.ranking.estimators import ESTIMATORS

__all__ = ["TIE_BREAK", "combined_scores", "order_rows"]

#: When combined scores tie, the estimators that decide, in this order (the most
#: reliable first: Sorkhei et al., 2025).
TIE_BREAK = ("knn", "linear_probe", "logme")


def _value(value: Any) -> float | None:
    """A number to rank, or ``None`` when missing (``None``, NaN, not a number).

    ``-inf`` is kept: LogME's evidence of features that explain nothing can be
    minus infinity, and that is the worst value, not a missing one.
    """
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return None
    return float(value)


def combined_scores(values: Sequence[Mapping[str, Any]], estimators: Sequence[str] = ESTIMATORS) -> list[float | None]:
    """The combined score of each candidate: its mean rank position over the estimators, from 0 to 1.

    For each estimator, the candidates with a value are ranked (ties share
    their mean rank) and placed on ``(rank - 1) / (n - 1)``: 1 for the best,
    0 for the worst, 1 when only one candidate has a value. A candidate's
    score is the mean of its positions over the estimators it has a value for
    (``None`` when it has none: it failed). This is a Borda count: it needs no
    common scale, and no single estimator decides alone, which matters because
    every transferability metric fails on some data sets (Sorkhei et al.,
    *k-NN as a Simple and Effective Estimator of Transferability*, arXiv:2503.18528, 2025;
    Agostinelli et al., *How stable are transferability metrics evaluations?*,
    ECCV 2022).

    :param values: one mapping per candidate, estimator name -> value (``None``
        or NaN when missing).
    :param estimators: the names to combine.
    """
    from scipy.stats import rankdata

    positions: list[list[float]] = [[] for _ in values]
    for name in estimators:
        have = [(i, v) for i, row in enumerate(values) if (v := _value(row.get(name))) is not None]
        if not have:
            continue
        ranks = rankdata([v for _, v in have], method="average")
        for (i, _), r in zip(have, ranks, strict=True):
            positions[i].append(1.0 if len(have) == 1 else (float(r) - 1) / (len(have) - 1))
    return [sum(p) / len(p) if p else None for p in positions]


def order_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows best first, with ``score`` and ``rank`` filled in; failed candidates last, in input order.

    Ties of the combined score are broken by the estimators of
    :data:`TIE_BREAK` in turn, then by the order the candidates were given.
    """
    for row, score in zip(rows, combined_scores(rows), strict=True):
        row["score"] = None if score is None else round(score, 6)

    def key(item: tuple[int, dict[str, Any]]) -> tuple[Any, ...]:
        position, row = item
        if row["score"] is None:
            return (1, 0.0, *(0.0 for _ in TIE_BREAK), position)
        values = (_value(row.get(name)) for name in TIE_BREAK)
        return (0, -row["score"], *(math.inf if v is None else -v for v in values), position)

    ordered = [row for _, row in sorted(enumerate(rows), key=key)]
    place = 0
    for row in ordered:
        row["rank"] = None
        if row["score"] is not None:
            place += 1
            row["rank"] = place
    return ordered
