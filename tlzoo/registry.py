"""The zoo of source models, and resolving a source to a :class:`SourceModel`.

Entries are merged from four places, later wins (with a logged notice):
``registry.yaml`` shipped with tlzoo < entries from plugins < your own zoo
(:mod:`tlzoo.local_zoo`, written by ``tlzoo register``) < a registry file given
for the call (``TLZOO_REGISTRY`` or the ``registry=`` argument).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tlzoo.errors import HubError, ModalityNotAvailableError, RegistryError, UnknownModelError, did_you_mean
from tlzoo.plugins.modality import distribution_for

logger = logging.getLogger(__name__)
#: libyaml's safe loader when PyYAML was built with it (about ten times faster), else the Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

REQUIRED = {
    "name": str,
    "hub_id": str,
    "modality": str,
    "license": str,
    "params": int,
    "feature_size": int,
    "description": str,
}
OPTIONAL = {"tags": list, "revision": str}


@dataclass(frozen=True)
class SourceModel:
    """A source model: what it is, where it lives, which modality reads it.

    Zoo entries carry every field; a Hub id or local folder outside the zoo
    carries ``name``, ``hub_id`` and ``modality`` and leaves the rest ``None``.
    """

    name: str
    hub_id: str
    modality: str
    license: str | None = None
    params: int | None = None
    feature_size: int | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    revision: str | None = None
    origin: str = "registry.yaml"
    config: Any = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the entry (without the loaded config)."""
        data = asdict(self)
        data.pop("config")
        data["tags"] = list(self.tags)
        return data


def builtin_registry_path() -> Path:
    """Where the shipped ``registry.yaml`` is (package data, or the source tree)."""
    shipped = resources.files("tlzoo") / "registry.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parent.parent / "registry.yaml"


def validate_entry(raw: Any, where: str) -> SourceModel:
    """Check one registry entry; raise :class:`RegistryError` naming *where* and the field."""
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: an entry must be a mapping of fields, got {raw!r}.")
    label = f"{where}, entry {raw.get('name')!r}" if raw.get("name") else where
    for key, kind in REQUIRED.items():
        if key not in raw or raw[key] is None:
            raise RegistryError(f"{label}: missing required field {key!r}.")
        value = raw[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise RegistryError(f"{label}: field {key!r} must be a positive integer, got {value!r}.")
        if kind is str and (not isinstance(value, str) or not value.strip()):
            raise RegistryError(f"{label}: field {key!r} must be a non-empty string, got {value!r}.")
    for key, kind in OPTIONAL.items():
        if raw.get(key) is not None and not isinstance(raw[key], kind):
            raise RegistryError(f"{label}: field {key!r} must be a {kind.__name__}, got {raw[key]!r}.")
    unknown = set(raw) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        field_name = sorted(unknown)[0]
        raise RegistryError(
            f"{label}: unknown field {field_name!r}."
            + did_you_mean(field_name, [*REQUIRED, *OPTIONAL])
        )
    tags = raw.get("tags") or []
    if not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"{label}: field 'tags' must be a list of strings, got {tags!r}.")
    return SourceModel(
        name=raw["name"],
        hub_id=raw["hub_id"],
        modality=raw["modality"],
        license=raw["license"],
        params=raw["params"],
        feature_size=raw["feature_size"],
        description=raw["description"],
        tags=tuple(tags),
        revision=raw.get("revision"),
        origin=where.split(",")[0],
    )


def read_registry_file(path: str | os.PathLike[str]) -> list[SourceModel]:
    """Read and validate one registry YAML file (``models:`` list of entries)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except FileNotFoundError:
        raise RegistryError(f"Registry file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise RegistryError(f"{path}: expected a mapping with a 'models:' list of entries.")
    entries = [validate_entry(raw, f"{path}, models[{i}]") for i, raw in enumerate(data["models"])]
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RegistryError(f"{path}: entry name {dupes[0]!r} appears more than once.")
    return entries


def load_registry(registry: str | os.PathLike[str] | None = None) -> dict[str, SourceModel]:
    """Merge the shipped zoo, plugin entries, your own zoo (``tlzoo register``) and the user's file; later wins."""
    from tlzoo.plugins import source_model_entries

    merged: dict[str, SourceModel] = {}

    def put(entry: SourceModel) -> None:
        if entry.name in merged:
            logger.info("Registry entry %r from %s overrides the one from %s.", entry.name, entry.origin, merged[entry.name].origin)
        merged[entry.name] = entry

    for entry in read_registry_file(builtin_registry_path()):
        put(entry)
    for plugin_name, raw in source_model_entries():
        put(validate_entry(raw, f"plugin {plugin_name}"))
    from tlzoo.local_zoo import local_registry_path

    if local_registry_path().is_file():  # your own entries (tlzoo register)
        for entry in read_registry_file(local_registry_path()):
            put(entry)
    user = registry if registry is not None else os.environ.get("TLZOO_REGISTRY")
    if user:
        for entry in read_registry_file(user):
            put(entry)
    return merged


