"""tlzoo's plugins: the hooks they implement, the record they register, and the manager that finds them.

:mod:`~tlzoo.plugins.hookspecs` specifies the hooks, :mod:`~tlzoo.plugins.modality`
holds the :class:`Modality` record a plugin registers for one input modality, and
:mod:`~tlzoo.plugins.manager` loads the plugins and collects what they contribute.
This is the surface plugin authors use::

    from tlzoo.plugins import Modality, hookimpl

Importing it is cheap: no torch, transformers or datasets.
"""

from tlzoo.plugins.hookspecs import hookimpl, hookspec
from tlzoo.plugins.manager import (
    CORE_PLUGIN_NAME,
    ENTRY_POINT_GROUP,
    PluginInfo,
    get_modality,
    get_plugin_manager,
    head_factories,
    list_plugins,
    modalities,
    plugin_errors,
    register_plugin,
    reset,
    source_model_entries,
    unregister_plugin,
)
from tlzoo.plugins.modality import Modality, PipelineFamily, default_fingerprint, default_is_example, read_path

__all__ = [
    "CORE_PLUGIN_NAME",
    "ENTRY_POINT_GROUP",
    "Modality",
    "PipelineFamily",
    "PluginInfo",
    "default_fingerprint",
    "default_is_example",
    "get_modality",
    "get_plugin_manager",
    "head_factories",
    "hookimpl",
    "hookspec",
    "list_plugins",
    "modalities",
    "plugin_errors",
    "read_path",
    "register_plugin",
    "reset",
    "source_model_entries",
    "unregister_plugin",
]
