"""The result of ``tlzoo.rank``: :class:`Ranking`, its table, its JSON and its bar chart."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlzoo.errors import TlzooError
from tlzoo.ranking.estimators import ESTIMATORS

logger = logging.getLogger(__name__)

__all__ = ["COMBINED", "RANKING_JSON", "RANKING_PLOT", "Ranking", "render_chart", "write_outputs"]

#: What ``output_dir`` receives.
RANKING_JSON = "ranking.json"
RANKING_PLOT = "ranking.png"
#: Column titles of the estimators.
TITLES = {"knn": "k-NN", "logme": "LogME", "linear_probe": "linear probe"}
COMBINED = "mean rank position over k-NN, LogME and linear probe (0 = last on every estimator, 1 = first)"


@dataclass
class Ranking:
    """What :func:`tlzoo.rank` returns: the candidates, best first.

    :ivar rows: one dict per candidate, best first, with ``rank`` (1, 2, ...;
        ``None`` for a candidate that failed), ``source``, ``score`` (the
        combined score, 0-1, higher is better), ``knn``, ``logme`` and
        ``linear_probe`` (each estimator's value), ``seconds`` (spent on that
        candidate), ``error`` (``None``, or why it could not be scored), and
        ``hub_id``, ``modality``, ``feature_size``, ``feature_cache``
        (``{"cached": ..., "computed": ...}`` examples) and ``timings``: where the
        ``seconds`` went (``load``, ``features``, ``knn``, ``logme``, ``linear_probe``, and
        for the winner ``held_out_features``, the extraction for ``adapt()``).
    :ivar task: the target task the estimators scored.
    :ivar metrics: what each estimator measures (``accuracy``, ``f1_micro``, ``r2``, ``log_evidence``).
    :ivar data: the columns, task, class counts and split sizes of the target data.
    :ivar seconds: the whole call.
    :ivar output_dir: where the JSON and the bar chart were written (``None``: nowhere).
    """

    rows: list[dict[str, Any]]
    task: str
    metrics: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    output_dir: Path | None = None

    @property
    def best(self) -> str:
        """The top candidate's source, ready for ``tlzoo.adapt``.

        :raises TlzooError: when no candidate could be scored (with every candidate's error).
        """
        if self.rows and self.rows[0]["error"] is None:
            return str(self.rows[0]["source"])
        reasons = "; ".join(f"{row['source']}: {row['error']}" for row in self.rows)
        raise TlzooError(f"No candidate source model could be ranked ({reasons}).")

    @property
    def scored(self) -> list[dict[str, Any]]:
        """The rows of the candidates that were scored (no error), best first."""
        return [row for row in self.rows if row["error"] is None]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: rows, best, task, what the estimators measure, data summary, seconds."""
        best = self.rows[0]["source"] if self.rows and self.rows[0]["error"] is None else None
        return {"best": best, "rows": [dict(row) for row in self.rows], "task": self.task, "metrics": self.metrics,
                "score": COMBINED, "data": self.data, "seconds": round(self.seconds, 3)}

    def to_markdown(self) -> str:
        """The ranking as a Markdown table (errors in the last column)."""
        headers = ["rank", "source", "score", *(self._title(name) for name in ESTIMATORS), "seconds", "error"]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        for row in self.rows:
            cells = [row["rank"] or "–", f"`{row['source']}`", _fmt(row["score"]),
                     *(_fmt(row[name]) for name in ESTIMATORS), _fmt(row["seconds"], 1),
                     (row["error"] or "").replace("|", "\\|").replace("\n", " ")]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines)

    def table_rows(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Headers and rows of the plain-text table the CLI prints (without the error column)."""
        headers = ["rank", "source", "score", *(self._title(name) for name in ESTIMATORS), "seconds"]
        rows = [(row["rank"] or "-", row["source"], _fmt(row["score"]), *(_fmt(row[name]) for name in ESTIMATORS),
                 _fmt(row["seconds"], 1)) for row in self.rows]
        return headers, rows

    def _title(self, name: str) -> str:
        metric = self.metrics.get(name)
        return TITLES[name] if name == "logme" or not metric else f"{TITLES[name]} {metric}"

    def __str__(self) -> str:
        return self.to_markdown()


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def write_outputs(ranking: Ranking, folder: Path) -> None:
    """``ranking.json`` (:meth:`Ranking.to_dict`) and the bar chart ``ranking.png`` in *folder*."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RANKING_JSON).write_text(json.dumps(ranking.to_dict(), indent=2, default=str))
    (folder / RANKING_PLOT).write_bytes(render_chart(ranking))
    logger.info("Wrote %s and %s", folder / RANKING_JSON, folder / RANKING_PLOT)


def render_chart(ranking: Ranking) -> bytes:
    """PNG bytes of one bar chart per score (combined, then each estimator), candidates best on top."""
    import io

    from tlzoo.evaluation.plots import pyplot

    plt = pyplot()
    rows = ranking.rows
    names = [_short(row["source"]) for row in rows]
    panels = [("score", "combined score")] + [(name, ranking._title(name)) for name in ESTIMATORS]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.5, 0.45 * len(rows) + 1.6),
                             sharey=True, squeeze=False)
    positions = list(range(len(rows)))[::-1]
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        values = [row[key] for row in rows]
        shown = [v if v is not None else 0.0 for v in values]
        colours = ["#4c72b0" if row["rank"] == 1 else "#8da0cb" if v is not None else "#cccccc"
                   for row, v in zip(rows, values, strict=True)]
        ax.barh(positions, shown, color=colours)
        for y, v in zip(positions, values, strict=True):
            ax.text(v if v is not None else 0.0, y, f" {v:.3f}" if v is not None else " error", va="center",
                    fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.axvline(0.0, color="#444444", linewidth=0.6)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(positions, names)
    fig.suptitle(f"Source models ranked on {ranking.data.get('scored_examples', '?')} training examples", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _short(source: str, width: int = 36) -> str:
    return source if len(source) <= width else "…" + source[-(width - 1):]
