"""Target data: the user's labelled examples, checked and split (step "load target data").

:func:`load_target_data` takes what :func:`tlzoo.data.reading.read_data` reads (a
``datasets.Dataset`` or ``DatasetDict``, a pandas DataFrame, a Hub dataset id, a
folder of class sub-folders, a saved dataset folder, or CSV/JSON/Parquet files)
and returns :class:`TargetData`: the input and label columns, the task, the
label names and the train/validation/test splits. Every problem it can see is
raised as a :class:`~tlzoo.errors.DataError` before any model is loaded.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tlzoo.data.reading import read_data
from tlzoo.errors import ColumnNotFoundError, DataError, UnreadableExampleError, did_you_mean, setting
from tlzoo.plugins.modality import Modality
from tlzoo.tasks import check_task

logger = logging.getLogger(__name__)

LABEL_NAMES = ("label", "labels", "target", "class", "category", "y", "sentiment")
SAMPLE = 16


@dataclass
class TargetData:
    """The user's target task, ready for training.

    :ivar splits: ``train`` always; ``validation`` and ``test`` when present
        or made. Each holds only the input and label columns.
    :ivar task: ``single_label_classification``, ``multi_label_classification`` or ``regression``.
    :ivar label_names: class names in label-id order (``None`` for regression).
    :ivar class_counts: examples per class in the train split.
    """

    splits: dict[str, Any]
    input_column: str
    label_column: str
    task: str
    label_names: list[str] | None
    modality: str
    class_counts: dict[str, int] = field(default_factory=dict)
    made_splits: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        """Classes (classification) or outputs (regression)."""
        return len(self.label_names) if self.label_names else 1

    def summary(self) -> dict[str, Any]:
        """Sizes, columns, task and class counts, for logs and the recipe."""
        return {
            "input_column": self.input_column,
            "label_column": self.label_column,
            "task": self.task,
            "num_labels": self.num_labels,
            "split_sizes": {name: len(ds) for name, ds in self.splits.items()},
            "made_splits": self.made_splits,
            "class_counts": self.class_counts,
        }


# --- columns ----------------------------------------------------------------------------
def _column_kind(ds: Any, column: str, mods: dict[str, Modality]) -> list[Modality]:
    feature = ds.features[column]
    values = _sample(ds, column)
    return sorted((m for m in mods.values() if _safe_is_column(m, feature, values)), key=lambda m: -m.priority)


def _sample(ds: Any, column: str) -> list[Any]:
    """The first :data:`SAMPLE` values of *column*, as recognisers see them.

    A column whose feature decodes its values (``datasets.Image``, ``Audio``)
    gives them as stored (``{"bytes", "path"}``): its feature already says
    what it holds, and telling columns apart must not open files (a file that
    cannot be decoded is named by the example check that follows).
    """
    if not len(ds):
        return []
    head = ds.select(range(min(SAMPLE, len(ds))))
    if getattr(ds.features[column], "decode", False):
        return column_values(head, column)
    return head[column]


def _safe_is_column(modality: Modality, feature: Any, values: list[Any]) -> bool:
    try:
        return bool(modality.is_column(feature, values))
    except Exception:  # a plugin's recogniser must not break data loading
        logger.debug("is_column of %s failed", modality.name, exc_info=True)
        return False


def find_label_column(ds: Any, label_column: str | None) -> str:
    """The label column: the given one, a ClassLabel column, or a usual name."""
    columns = list(ds.column_names)
    if label_column is not None:
        if label_column not in columns:
            raise ColumnNotFoundError(
                f"Label column {label_column!r} not found; the data has columns {columns}." + did_you_mean(label_column, columns)
            )
        return label_column
    from datasets import ClassLabel

    class_labels = [c for c in columns if isinstance(ds.features[c], ClassLabel)]
    if len(class_labels) == 1:
        return class_labels[0]
    for name in LABEL_NAMES:
        if name in columns:
            return name
    raise ColumnNotFoundError(f"Cannot tell which column holds the labels among {columns}; pass {setting('label_column')}")


def find_input_column(ds: Any, input_column: str | None, label_column: str, modality: Modality) -> str:
    """The input column: the given one (checked against the modality) or the one the modality recognises."""
    from tlzoo.plugins import modalities

    mods = modalities()
    columns = [c for c in ds.column_names if c != label_column]
    if input_column is not None:
        if input_column not in ds.column_names:
            raise ColumnNotFoundError(
                f"Input column {input_column!r} not found; the data has columns {list(ds.column_names)}."
                + did_you_mean(input_column, ds.column_names)
            )
        kinds = _column_kind(ds, input_column, mods)
        if kinds and modality.name not in {k.name for k in kinds}:
            raise DataError(
                f"Column {input_column!r} holds {kinds[0].name} data, but the source model reads {modality.name}. "
                f"Choose a {modality.name} source model or another column."
            )
        return input_column
    matching = [c for c in columns if modality.name in {k.name for k in _column_kind(ds, c, {modality.name: modality})}]
    if len(matching) == 1:
        return matching[0]
    if len(matching) > 1:
        preferred = [c for c in matching if c.lower() in (modality.name, *modality.column_names)]
        if len(preferred) == 1:
            return preferred[0]
        raise DataError(f"Several columns hold {modality.name} data: {matching}; pass {setting('input_column')} to choose one.")
    others = {c: _column_kind(ds, c, mods) for c in columns}
    found = {c: k[0].name for c, k in others.items() if k}
    if found:
        described = ", ".join(f"{c!r} ({kind})" for c, kind in found.items())
        raise DataError(
            f"The source model reads {modality.name}, but the data has no {modality.name} column: {described}. "
            f"Choose a source model for that modality (`tlzoo models --modality {next(iter(found.values()))}`)."
        )
    raise DataError(f"No {modality.name} column among {columns}; pass {setting('input_column')}")


def column_values(ds: Any, name: str) -> list[Any]:
    """Every value of one column as plain Python values, read in one go.

    ``ds[name]`` is a lazy column in datasets 5 that is read and formatted row
    by row (5-10x slower); an undecoded image/audio column gives its
    ``{"bytes", "path"}`` dicts either way.
    """
    return ds.with_format("arrow")[name].to_pylist()


# --- labels and task --------------------------------------------------------------------
def detect_task(ds: Any, label_column: str) -> str:
    """single-label, multi-label or regression, from the label column's type and values."""
    from datasets import ClassLabel, Sequence, Value

    feature = ds.features[label_column]
    if isinstance(feature, ClassLabel):
        return "single_label_classification"
    if isinstance(feature, Sequence) or type(feature).__name__ == "List":
        return "multi_label_classification"
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        values = [v for v in column_values(ds, label_column) if v is not None]
        if values and all(float(v).is_integer() for v in values) and len(set(values)) <= 20:
            return "single_label_classification"
        return "regression"
    return "single_label_classification"




