"""Feature extractors of the three built-in plugins, on tiny models."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from tlzoo.errors import UnreadableExampleError
from tlzoo.plugins import get_modality
from tlzoo.registry import resolve_source


def build(tiny_models: Any, family: str, **options: Any) -> Any:
    source = resolve_source(tiny_models(family))
    return get_modality(source.modality).build_feature_extractor(source.hub_id, **options)


@pytest.mark.parametrize("family", ["vit", "convnext", "dinov2", "resnet", "swin"])
def test_image_inputs_of_every_kind_give_one_vector_each(tiny_models: Any, family: str, tmp_path: Path) -> None:
    extractor = build(tiny_models, family)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    rgb = Image.fromarray(pixels)
    path = tmp_path / "x.png"
    rgb.save(path)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    values = [rgb, pixels, str(path), {"bytes": buffer.getvalue(), "path": None}, rgb.convert("L"), rgb.convert("RGBA")]
    features = extractor.extract(values)
    assert features.shape == (len(values), extractor.feature_size)
    assert torch.isfinite(features).all()
    # the same picture however it arrives gives the same features
    for i in (1, 2, 3):
        torch.testing.assert_close(features[i], features[0])
    assert not torch.allclose(features[4], features[0])  # greyscale differs, but is read


@pytest.mark.parametrize("family", ["vit", "convnext", "wav2vec2", "hubert", "bert", "roberta"])
def test_layer_groups_are_ordered_and_cover_the_backbone(tiny_models: Any, family: str) -> None:
    extractor = build(tiny_models, family)
    groups = extractor.layer_groups()
    assert groups[0].name == "embeddings"
    assert len(groups) >= 3
    ids = [id(p) for g in groups for p in g.parameters]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in extractor.backbone.parameters()}


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm"])
def test_audio_padding_invariance_and_input_forms(tiny_models: Any, family: str, tmp_path: Path) -> None:
    extractor = build(tiny_models, family)
    rate = extractor.sampling_rate
    rng = np.random.default_rng(1)
    short = (0.3 * np.sin(np.linspace(0, 200, rate // 4))).astype(np.float32)
    long = rng.normal(0, 0.2, rate).astype(np.float32)
    alone = extractor.extract([short])
    together = extractor.extract([short, long])
    torch.testing.assert_close(together[0], alone[0], atol=1e-4, rtol=1e-4)
    assert together.shape == (2, extractor.feature_size)
    # the same clip at 8 kHz stereo, as a file, as datasets dicts: resampled, mixed to mono
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.stack([short, short], axis=1), rate)
    forms = [str(path), {"bytes": wav_bytes(short, rate), "path": None}, {"array": short, "sampling_rate": rate}]
    torch.testing.assert_close(extractor.extract(forms), alone.repeat(3, 1), atol=1e-4, rtol=1e-4)
    import soxr

    slow = soxr.resample(short, rate, 8000)
    resampled = extractor.extract([{"array": slow, "sampling_rate": 8000}])
    assert resampled.shape == alone.shape
    assert torch.nn.functional.cosine_similarity(resampled, alone).item() > 0.9


def test_group_norm_audio_models_stay_padding_invariant(tmp_path: Path) -> None:
    from tlzoo import testing

    folder = testing.build_tiny_wav2vec2(tmp_path / "w2v-group", feat_extract_norm="group")
    extractor = get_modality("audio").build_feature_extractor(str(folder))
    rate = extractor.sampling_rate
    short = np.sin(np.linspace(0, 300, rate // 3)).astype(np.float32)
    long = np.cos(np.linspace(0, 900, rate)).astype(np.float32)
    torch.testing.assert_close(extractor.extract([short, long])[0], extractor.extract([short])[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("pooling", ["auto", "cls"])
def test_text_padding_invariance_and_truncation(tiny_models: Any, family: str, pooling: str) -> None:
    extractor = build(tiny_models, family, pooling=pooling)
    short = "the match was great"
    long = " ".join(["the weather is sunny and warm today"] * 40)
    alone = extractor.extract([short])
    together = extractor.extract([short, long])
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-4)
    batch = extractor.preprocess([long])
    assert batch["input_ids"].shape[1] == extractor.max_length
    assert together.shape == (2, extractor.feature_size)


def test_unreadable_examples_name_the_file(tiny_models: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UnreadableExampleError, match="broken.png"):
        get_modality("image").check_example(str(bad))
    bad_audio = tmp_path / "broken.wav"
    bad_audio.write_bytes(b"RIFF nonsense")
    with pytest.raises(UnreadableExampleError, match="broken.wav"):
        get_modality("audio").check_example(str(bad_audio))
    with pytest.raises(UnreadableExampleError, match="Expected text"):
        get_modality("text").check_example(3.5)


def test_cache_key_changes_with_weights_and_preprocessing(tiny_models: Any, tmp_path: Path) -> None:
    from tlzoo import testing

    a = build(tiny_models, "vit")
    assert a.cache_key() == build(tiny_models, "vit").cache_key()
    other = testing.build_tiny_vit(tmp_path / "vit-seed1", seed=1)
    assert get_modality("image").build_feature_extractor(str(other)).cache_key() != a.cache_key()
    assert build(tiny_models, "vit", pooling="mean").cache_key() != a.cache_key()
