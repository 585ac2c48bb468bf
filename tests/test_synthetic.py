"""Tests of tlzoo.demo.synthetic (made-up datasets) and tlzoo.testing (tiny offline models)."""

import os

os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tlzoo import testing
from tlzoo.demo import synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]


def _decode(example_audio: dict) -> tuple[np.ndarray, int]:
    assert example_audio["path"] is None
    samples, rate = sf.read(io.BytesIO(example_audio["bytes"]), dtype="float32")
    return samples, rate


def _col(ds, name: str) -> list:
    """A column as a plain list (``ds[name]`` is a lazy ``datasets.Column`` in datasets 5)."""
    return list(ds[name])


def _counts(ds) -> Counter:
    return Counter(_col(ds, "label"))


# --------------------------------------------------------------------------
# module import
# --------------------------------------------------------------------------


def test_import_is_cheap():
    # only what these two modules add counts (tlzoo/__init__.py is not theirs)
    code = (
        "import sys, tlzoo\n"
        "before = set(sys.modules)\n"
        "import tlzoo.demo.synthetic, tlzoo.testing\n"
        "heavy = ('torch', 'transformers', 'datasets', 'numpy', 'PIL', 'soxr', 'soundfile', 'pyarrow')\n"
        "print(','.join(m for m in set(sys.modules) - before if m.split('.')[0] in heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------


def test_shapes_features_balance_and_images():
    from datasets import ClassLabel, Image

    ds = synthetic.make_shapes(5, ("circle", "star", "ring"), size=24, seed=3)
    assert len(ds) == 15
    assert isinstance(ds.features["image"], Image)
    assert isinstance(ds.features["label"], ClassLabel)
    assert ds.features["label"].names == ["circle", "star", "ring"]
    assert _counts(ds) == {0: 5, 1: 5, 2: 5}
    assert _col(ds, "label") != sorted(_col(ds, "label"))  # shuffled, not grouped by class
    images = _col(ds, "image")
    assert all(img.mode == "RGB" and img.size == (24, 24) for img in images)
    arrays = [np.asarray(img) for img in images]
    assert len({a.tobytes() for a in arrays}) == 15  # every image differs
    assert all(a.std() > 5 for a in arrays)  # not blank


def test_shapes_deterministic_by_seed():
    a = synthetic.make_shapes(4, seed=7)
    b = synthetic.make_shapes(4, seed=7)
    c = synthetic.make_shapes(4, seed=8)
    assert _col(a, "label") == _col(b, "label")
    assert a.data.column("image").to_pylist() == b.data.column("image").to_pylist()
    assert a.data.column("image").to_pylist() != c.data.column("image").to_pylist()


def test_all_shapes_draw_and_source_target_split():
    assert len(synthetic.SHAPES) >= 12
    assert len(set(synthetic.SHAPES)) == len(synthetic.SHAPES)
    source = synthetic.SHAPES[: len(synthetic.SHAPES) // 2]
    target = synthetic.SHAPES[len(synthetic.SHAPES) // 2 :]
    ds = synthetic.make_shapes(2, synthetic.SHAPES, size=16)
    assert ds.features["label"].names == list(synthetic.SHAPES)
    assert _counts(ds) == dict.fromkeys(range(len(synthetic.SHAPES)), 2)
    assert not set(synthetic.make_shapes(1, source).features["label"].names) & set(
        synthetic.make_shapes(1, target).features["label"].names
    )


def test_shapes_grey_mode_and_shape_is_visible():
    ds = synthetic.make_shapes(3, ("square", "hline"), size=32, colorful=False, seed=1)
    for img in _col(ds, "image"):
        a = np.asarray(img).astype(int)
        # background noise is per pixel but grey: the three channels agree
        assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
        assert a.max() - a.min() > 60  # the shape stands out from the background


def test_shapes_invalid_arguments():
    with pytest.raises(ValueError, match="circel.*Did you mean 'circle'"):
        synthetic.make_shapes(2, ("circel", "square"))
    with pytest.raises(ValueError, match="unique"):
        synthetic.make_shapes(2, ("circle", "circle"))
    with pytest.raises(ValueError, match="n_per_class"):
        synthetic.make_shapes(0)
    with pytest.raises(ValueError, match="size"):
        synthetic.make_shapes(1, size=4)
    with pytest.raises(ValueError, match="not one string"):
        synthetic.make_shapes(1, "circle")


# --------------------------------------------------------------------------
# tones
# --------------------------------------------------------------------------


def test_tones_features_decode_and_frequency():
    from datasets import Audio, ClassLabel

    ds = synthetic.make_tones(4, (300.0, 1000.0, 2500.5), sampling_rate=8000, duration=0.25, seed=2)
    assert len(ds) == 12
    audio = ds.features["audio"]
    assert isinstance(audio, Audio) and audio.sampling_rate == 8000 and audio.decode is False
    assert isinstance(ds.features["label"], ClassLabel)
    assert ds.features["label"].names == ["300hz", "1000hz", "2500.5hz"]
    assert _counts(ds) == {0: 4, 1: 4, 2: 4}
    freqs = (300.0, 1000.0, 2500.5)
    for ex in ds:
        samples, rate = _decode(ex["audio"])
        assert rate == 8000
        assert samples.ndim == 1 and len(samples) == 2000  # 0.25 s
        spectrum = np.abs(np.fft.rfft(samples))
        peak = np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))]
        assert abs(peak - freqs[ex["label"]]) / freqs[ex["label"]] < 0.05


