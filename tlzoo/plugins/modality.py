"""The record a plugin registers for one input modality.

Kept free of torch and transformers so that listing plugins stays fast; the
heavy work happens in the callables a :class:`Modality` carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlzoo.features import FeatureExtractor


def default_fingerprint(value: Any) -> bytes:
    """Content digest of one raw example, used as its feature-cache key.

    Strings, bytes, numpy arrays, PIL images and ``{"bytes", "path", ...}``
    mappings (as ``datasets`` stores images and audio) are hashed by content.
    """
    h = hashlib.blake2b(digest_size=16)
    _feed(h, value)
    return h.digest()


def _feed(h: Any, value: Any) -> None:
    if value is None:
        h.update(b"\0none")
    elif isinstance(value, bytes):
        h.update(b"\0b" + len(value).to_bytes(8, "little"))
        h.update(value)
    elif isinstance(value, str):
        _feed(h, value.encode())
    elif isinstance(value, dict):
        for key in sorted(value):
            _feed(h, str(key))
            _feed(h, value[key])
    elif isinstance(value, list | tuple):
        h.update(b"\0l%d" % len(value))
        for item in value:
            _feed(h, item)
    elif hasattr(value, "tobytes") and hasattr(value, "mode"):  # PIL image
        _feed(h, f"{value.mode}{value.size}")
        h.update(value.tobytes())
    elif hasattr(value, "tobytes") and hasattr(value, "dtype"):  # numpy array
        _feed(h, f"{value.dtype}{value.shape}")
        h.update(value.tobytes())
    else:
        _feed(h, repr(value))


@dataclass(frozen=True)
class Modality:
    """One input modality contributed by a plugin.

    :param name: short lowercase name, e.g. ``"image"``.
    :param build_feature_extractor: ``build(source, *, revision=None, **options)
        -> FeatureExtractor``; ``source`` is a Hub id or a local folder.
    :param is_column: ``is_column(feature, sample_values) -> bool``: whether a
        ``datasets`` column (its feature type and a few values) holds this
        modality's inputs.
    :param model_types: ``config.model_type`` values this modality claims.
    :param claims_config: optional ``claims(config) -> bool`` for architectures
        not listed in *model_types*.
    :param pipeline_task: the ``transformers.pipeline`` task an exported
        classifier of this modality serves, e.g. ``"image-classification"``.
    :param file_extensions: suffixes of files holding one example (used to read
        folders of examples and to tell file paths from text).
    :param fingerprint: content digest of one raw example (feature-cache key).
    :param check_example: ``check(value)`` raises
        :class:`tlzoo.errors.UnreadableExampleError` naming the file when an
        example cannot be read; run on the data before any model is loaded.
    :param priority: when several modalities claim a column, the highest wins.
    :param distribution: the package that provides the plugin (for messages).
    """

    name: str
    build_feature_extractor: Callable[..., FeatureExtractor]
    is_column: Callable[[Any, Sequence[Any]], bool]
    model_types: frozenset[str] = frozenset()
    claims_config: Callable[[Any], bool] | None = None
    pipeline_task: str | None = None
    file_extensions: tuple[str, ...] = ()
    fingerprint: Callable[[Any], bytes] = default_fingerprint
    check_example: Callable[[Any], None] | None = None
    priority: int = 0
    distribution: str | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def claims(self, config: Any) -> bool:
        """Whether this modality reads models with this transformers *config*."""
        if getattr(config, "model_type", None) in self.model_types:
            return True
        return bool(self.claims_config and self.claims_config(config))


#: The plugin distribution that provides each built-in modality.
KNOWN_DISTRIBUTIONS = {"image": "tlzoo-image", "audio": "tlzoo-audio", "text": "tlzoo-text"}
