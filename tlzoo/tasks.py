"""The target tasks tlzoo trains for, in one place.

Three tasks, named as transformers names its ``problem_type``:
``single_label_classification``, ``multi_label_classification`` and
``regression``. Data detection, heads, losses, metrics, the export and the
CLI all read these names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlzoo.errors import ConfigurationError, did_you_mean

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
TASKS = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
#: Other names users write for a task.
TASK_ALIASES = {
    "classification": SINGLE_LABEL,
    "single_label": SINGLE_LABEL,
    "multi_label": MULTI_LABEL,
    "multilabel": MULTI_LABEL,
}


def check_task(task: str) -> str:
    """Validate a task name (``auto``, one of :data:`TASKS` or an alias); return its canonical name."""
    if task == "auto":
        return task
    if not isinstance(task, str):
        raise ConfigurationError(f"task must be a name such as 'auto' or {SINGLE_LABEL!r}, got {task!r}.")
    canonical = TASK_ALIASES.get(task, task)
    if canonical not in TASKS:
        raise ConfigurationError(
            f"Unknown task {task!r}; expected 'auto' or one of {', '.join(TASKS)}." + did_you_mean(task, TASKS)
        )
    return canonical


@dataclass(frozen=True)
class TaskSpec:
    """What the head must predict.

    :param problem_type: one of :data:`TASKS`.
    :param num_labels: classes for classification, outputs for regression.
    """

    problem_type: str
    num_labels: int

    def __post_init__(self) -> None:
        if self.problem_type not in TASKS:
            raise ConfigurationError(f"Unknown task {self.problem_type!r}; expected one of {', '.join(TASKS)}.")
        if self.num_labels < 1:
            raise ConfigurationError(f"A task needs at least one output, got num_labels={self.num_labels}.")

    @property
    def num_outputs(self) -> int:
        """Width of the head's output."""
        return self.num_labels

    @property
    def is_classification(self) -> bool:
        """Single- or multi-label classification."""
        return self.problem_type != REGRESSION
