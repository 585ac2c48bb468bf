"""The ``lora`` strategy's adapters (Hu et al. 2021), made with peft.

:func:`lora_settings` checks ``adapt()``'s ``lora_*`` arguments into
:class:`LoraSettings` (no model needed); :func:`check_lora_targets` checks the
target modules against the backbone's architecture before any weights load;
:func:`inject_lora` wraps the backbone in the adapters, which train with the head
in the same loop; :func:`merge_lora` folds them into the backbone's weights
afterwards, so the adapted model is a plain backbone + head like every other
strategy's.
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

    from tlzoo.features.extractor import FeatureExtractor, LayerGroup

logger = logging.getLogger(__name__)

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
