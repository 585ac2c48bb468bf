"""The model card (``README.md``) of a saved adapted model.

Built with ``huggingface_hub``'s :class:`~huggingface_hub.ModelCardData` so the
YAML metadata is what the Hub expects: ``library_name``, ``pipeline_tag``,
``base_model``, ``datasets``, ``license``, ``tags`` and a ``model-index`` with
one :class:`~huggingface_hub.EvalResult` per split metric (the Hub renders them
as an evaluation widget). ``library_name`` is ``"transformers"`` when the folder
holds a ``pipeline()``-ready transformers classifier (the Hub then shows the
transformers snippet and can serve the model), else ``"tlzoo"``; both carry the
``tlzoo`` tag. The body tells the task, labels, per-class scores, confusion
matrix, recipe, training curves, intended use and how to load the model.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

CURVES_PLOT = "plots/training_curves.png"
CONFUSION_PLOT = "plots/confusion_matrix.png"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_REASON_KEYS = ("reason", "why", "strategy_reason", "auto_reason")


def _hub_id(value: Any) -> str | None:
    """*value* if it reads as a Hub id (not a local path), else ``None``."""
    if not isinstance(value, str) or not _HUB_ID.match(value) or Path(value).exists():
        return None
    return value


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if math.isfinite(float(value)) else None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return "`" + json.dumps(value, default=str) + "`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _modality(config: Mapping[str, Any]) -> Any:
    """The installed plugin's record of the model's modality, or ``None`` (a card is written without it)."""
    from tlzoo.errors import TlzooError
    from tlzoo.plugins import get_modality

    try:
        return get_modality(str(config.get("modality")))
    except TlzooError:
        return None


def _pipeline_tag(config: Mapping[str, Any]) -> str | None:
    modality = _modality(config)
    return modality.pipeline_task if modality else None


def _datasets(recipe: Mapping[str, Any]) -> list[str]:
    data = recipe.get("data") if isinstance(recipe.get("data"), Mapping) else {}
    found = recipe.get("datasets", recipe.get("dataset", data.get("dataset")))
    values = found if isinstance(found, list) else [found]
    return [v for v in (_hub_id(v) for v in values) if v]


def card_data(config: Mapping[str, Any], *, model_name: str) -> ModelCardData:
    """The YAML metadata of the card for a ``tlzoo.json`` *config*."""
    source = config.get("source") or {}
    recipe = config.get("recipe") or {}
    exported = bool((config.get("pipeline") or {}).get("exported"))
    tag = _pipeline_tag(config)
    datasets = _datasets(recipe)
    tags = ["tlzoo", config.get("modality"), recipe.get("strategy"), "transfer-learning"]
    results = []
    for split, split_metrics in (config.get("metrics") or {}).items():
        if not isinstance(split_metrics, Mapping):
            continue
        for name, value in split_metrics.items():
            number = _number(value)
            if number is None:
                continue
            results.append(
                EvalResult(
                    task_type=tag or str(config.get("task", {}).get("problem_type", "other")),
                    dataset_type=datasets[0] if datasets else "custom",
                    dataset_name=str(recipe.get("dataset_name") or (datasets[0] if datasets else "target data")),
                    dataset_split=str(split),
                    metric_type=str(name),
                    metric_name=f"{split} {name}",
                    metric_value=number,
                )
            )
    return ModelCardData(
        model_name=model_name,
        library_name="transformers" if exported else "tlzoo",
        pipeline_tag=tag,
        base_model=_hub_id(source.get("hub_id")),
        datasets=datasets or None,
        license=source.get("license") or "other",
        tags=list(dict.fromkeys(str(t) for t in tags if t)),
        eval_results=results or None,
    )


def _evaluation(metrics: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for split, m in metrics.items():
        if not isinstance(m, Mapping):
            continue
        out.append(f"### {split.capitalize()} split")
        scalars = [[k, v] for k, v in m.items() if _number(v) is not None]
        if scalars:
            out.append(_table(["metric", "value"], scalars))
        per_class = m.get("per_class")
        if isinstance(per_class, Mapping) and per_class:
            keys = ("precision", "recall", "f1", "support")
            rows = [[label, *(s.get(k, "") for k in keys)] for label, s in per_class.items()]
            out += ["Per class:", _table(["label", "precision", "recall", "F1", "support"], rows)]
        matrix = m.get("confusion_matrix")
        if isinstance(matrix, list) and matrix and isinstance(matrix[0], list):
            labels = [str(x) for x in (m.get("labels") or range(len(matrix)))]
            rows = [[labels[i] if i < len(labels) else i, *row] for i, row in enumerate(matrix)]
            out.append("Confusion matrix (rows: true label, columns: predicted label):")
            out.append(_table(["true \\ predicted", *labels], rows))
        hardest = m.get("hardest")
        if isinstance(hardest, list) and hardest:
            out.append("Hardest examples (highest loss first):")
            out.append(_table(["input", "label", "predicted", "loss"],
                              [[h.get("input", f"row {h.get('index')}"), h.get("label"), h.get("predicted"),
                                f"{h.get('loss', float('nan')):.3f}"] for h in hardest]))
    return out


def _recipe_rows(recipe: Mapping[str, Any]) -> list[list[Any]]:
    """Recipe entries as table rows: ``hyperparameters`` spread out, other dicts one level as ``key.sub``."""
    rows: list[list[Any]] = []
    for key, value in recipe.items():
        if key == "source":  # shown in the Task table
            continue
        if isinstance(value, Mapping) and value:
            prefix = "" if key in ("hyperparameters", "hyper_parameters") else f"{key}."
            rows += [[f"{prefix}{k}", v] for k, v in value.items()]
        else:
            rows.append([key, value])
    return rows


def _history(history: list[Any]) -> str | None:
    rows = [h for h in history if isinstance(h, Mapping)]
    if not rows:
        return None
    keys = list(dict.fromkeys(k for h in rows for k in h))
    return _table(keys, [[h.get(k, "") for k in keys] for h in rows])


def card_body(
    config: Mapping[str, Any], *, model_name: str, folder: Path | None = None, repo_id: str | None = None
) -> str:
    """The Markdown body of the card (everything after the YAML block)."""
    where = repo_id or f"path/to/{model_name}"
    modality = _modality(config)
    example = modality.usage_example if modality else "EXAMPLE"
    source = config.get("source") or {}
    recipe = dict(config.get("recipe") or {})
    task = config.get("task") or {}
    pipeline = config.get("pipeline") or {}
    base = source.get("hub_id") or source.get("name") or "a pretrained model"
    base_link = f"[{base}](https://huggingface.co/{base})" if _hub_id(base) else f"`{base}`"
    strategy = recipe.get("strategy")
    lines = [
        f"# {model_name}",
        f"This model adapts {base_link} to a new {config.get('modality', '')} task "
        f"({str(task.get('problem_type', 'task')).replace('_', ' ')}) with "
        f"[tlzoo](https://github.com/tlzoo/tlzoo)" + (f" (strategy: `{strategy}`)." if strategy else "."),
        "## Task",
        _table(["", ""], [
            ["problem type", task.get("problem_type", "")], ["outputs", task.get("num_labels", "")],
            ["modality", config.get("modality", "")], ["source model", base],
            ["source revision", source.get("revision") or "-"], ["head", (config.get("head") or {}).get("spec", "")],
        ]),
    ]  # fmt: skip
    if config.get("labels"):
        lines.append("Labels: " + ", ".join(f"`{label}`" for label in config["labels"]))
    evaluation = _evaluation(config.get("metrics") or {})
    lines += ["## Evaluation", *(evaluation or ["No evaluation results were recorded."])]
    if folder is not None and (folder / CONFUSION_PLOT).is_file():
        lines.append(f"![Confusion matrix]({CONFUSION_PLOT})")
    lines.append("## Training recipe")
    reason = next((recipe.pop(k) for k in _REASON_KEYS if k in recipe), None)
    if strategy:
        lines.append(f"Strategy: `{recipe.pop('strategy')}`." + (f" Why: {reason}" if reason else ""))
    params = _recipe_rows(recipe)
    lines.append(_table(["setting", "value"], params) if params else "No recipe recorded.")
    curves = _history(config.get("history") or [])
    lines += ["## Training curves", curves or "No training history recorded (e.g. no training epochs)."]
    if folder is not None and (folder / CURVES_PLOT).is_file():
        lines.append(f"![Training curves]({CURVES_PLOT})")
    lines += [
        "## Intended use and limitations",
        f"Made for the task above, on data like the data it was trained and evaluated on. Scores on other data "
        f"can be much lower; check it on your own held-out examples first. It inherits the biases and the licence "
        f"(`{source.get('license') or 'other'}`) of its source model {base_link}.",
        "## How to use",
        _install_line(config, modality),
        f'```python\nimport tlzoo\n\nmodel = tlzoo.load("{where}")\nprint(model.predict({example}))\n```',
    ]
    if pipeline.get("exported"):
        lines += [
            f"Without tlzoo, with transformers' `pipeline()` (same predictions; the folder holds a "
            f"`{pipeline.get('architecture')}`):",
            f'```python\nfrom transformers import pipeline\n\nclassifier = pipeline("{pipeline.get("task")}", '
            f'model="{where}")\nprint(classifier({example}))\n```',
        ]
    elif pipeline.get("reason"):
        lines.append(f"It loads with tlzoo only, not with transformers' `pipeline()`: {pipeline['reason']}, so no "
                     "transformers classifier gives its predictions exactly (the backbone is in `backbone/`).")
    return "\n\n".join(lines) + "\n"


def _install_line(config: Mapping[str, Any], modality: Any) -> str:
    """How to install what loads this model: tlzoo and its modality's plugin, as they were installed here.

    From a package index: ``pip install tlzoo==X tlzoo-image==Y``. From a source
    checkout (pip records a local directory): the checkout's ``pip install`` of
    both folders, since an index may not have those versions.
    """
    version = config.get("tlzoo_version") or _version("tlzoo")
    plugin = modality.package if modality is not None else f"tlzoo-{config.get('modality', 'PLUGIN')}"
    plugin_version = _version(plugin)
    if _from_checkout("tlzoo"):
        installed = " ".join(str(part) for part in (plugin, plugin_version) if part)
        return (f"With tlzoo {version} and its {config.get('modality', '')} plugin {installed}, installed from a "
                f"tlzoo source checkout (`pip install ./ ./plugins/{plugin}` there, or `bash setup.sh install`):")
    pins = " ".join(f"{name}=={v}" if v else name for name, v in (("tlzoo", version), (plugin, plugin_version)))
    return f"With tlzoo and the plugin of its modality (`pip install {pins}`):"


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _from_checkout(distribution: str) -> bool:
    """Whether pip installed *distribution* from a local folder (its ``direct_url.json`` names a directory)."""
    from importlib import metadata

    try:
        direct = metadata.distribution(distribution).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return False
    if not direct:
        return False
    try:
        return "dir_info" in json.loads(direct)
    except ValueError:
        return False


def build_model_card(
    config: Mapping[str, Any], *, model_name: str, folder: Path | None = None, repo_id: str | None = None
) -> ModelCard:
    """The card for a ``tlzoo.json`` *config*, checked by ``huggingface_hub``'s own parser."""
    data = card_data(config, model_name=model_name)
    body = card_body(config, model_name=model_name, folder=folder, repo_id=repo_id)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    validate_metadata(card)
    return card


def validate_metadata(card: ModelCard) -> None:
    """Offline check: the card's YAML parses back into ``ModelCardData`` with every eval result.

    ``ModelCard(...)`` re-reads the YAML strictly (``model-index`` included);
    ``ModelCard.validate()`` would also ask the Hub (``/api/validate-yaml``).
    """
    again = ModelCard(str(card), ignore_metadata_errors=False)
    expected = len(card.data.eval_results or [])
    if len(again.data.eval_results or []) != expected:
        raise ValueError(f"model card metadata lost eval results on a round trip ({expected} expected)")


def write_model_card(
    folder: Path, config: Mapping[str, Any], *, model_name: str, repo_id: str | None = None
) -> ModelCard:
    """Write ``README.md`` into *folder* and return the card (*repo_id* goes into the usage snippets)."""
    card = build_model_card(config, model_name=model_name, folder=folder, repo_id=repo_id)
    card.save(folder / "README.md")
    return card
