"""Your own zoo: source models you register by name, and which zoo entries work offline.

:func:`register_model` adds a local folder (or a Hub id) to a registry file of
your own, ``registry.yaml`` in :func:`local_zoo_dir` (``$TLZOO_HOME``, else
``$XDG_CONFIG_HOME/tlzoo``, else ``~/.config/tlzoo``); every zoo lookup reads it
(:func:`tlzoo.registry.load_registry`), so ``tlzoo adapt my-model data/`` works
like a built-in name. ``tlzoo demo`` registers the source models it pretrains
this way: an offline source for images and audio. :func:`offline_availability`
says where an entry can be loaded from without the network.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tlzoo.errors import ConfigurationError, RegistryError, setting

logger = logging.getLogger(__name__)

#: The file of your own entries, inside :func:`local_zoo_dir`.
LOCAL_REGISTRY = "registry.yaml"


def local_zoo_dir() -> Path:
    """The folder of your own zoo: ``$TLZOO_HOME``, else ``$XDG_CONFIG_HOME/tlzoo``, else ``~/.config/tlzoo``."""
    if os.environ.get("TLZOO_HOME"):
        return Path(os.environ["TLZOO_HOME"]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join("~", ".config")
    return Path(config).expanduser() / "tlzoo"


def local_registry_path() -> Path:
    """Your own registry file (it need not exist yet)."""
    return local_zoo_dir() / LOCAL_REGISTRY


def register_model(name: str, source: str | os.PathLike[str], *, modality: str | None = None,
                   description: str | None = None, license: str = "other", tags: list[str] | tuple[str, ...] = (),
                   overwrite: bool = False) -> Any:
    """Add *source* (a local model folder or a Hub id) to your own zoo as *name*; return its entry.

    A folder is recorded by its absolute path. The modality is the plugin's
    that claims the model's config (or *modality*); ``params`` and
    ``feature_size`` are read from the weights and the config. A name already
    in your file is refused unless ``overwrite=True``; the built-in and plugin
    entries are never changed (yours take precedence over them). The file is
    written atomically.

    :raises ConfigurationError: a name that is taken, or empty.
    :raises tlzoo.errors.UnknownModelError: a source that cannot be read.
    """
    from tlzoo.registry import read_registry_file, resolve_source, validate_entry

    if not name or not name.strip() or "/" in name:
        raise ConfigurationError(f"A zoo name must be a non-empty name without '/', got {name!r}.")
    path = Path(os.fspath(source)).expanduser()
    hub_id = str(path.resolve()) if path.is_dir() else os.fspath(source)
    found = resolve_source(hub_id, modality=modality)
    file = local_registry_path()
    entries = read_registry_file(file) if file.is_file() else []
    if any(e.name == name for e in entries) and not overwrite:
        raise ConfigurationError(f"{name!r} is already in your zoo ({file}); pass {setting('overwrite', True)} "
                                 "to replace it, or choose another name.")
    raw = {
        "name": name, "hub_id": hub_id, "modality": found.modality, "license": license,
        "params": _count_parameters(path) if path.is_dir() else 1,
        "feature_size": _feature_size(found.config),
        "description": description or f"registered from {hub_id}",
        "tags": list(tags),
    }  # fmt: skip
    entry = validate_entry(raw, str(file))
    kept = [e.to_dict() for e in entries if e.name != name]
    _write(file, [*({k: v for k, v in e.items() if k != "origin"} for e in kept), raw])
    logger.info("Registered %r (%s, %s) in %s.", name, found.modality, hub_id, file)
    return entry


def unregister_model(name: str) -> None:
    """Remove *name* from your own zoo (never a built-in or plugin entry)."""
    from tlzoo.registry import read_registry_file

    file = local_registry_path()
    entries = read_registry_file(file) if file.is_file() else []
    if not any(e.name == name for e in entries):
        raise RegistryError(f"{name!r} is not in your zoo ({file}); `tlzoo models` lists every entry and its origin.")
    _write(file, [{k: v for k, v in e.to_dict().items() if k != "origin"} for e in entries if e.name != name])


def offline_availability(entry: Any) -> str | None:
    """Where *entry* loads from without the network: ``"local"`` (a folder), ``"cached"`` (the HF cache), or ``None``."""
    if Path(entry.hub_id).expanduser().is_dir():
        return "local"
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(entry.hub_id, "config.json", revision=entry.revision)
    except ValueError:  # not a valid repo id
        return None
    return "cached" if isinstance(found, str) else None


def _write(file: Path, entries: list[dict[str, Any]]) -> None:
    import yaml

    from tlzoo.durable import write_atomic

    file.parent.mkdir(parents=True, exist_ok=True)
    header = "# Your own tlzoo source models (tlzoo register / tlzoo.register_model); merged into every zoo lookup.\n"
    write_atomic(file, header + yaml.safe_dump({"version": 1, "models": entries}, sort_keys=False))


def _feature_size(config: Any) -> int:
    """The width of the backbone's features, from its config (1 when the config does not say)."""
    for key in ("hidden_size", "d_model", "dim", "embed_dim"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    sizes = getattr(config, "hidden_sizes", None)
    return int(sizes[-1]) if sizes else 1


def _count_parameters(folder: Path) -> int:
    """Parameters in the folder's safetensors weights, from their headers alone (no tensor is read)."""
    import math

    from safetensors import safe_open

    total = 0
    for weights in folder.glob("*.safetensors"):
        with safe_open(str(weights), framework="numpy") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())  # noqa: SIM118
    return max(total, 1)
