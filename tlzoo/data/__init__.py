"""The user's target data: read it (:mod:`~tlzoo.data.reading`), then check, encode and split it (:mod:`~tlzoo.data.target`).

Step "load target data" of ``adapt()``: :func:`load_target_data` turns what the
user passes into :class:`TargetData` before any model is loaded.
"""

from tlzoo.data.reading import FILE_BUILDERS, SPLIT_ALIASES, read_data
from tlzoo.data.target import (
    LABEL_NAMES,
    TargetData,
    class_weights,
    column_values,
    detect_task,
    find_input_column,
    find_label_column,
    load_target_data,
)
from tlzoo.tasks import TASK_ALIASES, check_task

__all__ = [
    "FILE_BUILDERS",
    "LABEL_NAMES",
    "SPLIT_ALIASES",
    "TASK_ALIASES",
    "TargetData",
    "check_task",
    "class_weights",
    "column_values",
    "detect_task",
    "find_input_column",
    "find_label_column",
    "load_target_data",
    "read_data",
]
