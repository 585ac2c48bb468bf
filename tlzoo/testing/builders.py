"""Tiny Hugging Face models for tests, demos and benchmarks, built offline.

Each ``build_tiny_<family>(path, *, seed=0, **overrides)`` writes a normal
Hub-format folder -- ``config.json``, ``model.safetensors`` and the
preprocessor files (``preprocessor_config.json`` for image processors and
feature extractors, ``tokenizer.json`` + ``tokenizer_config.json`` for
tokenizers) -- and returns its :class:`~pathlib.Path`. The folder then loads
offline exactly like a Hub id::

    from transformers import AutoConfig, AutoModel, AutoImageProcessor
    from tlzoo.testing import build_tiny_vit

    folder = build_tiny_vit(tmp_path / "vit")
    model = AutoModel.from_pretrained(folder)
    processor = AutoImageProcessor.from_pretrained(folder)

The models are the *base* (headless) architectures with random weights, about
32 hidden units, 2 layers and 2 attention heads: each builds in well under a
second and runs a forward pass in milliseconds on CPU. Weights are
reproducible: the builder seeds torch with ``seed`` (inside
:func:`torch.random.fork_rng`, so the caller's random state is left alone).
Keyword ``overrides`` are passed to the model config (``hidden_size=64``,
``num_hidden_layers=1``, ...), after the tiny defaults.

Image processors use the PIL backend (``ViTImageProcessorPil``,
``ConvNextImageProcessorPil``, ``BitImageProcessorPil``) so nothing needs
torchvision; the saved ``preprocessor_config.json`` names the base class
(``ViTImageProcessor``, ...) as the Hub does, and ``AutoImageProcessor``
picks the torchvision class when torchvision is installed, else the PIL one.

Plugin authors can use these builders in their own tests. :data:`TINY_BUILDERS`
maps a short name to each builder, :data:`TINY_MODALITIES` gives each name's
modality, and :func:`build_tiny` builds one by name. :func:`feature_size`
tells the width of the features a loaded config's base model outputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlzoo.progress import library_progress_bars

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import PreTrainedConfig

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TINY_BUILDERS",
    "TINY_MODALITIES",
    "build_tiny",
    "build_tiny_ast",
    "build_tiny_bert",
    "build_tiny_convnext",
    "build_tiny_dinov2",
    "build_tiny_distilbert",
    "build_tiny_hubert",
    "build_tiny_resnet",
    "build_tiny_roberta",
    "build_tiny_swin",
    "build_tiny_vit",
    "build_tiny_wav2vec2",
    "build_tiny_wavlm",
    "build_tiny_whisper",
    "feature_size",
    "text_vocabulary",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_TINY_TRANSFORMER: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for reproducible initial weights without touching the caller's RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _build_tiny(
    family: str,
    path: str | os.PathLike[str],
    defaults: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *preprocessors: Any,
    seed: int,
) -> Path:
    """Write transformers' ``<family>Model`` with seeded random weights, and *preprocessors*, to *path*.

    The model's config is ``<family>Config(**defaults, **overrides)`` (an
    override replaces a default); *path* is created if missing. This is the
    body every public ``build_tiny_<family>`` shares.
    """
    import transformers

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = getattr(transformers, f"{family}Config")(**{**defaults, **overrides})
    with _seeded(seed):
        model = getattr(transformers, f"{family}Model")(config)
    with library_progress_bars(transformers=False):  # no "Writing model shards"
        model.save_pretrained(folder)
    for preprocessor in preprocessors:
        preprocessor.save_pretrained(folder)
    logger.debug("saved tiny %s to %s", type(model).__name__, folder)
    return folder


def feature_size(config: PreTrainedConfig) -> int:
    """The width of the features the base model of *config* outputs.

    ``hidden_size`` for transformers (``dim`` is mapped to it for DistilBERT,
    ``d_model`` for Whisper), the last of ``hidden_sizes`` for CNNs (ResNet,
    ConvNeXt): the channel count of ``last_hidden_state`` / ``pooler_output``.
    """
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    return int(config.hidden_size)


# --------------------------------------------------------------------------
# image
# --------------------------------------------------------------------------


def _vit_processor(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        do_rescale=True,
        do_normalize=True,
        image_mean=list(mean),
        image_std=list(std),
    )


def _convnext_processor(image_size: int) -> Any:
    from transformers import ConvNextImageProcessorPil

    # crop_pct=1.0: resize the shortest edge to image_size, then centre-crop a square
    return ConvNextImageProcessorPil(
        do_resize=True,
        size={"shortest_edge": image_size},
        crop_pct=1.0,
        do_rescale=True,
        do_normalize=True,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )


def build_tiny_vit(
    path: str | os.PathLike[str],
    *,
    image_size: int = 32,
    patch_size: int = 8,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny ViT (``ViTModel``, with pooler) and its image processor in *path*.

    Defaults: hidden_size 32, 2 layers, 2 heads, intermediate_size 64,
    ``image_size`` x ``image_size`` inputs cut into ``patch_size`` patches
    (``(image_size // patch_size) ** 2 + 1`` tokens). The processor
    (``ViTImageProcessor``; PIL backend without torchvision) resizes to
    ``image_size`` and normalises with mean = std = 0.5, like
    ``google/vit-base-patch16-224``.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        image_size: input height and width in pixels.
        patch_size: patch height and width; must divide ``image_size``.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.ViTConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel.from_pretrained``.
    """
    defaults = {**_TINY_TRANSFORMER, "image_size": image_size, "patch_size": patch_size}
    processor = _vit_processor(image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return _build_tiny("ViT", path, defaults, overrides, processor, seed=seed)


def build_tiny_convnext(path: str | os.PathLike[str], *, image_size: int = 32, seed: int = 0, **overrides: Any) -> Path:
    """Build a tiny ConvNeXt CNN (``ConvNextModel``) and its image processor in *path*.

    Defaults: 2 stages of widths (16, 32), one block each, patch (stem) size
    4, so a 32 x 32 image gives a 32-channel 4 x 4 ``last_hidden_state`` and a
    ``(batch, 32)`` ``pooler_output``. The processor (``ConvNextImageProcessor``;
    PIL backend without torchvision) resizes the shortest edge to
    ``image_size``, centre-crops a square, and uses ImageNet mean/std.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        image_size: input height and width in pixels (the config does not fix it).
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.ConvNextConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel.from_pretrained``.
    """
    defaults = {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1], "patch_size": 4, "image_size": image_size}
    return _build_tiny("ConvNext", path, defaults, overrides, _convnext_processor(image_size), seed=seed)