def _label_names(splits: dict[str, Any], label_column: str, task: str) -> list[str] | None:
    from datasets import ClassLabel

    train = splits["train"]
    feature = train.features[label_column]
    if task == "regression":
        return None
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return list(inner.names)
    values = column_values(train, label_column)
    if any(v is None for v in values):
        raise DataError(f"Label column {label_column!r} has missing labels in the train split; remove or fill them.")
    flat = [x for v in values for x in v] if task == "multi_label_classification" else values
    names = sorted({str(v) for v in flat}, key=lambda s: (len(s), s) if s.lstrip("-").isdigit() else (0, s))
    for name, ds in splits.items():
        if name == "train":
            continue
        other = column_values(ds, label_column)
        other_flat = {str(x) for v in other for x in v} if task == "multi_label_classification" else {str(v) for v in other}
        unseen = sorted(other_flat - set(names))
        if unseen:
            raise DataError(
                f"Labels {unseen[:5]} of the {name} split never appear in the train split; every class needs "
                "training examples (or remove those examples)."
            )
    return names


def _encode_labels(splits: dict[str, Any], label_column: str, task: str, names: list[str] | None) -> dict[str, Any]:
    from datasets import ClassLabel, Sequence

    if task == "regression":
        from datasets import Value

        return {n: ds.cast_column(label_column, Value("float32")) for n, ds in splits.items()}
    index = {name: i for i, name in enumerate(names or [])}
    out = {}
    for split, ds in splits.items():
        feature = ds.features[label_column]
        if task == "single_label_classification":
            if isinstance(feature, ClassLabel) and list(feature.names) == names:
                out[split] = ds
                continue
            if isinstance(feature, ClassLabel):
                ds = ds.cast_column(label_column, _string_feature())
            ds = ds.map(lambda b: {label_column: [index[str(v)] for v in b[label_column]]}, batched=True)
            out[split] = ds.cast_column(label_column, ClassLabel(names=names))
        else:
            inner = getattr(feature, "feature", None)
            if isinstance(inner, ClassLabel) and list(inner.names) == names:
                out[split] = ds
                continue
            ds = ds.map(lambda b: {label_column: [[index[str(x)] for x in v] for v in b[label_column]]}, batched=True)
            out[split] = ds.cast_column(label_column, Sequence(ClassLabel(names=names)))
    return out


