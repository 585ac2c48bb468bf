"""Finding, loading and calling tlzoo plugins.

Plugins are found through the ``tlzoo`` entry-point group, once per process.
``TLZOO_LOAD_PLUGINS=a,b`` loads only the named plugins (entry-point or
distribution names); an empty value loads none. A plugin that fails to import,
or raises inside a hook, is skipped with a warning naming it and its error;
every other plugin keeps working, and :func:`list_plugins` (``tlzoo plugins``)
reports the error.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from tlzoo.errors import ModalityNotAvailableError, PluginError, did_you_mean
from tlzoo.plugins import hookspecs
from tlzoo.plugins.modality import Modality, distribution_for

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tlzoo"
CORE_PLUGIN_NAME = "tlzoo.core"

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_errors: dict[str, str] = {}  # plugin name -> what went wrong
_versions: dict[str, str | None] = {}
_cache: dict[str, Any] = {}


class _CorePlugin:
    """The core's own contributions: the generic heads."""

    @hookspecs.hookimpl
    def register_heads(self, register: Callable[..., None]) -> None:
        from tlzoo import heads

        register("linear", heads.LinearHeadFactory())
        register("mlp", heads.MLPHeadFactory())


@dataclass
class PluginInfo:
    """What ``tlzoo plugins`` shows for one plugin."""

    name: str
    version: str | None
    hooks: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    error: str | None = None
    #: one line per modality it provides: its ``Modality.description`` (and file types)
    descriptions: dict[str, str] = field(default_factory=dict)
    #: the distribution that provides it (``Modality.distribution``), when it says
    distribution: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of this record."""
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "hooks": self.hooks,
            "modalities": self.modalities,
            "descriptions": self.descriptions,
            "heads": self.heads,
            "error": self.error,
        }


def _selected_plugins() -> set[str] | None:
    raw = os.environ.get("TLZOO_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading entry points on first use."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("tlzoo")
            pm.add_hookspecs(hookspecs)
            pm.register(_CorePlugin(), name=CORE_PLUGIN_NAME)
            _versions[CORE_PLUGIN_NAME] = _own_version()
            _load_entry_points(pm)
            _pm = pm
        return _pm


def _own_version() -> str | None:
    try:
        return importlib.metadata.version("tlzoo")
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    selected = _selected_plugins()
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist_name = ep.dist.name if ep.dist is not None else None
        if selected is not None and ep.name not in selected and dist_name not in selected:
            continue
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        _versions[ep.name] = ep.dist.version if ep.dist is not None else None
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            _record_error(ep.name, f"failed to load: {type(exc).__name__}: {exc}")


def _record_error(name: str, message: str) -> None:
    _errors[name] = message
    logger.warning("tlzoo plugin %r skipped: %s", name, message)


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object or module in code (tests, notebooks).

    :returns: the name it was registered under; pass it to
        :func:`unregister_plugin` to remove it again.
    """
    pm = get_plugin_manager()
    with _lock:
        try:
            registered = pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy: the object or the name is registered already
            first = str(exc).splitlines()[0].split(": ")[0] if str(exc) else "already registered"
            raise PluginError(f"Plugin {name or plugin!r} is already registered ({first.lower()}); "
                              "unregister_plugin() it first, or register it under another name.") from exc
        if registered is None:
            raise PluginError(f"Plugin {name or plugin!r} is blocked and cannot be registered.")
        _versions.setdefault(registered, getattr(plugin, "__version__", None))
        _cache.clear()
        return registered


def unregister_plugin(plugin_or_name: Any) -> None:
    """Remove a plugin registered with :func:`register_plugin` (by name or object)."""
    pm = get_plugin_manager()
    with _lock:
        if isinstance(plugin_or_name, str):
            pm.unregister(name=plugin_or_name)
            _errors.pop(plugin_or_name, None)
        else:
            name = pm.get_name(plugin_or_name)
            pm.unregister(plugin_or_name)
            _errors.pop(name or "", None)
        _cache.clear()


def reset() -> None:
    """Forget every loaded plugin; the next use loads entry points again."""
    global _pm
    with _lock:
        _pm = None
        _errors.clear()
        _versions.clear()
        _cache.clear()


