"""The candidates of ``tlzoo.rank``: zoo patterns expanded, every name resolved, failures kept with their error.

Nothing here reads model weights: a zoo entry resolves from the registry, a
Hub id or a local folder from its ``config.json`` (as ``adapt()`` resolves its
source before it reads the data).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlzoo.errors import ConfigurationError, TlzooError, UnknownModelError

if TYPE_CHECKING:
    from tlzoo.registry import SourceModel

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "expand_sources", "names_candidates", "resolve_candidates"]

_PATTERN_CHARACTERS = frozenset("*?[")


def _is_pattern(text: str) -> bool:
    return bool(_PATTERN_CHARACTERS & set(text)) and not Path(text).expanduser().exists()


def names_candidates(source: Any) -> bool:
    """Whether *source* names candidates to rank rather than one source model: a list or tuple, or a zoo pattern.

    A pattern is a string with a shell wildcard (``*``, ``?``, ``[``) that is
    not an existing path; no zoo name or Hub id has one.
    """
    if isinstance(source, list | tuple):
        return True
    return isinstance(source, str | os.PathLike) and _is_pattern(os.fspath(source))


def expand_sources(sources: Any, *, modality: str | None = None, registry: Any = None) -> list[Any]:
    """The candidates named by *sources*: zoo patterns (``"*minilm*"``) expanded, duplicates dropped, order kept.

    :param sources: one name / Hub id / folder / pattern, or a list of them (or of
        :class:`~tlzoo.registry.SourceModel` records).
    :param modality: restricts what a pattern matches.
    :param registry: a registry file merged over the zoo, for the patterns.
    :raises ConfigurationError: no sources at all, or one that is not a name, folder or record.
    :raises UnknownModelError: a pattern that matches no zoo entry.
    """
    from tlzoo.registry import SourceModel, list_models

    items = [sources] if isinstance(sources, str | os.PathLike | SourceModel) else list(sources or [])
    if not items:
        raise ConfigurationError(
            "No source models to rank: pass a list of zoo names, Hub ids or model folders, or a zoo pattern "
            "such as '*minilm*' (`tlzoo models` lists the zoo)."
        )
    out: list[Any] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, SourceModel):
            found: list[Any] = [item]
        elif not isinstance(item, str | os.PathLike):
            raise ConfigurationError(f"A source must be a zoo name, Hub id, folder or pattern, got {item!r}.")
        elif _is_pattern(os.fspath(item)):
            found = list_models(os.fspath(item), modality=modality, registry=registry)
            if not found:
                scope = f" of modality {modality!r}" if modality else ""
                raise UnknownModelError(
                    f"No zoo entry{scope} matches {os.fspath(item)!r}; `tlzoo models` lists the zoo.")
        else:
            found = [os.fspath(item)]
        for candidate in found:
            key = candidate.name if isinstance(candidate, SourceModel) else candidate
            if key not in seen:
                seen.add(key)
                out.append(candidate)
    return out


@dataclass
class Candidate:
    """One candidate source model on its way through :func:`tlzoo.rank`.

    :ivar source: the name the user gave (a zoo name, Hub id or folder).
    :ivar record: the resolved :class:`~tlzoo.registry.SourceModel` (``None`` when it could not be found).
    :ivar error: why it cannot be ranked (``None`` while it can).
    """

    source: str
    record: SourceModel | None = None
    error: str | None = None


def resolve_candidates(items: list[Any], *, revision: str | None, registry: Any, token: Any) -> list[Candidate]:
    """Resolve every candidate; one that cannot be found keeps its error and does not stop the others.

    :raises TlzooError: when *none* can be found (nothing to rank): the error
        itself for a single candidate, as ``adapt()`` would raise it; for
        several, one error listing each candidate's reason, of their common
        class when they share one (:class:`~tlzoo.errors.UnknownModelError`
        for names that are not found, say), else :class:`~tlzoo.errors.TlzooError`.
    """
    from tlzoo.registry import SourceModel, resolve_source

    out: list[Candidate] = []
    failures: list[TlzooError] = []
    for item in items:
        name = item.name if isinstance(item, SourceModel) else str(item)
        try:
            out.append(Candidate(name, resolve_source(item, revision=revision, registry=registry, token=token)))
        except TlzooError as exc:
            failures.append(exc)
            out.append(Candidate(name, error=str(exc)))
    if len(failures) < len(out):
        return out
    if len(failures) == 1:
        raise failures[0]
    kinds = {type(exc) for exc in failures}
    kind = kinds.pop() if len(kinds) == 1 else TlzooError
    reasons = "; ".join(f"{c.source}: {c.error}" for c in out)
    raise kind(f"None of the {len(out)} candidate source models could be found ({reasons}).")