def build_tiny_resnet(path: str | os.PathLike[str], *, image_size: int = 32, seed: int = 0, **overrides: Any) -> Path:
    """Build a tiny ResNet (``ResNetModel``, basic blocks) and its image processor in *path*.

    Defaults: embedding (stem) width 16, 2 stages of widths (16, 32) with one
    basic block each; ``pooler_output`` is ``(batch, 32, 1, 1)`` like the Hub
    ResNets. The processor is the one ``microsoft/resnet-50`` uses,
    ``ConvNextImageProcessor`` (PIL backend without torchvision), sized to
    ``image_size`` with ImageNet mean/std.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        image_size: input height and width in pixels (the config does not fix it).
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.ResNetConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel.from_pretrained``.
    """
    defaults = {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "layer_type": "basic"}
    return _build_tiny("ResNet", path, defaults, overrides, _convnext_processor(image_size), seed=seed)


def build_tiny_dinov2(
    path: str | os.PathLike[str],
    *,
    image_size: int = 32,
    patch_size: int = 8,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny DINOv2 ViT (``Dinov2Model``) and its image processor in *path*.

    Defaults: hidden_size 32, 2 layers, 2 heads, mlp_ratio 2, ``patch_size``
    patches (position embeddings are interpolated for other input sizes). The
    processor is ``BitImageProcessor`` (PIL backend without torchvision), as
    for ``facebook/dinov2-small``: shortest edge resized to ``image_size``,
    centre crop ``image_size`` x ``image_size``, ImageNet mean/std.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        image_size: input height and width in pixels.
        patch_size: patch height and width.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.Dinov2Config` arguments.

    Returns:
        The folder, ready for ``AutoModel.from_pretrained``.
    """
    from transformers import BitImageProcessorPil

    defaults = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "mlp_ratio": 2,
        "image_size": image_size,
        "patch_size": patch_size,
    }
    processor = BitImageProcessorPil(
        do_resize=True,
        size={"shortest_edge": image_size},
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        do_normalize=True,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        do_convert_rgb=True,
    )
    return _build_tiny("Dinov2", path, defaults, overrides, processor, seed=seed)


def build_tiny_swin(
    path: str | os.PathLike[str],
    *,
    image_size: int = 32,
    patch_size: int = 4,
    window_size: int = 4,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny Swin transformer (``SwinModel``) and its image processor in *path*.

    Defaults: embed_dim 16, 2 stages of depth 1 with (2, 2) heads, window 4,
    patch 4; the output width (``config.hidden_size``) is
    ``embed_dim * 2 ** (stages - 1)`` = 32. The processor is
    ``ViTImageProcessor`` (PIL backend without torchvision), as for
    ``microsoft/swin-tiny-patch4-window7-224``, with ImageNet mean/std.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        image_size: input height and width in pixels.
        patch_size: patch height and width.
        window_size: attention window, in patches.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.SwinConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel.from_pretrained``.
    """
    defaults = {
        "image_size": image_size,
        "patch_size": patch_size,
        "window_size": window_size,
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [2, 2],
        "mlp_ratio": 2.0,
    }
    processor = _vit_processor(image_size, IMAGENET_MEAN, IMAGENET_STD)
    return _build_tiny("Swin", path, defaults, overrides, processor, seed=seed)


# --------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------

# A 3-layer feature encoder: 80x downsampling (200 frames per second at 16 kHz),
# about 40 frames for a 0.2 s clip and 200 for a 1 s clip.
_TINY_SPEECH: dict[str, Any] = {
    **_TINY_TRANSFORMER,
    "conv_dim": (32, 32, 32),
    "conv_kernel": (10, 8, 4),
    "conv_stride": (5, 4, 4),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "mask_time_length": 2,
    "mask_feature_length": 2,
    "vocab_size": 32,
}


def _speech_feature_extractor(sampling_rate: int) -> Any:
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sampling_rate,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )


def build_tiny_wav2vec2(
    path: str | os.PathLike[str], *, sampling_rate: int = 16000, seed: int = 0, **overrides: Any
) -> Path:
    """Build a tiny wav2vec 2.0 (``Wav2Vec2Model``) and its feature extractor in *path*.

    Defaults: hidden_size 32, 2 layers, 2 heads, intermediate_size 64; a
    3-layer convolutional feature encoder (32 channels, kernels (10, 8, 4),
    strides (5, 4, 4)) that turns each 80 samples into one frame -- 100
    frames for 0.5 s at 16 kHz; layer-norm feature encoder
    (``feat_extract_norm="layer"``, as in ``wav2vec2-large-lv60``), so padded
    batches use the attention mask. ``mask_time_length`` is 2 so SpecAugment
    (active in training mode) works on short clips. The feature extractor is
    ``Wav2Vec2FeatureExtractor`` (raw waveform, zero-mean/unit-variance
    normalised, ``return_attention_mask=True``).

    Args:
        path: folder to write (created if missing; files in it are replaced).
        sampling_rate: the rate the feature extractor expects.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.Wav2Vec2Config` arguments.

    Returns:
        The folder, ready for ``AutoModel`` / ``AutoFeatureExtractor.from_pretrained``.
    """
    extractor = _speech_feature_extractor(sampling_rate)
    return _build_tiny("Wav2Vec2", path, _TINY_SPEECH, overrides, extractor, seed=seed)


def build_tiny_hubert(
    path: str | os.PathLike[str], *, sampling_rate: int = 16000, seed: int = 0, **overrides: Any
) -> Path:
    """Build a tiny HuBERT (``HubertModel``) and its feature extractor in *path*.

    Same sizes, feature extractor, arguments and return value as
    :func:`build_tiny_wav2vec2`; *overrides* go to :class:`transformers.HubertConfig`.
    """
    extractor = _speech_feature_extractor(sampling_rate)
    return _build_tiny("Hubert", path, _TINY_SPEECH, overrides, extractor, seed=seed)


def build_tiny_wavlm(
    path: str | os.PathLike[str], *, sampling_rate: int = 16000, seed: int = 0, **overrides: Any
) -> Path:
    """Build a tiny WavLM (``WavLMModel``) and its feature extractor in *path*.

    Same sizes, feature extractor, arguments and return value as
    :func:`build_tiny_wav2vec2`, plus WavLM's gated relative position bias
    (32 buckets, max distance 100); *overrides* go to :class:`transformers.WavLMConfig`.
    """
    defaults = {**_TINY_SPEECH, "num_buckets": 32, "max_bucket_distance": 100}
    extractor = _speech_feature_extractor(sampling_rate)
    return _build_tiny("WavLM", path, defaults, overrides, extractor, seed=seed)


def build_tiny_ast(
    path: str | os.PathLike[str],
    *,
    sampling_rate: int = 16000,
    max_length: int = 100,
    num_mel_bins: int = 32,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny Audio Spectrogram Transformer (``ASTModel``) and its feature extractor in *path*.

    A spectrogram model: ``ASTFeatureExtractor`` turns a waveform into
    ``max_length`` frames (10 ms each, so 100 = 1 s; shorter clips are
    padded, longer ones truncated) of ``num_mel_bins`` log-mel filterbank
    values. Without torchaudio it computes them with numpy (transformers'
    own ``spectrogram`` code), which is what runs here. The transformer has
    hidden_size 32, 2 layers, 2 heads, and cuts the spectrogram into
    16 x 16 patches with stride 8 in both directions.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        sampling_rate: the rate the feature extractor expects.
        max_length: spectrogram frames per example (>= 16).
        num_mel_bins: mel filterbank channels (>= 16).
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.ASTConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel`` / ``AutoFeatureExtractor.from_pretrained``.
    """
    from transformers import ASTFeatureExtractor

    defaults = {
        **_TINY_TRANSFORMER,
        "patch_size": 16,
        "frequency_stride": 8,
        "time_stride": 8,
        "max_length": max_length,
        "num_mel_bins": num_mel_bins,
    }
    extractor = ASTFeatureExtractor(
        feature_size=1,
        sampling_rate=sampling_rate,
        num_mel_bins=num_mel_bins,
        max_length=max_length,
        do_normalize=True,
        return_attention_mask=False,
    )
    return _build_tiny("AST", path, defaults, overrides, extractor, seed=seed)


def build_tiny_whisper(
    path: str | os.PathLike[str],
    *,
    sampling_rate: int = 16000,
    chunk_length: int = 1,
    num_mel_bins: int = 80,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny Whisper (``WhisperModel``) and its feature extractor in *path*.

    Whisper's encoder only accepts log-mel inputs of exactly
    ``2 * max_source_positions`` frames, and ``WhisperFeatureExtractor`` pads
    or cuts every clip to ``chunk_length`` seconds (30 on the Hub). Here
    ``chunk_length`` defaults to 1 s: 100 frames of 10 ms, 50 encoder
    positions. The model is the full encoder-decoder (d_model 32, 2 encoder
    and 2 decoder layers, 2 heads, a 64-token vocabulary, no tokenizer
    saved): use ``model.get_encoder()`` / ``model.encoder`` for features, or
    ``AutoModelForAudioClassification`` (``WhisperForAudioClassification``,
    encoder only) for classification.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        sampling_rate: the rate the feature extractor expects.
        chunk_length: seconds of audio per example.
        num_mel_bins: log-mel channels.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.WhisperConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel`` / ``AutoFeatureExtractor.from_pretrained``.
    """
    from transformers import WhisperFeatureExtractor

    hop_length = 160
    frames = chunk_length * sampling_rate // hop_length
    defaults = {
        "vocab_size": 64,
        "num_mel_bins": num_mel_bins,
        "d_model": 32,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_layers": 2,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 64,
        "max_source_positions": frames // 2,
        "max_target_positions": 32,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 3,
        "suppress_tokens": None,
        "begin_suppress_tokens": None,
        "mask_time_length": 2,
        "mask_feature_length": 2,
    }
    extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=sampling_rate,
        hop_length=hop_length,
        chunk_length=chunk_length,
        n_fft=400,
        return_attention_mask=False,
    )
    return _build_tiny("Whisper", path, defaults, overrides, extractor, seed=seed)


# --------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------

_ASCII_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LETTERS_DIGITS = list("abcdefghijklmnopqrstuvwxyz0123456789")


def text_vocabulary(words: Sequence[str] | None = None) -> list[str]:
    """The WordPiece vocabulary of :func:`build_tiny_bert` / :func:`build_tiny_distilbert`.

    ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4), the ASCII punctuation, the
    letters ``a-z`` and digits ``0-9`` with their ``##`` continuation forms
    (so any lower-case ASCII text tokenises without ``[UNK]``), then *words*
    lower-cased (default: every word :func:`tlzoo.demo.synthetic.make_sentences`
    uses), without duplicates.
    """
    if words is None:
        from tlzoo.demo.synthetic import sentence_vocabulary

        words = sentence_vocabulary()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_ASCII_PUNCT, *_LETTERS_DIGITS]
    vocab += [f"##{c}" for c in _LETTERS_DIGITS]
    vocab += [str(w).lower() for w in words]
    return list(dict.fromkeys(v for v in vocab if v and not any(ch.isspace() for ch in v)))


def _wordpiece_tokenizer(cls_name: str, vocab: Sequence[str] | None, max_length: int) -> Any:
    import transformers

    tokens = text_vocabulary(vocab)
    cls = getattr(transformers, cls_name)
    return cls(vocab={tok: i for i, tok in enumerate(tokens)}, do_lower_case=True, model_max_length=max_length)


def build_tiny_bert(
    path: str | os.PathLike[str],
    *,
    vocab: Sequence[str] | None = None,
    max_length: int = 64,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny BERT (``BertModel``, with pooler) and its WordPiece tokenizer in *path*.

    The tokenizer (``BertTokenizer``, a fast ``tokenizers``-backed tokenizer)
    lower-cases and knows the words of :func:`text_vocabulary` (*vocab*, by
    default the words of :func:`tlzoo.demo.synthetic.make_sentences`), letters,
    digits and punctuation; ``model_max_length`` is *max_length*, which is
    also the model's ``max_position_embeddings``, so longer inputs must be
    truncated. The model has hidden_size 32, 2 layers, 2 heads.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        vocab: whole words for the vocabulary (default: ``make_sentences`` words).
        max_length: longest input, in tokens.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.BertConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel`` / ``AutoTokenizer.from_pretrained``.
    """
    tokenizer = _wordpiece_tokenizer("BertTokenizer", vocab, max_length)
    defaults = {
        **_TINY_TRANSFORMER,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": max_length,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return _build_tiny("Bert", path, defaults, overrides, tokenizer, seed=seed)


def build_tiny_distilbert(
    path: str | os.PathLike[str],
    *,
    vocab: Sequence[str] | None = None,
    max_length: int = 64,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny DistilBERT (``DistilBertModel``) and its WordPiece tokenizer in *path*.

    Same tokenizer as :func:`build_tiny_bert` (saved as ``DistilBertTokenizer``:
    no ``token_type_ids``). The model has dim 32 (``config.hidden_size``),
    2 layers, 2 heads, hidden_dim 64 and no pooler.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        vocab: whole words for the vocabulary (default: ``make_sentences`` words).
        max_length: longest input, in tokens (also ``max_position_embeddings``).
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.DistilBertConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel`` / ``AutoTokenizer.from_pretrained``.
    """
    tokenizer = _wordpiece_tokenizer("DistilBertTokenizer", vocab, max_length)
    defaults = {
        "vocab_size": len(tokenizer),
        "dim": 32,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_dim": 64,
        "max_position_embeddings": max_length,
        "pad_token_id": tokenizer.pad_token_id,
    }
    return _build_tiny("DistilBert", path, defaults, overrides, tokenizer, seed=seed)


def build_tiny_roberta(
    path: str | os.PathLike[str],
    *,
    corpus: Sequence[str] | None = None,
    vocab_size: int = 512,
    max_length: int = 64,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Build a tiny RoBERTa (``RobertaModel``, with pooler) and its byte-level BPE tokenizer in *path*.

    The tokenizer is trained offline with the ``tokenizers`` library on
    *corpus* (default: 600 sentences of :func:`tlzoo.demo.synthetic.make_sentences`
    plus its vocabulary), starting from all 256 byte symbols, so any text
    tokenises; special tokens ``<s> <pad> </s> <unk> <mask>`` get ids 0-4 as in
    ``roberta-base``. It is saved as ``RobertaTokenizer`` (fast) with
    ``model_max_length`` *max_length*; ``max_position_embeddings`` is
    ``max_length + 2`` (RoBERTa offsets positions past the padding id). The
    model has hidden_size 32, 2 layers, 2 heads.

    Args:
        path: folder to write (created if missing; files in it are replaced).
        corpus: texts to train the BPE merges on.
        vocab_size: target vocabulary size (at least 261: bytes + specials).
        max_length: longest input, in tokens.
        seed: seed of the random initial weights.
        **overrides: extra :class:`transformers.RobertaConfig` arguments.

    Returns:
        The folder, ready for ``AutoModel`` / ``AutoTokenizer.from_pretrained``.
    """
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    if corpus is None:
        from tlzoo.demo.synthetic import DEFAULT_SENTENCE_CLASSES, _sentences, sentence_vocabulary

        corpus = _sentences(200, DEFAULT_SENTENCE_CLASSES, 0)[0] + [" ".join(sentence_vocabulary())]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(corpus),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        show_progress=False,
    )  # the byte-level trainer always starts from all 256 byte symbols, so nothing is out of vocabulary
    model_json = json.loads(bpe.to_str())["model"]
    # RobertaTokenizer hints merges as list[str], but tokenizers 0.23's BPE only takes (left, right) tuples
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tokenizer = RobertaTokenizer(vocab=dict(model_json["vocab"]), merges=merges, model_max_length=max_length)
    defaults = {
        **_TINY_TRANSFORMER,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": max_length + 2,
        "type_vocab_size": 1,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    return _build_tiny("Roberta", path, defaults, overrides, tokenizer, seed=seed)


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------

#: Every builder by short name.
TINY_BUILDERS: dict[str, Callable[..., Path]] = {
    "vit": build_tiny_vit,
    "convnext": build_tiny_convnext,
    "dinov2": build_tiny_dinov2,
    "resnet": build_tiny_resnet,
    "swin": build_tiny_swin,
    "wav2vec2": build_tiny_wav2vec2,
    "hubert": build_tiny_hubert,
    "wavlm": build_tiny_wavlm,
    "ast": build_tiny_ast,
    "whisper": build_tiny_whisper,
    "bert": build_tiny_bert,
    "distilbert": build_tiny_distilbert,
    "roberta": build_tiny_roberta,
}

#: The modality ("image", "audio" or "text") of each builder in :data:`TINY_BUILDERS`.
TINY_MODALITIES: dict[str, str] = {
    "vit": "image",
    "convnext": "image",
    "dinov2": "image",
    "resnet": "image",
    "swin": "image",
    "wav2vec2": "audio",
    "hubert": "audio",
    "wavlm": "audio",
    "ast": "audio",
    "whisper": "audio",
    "bert": "text",
    "distilbert": "text",
    "roberta": "text",
}


def build_tiny(name: str, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Build the tiny model called *name* (a key of :data:`TINY_BUILDERS`) in *path*.

    Args:
        name: ``"vit"``, ``"convnext"``, ``"bert"``, ... (see :data:`TINY_BUILDERS`).
        path: folder to write.
        **kwargs: passed to the builder (``seed``, config overrides, ...).

    Raises:
        ValueError: *name* is not a known builder.
    """
    try:
        builder = TINY_BUILDERS[name]
    except KeyError:
        from tlzoo.errors import did_you_mean

        raise ValueError(
            f"No tiny model builder called {name!r}; known: {', '.join(TINY_BUILDERS)}."
            + did_you_mean(name, TINY_BUILDERS)
        ) from None
    return builder(path, **kwargs)
