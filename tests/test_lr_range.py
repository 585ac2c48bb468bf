"""The learning-rate range test on tiny models and synthetic data where the answer is known.

The models, batches and losses are the loop's own (``TaskModel``, ``FeatureBatches``,
``Collate``, ``make_loss``), prepared by an accelerate ``Accelerator`` on the CPU as
``run_phase`` prepares them, or left unprepared.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tlzoo.errors import TrainingError
from tlzoo.training.batches import Collate, FeatureBatches
from tlzoo.training.loop import TaskModel, make_loss
from tlzoo.training.lr_range import RangeTest, centred_average, lr_range_test, suggest

SINGLE = "single_label_classification"


def make_accelerator(gradient_accumulation_steps: int = 1, **kwargs):
    """An Accelerator set up as ``train.make_accelerator`` sets it up, on the CPU unless told otherwise."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    kwargs.setdefault("cpu", True)
    return Accelerator(gradient_accumulation_steps=gradient_accumulation_steps,
                       dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
                       **kwargs)


def standardised_data(task: str, rows: int = 512, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, list]:
    """Standardised features and labels of a linear model: values (regression) or 3 classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    scores = x @ rng.normal(size=(dim, 3))
    if task == "regression":
        return x, list(scores[:, 0] + 0.1 * rng.normal(size=rows))
    return x, list(np.argmax(scores * 2 + rng.gumbel(size=scores.shape), 1))


def loader_for(x: np.ndarray, labels: list, task: str, batch_size: int = 32, seed: int = 0) -> DataLoader:
    """Shuffled batches of cached features, as ``train`` builds them."""
    num_labels = 1 if task == "regression" else 3
    return DataLoader(FeatureBatches(x, labels), batch_size=batch_size, shuffle=True, collate_fn=Collate(None, task,
                      num_labels), generator=torch.Generator().manual_seed(seed))


def linear_model(dim: int, outputs: int, seed: int = 0) -> TaskModel:
    torch.manual_seed(seed)
    return TaskModel(None, nn.Linear(dim, outputs))


@pytest.mark.parametrize("task", [SINGLE, "regression"])
@pytest.mark.parametrize("prepared", [False, True])
def test_a_linear_model_on_standardised_data_gets_a_sensible_rate(task, prepared):
    """AdamW on a linear model of standardised features trains well at 1e-2..1e-1: the suggestion is there."""
    x, labels = standardised_data(task)
    model = linear_model(x.shape[1], 1 if task == "regression" else 3)
    loader = loader_for(x, labels, task)
    accelerator = make_accelerator()
    groups = [{"params": list(model.parameters()), "lr": 1e-3, "weight_decay": 0.01}]
    if prepared:
        model, loader = accelerator.prepare(model, loader)
    found = lr_range_test(model, groups, loader, make_loss(task), accelerator)
    assert isinstance(found, RangeTest)
    assert 1e-3 <= found.learning_rate <= 1.0
    assert found.learning_rate == pytest.approx(min(found.best_rate / 2, 0.1))  # max_lr=0.1
    assert not found.flat and found.best_rate < found.rates[-1]  # the loss rose again before the range's end
    assert min(found.smoothed) < 0.5 * found.smoothed[0]
    assert len(found.rates) == len(found.losses) == len(found.smoothed) <= 60
    assert all(b > a for a, b in zip(found.rates, found.rates[1:]))
    assert found.apply(groups)[0]["lr"] == found.learning_rate and groups[0]["lr"] == 1e-3
    assert set(found.to_dict()) >= {"learning_rate", "steps", "diverged", "flat", "reason", "seconds"}


def test_the_suggestion_trains_to_the_noise_floor_where_a_hundredth_of_it_does_not():
    """The answer checked by training: ten epochs at the suggestion take the MSE from about 4 to near
    the noise's 0.01; at a hundredth of it, hardly anywhere."""
    x, labels = standardised_data("regression")
    loader = loader_for(x, labels, "regression")
    accelerator = make_accelerator()
    model = linear_model(x.shape[1], 1)
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}], loader, nn.MSELoss(),
                          accelerator)

    def final_loss(rate: float) -> float:
        trained = linear_model(x.shape[1], 1)
        optimizer = torch.optim.AdamW(trained.parameters(), lr=rate)
        batches = [batch for _ in range(10) for batch in loader]
        for batch in batches:
            optimizer.zero_grad()
            nn.functional.mse_loss(trained(batch).float(), batch["labels"]).backward()
            optimizer.step()
        with torch.no_grad():
            return float(nn.functional.mse_loss(trained({"features": torch.from_numpy(x)}).squeeze(-1),
                                                torch.tensor(labels, dtype=torch.float32)))

    assert final_loss(found.learning_rate) < 0.05 and final_loss(found.learning_rate / 100) > 2.0