def test_tones_deterministic_and_noisy():
    a = synthetic.make_tones(3, seed=5)
    b = synthetic.make_tones(3, seed=5)
    c = synthetic.make_tones(3, seed=6)
    assert _col(a, "audio") == _col(b, "audio") and _col(a, "label") == _col(b, "label")
    assert _col(a, "audio") != _col(c, "audio")
    clean = _decode(synthetic.make_tones(1, (440.0,), noise=0.0)["audio"][0])[0]
    noisy = _decode(synthetic.make_tones(1, (440.0,), noise=0.2)["audio"][0])[0]
    assert np.abs(noisy).max() > np.abs(clean).max()
    assert synthetic.tone_label(220.0) == "220hz"


def test_tones_invalid_arguments():
    with pytest.raises(ValueError, match="unique"):
        synthetic.make_tones(2, (440.0, 440))
    with pytest.raises(ValueError, match="frequencies"):
        synthetic.make_tones(2, (440.0, 9000.0), sampling_rate=16000)
    with pytest.raises(ValueError, match="duration"):
        synthetic.make_tones(2, duration=0.0)


# --------------------------------------------------------------------------
# spoken words
# --------------------------------------------------------------------------

needs_espeak = pytest.mark.skipif(not synthetic.espeak_available(), reason="espeak-ng is not installed")


@needs_espeak
def test_spoken_words_audio():
    from datasets import Audio

    words = ("yes", "seven", "elephant")
    ds = synthetic.make_spoken_words(words, 4, seed=1)
    assert len(ds) == 12
    assert ds.features["label"].names == list(words)
    assert isinstance(ds.features["audio"], Audio) and ds.features["audio"].decode is False
    assert _counts(ds) == {0: 4, 1: 4, 2: 4}
    lengths: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for ex in ds:
        samples, rate = _decode(ex["audio"])
        assert rate == 16000
        assert 0.1 * rate < len(samples) < 3 * rate
        assert np.sqrt(np.mean(samples**2)) > 0.01  # not silent
        lengths[ex["label"]].append(len(samples))
    assert len({n for ns in lengths.values() for n in ns}) > 6  # clips vary
    assert np.mean(lengths[0]) < np.mean(lengths[2])  # "yes" is shorter than "elephant"


