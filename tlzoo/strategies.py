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

``auto`` picks one of the first four from the amount of labelled data, the
number of classes and the backbone's size, and says why (Kumar et al. 2022 for
LP-FT); it never picks ``lora``, which is the user's call (see
:func:`choose_strategy`).

``lora`` (Hu et al. 2021) wraps the backbone in peft's LoRA adapters
(:func:`inject_lora`), trains them with the head in the same loop, and folds
them into the backbone's weights afterwards (:func:`merge_lora`), so the
adapted model is a plain backbone + head like every other strategy's.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlzoo.errors import ConfigurationError, did_you_mean

if TYPE_CHECKING:
    from torch import nn

    from tlzoo.features import FeatureExtractor, LayerGroup

logger = logging.getLogger(__name__)

STRATEGIES = ("linear_probe", "partial", "full", "lp_ft", "lora")


@dataclass(frozen=True)
class Defaults:
    """Default epochs and learning rate of a training phase."""

    epochs: int
    learning_rate: float


# Head-only training on cached features is nearly free: more epochs, higher rate.
PROBE = Defaults(epochs=30, learning_rate=3e-3)
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


def choose_strategy(n_train: int, num_labels: int, backbone_params: int, *, on_gpu: bool) -> tuple[str, str]:
    """The strategy ``auto`` stands for, and the reason, from data and model size.

    - Few labels (under 40 per class or 400 in all): ``linear_probe``: too
      little data to move millions of weights without overfitting; the
      pretrained features are the safest bet, and training is cheap.
    - A large backbone (over 150M parameters) without a GPU: ``linear_probe``,
      since fine-tuning it on a CPU costs hours.
    - Moderate data (under 5,000 examples): ``lp_ft``: fine-tuning from a
      probed head keeps the pretrained features from being distorted early on.
    - Plenty of data: ``full`` fine-tuning with layer-wise learning-rate decay.

    ``lora`` is never chosen: on the data sizes above its accuracy is close to
    ``lp_ft``'s/``full``'s rather than better, and what it saves (optimizer
    memory, small checkpoints) matters for large backbones on small GPUs, which
    the data and parameter counts alone do not tell.
    """
    per_class = n_train / max(num_labels, 1)
    if per_class < 40 or n_train < 400:
        return "linear_probe", (
            f"{n_train} training examples ({per_class:.0f} per class) are too few to fine-tune "
            f"{backbone_params / 1e6:.1f}M weights without overfitting; a linear probe on the frozen features is the robust choice"
        )
    if backbone_params > 150e6 and not on_gpu:
        return "linear_probe", f"a {backbone_params / 1e6:.0f}M-parameter backbone is too slow to fine-tune without a GPU"
    if n_train < 5000:
        return "lp_ft", (
            f"{n_train} examples are enough to fine-tune, but few enough that a random head would distort the "
            "pretrained features; LP-FT (linear probe, then fine-tune) protects them"
        )
    return "full", f"{n_train} examples are plenty for full fine-tuning with layer-wise learning-rate decay"


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


# --- lora ---------------------------------------------------------------------------------
#: ``lora_target_modules`` that stands for every linear layer of the backbone (peft's shorthand).
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class LoraSettings:
    """The low-rank adapters of the ``lora`` strategy; made and checked by :func:`lora_settings`.

    :param rank: the rank *r* of each adapter ``B @ A``.
    :param alpha: the scale numerator: the update is ``alpha / rank * B @ A``.
    :param dropout: dropout on the adapters' input while training.
    :param target_modules: ``"all-linear"``; another string, a regular expression
        matched against whole module names; or module names, each matching the
        modules whose name ends in it (peft's ``LoraConfig.target_modules``).
    """

    rank: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = ALL_LINEAR

    def config(self) -> Any:
        """The ``peft.LoraConfig`` of these settings."""
        from peft import LoraConfig

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          bias="none")

    def to_recipe(self) -> dict[str, Any]:
        """The settings as recipe entries (``lora_rank``, ``lora_alpha``, ...)."""
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return {"lora_rank": self.rank, "lora_alpha": self.alpha, "lora_dropout": self.dropout,
                "lora_target_modules": targets}