def test_with_the_loops_linear_decay_half_the_minimum_beats_a_tenth_of_it():
    """Why the suggestion halves the best rate instead of taking fastai's tenth: two epochs decaying
    linearly from the peak, as the loop schedules them, end far lower from the half."""
    x, labels = standardised_data("regression", rows=256)
    loader = loader_for(x, labels, "regression")
    model = linear_model(x.shape[1], 1)
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}], loader, nn.MSELoss(),
                          make_accelerator())

    def final_loss(rate: float, epochs: int = 2) -> float:
        trained = linear_model(x.shape[1], 1)
        optimizer = torch.optim.AdamW(trained.parameters(), lr=rate)
        total = epochs * len(loader)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
        for _ in range(epochs):
            for batch in loader:
                optimizer.zero_grad()
                nn.functional.mse_loss(trained(batch).float(), batch["labels"]).backward()
                optimizer.step()
                schedule.step()
        with torch.no_grad():
            return float(nn.functional.mse_loss(trained({"features": torch.from_numpy(x)}).squeeze(-1),
                                                torch.tensor(labels, dtype=torch.float32)))

    assert found.learning_rate == pytest.approx(min(found.best_rate / 2, 0.1))  # max_lr=0.1
    assert final_loss(found.learning_rate) < final_loss(found.best_rate / 10) / 3


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> dict:
    return {"weights": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict()),
            "rng": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()[1].copy(),
            "loader": loader.generator.get_state(), "training": model.training}


def _assert_same(before: dict, after: dict) -> None:
    assert before["weights"].keys() == after["weights"].keys()
    assert all(torch.equal(before["weights"][k], after["weights"][k]) for k in before["weights"])
    assert before["optimizer"]["param_groups"] == after["optimizer"]["param_groups"]
    for key, state in before["optimizer"]["state"].items():
        assert state.keys() == after["optimizer"]["state"][key].keys()
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(after["optimizer"]["state"][key][k]))
                   for k, v in state.items())
    assert torch.equal(before["rng"], after["rng"]) and torch.equal(before["loader"], after["loader"])
    assert before["python"] == after["python"] and np.array_equal(before["numpy"], after["numpy"])
    assert before["training"] == after["training"]


def _model_with_buffers_and_dropout(dim: int) -> TaskModel:
    torch.manual_seed(1)
    return TaskModel(None, nn.Sequential(nn.Linear(dim, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                                         nn.Linear(16, 3)))


def _train(model: TaskModel, optimizer: torch.optim.Optimizer, loader: DataLoader, steps: int) -> None:
    model.train()
    for _, batch in zip(range(steps), loader):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(batch), batch["labels"]).backward()
        optimizer.step()


@pytest.mark.parametrize("own_optimizer", [False, True])
def test_everything_is_restored_and_training_goes_on_as_without_the_test(own_optimizer):
    """Weights, batch-norm statistics, the optimizer's state, the random generators, the loader's
    shuffle, train/eval mode: put back exactly, so training continues bit for bit as it would have."""
    x, labels = standardised_data(SINGLE)
    runs = []
    for with_test in (False, True):
        model = _model_with_buffers_and_dropout(x.shape[1])
        groups = [{"params": list(model.head[0].parameters()), "lr": 1e-3},
                  {"params": list(model.head[1].parameters()) + list(model.head[4].parameters()), "lr": 5e-3}]
        optimizer = torch.optim.AdamW(copy.copy(groups))
        loader = loader_for(x, labels, SINGLE, seed=3)
        torch.manual_seed(5)
        _train(model, optimizer, loader, 4)  # some optimizer state to keep
        model.eval()
        if with_test:
            before = _snapshot(model, optimizer, loader)
            found = lr_range_test(model, groups, loader, make_loss(SINGLE), make_accelerator(),
                                  optimizer=optimizer if own_optimizer else None, max_grad_norm=1.0)
            assert len(found.rates) > 10
            _assert_same(before, _snapshot(model, optimizer, loader))
            assert all(p.grad is None for p in model.parameters())
            assert [g["lr"] for g in groups] == [1e-3, 5e-3] and [g["lr"] for g in optimizer.param_groups] == [1e-3, 5e-3]
        _train(model, optimizer, loader, 20)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_prepared_loader_left_mid_pass_does_not_stay_active():
    """accelerate tracks the loader being iterated; the test's unfinished pass must not linger there."""
    x, labels = standardised_data(SINGLE)
    accelerator = make_accelerator(gradient_accumulation_steps=2)
    model, loader = accelerator.prepare(linear_model(x.shape[1], 3), loader_for(x, labels, SINGLE))
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}], loader, make_loss(SINGLE),
                          accelerator, steps=7)
    assert len(found.rates) == 7 < len(loader)
    assert accelerator.gradient_state.active_dataloader is None
    assert sum(1 for _ in loader) == len(loader)