@needs_espeak
def test_spoken_words_deterministic_and_resampled():
    a = synthetic.make_spoken_words(("go", "stop"), 2, voices=("en-us", "en-gb+f2"), sampling_rate=8000, seed=4)
    b = synthetic.make_spoken_words(("go", "stop"), 2, voices=("en-us", "en-gb+f2"), sampling_rate=8000, seed=4)
    assert _col(a, "audio") == _col(b, "audio") and _col(a, "label") == _col(b, "label")
    assert all(_decode(x)[1] == 8000 for x in _col(a, "audio"))
    assert a.features["audio"].sampling_rate == 8000


@needs_espeak
def test_spoken_words_bad_voice():
    with pytest.raises(RuntimeError, match="nonexistent-voice"):
        synthetic.make_spoken_words(("yes",), 1, voices=("nonexistent-voice",))


def test_spoken_words_without_espeak(monkeypatch):
    monkeypatch.setattr(synthetic.shutil, "which", lambda *args, **kwargs: None)
    assert not synthetic.espeak_available()
    with pytest.raises(RuntimeError, match="apt-get install -y espeak-ng"):
        synthetic.make_spoken_words(("yes", "no"), 1)


def test_spoken_words_invalid_arguments():
    with pytest.raises(ValueError, match="unique"):
        synthetic.make_spoken_words(("yes", "yes"), 1)
    with pytest.raises(ValueError, match="voices"):
        synthetic.make_spoken_words(("yes", "no"), 1, voices=())
    with pytest.raises(ValueError, match="blank"):
        synthetic.make_spoken_words(("yes", " "), 1)


# --------------------------------------------------------------------------
# sentences
# --------------------------------------------------------------------------


def test_sentences_features_balance_and_keywords():
    from datasets import ClassLabel, Value

    ds = synthetic.make_sentences(20, seed=0)
    assert len(ds) == 60
    assert ds.features["text"] == Value("string")
    assert isinstance(ds.features["label"], ClassLabel)
    assert ds.features["label"].names == ["sports", "weather", "food"]
    assert _counts(ds) == {0: 20, 1: 20, 2: 20}
    topics = list(synthetic.DEFAULT_SENTENCE_CLASSES.values())
    vocab = set(synthetic.sentence_vocabulary())
    for ex in ds:
        words = ex["text"].lower().rstrip(".!?").split()
        assert 4 <= len(words) <= 20
        assert set(words) <= vocab
        own = sum(w in topics[ex["label"]] for w in words)
        other = sum(w in kws for i, kws in enumerate(topics) if i != ex["label"] for w in words)
        assert own >= 2 > other  # learnable: the class's keywords are the majority
    assert len(set(_col(ds, "text"))) > 50


def test_sentences_deterministic_and_custom_classes():
    assert _col(synthetic.make_sentences(5, seed=1), "text") == _col(synthetic.make_sentences(5, seed=1), "text")
    assert _col(synthetic.make_sentences(5, seed=1), "text") != _col(synthetic.make_sentences(5, seed=2), "text")
    ds = synthetic.make_sentences(3, {"animals": ["cat", "dog"], "colours": ("red", "blue")}, seed=0)
    assert ds.features["label"].names == ["animals", "colours"]
    for ex in ds:
        kws = (("cat", "dog"), ("red", "blue"))[ex["label"]]
        assert any(k in ex["text"].lower().split() for k in kws)
    assert {"cat", "red", "the"} <= set(synthetic.sentence_vocabulary({"a": ["cat"], "b": ["red"]}))


def test_sentences_invalid_arguments():
    with pytest.raises(ValueError, match="no keywords"):
        synthetic.make_sentences(2, {"a": [], "b": ["x"]})
    with pytest.raises(ValueError, match="not one string"):
        synthetic.make_sentences(2, {"a": "word", "b": ["x"]})
    with pytest.raises(ValueError, match="at least one class"):
        synthetic.make_sentences(2, {})