def lora_settings(rank: int = 8, alpha: float | None = None, dropout: float = 0.0,
                  target_modules: str | list[str] | tuple[str, ...] = ALL_LINEAR) -> LoraSettings:
    """Check ``adapt()``'s ``lora_*`` arguments (no model needed) and make their :class:`LoraSettings`.

    *alpha* defaults to ``2 * rank``. Raises :class:`ConfigurationError`.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigurationError(f"lora_rank must be a positive integer (8, 16, ...), got {rank!r}.")
    if alpha is None:
        alpha = 2 * rank
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ConfigurationError(f"lora_alpha must be a positive number (default 2 x lora_rank), got {alpha!r}.")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigurationError(f"lora_dropout must be a probability from 0 up to, not including, 1, got {dropout!r}.")
    targets: str | tuple[str, ...]
    if isinstance(target_modules, str):
        targets = target_modules.strip()
        try:
            re.compile(targets)
        except re.error as exc:
            raise ConfigurationError(
                f"lora_target_modules={target_modules!r} is not a valid regular expression ({exc}); pass "
                f"{ALL_LINEAR!r} or a list of module names such as ['query', 'value']."
            ) from exc
    elif isinstance(target_modules, list | tuple) and all(isinstance(t, str) and t.strip() for t in target_modules):
        targets = tuple(t.strip() for t in target_modules)
    else:
        targets = ()
    if not targets:
        raise ConfigurationError(
            f"lora_target_modules must be {ALL_LINEAR!r}, a regular expression, or a non-empty list of module names "
            f"such as ['query', 'value'], got {target_modules!r}."
        )
    return LoraSettings(rank=rank, alpha=alpha, dropout=float(dropout), target_modules=targets)


def _adaptable_names(backbone: nn.Module) -> list[str]:
    """The last name parts of the backbone's modules that LoRA can adapt (linear, convolution, embedding)."""
    from torch import nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)
    return sorted({name.rsplit(".", 1)[-1] for name, module in backbone.named_modules()
                   if name and isinstance(module, kinds)})


def _target_error(problem: str, lora: LoraSettings, backbone: str, names: list[str]) -> ConfigurationError:
    hint = ""
    if not isinstance(lora.target_modules, str):
        hint = "".join(did_you_mean(t, names, n=2) for t in lora.target_modules if t not in names)
    elif lora.target_modules != ALL_LINEAR:
        hint = " A string is a regular expression matched against whole module names; a list matches name endings."
    else:
        hint = f" {ALL_LINEAR!r} found no linear layer: name the layers to adapt, e.g. lora_target_modules={names[:1]}."
    return ConfigurationError(
        f"lora_target_modules={lora.to_recipe()['lora_target_modules']!r} does not fit the {backbone} backbone: "
        f"{problem.strip()} Its layers that LoRA can adapt are named: {', '.join(names) or '(none)'}." + hint
    )


@contextlib.contextmanager
def _peft_quietly() -> Iterator[None]:
    """Hide the transformers deprecation warning that peft triggers on every wrap (nothing a user can act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _inject(lora: LoraSettings, model: nn.Module, inject: Callable[[nn.Module, Any], Any]) -> Any:
    """``inject(model, peft_config)``; raise :class:`ConfigurationError` unless every target matched a module."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    names, backbone = _adaptable_names(model), type(model).__name__
    try:
        with _peft_quietly():
            wrapped = inject(model, lora.config())
    except ValueError as exc:
        raise _target_error(str(exc), lora, backbone, names) from exc
    if not isinstance(lora.target_modules, str):  # peft needs one name to match; a typo in another is lost silently
        adapted = [name for name, module in wrapped.named_modules() if isinstance(module, BaseTunerLayer)]
        missing = [t for t in lora.target_modules if not any(n == t or n.endswith("." + t) for n in adapted)]
        if missing:
            raise _target_error(f"{', '.join(map(repr, missing))} match no module.", lora, backbone, names)
    return wrapped


def check_lora_targets(lora: LoraSettings, skeleton: nn.Module) -> None:
    """Raise :class:`ConfigurationError` when *lora*'s targets match nothing LoRA can adapt in *skeleton*.

    *skeleton* is the backbone's architecture without weights
    (:func:`tlzoo.features.backbone_skeleton`), so this runs before any model
    loads; peft itself does the matching, on the skeleton (which it changes).
    """
    from peft import inject_adapter_in_model

    _inject(lora, skeleton, lambda model, config: inject_adapter_in_model(config, model, low_cpu_mem_usage=True))


def inject_lora(extractor: FeatureExtractor, lora: LoraSettings) -> LayerGroup:
    """Wrap the backbone in peft's LoRA adapters; return the adapters (the only trainable backbone weights).

    ``peft.get_peft_model`` leaves every original weight with
    ``requires_grad=False``. The wrapped backbone still takes the same
    arguments and gives the same outputs (adapters start at zero), so the
    extractor's forward and pooling are unchanged.
    """
    from peft import get_peft_model

    from tlzoo.features import LayerGroup

    extractor.backbone = _inject(lora, extractor.backbone, get_peft_model)
    logger.info("LoRA adapters of rank %d (alpha %g) on %d modules of the backbone.", lora.rank, lora.alpha,
                len(extractor.backbone.targeted_module_names))
    return LayerGroup("lora", [p for p in extractor.backbone.parameters() if p.requires_grad])


def merge_lora(extractor: FeatureExtractor) -> None:
    """Fold the adapters into the backbone's weights (``merge_and_unload``): a plain transformers backbone again."""
    from peft import PeftModel

    if isinstance(extractor.backbone, PeftModel):
        extractor.backbone = extractor.backbone.merge_and_unload()
