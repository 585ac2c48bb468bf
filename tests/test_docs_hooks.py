"""Every hook in tlzoo.plugins.hookspecs is documented in docs/plugin-hooks.md."""

from __future__ import annotations

import inspect
from pathlib import Path

from tlzoo.plugins import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin-hooks.md"


def hook_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if getattr(fn, "tlzoo_spec", None) is not None
    ]


def test_every_hook_has_a_section_and_a_docstring() -> None:
    names = hook_names()
    assert len(names) == 3
    text = DOC.read_text()
    headings = {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}
    missing = [n for n in names if n not in headings]
    assert not missing, f"hooks not documented in {DOC.name}: {missing}"
    for name in names:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_no_documented_hook_is_stale() -> None:
    text = DOC.read_text()
    headings = {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}
    assert headings == set(hook_names())
