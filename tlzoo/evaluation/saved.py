"""Scores of a saved adapted model on new labelled data (``tlzoo evaluate``, :func:`evaluate_model`)."""

from __future__ import annotations

from typing import Any

from tlzoo.errors import DataError


def _references(values: list[Any], feature: Any, model: Any, split: str, column: str) -> Any:
    """The labels of *values* as the model's class ids (or floats for regression)."""
    import numpy as np

    task = model.task.problem_type
    if task == "regression":
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"Column {column!r} of the {split} split must hold numbers for this regression model: "
                            f"{exc}") from exc
    names = model.label_names
    known = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)

    def class_id(value: Any) -> int:
        name = known[value] if known is not None and isinstance(value, int) else str(value)
        if name not in names:
            raise DataError(f"Label {name!r} in column {column!r} ({split} split) is not one of the model's labels "
                            f"{names}; evaluate on data labelled with the classes the model was trained on.")
        return names.index(name)

    if task == "multi_label_classification":
        out = np.zeros((len(values), len(names)), dtype=np.int64)
        for row, labels in enumerate(values):
            out[row, [class_id(v) for v in labels]] = 1
        return out
    return np.asarray([class_id(v) for v in values], dtype=np.int64)


def evaluate_model(model: Any, data: Any, *, input_column: str | None = None, label_column: str | None = None,
                   splits: list[str] | None = None, batch_size: int = 32, metrics: list[str] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Score *model* (an :class:`~tlzoo.AdaptedModel`) on every split of *data* (or on *splits*).

    *data* takes the same forms as :func:`tlzoo.adapt` (a ``Dataset``/``DatasetDict``,
    a DataFrame, files, a folder, a Hub dataset id); its input and label columns are
    found as ``adapt()`` finds them, and the labels must be among the model's. Returns
    ``{split: metrics}`` with the metrics of :func:`tlzoo.evaluation.evaluate_predictions`
    (per-class scores, the confusion matrix and the hardest examples included) and the ``num_examples``.
    """
    from tlzoo.data.reading import read_data
    from tlzoo.data.target import column_values, find_input_column, find_label_column
    from tlzoo.evaluation.hardest import describe_inputs
    from tlzoo.evaluation.scoring import evaluate_predictions
    from tlzoo.plugins import get_modality

    modality = get_modality(model.modality)
    found = read_data(data, modality=modality)
    chosen = splits or list(found)
    missing = [s for s in chosen if s not in found]
    if missing:
        raise DataError(f"The data has no split {missing[0]!r}; its splits are {list(found)}.")
    results: dict[str, dict[str, Any]] = {}
    for split in chosen:
        ds = found[split]
        if len(ds) == 0:
            raise DataError(f"The {split} split holds no examples.")
        labels_at = find_label_column(ds, label_column)
        inputs_at = find_input_column(ds, input_column, labels_at, modality)
        references = _references(column_values(ds, labels_at), ds.features.get(labels_at), model, split, labels_at)
        logits = model.logits(column_values(ds, inputs_at), batch_size=batch_size).numpy()
        result = evaluate_predictions(model.task.problem_type, logits, references, label_names=model.label_names,
                                      metrics=metrics)
        result["num_examples"] = len(ds)
        describe_inputs(result.get("hardest", []), ds, inputs_at)
        results[split] = result
    return results