def check_labels(splits: dict[str, Any], label_column: str, task: str) -> None:
    """Refuse missing labels in any split, and NaN, infinite or non-numeric regression targets, naming split and rows.

    Caught here, when the data are read, they cannot end a run late (a NaN or
    infinite loss, a metric error after training) or be scored as a class
    named "None".
    """
    import math

    from datasets import ClassLabel

    for split, ds in splits.items():
        missing_id = -1 if isinstance(ds.features[label_column], ClassLabel) else None  # datasets' missing ClassLabel
        bad: list[int] = []
        for row, value in enumerate(column_values(ds, label_column)):
            parts = value if isinstance(value, list | tuple) else [value]
            if value is None or value == missing_id or any(v is None for v in parts):
                bad.append(row)
            elif task == "regression":
                try:
                    if not all(math.isfinite(float(v)) for v in parts):
                        bad.append(row)
                except (TypeError, ValueError):
                    bad.append(row)
        if bad:
            what = "missing, NaN, infinite or non-numeric targets" if task == "regression" else "missing labels"
            raise DataError(
                f"Label column {label_column!r} has {what} in the {split} split: {len(bad)} of {len(ds)} rows "
                f"(rows {bad[:5]}{', ...' if len(bad) > 5 else ''}). Remove those examples or fill in their labels."
            )


def _string_feature() -> Any:
    from datasets import Value

    return Value("string")


# --- splits -------------------------------------------------------------------------------
def _make_splits(splits: dict[str, Any], label_column: str, task: str, *, seed: int, test_size: float, validation_size: float) -> list[str]:
    made = []
    if "test" not in splits and test_size > 0:
        splits["train"], splits["test"] = _split(splits["train"], label_column, task, test_size, seed)
        made.append("test")
    if "validation" not in splits and validation_size > 0:
        splits["train"], splits["validation"] = _split(splits["train"], label_column, task, validation_size, seed + 1)
        made.append("validation")
    return made


def _split(ds: Any, label_column: str, task: str, size: float, seed: int) -> tuple[Any, Any]:
    stratify = label_column if task == "single_label_classification" else None
    if stratify:
        counts = Counter(column_values(ds, label_column))
        n_test = int(size) if size >= 1 else max(1, round(size * len(ds)))
        if size < 1 and min(counts.values()) >= 2 and n_test < len(counts) <= len(ds) - len(counts):
            n_test = len(counts)  # a fraction too small for one example of each class holds out exactly one of each
            size = n_test
        if min(counts.values()) < 2 or n_test < len(counts) or len(ds) - n_test < len(counts):
            logger.warning("A stratified split of %d examples needs one of every class (%d) on each side, and two or "
                           "more of each class in all; splitting at random instead.", n_test, len(counts))
            stratify = None
    parts = ds.train_test_split(test_size=size, seed=seed, stratify_by_column=stratify)
    return parts["train"], parts["test"]


