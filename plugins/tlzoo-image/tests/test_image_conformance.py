"""The image plugin passes tlzoo's plugin conformance kit, one test per check, for a ViT and a CNN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tlzoo.testing import CHECKS, PluginConformance, build_tiny_resnet, build_tiny_vit

BUILDERS = {"vit": build_tiny_vit, "resnet": build_tiny_resnet}


def images() -> list[Image.Image]:
    """Four noisy RGB images of different sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    sizes = ((40, 48), (33, 33), (64, 20), (24, 30))
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def write_png(image: Image.Image, path: Path) -> None:
    image.save(path)  # PNG is lossless: the file reads back as the same pixels


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def kit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PluginConformance:
    return PluginConformance("image", BUILDERS[request.param], images(), labels=("cat", "dog"), write_file=write_png,
                             tmp_path=tmp_path_factory.mktemp(f"image-{request.param}"))


@pytest.mark.parametrize("check", CHECKS)
def test_image_plugin_conforms(kit: PluginConformance, check: str) -> None:
    result = kit.run_check(check)
    if result.skipped:
        pytest.skip(result.detail)


def test_report_lists_every_check(kit: Any) -> None:
    report = kit.run(["registered", "features", "read_file"])
    assert report.ok and [r.name for r in report.results] == ["registered", "features", "read_file"]
    assert "ok   features: [batch, 32]" in str(report)
