"""tlzoo: adapt pretrained Hugging Face Hub models to your own task in one call.

>>> import tlzoo
>>> result = tlzoo.adapt("google/vit-base-patch16-224-in21k", "my_images/")  # doctest: +SKIP
>>> result.metrics["test"]["accuracy"]  # doctest: +SKIP

Heavy libraries (torch, transformers, datasets) are imported only when a
function that needs them is called, so ``import tlzoo`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlzoo.errors import TlzooError
from tlzoo.plugins.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "AdaptResult",
    "AdaptedModel",
    "FeatureExtractor",
    "HeadFactory",
    "Modality",
    "Ranking",
    "TaskSpec",
    "TlzooError",
    "adapt",
    "evaluate_model",
    "hookimpl",
    "list_models",
    "load",
    "rank",
    "register_model",
    "register_plugin",
    "resolve_source",
    "unregister_model",
    "unregister_plugin",
]

_LAZY = {
    "adapt": ("tlzoo.workflow", "adapt"),
    "AdaptResult": ("tlzoo.workflow", "AdaptResult"),
    "AdaptedModel": ("tlzoo.model.adapted", "AdaptedModel"),
    "load": ("tlzoo.model.adapted", "load"),
    "evaluate_model": ("tlzoo.evaluation.saved", "evaluate_model"),
    "list_models": ("tlzoo.registry", "list_models"),
    "resolve_source": ("tlzoo.registry", "resolve_source"),
    "register_model": ("tlzoo.local_zoo", "register_model"),
    "unregister_model": ("tlzoo.local_zoo", "unregister_model"),
    "rank": ("tlzoo.ranking.rank", "rank"),
    "Ranking": ("tlzoo.ranking.result", "Ranking"),
    # for plugin authors
    "Modality": ("tlzoo.plugins.modality", "Modality"),
    "FeatureExtractor": ("tlzoo.features.extractor", "FeatureExtractor"),
    "HeadFactory": ("tlzoo.heads", "HeadFactory"),
    "TaskSpec": ("tlzoo.heads", "TaskSpec"),
    "register_plugin": ("tlzoo.plugins.manager", "register_plugin"),
    "unregister_plugin": ("tlzoo.plugins.manager", "unregister_plugin"),
}

if TYPE_CHECKING:
    from tlzoo.features.extractor import FeatureExtractor
    from tlzoo.heads import HeadFactory, TaskSpec
    from tlzoo.local_zoo import register_model, unregister_model
    from tlzoo.model.adapted import AdaptedModel, load
    from tlzoo.plugins.manager import register_plugin, unregister_plugin
    from tlzoo.plugins.modality import Modality
    from tlzoo.ranking.rank import rank
    from tlzoo.ranking.result import Ranking
    from tlzoo.registry import list_models, resolve_source
    from tlzoo.workflow import AdaptResult, adapt


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tlzoo' has no attribute {name!r}")
