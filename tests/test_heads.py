"""Generic head factories."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import tlzoo
from tlzoo.errors import ConfigurationError
from tlzoo.heads import TaskSpec, build_head


@pytest.mark.parametrize("task", ["single_label_classification", "multi_label_classification", "regression"])
@pytest.mark.parametrize("head", ["linear", {"name": "mlp", "hidden_size": 16, "dropout": 0.0}, {"name": "linear", "dropout": 0.2}])
def test_heads_map_features_to_outputs(head: Any, task: str) -> None:
    module = build_head(head, 12, TaskSpec(task, 3 if task != "regression" else 1))
    out = module(torch.randn(5, 12))
    assert out.shape == (5, 3 if task != "regression" else 1)
    out.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_unknown_head_and_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="Did you mean 'linear'"):
        build_head("linaer", 4, TaskSpec("regression", 1))
    with pytest.raises(ConfigurationError, match="has no option .width.; its options are: hidden_size, dropout"):
        build_head({"name": "mlp", "width": 3}, 4, TaskSpec("regression", 1))
    with pytest.raises(ConfigurationError, match="Unknown task"):
        TaskSpec("clustering", 2)


def test_plugin_head_is_available(register_plugin: Any) -> None:
    class Cosine(torch.nn.Module):
        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(n_out, n_in))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(self.weight, dim=-1).T

    class HeadPlugin:
        @tlzoo.hookimpl
        def register_heads(self, register: Any) -> None:
            register("cosine", lambda n_in, task: Cosine(n_in, task.num_labels))

    register_plugin(HeadPlugin(), name="cosine-head")
    out = build_head("cosine", 6, TaskSpec("single_label_classification", 4))(torch.randn(2, 6))
    assert out.shape == (2, 4) and out.abs().max() <= 1.0 + 1e-6


def test_unknown_head_options_are_refused_before_any_model_loads_and_name_the_valid_ones(tmp_path: Any) -> None:
    import tlzoo
    from tlzoo.errors import ConfigurationError

    data = {"text": ["a b", "c d"] * 10, "label": [0, 1] * 10}
    import datasets

    with pytest.raises(ConfigurationError, match=r"no option 'hidden'; its options are: hidden_size, dropout\. "
                                                 r"Did you mean 'hidden_size'\?"):
        tlzoo.adapt(str(tmp_path / "no-such-model-needed"), datasets.Dataset.from_dict(data), head="mlp",
                    head_options={"hidden": 64}, progress=False)
