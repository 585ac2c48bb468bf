"""JSON for what tlzoo reports: numpy and torch values as plain numbers and lists.

Metrics hold numpy arrays (a confusion matrix), recipes hold paths and tuples;
:func:`dumps` writes them all as plain JSON, for ``results.json``, ``tlzoo.json``
and every ``--json`` output alike. Light on purpose: it imports neither numpy nor
torch, so a command that prints JSON pays for neither.
"""

from __future__ import annotations

import json
import os
from typing import Any


def to_jsonable(value: Any) -> Any:
    """A JSON value for what :mod:`json` cannot write: arrays, tensors and numpy scalars, paths, sets."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def dumps(data: Any, *, indent: int | None = 2, **options: Any) -> str:
    """``json.dumps`` with :func:`to_jsonable` for the values it cannot write."""
    return json.dumps(data, indent=indent, default=to_jsonable, **options)
