"""Clips shorter than a backbone's minimum input: the minimum follows from the config, and such clips are padded.

A 5 ms clip used to crash inside wav2vec 2.0's convolutions after the model
had loaded, naming no file (or, batched with longer clips, give a feature
vector of zeros). Now it is padded with silence to the minimum, with a
warning naming it, in training and in prediction alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from tlzoo_audio.extractor import AudioFeatureExtractor, minimum_samples, training_samples

import tlzoo
from tlzoo.testing import build_tiny_wav2vec2

RATE = 16000

CONFIGS = {
    # name: Wav2Vec2Config arguments (tiny layers; the convolution layouts of real checkpoints)
    "tiny layer-norm encoder": {},
    "tiny group-norm encoder": {"feat_extract_norm": "group", "do_stable_layer_norm": False},
    "wav2vec2-base layout": {"conv_dim": (8,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
                             "conv_stride": (5, 2, 2, 2, 2, 2, 2), "feat_extract_norm": "group",
                             "do_stable_layer_norm": False, "mask_time_length": 10},
}


def _config(overrides: dict[str, Any]) -> Any:
    from transformers import Wav2Vec2Config

    from tlzoo.testing.builders import _TINY_SPEECH

    return Wav2Vec2Config(**{**_TINY_SPEECH, **overrides})


def test_the_minimum_of_wav2vec2_base_is_25_ms_and_210_ms_to_train() -> None:
    from transformers import Wav2Vec2Config

    config = Wav2Vec2Config()  # wav2vec2-base's feature encoder and SpecAugment settings
    assert minimum_samples(config) == 400 and training_samples(config) == 3280
    assert minimum_samples(Wav2Vec2Config(apply_spec_augment=False)) == training_samples(
        Wav2Vec2Config(apply_spec_augment=False)) == 400


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_minimum_is_the_shortest_input_the_backbone_takes(name: str) -> None:
    from transformers import Wav2Vec2Model

    config = _config(CONFIGS[name])
    torch.manual_seed(0)
    model = Wav2Vec2Model(config)
    shortest, to_train = minimum_samples(config), training_samples(config)
    assert to_train > shortest
    with torch.no_grad():
        model.eval()
        assert model(torch.randn(1, shortest)).last_hidden_state.shape[1] == 1
        with pytest.raises(RuntimeError, match="Kernel size"):
            model(torch.randn(1, shortest - 1))
        model.train()
        model(torch.randn(1, to_train))
        with pytest.raises(ValueError, match="mask_length"):
            model(torch.randn(1, to_train - 1))


@pytest.fixture(scope="module")
def group_norm_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny wav2vec 2.0 whose group-norm encoder runs each clip alone: a too-short clip crashed it even in a batch."""
    return build_tiny_wav2vec2(tmp_path_factory.mktemp("w2v-group") / "model", feat_extract_norm="group",
                               do_stable_layer_norm=False)


def _tone(seconds: float, hz: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _folder(root: Path, short: float) -> Path:
    for label, hz in (("low", 220.0), ("high", 880.0)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            soundfile.write(root / label / f"{i}.wav", _tone(0.25, hz, i), RATE, subtype="FLOAT")
    soundfile.write(root / "low" / "0-short.wav", _tone(short, 220.0, 99), RATE, subtype="FLOAT")
    return root


@pytest.mark.parametrize("strategy", ["linear_probe", "full"])
def test_a_clip_too_short_for_the_backbone_is_padded_with_a_warning_naming_it(
        strategy: str, group_norm_wav2vec2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.setenv("TLZOO_CACHE", str(tmp_path / "cache"))
    data = _folder(tmp_path / "data", short=0.005)  # 80 samples; this encoder needs 105
    short = data / "low" / "0-short.wav"
    with caplog.at_level(logging.WARNING, logger="tlzoo_audio.extractor"):
        result = tlzoo.adapt(str(group_norm_wav2vec2), str(data), strategy=strategy, epochs=1, batch_size=4,
                             test_size=0, validation_size=0, progress=False, output_dir=tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    (warning,) = [w for w in warnings if str(short) in w]  # once, however often the clip is read
    assert "5.0 ms" in warning and "105 samples" in warning and "Padded with silence" in warning
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    (prediction,) = tlzoo.load(tmp_path / "out" / "model").predict([str(short)])
    assert prediction["label"] in ("low", "high")


def test_padding_a_short_clip_gives_the_features_of_the_clip_padded_by_hand(group_norm_wav2vec2: Path) -> None:
    extractor = AudioFeatureExtractor.from_pretrained(str(group_norm_wav2vec2))
    clip = _tone(0.004, 440.0, 1)
    padded = np.pad(clip, (0, extractor.minimum_samples - len(clip)))
    long = _tone(0.2, 440.0, 2)
    np.testing.assert_allclose(extractor.extract([clip, long]), extractor.extract([padded, long]), rtol=1e-6)
    assert torch.isfinite(extractor.extract([clip])).all()


def test_the_padding_is_part_of_the_feature_cache_key(group_norm_wav2vec2: Path) -> None:
    """Features cached before short clips were padded (zeros, for some encoders) are not read back as now."""
    extractor = AudioFeatureExtractor.from_pretrained(str(group_norm_wav2vec2))
    assert f"padded to {extractor.minimum_samples} samples" in extractor.processor_fingerprint()
    assert AudioFeatureExtractor.from_pretrained(str(group_norm_wav2vec2)).cache_key() == extractor.cache_key()