def test_the_curve_does_not_depend_on_gradient_accumulation():
    """A range-test step is one batch, one update, whatever the accumulation the loop will use."""
    x, labels = standardised_data("regression")
    curves = []
    for steps in (1, 4):
        model = linear_model(x.shape[1], 1)
        found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}],
                              loader_for(x, labels, "regression"), nn.MSELoss(), make_accelerator(steps))
        curves.append(found.losses)
    assert curves[0] == pytest.approx(curves[1], rel=1e-5)


def test_divergence_stops_the_test_early():
    x, labels = standardised_data("regression")
    model = linear_model(x.shape[1], 1)
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}],
                          loader_for(x, labels, "regression"), nn.MSELoss(), make_accelerator(), end=1e4, steps=80)
    assert found.diverged and len(found.rates) < 80 and found.rates[-1] < 1e3
    assert found.learning_rate == pytest.approx(min(found.best_rate / 2, 0.1)) and found.best_rate < found.rates[-1]


def test_a_non_finite_loss_stops_the_test():
    x, labels = standardised_data("regression")
    model = linear_model(x.shape[1], 1)
    labels = [v if i != 40 else float("nan") for i, v in enumerate(labels)]  # one bad label in the second pass
    loader = DataLoader(FeatureBatches(x, labels), batch_size=32, collate_fn=Collate(None, "regression", 1))
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}], loader, nn.MSELoss(),
                          make_accelerator(), steps=30)
    assert found.diverged and len(found.rates) == 1  # the second batch holds it
    assert all(torch.isfinite(p).all() for p in model.parameters())


class _Unmoved(nn.Module):
    """A model whose output does not depend on its parameter: the loss cannot move."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(8, 3))

    def forward(self, batch: dict) -> torch.Tensor:
        return batch["features"] @ (self.weight * 0.0)


def test_a_flat_curve_keeps_the_given_rate():
    x, labels = standardised_data(SINGLE)
    model = _Unmoved()
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 3e-4}], loader_for(x, labels, SINGLE),
                          make_loss(SINGLE), make_accelerator(), steps=20)
    assert found.flat and not found.diverged and found.learning_rate == 3e-4
    assert "hardly moved" in found.reason and len(found.rates) == 20


def test_a_flat_curve_that_diverges_caps_the_given_rate_below_the_divergence():
    """Targets independent of the features, the model at their mean: nothing to learn until the rate
    is large enough to throw the model off."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 2)).astype(np.float32)
    labels = list(rng.normal(size=2048))
    model = linear_model(2, 1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(float(np.mean(labels)))
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1.0}],
                          loader_for(x, labels, "regression", batch_size=512), nn.MSELoss(), make_accelerator(),
                          end=100.0)
    assert found.flat and found.diverged
    assert found.learning_rate == pytest.approx(found.rates[-1] / 10) and found.learning_rate < 1.0


def test_suggest_and_its_bounds():
    rates = list(np.logspace(-6, 0, 13))
    valley = [2.0 - np.exp(-((np.log10(r) + 2) ** 2)) for r in rates]  # lowest at 1e-2
    rate, smoothed, flat, _ = suggest(rates, valley, fallback=5e-5, min_lr=1e-6, max_lr=1e-1, diverged=False,
                                      window=1)
    assert rate == pytest.approx(5e-3) and not flat and smoothed == valley
    assert suggest(rates, valley, fallback=5e-5, min_lr=1e-6, max_lr=1e-1, diverged=False, window=1,
                   divisor=10)[0] == pytest.approx(1e-3)
    assert suggest(rates, valley, fallback=5e-5, min_lr=2e-2, max_lr=1e-1, diverged=False, window=1)[0] == 2e-2
    assert suggest(rates, valley, fallback=5e-5, min_lr=1e-6, max_lr=1e-4, diverged=False, window=1)[0] == 1e-4
    assert suggest([], [], fallback=5e-5, min_lr=1e-6, max_lr=1e-1, diverged=False)[0] == 5e-5
    assert centred_average([0.0, 3.0, 6.0, 9.0], 3) == [1.5, 3.0, 6.0, 7.5]


def test_an_empty_loader_is_an_error():
    model = linear_model(8, 1)
    empty = DataLoader(FeatureBatches(np.zeros((0, 8), np.float32), []), batch_size=4,
                       collate_fn=Collate(None, "regression", 1))
    with pytest.raises(TrainingError, match="no batch"):
        lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}], empty, nn.MSELoss(),
                      make_accelerator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_a_gpu_with_fp16_and_its_gradient_scaler():
    x, labels = standardised_data(SINGLE)
    accelerator = make_accelerator(cpu=False, mixed_precision="fp16")
    model, loader = accelerator.prepare(linear_model(x.shape[1], 3), loader_for(x, labels, SINGLE))
    scale = accelerator.scaler.get_scale()
    before = {k: v.clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    found = lr_range_test(model, [{"params": list(model.parameters()), "lr": 1e-3}], loader, make_loss(SINGLE),
                          accelerator)
    assert 1e-3 <= found.learning_rate <= 1.0 and not found.flat
    assert accelerator.scaler.get_scale() == scale
    after = accelerator.unwrap_model(model).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
