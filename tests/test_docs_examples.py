"""The documentation's Python examples run, and the references are complete.

Every ```python block of ``docs/*.md`` is executed, in order, per file, in one
fresh namespace, in a temporary working directory, under the test suite's
offline environment (``conftest.py``). A block is only syntax-checked when the
line before its fence is ``<!-- skip-test -->`` (examples that need the
network or large models). Pages whose snippets are illustrations with
placeholders (``README.md``, the landing page with real Hub ids;
``plugin-hooks.md``; ``benchmarks.md``) are opt-in: a block there runs only
when marked ``<!-- run-test -->``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SKIP = "<!-- skip-test -->"
RUN = "<!-- run-test -->"
OPT_IN = {"README.md", "plugin-hooks.md", "benchmarks.md"}
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """``(line number, code, run)`` of every ```python block in *path*."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        marker = before[-1].strip() if before else ""
        run = marker == RUN if path.name in OPT_IN else marker != SKIP
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1), run))
    return blocks


DOC_FILES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
RUNNABLE = [path for path in DOC_FILES if any(run for _, _, run in python_blocks(path))]


@pytest.mark.parametrize("path", [p for p in DOC_FILES if p.name not in OPT_IN], ids=lambda p: p.name)
def test_python_examples_are_valid_python(path: Path) -> None:
    """Blocks marked skip-test too: they must at least compile."""
    for line, code, _ in python_blocks(path):
        compile(code, f"{path.name}:{line}", "exec")


def test_most_pages_have_runnable_examples() -> None:
    assert {"getting-started.md", "user-guide.md", "api.md", "plugin-guide.md"} <= {p.name for p in RUNNABLE}


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.name)
def test_python_examples(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runnable = [(line, code) for line, code, run in python_blocks(path) if run]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from tlzoo import plugins

    namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    levels = {name: logging.getLogger(name).level for name in ["", *logging.root.manager.loggerDict]}
    handlers = list(logging.root.handlers)
    try:
        for line, code in runnable:
            try:
                exec(compile(code, f"{path.relative_to(ROOT)}:{line}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"the example at {path.relative_to(ROOT)} line {line} failed: {exc!r}") from exc
    finally:
        plugins.reset()
        logging.root.handlers[:] = handlers  # an example that sets up logging does not change later tests
        for name in logging.root.manager.loggerDict:
            logging.getLogger(name).setLevel(levels.get(name, logging.NOTSET))
        logging.root.setLevel(levels[""])


def test_getting_started_has_quick_start_commands() -> None:
    text = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    assert "bash setup.sh demo" in text and "bash setup.sh test" in text


def test_cli_reference_covers_every_command_and_flag() -> None:
    import argparse

    from tlzoo.cli import build_parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, subparser in sub.choices.items():
        if f"## `tlzoo {name}`" not in text:
            missing.append(f"tlzoo {name}")
        for action in subparser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and f"`{option}" not in text:
                    missing.append(f"tlzoo {name} {option}")
    for option in ("--version", "--debug", "--quiet"):
        if f"`{option}" not in text:
            missing.append(option)
    assert not missing, f"docs/cli.md does not document: {missing}"
    assert "## `tlzoo demo`" in text


def test_troubleshooting_covers_every_error_class() -> None:
    import inspect

    from tlzoo import errors

    classes = [
        name for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.TlzooError) and obj.__module__ == errors.__name__
    ]
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    missing = [name for name in classes if f"## `{name}`" not in text]
    assert len(classes) >= 13
    assert not missing, f"docs/troubleshooting.md has no section for: {missing}"


def test_docs_index_links_every_page() -> None:
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    pages = [p.name for p in DOCS.glob("*.md") if p.name != "index.md"]
    for page in ("getting-started.md", "user-guide.md", "plugin-guide.md", "cli.md", "api.md", "registry.md",
                 "troubleshooting.md", "plugin-hooks.md", "benchmarks.md"):
        assert f"({page})" in text, page
    assert all(f"({p})" in text for p in pages)
