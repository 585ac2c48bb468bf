"""Plots with matplotlib: an adapted model's training curves and confusion matrix, and the demo's comparisons.

:func:`render_model_plots` draws the plots that travel with a saved model
(``plots/training_curves.png``, ``plots/confusion_matrix.png``, linked from its
model card) and returns their PNG bytes; :func:`save_plots` writes them to a
folder. matplotlib is drawn off-screen (the ``Agg`` backend) unless a backend
was already chosen.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tlzoo.model.card import CONFUSION_PLOT, CURVES_PLOT

logger = logging.getLogger(__name__)

#: Colours of the demo's methods.
COLOURS = {"linear_probe": "#4c72b0", "fine_tune": "#55a868", "scratch": "#c44e52"}


def pyplot() -> Any:
    """``matplotlib.pyplot``, on the off-screen backend unless one was chosen already."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return buffer.getvalue()


def render_model_plots(history: list[dict[str, Any]], metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """The plots of one adapted model as ``{path in the model folder: PNG bytes}``.

    Training curves when the history has two records or more (loss, and validation accuracy/F1/R²,
    with a dashed line where one phase of the strategy hands over to the next),
    and the confusion matrix of the test split (else validation) for
    single-label classification.
    """
    plots: dict[str, bytes] = {}
    if len(history) > 1:  # one record (a probe fitted in closed form) is a point, not a curve
        plots[CURVES_PLOT] = _png(_curves_figure(history))
    split = "test" if "confusion_matrix" in metrics.get("test", {}) else "validation"
    matrix = metrics.get(split, {}).get("confusion_matrix")
    if matrix:
        plots[CONFUSION_PLOT] = _png(_confusion_figure(matrix, metrics[split].get("labels"), split))
    return plots


def save_plots(history: list[dict[str, Any]], metrics: Mapping[str, Mapping[str, Any]], folder: Path) -> list[Path]:
    """Write :func:`render_model_plots` into *folder* (``training_curves.png``, ``confusion_matrix.png``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in render_model_plots(history, metrics).items():
        written.append(folder / Path(name).name)
        written[-1].write_bytes(png)
    return written


def _curves_figure(history: list[dict[str, Any]]) -> Any:
    keys = [k for k in ("train_loss", "validation_loss") if any(k in r for r in history)]
    scores = [k for k in ("validation_accuracy", "validation_f1", "validation_r2") if any(k in r for r in history)]
    fig, axes = pyplot().subplots(1, 2 if scores else 1, figsize=(10 if scores else 5, 3.6), squeeze=False)
    steps = list(range(1, len(history) + 1))
    for key in keys:
        axes[0][0].plot(steps, [r.get(key) for r in history], marker="o", label=key.replace("_", " "))
    axes[0][0].set(xlabel="epoch (all phases)", ylabel="loss", title="Loss")
    axes[0][0].legend()
    if scores:
        for key in scores:
            axes[0][1].plot(steps, [r.get(key) for r in history], marker="o", label=key.replace("_", " "))
        axes[0][1].set(xlabel="epoch (all phases)", title="Validation metrics")
        axes[0][1].legend()
    phases = [r.get("phase") for r in history]
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            for ax in axes[0]:
                ax.axvline(i + 0.5, color="grey", linestyle="--", linewidth=1)
    fig.tight_layout()
    return fig


def _confusion_figure(matrix: list[list[int]], labels: list[str] | None, split: str) -> Any:
    labels = labels or [str(i) for i in range(len(matrix))]
    size = max(3.5, 0.5 * len(labels) + 2)
    fig, ax = pyplot().subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix ({split})")
    fig.tight_layout()
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(fig))
    return path


def plot_comparison(modalities: Mapping[str, Mapping[str, Any]], methods: Mapping[str, str], path: Path) -> Path:
    """Grouped bars of test accuracy and macro F1 per modality and method (*methods*: key -> label), with chance."""
    plt = pyplot()
    done = {name: m for name, m in modalities.items() if m.get("status") == "ok"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), squeeze=False)
    width = 0.26
    for ax, metric, title in zip(axes[0], ("accuracy", "f1"), ("Test accuracy", "Test macro F1")):
        for i, mod in enumerate(done.values()):
            for j, (method, label) in enumerate(methods.items()):
                value = mod["methods"][method][metric]
                x = i + (j - 1) * width
                ax.bar(x, value, width, color=COLOURS[method], label=label if i == 0 else None)
                ax.text(x, value + 0.01, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
            ax.hlines(mod["target"]["chance"], i - 1.5 * width, i + 1.5 * width, colors="black",
                      linestyles="dotted", label="chance" if i == 0 else None)
        ax.set_xticks(range(len(done)), list(done))
        ax.set(ylim=(0, 1.08), title=title)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle("Transfer learning vs training from scratch, on the same few labels")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, path)


def plot_method_curves(title: str, results: Mapping[str, Mapping[str, Any]], methods: Mapping[str, str],
                       path: Path) -> Path:
    """Training loss and validation accuracy per epoch of each method in *results* (``{method: {"history"}}``).

    LP-FT starts with the same linear probe as ``linear_probe`` (their curves
    overlap there); a dotted line marks where its fine-tuning starts.
    """
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4), squeeze=False)
    styles = {"linear_probe": {"linewidth": 3.5, "alpha": 0.45}}
    for method, result in results.items():
        history = result["history"]
        steps = list(range(1, len(history) + 1))
        style = {"color": COLOURS[method], "label": methods[method], **styles.get(method, {})}
        axes[0][0].plot(steps, [r["train_loss"] for r in history], **style)
        accuracy = [r["validation_accuracy"] for r in history]
        if any(a is not None for a in accuracy):
            axes[0][1].plot(steps, accuracy, **style)
        phases = [r["phase"] for r in history]
        if method == "fine_tune" and "linear_probe" in phases and "fine_tune" in phases:
            for ax in axes[0]:
                ax.axvline(phases.index("fine_tune") + 0.5, color=COLOURS[method], linestyle="dotted", linewidth=1)
    axes[0][0].set(xlabel="epoch", ylabel="loss", title="Training loss", yscale="log")
    axes[0][1].set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy", ylim=(0, 1.05))
    for ax in axes[0]:
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
