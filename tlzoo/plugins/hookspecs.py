"""The hooks a tlzoo plugin can implement.

A plugin is a module (or object) with functions marked ``@tlzoo.hookimpl`` whose
names match the specs below. Plugins are found through the ``tlzoo`` entry-point
group, or registered in code with :func:`tlzoo.plugins.register_plugin`.

Every hook hands the plugin a ``register`` callback, so a plugin can contribute
zero, one or many things without returning unions. Hooks are called once per
process, when tlzoo first needs what they contribute; none is ``firstresult``:
every plugin's implementation is called. A hook implementation that raises is
reported by the plugin's name (``tlzoo plugins`` lists the error) and the other
plugins keep working.

``docs/plugin-hooks.md`` documents each hook; a test fails when one is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from tlzoo.heads import HeadFactory
    from tlzoo.plugins.modality import Modality

hookspec = pluggy.HookspecMarker("tlzoo")
hookimpl = pluggy.HookimplMarker("tlzoo")


@hookspec
def register_modalities(register: Callable[[Modality], None]) -> None:
    """Contribute input modalities (``image``, ``audio``, ``text``, ...).

    Called the first time tlzoo resolves a source model or inspects target data.

    :param register: call ``register(Modality(...))`` once per modality. A
        :class:`tlzoo.plugins.modality.Modality` names the modality, says how to
        recognise a column of it in a ``datasets.Dataset``, which model
        architectures (``config.model_type``) it claims, and how to build a
        :class:`tlzoo.features.FeatureExtractor` for a source model.
    :returns: nothing; results are passed through ``register``. When two
        plugins register the same modality name, the one registered later wins
        and a warning is logged.
    """


@hookspec
def register_heads(register: Callable[[str, HeadFactory], None]) -> None:
    """Contribute head factories: the new task layer put on top of the features.

    Called the first time tlzoo builds or restores a head.

    :param register: call ``register(name, factory)``; ``factory(in_features,
        task, **options) -> torch.nn.Module`` builds a head for a
        :class:`tlzoo.heads.TaskSpec`. The core registers ``linear`` and
        ``mlp``; names must be unique, a later registration of the same name
        replaces the earlier one with a warning.
    :returns: nothing.
    """


@hookspec
def register_source_models(register: Callable[[dict[str, Any]], None]) -> None:
    """Contribute source-model entries to the zoo (``tlzoo models``).

    Called the first time the registry is loaded. Entries from plugins override
    ``registry.yaml`` and are overridden by the user's own registry file.

    :param register: call ``register({...})`` with a mapping of the same fields
        as an entry of ``registry.yaml`` (``name``, ``hub_id``, ``modality``,
        ``license``, ``params``, ``feature_size``, ``description``, ``tags``,
        optional ``revision``). Invalid entries raise
        :class:`tlzoo.errors.RegistryError` naming the plugin and the field.
    :returns: nothing.
    """
