"""Transfer strategies: what trains, at which learning rate, and what feeds the head.

============  =====================================================  ================
strategy      what trains                                            backbone runs
============  =====================================================  ================
linear_probe  the head only; backbone frozen                         once per example, ever (cached)
partial       the head and the top ``trainable_layers`` layer groups  every step
full          everything, with layer-wise learning-rate decay        every step
lp_ft         linear probe first, then ``full`` from that head       once, then every step
lora          head + low-rank adapters (peft); backbone frozen       every step
============  =====================================================  ================

``auto`` fits the probe, then fine-tunes from its head when
:mod:`tlzoo.training.ladder` measures that fine-tuning can pay -- every layer
(LP-FT, Kumar et al. 2022), the top layers when only they fit the time budget,
or ``lora`` on a backbone large enough that full fine-tuning's optimizer state
is what runs out first -- and keeps the better on validation.

``lora`` (Hu et al. 2021) wraps the backbone in peft's LoRA adapters
(:func:`tlzoo.training.lora.inject_lora`), trains them with the head in the same
loop, and folds them into the backbone's weights afterwards
(:func:`tlzoo.training.lora.merge_lora`), so the adapted model is a plain
backbone + head like every other strategy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlzoo.errors import ConfigurationError, did_you_mean
from tlzoo.training.lora import LoraSettings, inject_lora

if TYPE_CHECKING:
    from torch import nn

    from tlzoo.features.extractor import FeatureExtractor

STRATEGIES = ("linear_probe", "partial", "full", "lp_ft", "lora")


@dataclass(frozen=True)
class Defaults:
    """Default epochs and learning rate of a training phase."""

    epochs: int
    learning_rate: float


# A probe trained by gradient steps (an mlp head, or lp_epochs given): cached features make epochs cheap.
PROBE = Defaults(epochs=30, learning_rate=3e-3)
# Fine-tuning: the epochs come from the data size (ladder.fine_tune_epochs) and the rate from a range test
# unless given; these are the starting point of the range test's ratios.
FINE_TUNE = Defaults(epochs=5, learning_rate=5e-5)
# LoRA's adapters start at zero (B = 0) and hold few weights: a 10x higher rate and more epochs than full fine-tuning.
LORA = Defaults(epochs=10, learning_rate=5e-4)


def check_strategy(strategy: str) -> str:
    """Validate a strategy name (``auto`` or one of :data:`STRATEGIES`)."""
    if strategy != "auto" and strategy not in STRATEGIES:
        raise ConfigurationError(
            f"Unknown strategy {strategy!r}; expected 'auto' or one of {', '.join(STRATEGIES)}."
            + did_you_mean(strategy, STRATEGIES)
        )
    return strategy


def trainable_groups(extractor: FeatureExtractor, strategy: str, trainable_layers: int,
                     lora: LoraSettings | None = None) -> list[Any]:
    """Freeze the backbone, then unfreeze the layer groups *strategy* trains; return them.

    For ``lora`` the backbone stays frozen and its adapters, injected by
    :func:`inject_lora` with the *lora* settings, are the one group returned.
    """
    groups = extractor.layer_groups()
    for param in extractor.parameters():
        param.requires_grad_(False)
    if strategy in ("full", "lp_ft"):
        chosen = groups
    elif strategy == "lora":
        return [inject_lora(extractor, lora or LoraSettings())]
    elif strategy == "partial":
        if trainable_layers < 1:
            raise ConfigurationError(f"trainable_layers must be at least 1 for 'partial', got {trainable_layers}.")
        chosen = groups[-trainable_layers:]
    else:
        chosen = []
    for group in chosen:
        for param in group.parameters:
            param.requires_grad_(True)
    return chosen


def parameter_groups(
    groups: list[Any], head: nn.Module, *, learning_rate: float, weight_decay: float, layer_decay: float
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head at *learning_rate*, each backbone group decayed.

    Layer-wise learning-rate decay: group ``i`` of ``n`` (counted from the
    input) trains at ``learning_rate * layer_decay ** (n - i)``, so the
    pretrained lower layers move least. Biases and norms get no weight decay.
    """
    out: list[dict[str, Any]] = []

    def add(params: list[Any], lr: float, name: str) -> None:
        decay = [p for p in params if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
        if decay:
            out.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": name})
        if no_decay:
            out.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{name}.no_decay"})

    n = len(groups)
    for i, group in enumerate(groups):
        add(group.parameters, learning_rate * layer_decay ** (n - i), group.name)
    add(list(head.parameters()), learning_rate, "head")
    return out
