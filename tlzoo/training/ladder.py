"""What ``strategy="auto"`` decides after its linear probe, from what it measured.

``auto`` always starts with the probe: it is cheap (the backbone runs once per
example, and the features are cached), and its validation score is the floor
every later trial must beat. Then :func:`plan_fine_tune` decides whether
fine-tuning from the probed head (LP-FT, Kumar et al. 2022) can pay:

- not when there is no validation split: nothing could tell a better model
  from a worse one;
- not when the probe is already (nearly) perfect on held-out data: the
  validation split, or, when that is a handful, the cross-validation its L2
  was chosen by;
- not when its measured cost -- a forward and backward pass per training
  example per epoch, timed on one batch of the user's data, plus validation --
  exceeds the time budget (``time_budget``, by default ten times what the probe
  cost and at least a minute).

Otherwise the fine-tuning trial runs, starting from the probe's weights, at a
learning rate found by a range test, for :func:`fine_tune_epochs` epochs with
early stopping; it keeps the probe unless it does better on validation. When
it does not beat the probe and the budget still allows, one more trial runs at
:data:`RETRY_FACTOR` times that rate, again from the probe. Every
trial, its cost and why it was kept or dropped is recorded in the recipe
(``recipe["trials"]``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

#: A probe at or above this validation accuracy is kept without trying to fine-tune.
GOOD_ENOUGH = 0.995
#: The default budget: this many times the probe's cost (feature extraction and fit) ...
BUDGET_FACTOR = 10.0
#: ... and never less than this many seconds.
MIN_BUDGET = 60.0
#: ... judged on at least this many held-out examples (fewer say little).
MIN_EVIDENCE = 20
#: Fine-tuning aims at about this many optimizer steps, within the epoch bounds below.
TARGET_STEPS = 300
MIN_EPOCHS, MAX_EPOCHS = 3, 20
#: When fine-tuning at the range test's rate does not beat the probe and the budget allows, ``auto`` tries once
#: more at this many times the rate (a range test from a fitted probe sees the loss rise at once and errs low).
RETRY_FACTOR = 10.0
#: Early-stopping patience of fine-tuning when the user sets none.
PATIENCE = 3


@dataclass
class Decision:
    """Whether ``auto`` fine-tunes after its probe, and why."""

    fine_tune: bool
    reason: str
    estimated_seconds: float
    budget_seconds: float


def fine_tune_epochs(n_train: int, batch_size: int) -> int:
    """Epochs for about :data:`TARGET_STEPS` optimizer steps, between 3 and 20 (early stopping ends most sooner)."""
    steps_per_epoch = max(1, math.ceil(n_train / max(batch_size, 1)))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))))


def step_seconds(extractor: Any, values: list[Any]) -> float:
    """Seconds per example of one forward *and* backward pass, timed on *values* (a batch of the user's data).

    The backward pass is taken as twice the forward pass, the usual ratio.
    """
    if not values:
        return 0.0
    extractor.extract(values[:2])  # warm up (first-call allocations, lazy imports)
    started = time.perf_counter()
    extractor.extract(values)
    return 3 * (time.perf_counter() - started) / len(values)


def plan_fine_tune(*, probe_validation: dict[str, Any] | None, n_train: int, n_validation: int, epochs: int,
                   seconds_per_example: float, probe_seconds: float, time_budget: float | None,
                   probe_held_out: dict[str, Any] | None = None) -> Decision:
    """Decide whether fine-tuning after the probe can pay (see the module docstring).

    :param probe_validation: the probe's validation metrics (``None``: no validation split).
    :param probe_held_out: the probe's accuracy where its L2 was chosen (``accuracy``,
        ``examples``, ``selection``): cross-validated on train when validation is a
        handful, so "already right" is judged on enough examples.
    """
    per_epoch = seconds_per_example * (n_train + n_validation / 3)
    estimate = per_epoch * epochs
    budget = time_budget if time_budget is not None else max(MIN_BUDGET, BUDGET_FACTOR * probe_seconds)
    if probe_validation is None:
        return Decision(False, "there is no validation split to tell whether fine-tuning does better than the "
                               "probe; pass validation data or validation_size to let auto try", estimate, budget)
    accuracy, where = probe_validation.get("accuracy"), f"on {n_validation} validation examples"
    if probe_held_out and probe_held_out.get("examples", 0) > n_validation:
        accuracy = probe_held_out["accuracy"]
        where = f"held out ({probe_held_out['selection']}, {probe_held_out['examples']} examples)"
    if accuracy is not None and accuracy >= GOOD_ENOUGH and max(n_validation, (probe_held_out or {}).get(
            "examples", 0)) >= MIN_EVIDENCE:
        return Decision(False, f"the linear probe is already {accuracy:.1%} accurate {where}", estimate, budget)
    if estimate > budget:
        return Decision(False, f"fine-tuning would take about {estimate:.0f} s ({epochs} epochs at "
                               f"{per_epoch:.1f} s), over the {budget:.0f} s budget; raise time_budget to try it",
                        estimate, budget)
    return Decision(True, f"fine-tuning from the probe's head fits the budget (about {estimate:.0f} s of "
                          f"{budget:.0f} s) and may beat the probe's validation score", estimate, budget)
