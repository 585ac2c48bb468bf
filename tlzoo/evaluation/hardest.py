"""The hardest examples of a split: those the model gets most wrong (fastai's "top losses").

:func:`hardest_examples` ranks the examples of one split by their loss and keeps
the worst few, so a user sees *which* examples fail, not only how many: a
mislabelled row, a class the data set lacks variety in, an input the source
model cannot read. ``adapt()`` adds them to the metrics of every held-out split
(``metrics["test"]["hardest"]``), with a short description of each input; the
summary and the model card show them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlzoo.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

#: How many examples :func:`hardest_examples` keeps by default.
NUM_HARDEST = 5


def hardest_examples(task: str, outputs: np.ndarray, references: np.ndarray, label_names: list[str], *,
                     k: int = NUM_HARDEST) -> list[dict[str, Any]]:
    """The *k* examples with the highest loss, worst first, as JSON-ready dicts.

    Single-label (*outputs* are logits ``[N, C]``, *references* class ids):
    ``{"index", "label", "predicted", "probability" (of the predicted class),
    "loss" (cross-entropy)}``. Multi-label (logits, 0/1 references): ``label``
    and ``predicted`` are lists of names (sigmoid >= 0.5), ``loss`` the summed
    binary cross-entropy. Regression: ``{"index", "label", "predicted", "loss"
    (squared error)}``, summed over the outputs. ``index`` is the row in the split.
    Outputs that are not logits (class ids) give ``[]``.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    references = np.asarray(references)
    if task == SINGLE_LABEL:
        if outputs.ndim != 2 or outputs.shape[1] < 2:
            return []
        log_probs = outputs - outputs.max(axis=1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
        refs = references.astype(np.int64)
        losses = -log_probs[np.arange(len(refs)), refs]
        picked = log_probs.argmax(axis=1)
        return [{"index": int(i), "label": label_names[refs[i]], "predicted": label_names[picked[i]],
                 "probability": float(np.exp(log_probs[i, picked[i]])), "loss": float(losses[i])}
                for i in _worst(losses, k)]
    if task == MULTI_LABEL:
        refs = references.astype(np.float64)
        # binary cross-entropy from logits, written to stay finite for large logits
        losses = (np.maximum(outputs, 0) - outputs * refs + np.log1p(np.exp(-np.abs(outputs)))).sum(axis=1)

        def names(row: np.ndarray) -> list[str]:
            return [label_names[j] for j in np.flatnonzero(row)]

        return [{"index": int(i), "label": names(refs[i] > 0.5), "predicted": names(outputs[i] >= 0),
                 "loss": float(losses[i])} for i in _worst(losses, k)]
    if task == REGRESSION:
        preds = outputs.reshape(len(outputs), -1)
        refs = references.astype(np.float64).reshape(len(references), -1)
        losses = ((preds - refs) ** 2).sum(axis=1)

        def value(row: np.ndarray) -> float | list[float]:
            return float(row[0]) if row.size == 1 else [float(v) for v in row]

        return [{"index": int(i), "label": value(refs[i]), "predicted": value(preds[i]), "loss": float(losses[i])}
                for i in _worst(losses, k)]
    return []


def _worst(losses: np.ndarray, k: int) -> list[int]:
    """Indices of the *k* largest finite-or-not losses, largest first (ties: the earlier row first)."""
    order = np.argsort(-np.nan_to_num(losses, nan=np.inf), kind="stable")
    return [int(i) for i in order[:k]]


#: The longest input description :func:`describe_inputs` writes.
MAX_DESCRIPTION = 80


def describe_inputs(hardest: list[dict[str, Any]], dataset: Any, column: str) -> None:
    """Add to each of *hardest* an ``"input"``: the example's text, shortened, or its file's path.

    *dataset* is the ``datasets.Dataset`` of the split the indices point into.
    Files are described by path without being decoded (a feature with a
    ``decode`` switch is read undecoded); an input with neither text nor a
    path is described by its row (``"row 12"``).
    """
    import dataclasses

    if not hardest:
        return
    feature = dataset.features.get(column)
    if dataclasses.is_dataclass(feature) and getattr(feature, "decode", False):
        dataset = dataset.cast_column(column, dataclasses.replace(feature, decode=False))
    values = dataset.select([row["index"] for row in hardest])[column]
    for row, value in zip(hardest, values):
        row["input"] = _describe(value, row["index"])


def _describe(value: Any, index: int) -> str:
    if isinstance(value, dict):
        value = value.get("path")
    if isinstance(value, str) and value:
        text = " ".join(value.split())
        return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"
    return f"row {index}"
