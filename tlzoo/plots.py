"""Plots saved beside an adapted model: training curves and the confusion matrix."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def save_plots(history: list[dict[str, Any]], metrics: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """Write ``training_curves.png`` and ``confusion_matrix.png`` (when there is one); return the paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if history:
        keys = [k for k in ("train_loss", "validation_loss") if any(k in r for r in history)]
        scores = [k for k in ("validation_accuracy", "validation_f1", "validation_r2") if any(k in r for r in history)]
        fig, axes = plt.subplots(1, 2 if scores else 1, figsize=(10 if scores else 5, 3.6), squeeze=False)
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
        _mark_phases(axes[0], history)
        fig.tight_layout()
        written.append(folder / "training_curves.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    split = "test" if "confusion_matrix" in metrics.get("test", {}) else "validation"
    matrix = metrics.get(split, {}).get("confusion_matrix")
    if matrix:
        labels = metrics[split].get("labels") or [str(i) for i in range(len(matrix))]
        size = max(3.5, 0.5 * len(labels) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        top = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix ({split})")
        fig.tight_layout()
        written.append(folder / "confusion_matrix.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def _mark_phases(axes: Any, history: list[dict[str, Any]]) -> None:
    phases = [r.get("phase") for r in history]
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            for ax in axes:
                ax.axvline(i + 0.5, color="grey", linestyle="--", linewidth=1)
