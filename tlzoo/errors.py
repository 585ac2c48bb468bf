"""The errors tlzoo raises.

Every error is a :class:`TlzooError`; each subclass names one kind of problem.
Messages say what was wrong, what was expected, and how to fix it. The
troubleshooting page (``docs/troubleshooting.md``) lists every class here.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any


class TlzooError(Exception):
    """Base class of every error tlzoo raises on purpose."""


class PluginError(TlzooError):
    """A plugin is missing, broken, or gave something invalid to a hook."""


class ModalityNotAvailableError(PluginError):
    """The modality a source model or a column needs has no installed plugin."""


class RegistryError(TlzooError):
    """A registry file or entry is invalid (the message names file, entry and field)."""


class UnknownModelError(TlzooError):
    """A source name is neither a zoo entry, a reachable Hub id, nor a local folder."""


class DataError(TlzooError):
    """The target data cannot be used: missing column, empty split, one class, ..."""


class ColumnNotFoundError(DataError):
    """A named input or label column does not exist in the data."""


class UnreadableExampleError(DataError):
    """An example (an image or audio file, say) cannot be read or decoded."""


class ConfigurationError(TlzooError):
    """An argument to ``adapt()`` or the CLI is invalid (strategy, head, task, ...)."""


class TrainingError(TlzooError):
    """Training cannot go on: a NaN/inf loss, a checkpoint that does not match, ..."""


class MetricError(TlzooError):
    """A metric name cannot be loaded, or metric inputs do not fit the task."""


class ModelLoadError(TlzooError):
    """A saved adapted model cannot be fully restored (missing head, wrong shapes, ...)."""


class HubError(TlzooError):
    """Talking to the Hub failed: missing/invalid token, no rights, network failure."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean 'a', 'b'?"`` for close matches of *name*, or ``""``."""
    pool = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in pool}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    # substring matches help for long Hub ids ("vit" -> "google/vit-base-...")
    if not matches:
        matches = [c for c in lowered if name.lower() in c][:n]
    if not matches:
        return ""
    return " Did you mean " + ", ".join(repr(lowered[m]) for m in matches) + "?"


#: Where the user is: ``"python"``, or ``"cli"`` while a ``tlzoo`` command runs (see :func:`setting`).
INTERFACE: contextvars.ContextVar[str] = contextvars.ContextVar("tlzoo_interface", default="python")


def setting(name: str, value: Any = ...) -> str:
    """How the user sets option *name* to *value*, in the words of where they are.

    From Python, ``label_column=...``; inside a ``tlzoo`` command, its flag
    (``--label-column ...``; ``--resume`` for ``resume_from=True``). Error
    messages use it, so that advice names what the user can type. ``...`` stands
    for a value to choose.
    """
    if INTERFACE.get() != "cli":
        return f"{name}={'...' if value is ... else repr(value)}"
    from tlzoo.options import AdaptOptions, flag_names

    fields = {f.name: f for f in dataclasses.fields(AdaptOptions)}
    flag = flag_names(fields[name])[-1] if name in fields else "--" + name.replace("_", "-")
    if value is True:
        return flag
    if value is False:
        return f"--no-{flag[2:]}"
    return f"{flag} {'...' if value is ... else value}"

