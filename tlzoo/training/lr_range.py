"""The learning-rate range test: the fine-tuning learning rate, measured on the model and the data.

Smith (2017, "Cyclical learning rates for training neural networks") and
fastai's ``lr_find``: train for a few dozen steps while the learning rate grows
exponentially from tiny to large, record the training loss, and take the rate
where the loss, smoothed without lag, was lowest (Smith's upper bound: where
the loss stops improving), halved to keep away from the divergence that
follows it. The test stops early once the loss diverges.

Why a half and not fastai's tenth: the loop decays the rate linearly from the
peak, and on the tiny models and data of ``tests/test_lr_range.py`` and
``tests/test_adapt.py`` a tenth of the minimum left 2- to 10-epoch runs with a
final loss several times higher than the minimum itself or half of it did
(fastai's tenth is taken on a curve smoothed with lag, which already lies past
the true minimum). Everything it touches is put back afterwards (weights and buffers,
the optimizer's state when one is given, the gradient scaler, the random
number generators, the loader's generators, train/eval mode), so it changes
nothing but the choice.

It takes the objects :func:`tlzoo.training.loop.run_phase` has: the model
(prepared by the accelerator or not), its parameter groups, the training
loader, the loss and the accelerator; batches are dictionaries with
``"labels"``, and ``model(batch)`` returns the logits, as in the loop.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tlzoo.errors import TrainingError

logger = logging.getLogger(__name__)

#: Devices where torch's fused AdamW kernel runs (as the loop uses it).
FUSED_DEVICES = ("cpu", "cuda")


@dataclass
class RangeTest:
    """What :func:`lr_range_test` measured and suggests.

    :ivar learning_rate: the suggested peak learning rate: that of the parameter group with the
        largest rate (the head's); :meth:`apply` scales every group by the same factor.
    :ivar rates: the peak learning rate of each step, in order.
    :ivar losses: each step's training loss (averaged over processes), before its update.
    :ivar smoothed: ``losses`` smoothed by a centred moving average (no lag behind the rates).
    :ivar best_rate: the rate at the lowest smoothed loss.
    :ivar diverged: the test stopped early: the loss blew up (or became NaN/inf).
    :ivar flat: the loss hardly changed before diverging or the end of the range: the curve says
        nothing about the rate, so ``learning_rate`` is the one the groups had (capped below
        the divergence).
    :ivar reason: how ``learning_rate`` was chosen, in words.
    :ivar seconds: the test's wall time; ``step_seconds``: mean time of one step.
    """

    learning_rate: float
    rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    best_rate: float = math.nan
    diverged: bool = False
    flat: bool = False
    reason: str = ""
    seconds: float = 0.0
    step_seconds: float = 0.0

    def apply(self, param_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copies of *param_groups* whose largest rate is ``learning_rate`` (the ratios kept)."""
        peak = max(group["lr"] for group in param_groups)
        return [{**group, "lr": group["lr"] / peak * self.learning_rate} for group in param_groups]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for the recipe)."""
        return {"learning_rate": self.learning_rate, "best_rate": self.best_rate, "steps": len(self.rates),
                "diverged": self.diverged, "flat": self.flat, "reason": self.reason,
                "seconds": round(self.seconds, 3), "step_seconds": round(self.step_seconds, 4)}


def centred_average(values: list[float], window: int) -> list[float]:
    """The mean of each value's neighbourhood of *window* values (fewer at the ends)."""
    half = window // 2
    return [float(np.mean(values[max(0, i - half):i + half + 1])) for i in range(len(values))]


