"""The text plugin passes tlzoo's plugin conformance kit, one test per check.

BERT is checked twice: with the default (mean) pooling, which no transformers
classifier computes, so saving must refuse the ``pipeline()`` export with a
reason; and with ``pooling="pooler"``, which BERT's classifier computes, so
the saved folder must serve ``pipeline("text-classification")`` exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tlzoo.testing import CHECKS, PluginConformance, build_tiny_bert

SENTENCES = [
    "the cat sat on the mat",
    "a dog barks",
    "birds sing at dawn and the whole garden wakes up with them",
    "rain",
]
POOLINGS = {"mean": ({}, False), "pooler": ({"pooling": "pooler"}, True)}


def write_txt(text: str, path: Path) -> None:
    path.write_text(text + "\n", encoding="utf-8")  # read_file strips the surrounding whitespace


@pytest.fixture(scope="module", params=sorted(POOLINGS))
def kit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PluginConformance:
    options, exported = POOLINGS[request.param]
    return PluginConformance("text", build_tiny_bert, SENTENCES, labels=("pets", "nature"), write_file=write_txt,
                             options=options, expect_pipeline=exported,
                             tmp_path=tmp_path_factory.mktemp(f"text-{request.param}"))


@pytest.mark.parametrize("check", CHECKS)
def test_text_plugin_conforms(kit: PluginConformance, check: str) -> None:
    result = kit.run_check(check)
    if result.skipped:
        pytest.skip(result.detail)


def test_without_files_cli_predict_takes_the_texts_themselves(tmp_path: Path) -> None:
    kit = PluginConformance("text", build_tiny_bert, SENTENCES[:2], tmp_path=tmp_path)
    assert kit.run_check("read_file").skipped  # no write_file given
    assert not kit.run_check("cli_predict").skipped
