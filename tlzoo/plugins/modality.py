"""The record a plugin registers for one input modality.

Kept free of torch and transformers so that listing plugins stays fast; the
heavy work happens in the callables a :class:`Modality` carries.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
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


def default_is_example(value: Any) -> bool:
    """Whether *value* is one example rather than a batch of them.

    Strings, bytes, paths, mappings and arrays are one example; lists, tuples and
    other sequences (a ``datasets`` column too) are a batch. A modality whose
    single examples are sequences (a clip's samples, a time series) or whose
    batches are arrays (a 4-D stack of images) passes its own ``is_example``.
    """
    if isinstance(value, str | bytes | os.PathLike | Mapping):
        return True
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy array, tensor
        return True
    return not (isinstance(value, Sequence) or type(value).__name__ == "Column")


def read_path(path: str) -> Any:
    """The default :attr:`Modality.read_file`: the example is the file's path (the extractor opens it)."""
    return path


@dataclass(frozen=True)
class PipelineFamily:
    """How a linear head folds into one transformers classifier family, for ``pipeline()``.

    :param poolings: tlzoo poolings the transformers class reproduces exactly
        (``extractor.resolved_pooling()`` must be one of them).
    :param place: ``place(model, weight, bias)`` writes the head's ``nn.Linear``
        weight ``[labels, features]`` and bias into the classifier model's own
        layers (:func:`tlzoo.model.export.copy_linear` helps).
    :param config: config fields set before the classifier is built; the value
        ``"num_labels"`` stands for the number of labels.
    :param max_labels: optional ``max_labels(config) -> int``: the most labels
        the classifier layout can hold exactly (``None``: no limit).
    """

    poolings: tuple[str, ...]
    place: Callable[[Any, Any, Any], None]
    config: Mapping[str, Any] = field(default_factory=dict)
    max_labels: Callable[[Any], int] | None = None


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
    :param distribution: the package that provides the plugin (named in
        "install ..." hints; default ``tlzoo-<name>``).
    :param description: one line for ``tlzoo plugins``.
    :param extra: free-form settings for the plugin's own use.
    :param is_example: ``is_example(value) -> bool``: whether ``predict(value)``
        gets one example or a batch (default :func:`default_is_example`).
    :param read_file: ``read_file(path) -> example``: one example from one file
        with a suffix in *file_extensions* (class folders and ``tlzoo predict
        FILE``); the default passes the path on, for extractors that open files.
    :param folder_builder: a ``datasets`` packaged builder that reads class
        folders of this modality (``"imagefolder"``, ``"audiofolder"``); without
        one, tlzoo reads each file with *read_file*.
    :param column_names: column names that most likely hold this modality's
        inputs when several columns could (``("image", "img")``).
    :param sample_inputs: ``sample_inputs(extractor) -> list``: a few made-up raw
        examples (of different sizes) for checking an export and for the
        conformance kit.
    :param pipeline_class: the transformers auto class of exported classifiers
        (``"AutoModelForImageClassification"``); ``None``: no ``pipeline()`` export.
    :param pipeline_families: ``config.model_type`` -> :class:`PipelineFamily`,
        the backbone families whose classifier can hold a linear head exactly.
    :param usage_example: a Python expression of one input, shown in the model
        card's usage example (``'"photo.jpg"'``).
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
    is_example: Callable[[Any], bool] = default_is_example
    read_file: Callable[[str], Any] = read_path
    folder_builder: str | None = None
    column_names: tuple[str, ...] = ()
    sample_inputs: Callable[[Any], list[Any]] | None = None
    pipeline_class: str | None = None
    pipeline_families: Mapping[str, PipelineFamily] = field(default_factory=dict)
    usage_example: str = "EXAMPLE"

    @property
    def package(self) -> str:
        """The distribution to install for this modality (:attr:`distribution` or ``tlzoo-<name>``)."""
        return self.distribution or distribution_for(self.name)

    def claims(self, config: Any) -> bool:
        """Whether this modality reads models with this transformers *config*."""
        if getattr(config, "model_type", None) in self.model_types:
            return True
        return bool(self.claims_config and self.claims_config(config))


def distribution_for(name: str) -> str:
    """The conventional distribution name of the plugin for modality *name*: ``tlzoo-<name>``."""
    return f"tlzoo-{name}"