def suggest(rates: list[float], losses: list[float], *, fallback: float, min_lr: float, max_lr: float,
            diverged: bool, window: int = 7, divisor: float = 2.0,
            flat_tolerance: float = 0.05) -> tuple[float, list[float], bool, str]:
    """The suggested rate from a recorded curve: ``(rate, smoothed losses, flat, reason)``.

    The rate at the lowest smoothed loss over *divisor*, within ``[min_lr, max_lr]``.
    If the smoothed loss never fell by *flat_tolerance* (a fraction) below where it
    started, the curve is flat: *fallback*, capped at a tenth of the rate where the
    loss diverged.
    """
    if not rates:
        return fallback, [], True, "the test ran no step: the given learning rate is kept"
    smoothed = centred_average(losses, window)
    best = int(np.argmin(smoothed))
    start, lowest = smoothed[0], smoothed[best]
    if start - lowest <= flat_tolerance * abs(start):
        chosen = min(fallback, rates[-1] / 10) if diverged else fallback
        end = f"diverged at {rates[-1]:.2g}" if diverged else f"up to {rates[-1]:.2g}"
        return chosen, smoothed, True, (f"the loss hardly moved ({start:.4g} to at best {lowest:.4g}, {end}): "
                                        f"kept the given learning rate{' below the divergence' if diverged else ''}")
    chosen = min(max(rates[best] / divisor, min_lr), max_lr)
    where = "at the end of the range, still falling" if best == len(rates) - 1 and not diverged else "lowest"
    reason = (f"smoothed loss {lowest:.4g} ({where}) at {rates[best]:.2g}, from {start:.4g}: "
              f"divided by {divisor:g}, within [{min_lr:.2g}, {max_lr:.2g}]")
    return chosen, smoothed, False, reason


def lr_range_test(model: Any, param_groups: list[dict[str, Any]], loader: Any, loss_fn: Any, accelerator: Any, *,
                  optimizer: Any = None, start: float = 1e-7, end: float = 10.0, steps: int = 60,
                  smoothing: float = 0.8, diverge: float = 4.0, min_lr: float = 1e-6, max_lr: float = 1e-1,
                  max_grad_norm: float | None = None) -> RangeTest:
    """Run the range test on *model* and suggest a peak learning rate.

    :param model: the model, prepared by *accelerator* or not (it is then used where it is, on
        ``accelerator.device``); ``model(batch)`` gives the logits.
    :param param_groups: the optimizer's groups (``"params"``, ``"lr"``, ...); never modified. Each
        group's rate is ``rate * group["lr"] / largest lr``, so layer-wise ratios are kept.
    :param loader: the training batches (a prepared loader or not); re-iterated if too short.
    :param loss_fn: ``loss_fn(logits.float(), batch["labels"])``, as in the loop.
    :param optimizer: an optimizer over those groups to use (its state is restored afterwards);
        default: a fresh AdamW over copies of *param_groups*, fused where the loop's is.
    :param start, end: the rates of the first and last step (exponential in between), *steps* steps.
    :param smoothing: the online loss average's weight of the past (bias-corrected), which the
        divergence test watches: stop once it exceeds *diverge* times its lowest value.
    :param min_lr, max_lr: the bounds of the suggestion.
    :param max_grad_norm: clip gradients to this norm, as the loop does.
    :returns: the curve and the suggestion (:class:`RangeTest`); all processes get the same.

    Not for DeepSpeed or FSDP models (their optimizers and gradients are not plain torch ones).
    """
    began = time.perf_counter()
    device = accelerator.device
    peak = max(group["lr"] for group in param_groups)
    if optimizer is None:
        groups = [{**group, "params": list(group["params"])} for group in param_groups]
        optimizer = torch.optim.AdamW(groups, fused=device.type in FUSED_DEVICES)
    inner = getattr(optimizer, "optimizer", optimizer)  # an accelerate AcceleratedOptimizer wraps a torch one
    base = [group.get("initial_lr", group["lr"]) for group in inner.param_groups]  # a scheduler's, if any
    ratios = [rate / max(base) for rate in base]
    if hasattr(loss_fn, "to"):
        loss_fn = loss_fn.to(device)
    rates, losses, step_times = [], [], []
    diverged = False
    with _restored(model, inner, accelerator, loader):
        model.train()
        average, lowest = 0.0, math.inf
        batches = _batches(loader, device)
        try:
            for step in range(steps):
                rate = start * (end / start) ** (step / max(steps - 1, 1))
                for group, ratio in zip(inner.param_groups, ratios):
                    group["lr"] = rate * ratio
                began_step = time.perf_counter()
                loss = _step(model, inner, next(batches), loss_fn, accelerator, max_grad_norm)
                step_times.append(time.perf_counter() - began_step)
                if not math.isfinite(loss):
                    diverged = True
                    break
                rates.append(rate)
                losses.append(loss)
                average = smoothing * average + (1 - smoothing) * loss
                current = average / (1 - smoothing ** (step + 1))
                lowest = min(lowest, current)
                if step >= 5 and current > diverge * lowest:
                    diverged = True
                    break
        finally:
            batches.close()
    chosen, smoothed, flat, reason = suggest(rates, losses, fallback=peak, min_lr=min_lr, max_lr=max_lr,
                                             diverged=diverged)
    best_rate = rates[int(np.argmin(smoothed))] if smoothed else math.nan
    result = RangeTest(chosen, rates, losses, smoothed, best_rate, diverged, flat, reason,
                       time.perf_counter() - began, float(np.mean(step_times)) if step_times else 0.0)
    logger.info("Learning-rate range test: %d steps in %.1f s; learning rate %.2g (%s).", len(rates),
                result.seconds, chosen, reason)
    return result