def list_models(
    pattern: str | None = None,
    modality: str | None = None,
    registry: str | os.PathLike[str] | None = None,
) -> list[SourceModel]:
    """Zoo entries whose name or Hub id matches a shell-style *pattern*.

    >>> [m.name for m in list_models("dinov2*")]
    ['dinov2-base', 'dinov2-small']

    :param pattern: shell wildcards (``*vit*``), case-insensitive; ``None``
        lists everything.
    :param modality: keep only entries of this modality.
    :param registry: a user registry file merged on top (else ``TLZOO_REGISTRY``).
    """
    entries = load_registry(registry).values()
    if modality is not None:
        entries = [e for e in entries if e.modality == modality]
    if pattern:
        pat = pattern.lower()
        entries = [
            e for e in entries if fnmatch.fnmatchcase(e.name.lower(), pat) or fnmatch.fnmatchcase(e.hub_id.lower(), pat)
        ]
    return sorted(entries, key=lambda e: (e.modality, e.name))


def _modality_for_config(config: Any, source: str) -> str:
    from tlzoo.plugins import modalities

    claimed = sorted((m for m in modalities().values() if m.claims(config)), key=lambda m: -m.priority)
    if claimed:
        return claimed[0].name
    model_type = getattr(config, "model_type", None)
    guess = _guess_modality(model_type)
    if guess:
        dist = distribution_for(guess)
        raise ModalityNotAvailableError(
            f"{source!r} is a {model_type!r} model, which the {guess} plugin reads, but no installed plugin "
            f"claims it. Install the plugin with `tlzoo install {dist}` (or `pip install {dist}`)."
        )
    raise ModalityNotAvailableError(
        f"No installed tlzoo plugin reads {source!r} (model_type {model_type!r}). "
        "Pass modality=... if a plugin can read it, or install a plugin for its modality; `tlzoo plugins` lists them."
    )


def _guess_modality(model_type: str | None) -> str | None:
    from transformers.models.auto import modeling_auto as m

    for name, mapping in (
        ("audio", m.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES),
        ("image", m.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES),
        ("text", m.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES),
    ):
        if model_type in mapping:
            return name
    return None


def resolve_source(
    source: str | os.PathLike[str] | SourceModel,
    *,
    modality: str | None = None,
    revision: str | None = None,
    registry: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> SourceModel:
    """Turn a zoo name, a Hub id or a local folder into a :class:`SourceModel`.

    Zoo names and Hub ids of zoo entries resolve without touching the network.
    Anything else is read with ``transformers.AutoConfig`` (a local folder, the
    HF cache, or the Hub), and its modality is the one whose plugin claims the
    config. Raises :class:`UnknownModelError` (with close matches) when nothing
    is found, and :class:`ModalityNotAvailableError` when the modality's
    plugin is not installed.
    """
    if isinstance(source, SourceModel):
        return source
    source = os.fspath(source)
    zoo = load_registry(registry)
    entry = zoo.get(source) or next((e for e in zoo.values() if e.hub_id == source), None)
    if entry is not None:
        if revision is not None and revision != entry.revision:
            entry = dataclasses.replace(entry, revision=revision)
        if modality is not None and modality != entry.modality:
            raise ModalityNotAvailableError(
                f"{source!r} is a {entry.modality} model in the zoo, not {modality}."
            )
        return entry

    config = _load_config(source, revision=revision, token=token, zoo=zoo)
    if modality is None:
        modality = _modality_for_config(config, source)
    else:
        from tlzoo.plugins import get_modality

        get_modality(modality)
    origin = "local folder" if Path(source).is_dir() else "hub"
    return SourceModel(name=source, hub_id=source, modality=modality, revision=revision, origin=origin, config=config)


def _load_config(source: str, *, revision: str | None, token: str | bool | None, zoo: dict[str, SourceModel]) -> Any:
    candidates = [*zoo, *(e.hub_id for e in zoo.values())]
    if source.startswith((".", "/", "~")) and not Path(source).expanduser().is_dir():
        raise UnknownModelError(f"Local model folder {source!r} does not exist.")
    if "/" not in source and not Path(source).is_dir():  # Hub ids are "org/name"
        raise UnknownModelError(
            f"Unknown source model {source!r}: not a zoo entry, a Hub id (org/name) or a local folder. "
            "`tlzoo models` lists the zoo." + did_you_mean(source, candidates)
        )
    from tlzoo.hub import check_source_available

    try:  # offline and not cached: said before transformers loads
        check_source_available(source, revision=revision)
    except HubError as exc:
        raise HubError(str(exc) + did_you_mean(source, candidates)) from None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(os.path.expanduser(source), revision=revision, token=token)
    except (OSError, ValueError) as exc:
        from tlzoo.hub import unreachable_source_error

        if (unreachable := unreachable_source_error(exc, source)) is not None:
            raise type(unreachable)(str(unreachable) + did_you_mean(source, candidates)) from exc
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnknownModelError(
            f"Unknown source model {source!r}: it is not a zoo entry, a local folder with a config.json, "
            f"or a Hub model that could be reached ({reason}). `tlzoo models` lists the zoo."
            + did_you_mean(source, candidates)
        ) from exc
