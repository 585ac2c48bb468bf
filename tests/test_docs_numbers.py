"""The demo's numbers in the docs are those of a recorded full run, and every place that gives its time agrees.

``bench/results/demo.json`` is ``tlzoo demo --json`` run in full (see
bench/README.md); the getting-started page shows its table, and the page and
``tlzoo demo --help`` give its duration in the same words.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "bench" / "results" / "demo.json"


def _recorded() -> dict:
    report = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert not report["quick"] and report["seed"] == 0, "the recorded demo must be a full run with seed 0"
    return report


def test_the_getting_started_table_is_the_recorded_demo_run() -> None:
    from tlzoo.demo.command import format_report

    lines = format_report(_recorded())
    start = next(i for i, line in enumerate(lines) if line.startswith("modality"))
    table = lines[start].splitlines() if "\n" in lines[start] else lines[start:]
    table = "\n".join(table).strip().splitlines()
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n(modality .*?)```", page, re.S)
    assert block is not None, "the getting-started page shows the demo's table"
    assert block.group(1).strip().splitlines() == table


def test_the_demo_duration_is_the_same_everywhere() -> None:
    from tlzoo.demo.command import DESCRIPTION, EPILOG

    minutes = max(1, round(_recorded()["seconds"] / 60))
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert f"On 2 CPU cores it takes about {words.get(minutes, minutes)} minute" in page
    assert f"everything: about {minutes} minute" in EPILOG
    assert "a few minutes" in DESCRIPTION or f"{minutes} minute" in DESCRIPTION