def _collect(hook_name: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Call every implementation of a ``register_*`` hook, isolating failures.

    Returns ``(plugin name, register args)`` pairs in registration order, so
    later plugins override earlier ones. A plugin whose implementation raises
    contributes nothing to this hook and is reported.
    """
    pm = get_plugin_manager()
    collected: list[tuple[str, tuple[Any, ...]]] = []
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    for impl in impls:
        own: list[tuple[Any, ...]] = []
        others = [other.plugin for other in impls if other.plugin is not impl.plugin]
        call = pm.subset_hook_caller(hook_name, remove_plugins=others)  # pluggy's own call, one plugin at a time
        try:
            call(register=lambda *args, own=own: own.append(args))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            _record_error(impl.plugin_name, f"hook {hook_name} raised {type(exc).__name__}: {exc}")
            continue
        collected.extend((impl.plugin_name, args) for args in own)
    return collected


def modalities() -> dict[str, Modality]:
    """All registered modalities by name (cached until plugins change)."""
    with _lock:
        if "modalities" not in _cache:
            found: dict[str, Modality] = {}
            owners: dict[str, str] = {}
            for plugin_name, args in _collect("register_modalities"):
                modality = args[0] if args else None
                if not isinstance(modality, Modality):
                    _record_error(plugin_name, f"register_modalities gave {modality!r}, not a tlzoo.plugins.Modality")
                    continue
                if modality.name in found:
                    logger.warning(
                        "Modality %r from plugin %r replaces the one from %r.",
                        modality.name, plugin_name, owners[modality.name],
                    )
                found[modality.name] = modality
                owners[modality.name] = plugin_name
            _cache["modalities"] = found
            _cache["modality_owners"] = owners
        return dict(_cache["modalities"])


def head_factories() -> dict[str, Any]:
    """All registered head factories by name (cached until plugins change)."""
    with _lock:
        if "heads" not in _cache:
            found: dict[str, Any] = {}
            owners: dict[str, str] = {}
            for plugin_name, args in _collect("register_heads"):
                if len(args) != 2 or not isinstance(args[0], str) or not callable(args[1]):
                    _record_error(plugin_name, f"register_heads expects (name, factory), got {args!r}")
                    continue
                name, factory = args
                if name in found:
                    logger.warning("Head %r from plugin %r replaces the one from %r.", name, plugin_name, owners[name])
                found[name] = factory
                owners[name] = plugin_name
            _cache["heads"] = found
            _cache["head_owners"] = owners
        return dict(_cache["heads"])


def source_model_entries() -> list[tuple[str, dict[str, Any]]]:
    """``(plugin name, entry mapping)`` pairs contributed by plugins."""
    with _lock:
        if "models" not in _cache:
            _cache["models"] = [(name, args[0]) for name, args in _collect("register_source_models") if args]
        return list(_cache["models"])


def get_modality(name: str) -> Modality:
    """The modality called *name*, or an error that says which plugin to install."""
    found = modalities()
    if name in found:
        return found[name]
    dist = distribution_for(name)
    hint = (f" Install its plugin, by convention `tlzoo install {dist}` (or `pip install {dist}`); "
            "`tlzoo plugins` lists what is installed.")
    broken = [f"{p} ({e})" for p, e in _errors.items()]
    if broken:
        hint += " Plugins that failed to load: " + "; ".join(broken) + "."
    installed = ", ".join(sorted(found)) or "none"
    raise ModalityNotAvailableError(
        f"No installed plugin provides the {name!r} modality (installed modalities: {installed}).{hint}"
        + did_you_mean(name, found)
    )


def plugin_errors() -> dict[str, str]:
    """Plugins that failed to load or raised in a hook, with their errors."""
    get_plugin_manager()
    return dict(_errors)


def _describe(modality: Modality) -> str:
    files = f" (files: {' '.join(modality.file_extensions)})" if modality.file_extensions else ""
    return (modality.description or modality.name) + files


def list_plugins() -> list[PluginInfo]:
    """Every loaded plugin (and every one that failed) with what it contributes."""
    pm = get_plugin_manager()
    mods = modalities()
    head_factories()
    owners = _cache.get("modality_owners", {})
    head_owners = _cache.get("head_owners", {})
    infos: dict[str, PluginInfo] = {}
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        own = sorted(m for m in mods if owners.get(m) == name)
        infos[name] = PluginInfo(
            name=name,
            version=_versions.get(name),
            hooks=hooks,
            modalities=own,
            heads=sorted(h for h, owner in head_owners.items() if owner == name),
            descriptions={m: _describe(mods[m]) for m in own},
            distribution=next((mods[m].distribution for m in own if mods[m].distribution), None),
        )
    for name, error in _errors.items():
        info = infos.setdefault(name, PluginInfo(name=name, version=_versions.get(name)))
        info.error = error
    return sorted(infos.values(), key=lambda i: (i.name != CORE_PLUGIN_NAME, i.name))