def _step(model: Any, optimizer: torch.optim.Optimizer, batch: dict[str, Any], loss_fn: Any, accelerator: Any,
          max_grad_norm: float | None) -> float:
    """One training step on *batch*; its loss averaged over processes (NaN/inf: no update)."""
    with accelerator.autocast():
        loss = loss_fn(model(batch).float(), batch["labels"])
    value = float(accelerator.reduce(loss.detach(), "mean"))
    if not math.isfinite(value):
        return value
    accelerator.backward(loss * accelerator.gradient_accumulation_steps)  # one batch, one step
    scaler = accelerator.scaler
    if max_grad_norm:
        if scaler is not None:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return value


def _batches(loader: Any, device: torch.device) -> Iterator[dict[str, Any]]:
    """The loader's batches on *device*, round and round; closing it finishes the pass it is in."""
    from accelerate.utils import send_to_device

    while True:
        iterator = iter(loader)
        seen = False
        try:
            for batch in iterator:
                seen = True
                yield send_to_device(batch, device)
        finally:
            if hasattr(iterator, "close"):
                iterator.close()
            if hasattr(loader, "gradient_state") and hasattr(loader, "end"):
                loader.end()  # an accelerate loader left mid-pass would stay the "active" one (idempotent)
        if not seen:
            raise TrainingError("The learning-rate range test got no batch from the training loader; it needs "
                                "at least one.")


def _generators(loader: Any) -> list[torch.Generator]:
    """The torch generators a loader shuffles with (its own, its sampler's, its batch sampler's)."""
    found = []
    for owner in (loader, getattr(loader, "base_dataloader", None)):
        for path in (("generator",), ("sampler", "generator"), ("batch_sampler", "sampler", "generator")):
            value = owner
            for name in path:
                value = getattr(value, name, None)
            if isinstance(value, torch.Generator) and all(value is not g for g in found):
                found.append(value)
    return found


@contextmanager
def _restored(model: Any, optimizer: torch.optim.Optimizer, accelerator: Any, loader: Any) -> Iterator[None]:
    """Put back, on exit, everything a few training steps change."""
    unwrapped = accelerator.unwrap_model(model)
    weights = {k: v.detach().to("cpu", copy=True) for k, v in unwrapped.state_dict().items()}
    # in place, not by load_state_dict: that would give the optimizer new group dicts, cutting them off from the
    # caller's (an optimizer built from param_groups shares their dicts) and from a scheduler's view
    hyperparameters = [{k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
                       for group in optimizer.param_groups]
    state = {p: {k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in s.items()}
             for p, s in optimizer.state.items()}
    scaler_state = copy.deepcopy(accelerator.scaler.state_dict()) if accelerator.scaler is not None else None
    generators = [(g, g.get_state()) for g in _generators(loader)]
    python_state, numpy_state = random.getstate(), np.random.get_state()
    training = model.training
    device = accelerator.device
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            yield
    finally:
        unwrapped.load_state_dict(weights)
        for group, saved in zip(optimizer.param_groups, hyperparameters):
            group.update(saved)
        optimizer.state.clear()
        optimizer.state.update(state)
        if scaler_state is not None:
            accelerator.scaler.load_state_dict(scaler_state)
        for generator, state in generators:
            generator.set_state(state)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        model.train(training)
        model.zero_grad(set_to_none=True)
