"""The adapted model: what ``adapt()`` hands back, and how it is saved, exported and described.

:mod:`~tlzoo.model.adapted` holds :class:`AdaptedModel` (predict, save, push)
and :func:`load`; :mod:`~tlzoo.model.export` folds a linear head into a plain
transformers classifier for ``pipeline()``; :mod:`~tlzoo.model.card` writes the
model card.

The names below are imported on first use, so ``tlzoo.model.card`` can be
imported without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlzoo.model.adapted import (
        ATTACHMENTS_DIR,
        CONFIG_NAME,
        FORMAT_VERSION,
        HEAD_NAME,
        AdaptedModel,
        load,
        split_batch,
    )

__all__ = ["ATTACHMENTS_DIR", "CONFIG_NAME", "FORMAT_VERSION", "HEAD_NAME", "AdaptedModel", "load", "split_batch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tlzoo.model import adapted

        value = getattr(adapted, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