# --------------------------------------------------------------------------
# tiny models
# --------------------------------------------------------------------------

EXPECTED = {
    # name: (family: the config is "<family>Config" and the model "<family>Model", preprocessor class)
    "vit": ("ViT", "ViTImageProcessor"),
    "convnext": ("ConvNext", "ConvNextImageProcessor"),
    "dinov2": ("Dinov2", "BitImageProcessor"),
    "resnet": ("ResNet", "ConvNextImageProcessor"),
    "swin": ("Swin", "ViTImageProcessor"),
    "wav2vec2": ("Wav2Vec2", "Wav2Vec2FeatureExtractor"),
    "hubert": ("Hubert", "Wav2Vec2FeatureExtractor"),
    "wavlm": ("WavLM", "Wav2Vec2FeatureExtractor"),
    "ast": ("AST", "ASTFeatureExtractor"),
    "whisper": ("Whisper", "WhisperFeatureExtractor"),
    "bert": ("Bert", "BertTokenizer"),
    "distilbert": ("DistilBert", "DistilBertTokenizer"),
    "roberta": ("Roberta", "RobertaTokenizer"),
}
#: The Auto class that loads each modality's preprocessor.
AUTO_PREPROCESSOR = {"image": "AutoImageProcessor", "audio": "AutoFeatureExtractor", "text": "AutoTokenizer"}


@pytest.fixture(scope="module")
def shape_images():
    return list(synthetic.make_shapes(1, ("circle", "star"), size=40, seed=0)["image"])


@pytest.fixture(scope="module")
def tone_waves():
    ds = synthetic.make_tones(1, (220.0, 880.0), duration=0.5, seed=0)
    first, second = (_decode(a)[0] for a in _col(ds, "audio"))
    return [first, second[:5000]]  # two lengths, so padding is exercised


@pytest.fixture(scope="module")
def texts():
    return list(synthetic.make_sentences(1, seed=0)["text"])[:2]


def _inputs(name, preprocessor, shape_images, tone_waves, texts):
    modality = testing.TINY_MODALITIES[name]
    if modality == "image":
        return preprocessor(images=shape_images, return_tensors="pt")
    if modality == "audio":
        padding = {} if name in ("whisper", "ast") else {"padding": True}  # these two pad to a fixed length
        return preprocessor(tone_waves, sampling_rate=16000, return_tensors="pt", **padding)
    return preprocessor(texts, return_tensors="pt", padding=True, truncation=True)


def test_builder_registry_is_complete():
    assert set(testing.TINY_BUILDERS) == set(testing.TINY_MODALITIES) == set(EXPECTED)
    assert set(testing.TINY_MODALITIES.values()) == {"image", "audio", "text"}
    for builder in testing.TINY_BUILDERS.values():
        assert builder.__doc__ and builder.__name__.startswith("build_tiny_")
    with pytest.raises(ValueError, match="Did you mean 'bert'"):
        testing.build_tiny("bret", "unused")


# torch warns inside transformers' WavLM attention when given a padding mask; not ours to fix
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask and attn_mask:UserWarning")
@pytest.mark.parametrize("name", list(EXPECTED))
def test_tiny_model_round_trips_through_auto_classes(name, tmp_path, shape_images, tone_waves, texts):
    import torch
    import transformers

    family, pre_cls = EXPECTED[name]
    folder = testing.build_tiny(name, tmp_path / name)
    assert folder == tmp_path / name
    files = set(os.listdir(folder))
    assert {"config.json", "model.safetensors"} <= files
    modality = testing.TINY_MODALITIES[name]
    assert ("tokenizer.json" if modality == "text" else "preprocessor_config.json") in files

    config = transformers.AutoConfig.from_pretrained(folder)
    assert type(config).__name__ == f"{family}Config"
    model = transformers.AutoModel.from_pretrained(folder).eval()
    assert type(model).__name__ == f"{family}Model"
    preprocessor = getattr(transformers, AUTO_PREPROCESSOR[modality]).from_pretrained(folder)
    # without torchvision the image processors are the PIL-backend classes ("ViTImageProcessorPil")
    assert type(preprocessor).__name__.removesuffix("Pil") == pre_cls
    assert sum(p.numel() for p in model.parameters()) < 500_000

    inputs = _inputs(name, preprocessor, shape_images, tone_waves, texts)
    with torch.no_grad():
        out = model.get_encoder()(**inputs) if name == "whisper" else model(**inputs)
    hidden = out.last_hidden_state
    size = testing.feature_size(config)
    assert size == 32
    assert hidden.shape[0] == 2
    assert hidden.shape[-1 if hidden.ndim == 3 else 1] == size  # (batch, seq, hidden) or CNN (batch, C, H, W)
    assert torch.isfinite(hidden).all()


