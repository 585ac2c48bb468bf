"""What ``strategy="auto"`` decides after its linear probe, from what it measured.

``auto`` always starts with the probe: it is cheap (the backbone runs once per
example, and the features are cached), and its validation score is the floor
every later trial must beat. Then :func:`plan_fine_tune` decides whether
fine-tuning from the probed head (LP-FT, Kumar et al. 2022) can pay:

- not when there is no validation split: nothing could tell a better model
  from a worse one;
- not when the probe is already (nearly) perfect on held-out data: the
  validation split, or, when that is a handful, the cross-validation its L2
  was chosen by; at least :data:`GOOD_ENOUGH` on :data:`MIN_EVIDENCE` examples or
  more, or right on every one of fewer (a fine-tuned model could then only be
  kept for a lower loss on a handful of examples, which is noise, not evidence);
- not when its measured cost -- a forward and backward pass per training
  example per epoch, timed on one batch of the user's data, plus validation --
  exceeds the time budget (``time_budget``, by default ten times what the probe
  cost and at least a minute).

Otherwise it picks how deep to fine-tune, from the backbone's size and the
measured cost:

- ``lora`` on a backbone of :data:`LORA_MIN_PARAMETERS` weights or more, where
  full fine-tuning's optimizer state (twice the weights) is what runs out first;
- ``lp_ft`` (every layer, from the probe's head) when its estimate fits the budget;
- ``partial`` (the top ``trainable_layers`` groups, from the probe's head) when
  only it fits: its backward pass stops at the lowest group it trains, so it
  costs a forward pass plus a backward pass through that fraction of the weights.

The trial starts from the probe's weights, at a learning rate found by a range
test, for :func:`fine_tune_epochs` epochs with early stopping; it keeps the
probe unless it does better on validation. When it does not beat the probe and
the budget still allows, one more trial runs at :data:`RETRY_FACTOR` times that
rate, again from the probe. Every trial, its cost and why it was kept or
dropped is recorded in the recipe (``recipe["trials"]``).
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
#: From this many backbone weights, ``auto`` fine-tunes with LoRA adapters instead of every weight.
LORA_MIN_PARAMETERS = 300_000_000


@dataclass
class Decision:
    """Whether ``auto`` fine-tunes after its probe, and why."""

    fine_tune: bool
    reason: str
    estimated_seconds: float
    budget_seconds: float
    #: the fine-tuning trial to run: ``lp_ft``, ``partial`` or ``lora`` (``lp_ft`` when none runs)
    strategy: str = "lp_ft"


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
                   probe_held_out: dict[str, Any] | None = None, backbone_parameters: int = 0,
                   partial_fraction: float = 1.0) -> Decision:
    """Decide whether fine-tuning after the probe can pay, and how deep (see the module docstring).

    :param probe_validation: the probe's validation metrics (``None``: no validation split).
    :param probe_held_out: the probe's accuracy where its L2 was chosen (``accuracy``,
        ``examples``, ``selection``): cross-validated on train when validation is a
        handful, so "already right" is judged on enough examples.
    :param seconds_per_example: a forward and backward pass through the whole backbone, per example.
    :param backbone_parameters: the backbone's weights (``lora`` from :data:`LORA_MIN_PARAMETERS`).
    :param partial_fraction: the fraction of the backbone's weights ``partial`` would train.
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
    if accuracy is not None and min(accuracy, probe_validation.get("accuracy", accuracy)) >= 1.0:
        return Decision(False, f"the linear probe is already right on every example held out ({where}): a "
                               "fine-tuned model could only be kept for a lower loss on those few, which says "
                               "nothing about its accuracy", estimate, budget)
    if backbone_parameters >= LORA_MIN_PARAMETERS:
        # LoRA's backward pass still runs through every layer: about the cost of full fine-tuning
        if estimate <= budget:
            return Decision(True, f"LoRA fine-tuning from the probe's head fits the budget (about {estimate:.0f} s "
                                  f"of {budget:.0f} s); a backbone of {backbone_parameters / 1e6:.0f}M weights "
                                  f"trains adapters rather than every weight", estimate, budget, "lora")
    elif estimate <= budget:
        return Decision(True, f"fine-tuning from the probe's head fits the budget (about {estimate:.0f} s of "
                              f"{budget:.0f} s) and may beat the probe's validation score", estimate, budget)
    else:
        # forward (a third of the full step) plus a backward pass through the trained fraction (two thirds)
        partial = estimate * (1 + 2 * min(max(partial_fraction, 0.0), 1.0)) / 3
        if partial <= budget:
            return Decision(True, f"fine-tuning every layer would take about {estimate:.0f} s, over the "
                                  f"{budget:.0f} s budget; the top layers alone ({partial_fraction:.0%} of the "
                                  f"weights, about {partial:.0f} s) fit it", partial, budget, "partial")
    return Decision(False, f"fine-tuning would take about {estimate:.0f} s ({epochs} epochs at "
                           f"{per_epoch:.1f} s), over the {budget:.0f} s budget; raise time_budget to try it",
                    estimate, budget)
