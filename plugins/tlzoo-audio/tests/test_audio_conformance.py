"""The audio plugin passes tlzoo's plugin conformance kit, one test per check, for wav2vec2 and AST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from tlzoo.testing import CHECKS, PluginConformance, build_tiny_ast, build_tiny_wav2vec2

RATE = 16000
BUILDERS = {"wav2vec2": build_tiny_wav2vec2, "ast": build_tiny_ast}


def tones() -> list[np.ndarray]:
    """Four quiet sine tones with a little noise, 0.2 to 0.6 s long, so a batch pads the shorter ones."""
    rng = np.random.default_rng(0)
    out = []
    for hz, seconds in ((220, 0.4), (440, 0.25), (330, 0.6), (550, 0.2)):
        t = np.arange(int(RATE * seconds)) / RATE
        out.append((0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return out


def write_wav(clip: np.ndarray, path: Path) -> None:
    soundfile.write(path, clip, RATE, subtype="FLOAT")  # 32-bit float WAV: the samples read back unchanged


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def kit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PluginConformance:
    return PluginConformance("audio", BUILDERS[request.param], tones(), labels=("low", "high"), write_file=write_wav,
                             tmp_path=tmp_path_factory.mktemp(f"audio-{request.param}"))


@pytest.mark.parametrize("check", CHECKS)
def test_audio_plugin_conforms(kit: PluginConformance, check: str) -> None:
    result = kit.run_check(check)
    if result.skipped:
        pytest.skip(result.detail)