# --- the whole step ---------------------------------------------------------------------
def load_target_data(
    data: Any,
    modality: Modality,
    *,
    input_column: str | None = None,
    label_column: str | None = None,
    task: str = "auto",
    seed: int = 0,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    check_examples: bool = True,
) -> TargetData:
    """Read, check, label-encode and split the user's target data.

    :param data: a ``Dataset``/``DatasetDict``, a DataFrame, a Hub dataset id,
        a folder or a CSV/JSON/Parquet file.
    :param modality: the modality the source model reads.
    :param test_size: fraction (or count) held out as ``test`` when the data
        has no test split (seeded, stratified by label for classification).
    :param validation_size: fraction (or count) of train held out as
        ``validation`` when there is none; ``0`` keeps every example for training.
    :raises DataError: for every problem with the data, before any model loads.
    """
    splits = read_data(data, modality=modality)
    if "train" not in splits:
        if len(splits) == 1:
            splits = {"train": next(iter(splits.values()))}
        else:
            raise DataError(f"The data has splits {sorted(splits)} but no 'train' split; rename one to 'train'.")
    splits = {name: ds for name, ds in splits.items() if name in ("train", "validation", "test")}
    for name, ds in splits.items():
        if len(ds) == 0:
            raise DataError(f"The {name} split is empty; every split needs examples.")
    train = splits["train"]
    label_column = find_label_column(train, label_column)
    input_column = find_input_column(train, input_column, label_column, modality)
    for name, ds in splits.items():
        missing = [c for c in (input_column, label_column) if c not in ds.column_names]
        if missing:
            raise ColumnNotFoundError(f"The {name} split has no column {missing[0]!r}; its columns are {ds.column_names}.")
    splits = {name: ds.select_columns([input_column, label_column]) for name, ds in splits.items()}
    splits = {name: _undecoded(ds, input_column) for name, ds in splits.items()}
    task = detect_task(train, label_column) if task == "auto" else check_task(task)
    check_labels(splits, label_column, task)
    names = _label_names(splits, label_column, task)
    if names is not None and len(names) < 2 and task == "single_label_classification":
        raise DataError(
            f"The train split has only one class ({names[0]!r}); classification needs at least two classes."
        )
    splits = _encode_labels(splits, label_column, task, names)
    if check_examples and modality.check_example is not None:
        check_examples_readable(splits, input_column, modality)
    made = _make_splits(splits, label_column, task, seed=seed, test_size=test_size, validation_size=validation_size)
    counts = _class_counts(splits["train"], label_column, task, names)
    target = TargetData(splits, input_column, label_column, task, names, modality.name, counts, made)
    _report(target)
    return target


def check_examples_readable(splits: dict[str, Any], input_column: str, modality: Modality) -> None:
    """Run the modality's example check on every example; one error naming each unreadable one, with the fix.

    :raises UnreadableExampleError: listing the unreadable examples (split,
        row and the plugin's message, which names the file), before any model loads.
    """
    bad: list[str] = []
    count = 0
    for split, ds in splits.items():
        for row, value in enumerate(column_values(ds, input_column)):
            try:
                modality.check_example(value)
            except UnreadableExampleError as exc:
                count += 1
                if len(bad) < 5:
                    bad.append(f"{split} split, row {row}: {str(exc).rstrip('.')}")
    if count == 1:
        raise UnreadableExampleError(f"An example cannot be read ({bad[0]}). Remove or replace that file, or drop "
                                     "the example from the data, then run again.")
    if count:
        more = f"; and {count - len(bad)} more" if count > len(bad) else ""
        raise UnreadableExampleError(f"{count} examples cannot be read ({'; '.join(bad)}{more}). Remove or replace "
                                     "those files, or drop those examples from the data, then run again.")


def _undecoded(ds: Any, column: str) -> Any:
    """Keep images and audio encoded (bytes/path) until a batch needs them."""
    feature = ds.features[column]
    if type(feature).__name__ in ("Image", "Audio") and getattr(feature, "decode", False):
        return ds.cast_column(column, type(feature)(decode=False) if type(feature).__name__ == "Image" else _audio_undecoded(feature))
    return ds


def _audio_undecoded(feature: Any) -> Any:
    from datasets import Audio

    return Audio(sampling_rate=feature.sampling_rate, decode=False)


def _class_counts(train: Any, label_column: str, task: str, names: list[str] | None) -> dict[str, int]:
    if names is None:
        return {}
    labels = column_values(train, label_column)
    counter = Counter(x for v in labels for x in v) if task == "multi_label_classification" else Counter(labels)
    return {name: counter.get(i, 0) for i, name in enumerate(names)}


def _report(target: TargetData) -> None:
    sizes = ", ".join(f"{n} {len(ds)}" for n, ds in target.splits.items())
    logger.info("Target data: %s task, input %r, label %r; %s.", target.task, target.input_column, target.label_column, sizes)
    counts = target.class_counts
    if counts:
        logger.info("Train examples per class: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
        present = [v for v in counts.values() if v > 0]
        if present and max(present) > 3 * min(present):
            logger.warning(
                "The classes are imbalanced (largest %d, smallest %d examples); consider class_weights='balanced'.",
                max(present), min(present),
            )


def class_weights(target: TargetData) -> list[float]:
    """``balanced`` class weights: n_examples / (n_classes * n_of_class)."""
    counts = list(target.class_counts.values())
    total = sum(counts)
    return [total / (len(counts) * c) if c else 0.0 for c in counts]