def test_builders_are_reproducible_and_leave_rng_alone(tmp_path):
    import torch
    from safetensors.torch import load_file

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_file(testing.build_tiny_vit(tmp_path / "a", seed=1) / "model.safetensors")
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG is untouched
    b = load_file(testing.build_tiny_vit(tmp_path / "b", seed=1) / "model.safetensors")
    c = load_file(testing.build_tiny_vit(tmp_path / "c", seed=2) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    r1 = (testing.build_tiny_roberta(tmp_path / "r1") / "tokenizer.json").read_text()
    r2 = (testing.build_tiny_roberta(tmp_path / "r2") / "tokenizer.json").read_text()
    assert r1 == r2


def test_builder_overrides_and_sizes(tmp_path, shape_images):
    import torch
    from transformers import AutoImageProcessor, AutoModel

    folder = testing.build_tiny_vit(tmp_path / "vit", image_size=48, patch_size=16, hidden_size=48, num_hidden_layers=1)
    model = AutoModel.from_pretrained(folder)
    assert model.config.hidden_size == 48 and model.config.num_hidden_layers == 1
    inputs = AutoImageProcessor.from_pretrained(folder)(images=shape_images, return_tensors="pt")
    assert inputs["pixel_values"].shape == (2, 3, 48, 48)
    with torch.no_grad():
        assert model(**inputs).last_hidden_state.shape == (2, 10, 48)  # 3x3 patches + CLS


def test_tiny_tokenizers_cover_synthetic_text_and_truncate(tmp_path):
    from transformers import AutoTokenizer

    sentences = list(synthetic.make_sentences(30, seed=3)["text"])
    bert = AutoTokenizer.from_pretrained(testing.build_tiny_bert(tmp_path / "bert"))
    assert bert.model_max_length == 64
    ids = bert(sentences)["input_ids"]
    assert all(bert.unk_token_id not in row for row in ids)
    assert max(len(row) for row in ids) < 32  # whole words, not letters
    assert bert("Xylophone 42, ok?")["input_ids"].count(bert.unk_token_id) == 0  # letters/digits fallback
    long = " ".join(["football"] * 200)
    assert len(bert(long, truncation=True)["input_ids"]) == 64

    roberta = AutoTokenizer.from_pretrained(testing.build_tiny_roberta(tmp_path / "roberta"))
    assert (roberta.bos_token_id, roberta.pad_token_id, roberta.eos_token_id) == (0, 1, 2)
    assert len(roberta(long, truncation=True)["input_ids"]) == 64
    assert roberta.unk_token_id not in roberta("naïve café ☃")["input_ids"]  # byte-level: nothing unknown

    custom = AutoTokenizer.from_pretrained(testing.build_tiny_bert(tmp_path / "custom", vocab=["zebra"], max_length=16))
    assert custom.convert_ids_to_tokens(custom("zebra")["input_ids"]) == ["[CLS]", "zebra", "[SEP]"]
    assert custom.model_max_length == 16
    assert testing.text_vocabulary(["Zebra"])[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
