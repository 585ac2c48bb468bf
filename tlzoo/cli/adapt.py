"""CLI command ``tlzoo adapt``: its options, the argument types they use, and the metrics table it prints."""

from __future__ import annotations

import argparse
import time
from typing import Any

from tlzoo.cli.commands import Formatter, UsageError, echo, echo_json, table
from tlzoo.options import add_arguments

ADAPT_EPILOG = """\
examples:
  tlzoo adapt all-minilm-l6-v2 reviews.csv --label-column sentiment -o out
  tlzoo adapt google/vit-base-patch16-224-in21k photos/ --strategy lp_ft --epochs 3 -o out
  tlzoo adapt ./my-wav2vec2 clips/ --strategy linear_probe --json
  tlzoo adapt all-minilm-l6-v2 reviews.csv --strategy lora --lora-rank 16 --lora-target-modules query,value -o out
  tlzoo adapt dinov2-small photos/ -o out --push-to-hub me/photo-classifier
  tlzoo adapt all-minilm-l6-v2,bge-small-en-v1.5 reviews.csv -o out   # rank both, adapt the best
  tlzoo adapt '*minilm*' reviews.csv -o out                           # rank the zoo's matches, adapt the best
"""


def source_or_candidates(text: str) -> str | list[str]:
    """An argparse type: one source, or a list of candidates when *text* is comma-separated (and not a path)."""
    from pathlib import Path

    if "," not in text or Path(text).expanduser().exists():
        return text
    return [part.strip() for part in text.split(",") if part.strip()]


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (else a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def cmd_adapt(args: argparse.Namespace) -> int:
    import tlzoo
    from tlzoo.errors import ConfigurationError
    from tlzoo.options import options_from_namespace

    try:
        options = options_from_namespace(args, config=args.config)
    except ConfigurationError as exc:  # a bad flag value or config file: a usage error, before anything loads
        raise UsageError(str(exc)) from exc
    quiet = args.json or args.quiet
    chosen_folder = options.output_dir is None and not options.push_to_hub
    if chosen_folder:  # a trained model is never thrown away without a word (a pushed one is on the Hub)
        options = options.replace(output_dir=default_output_dir(args.source))
    started = time.perf_counter()
    result = tlzoo.adapt(args.source, args.data, options, progress=not quiet)
    elapsed = time.perf_counter() - started
    if args.json:
        echo_json({"metrics": result.metrics, "strategy": result.recipe["strategy"],
                   "strategy_reason": result.recipe["strategy_reason"], "seconds": round(elapsed, 2),
                   "output_dir": str(result.output_dir) if result.output_dir else None,
                   "model_dir": str(result.output_dir / "model") if result.output_dir else None,
                   "plots": sorted(result.model.attachments), "commit_url": result.commit_url})
        return 0
    echo(metrics_table(result.metrics))
    echo()
    hardest = format_hardest(result.metrics.get("test", {}).get("hardest"))
    if hardest:
        echo(hardest)
        echo()
    echo(f"strategy: {result.recipe['strategy']} ({result.recipe['strategy_reason']})")
    echo(f"time: {elapsed:.1f} s")
    for trial in result.recipe.get("trials", []):
        echo(f"trial: {_trial(trial)}")
    if result.output_dir:
        model_dir = result.output_dir / "model"
        echo(f"model: {model_dir}" + (" (no --output-dir given: saved here; pass -o DIR to choose)"
                                      if chosen_folder else ""))
        for name in sorted(result.model.attachments):
            echo(f"plot: {model_dir / name}")
    if result.commit_url:
        echo(f"pushed: {result.commit_url}")
    return 0


def default_output_dir(source: str) -> str:
    """``tlzoo-runs/<source name>-<date>-<time>`` in the working folder: where a run without ``-o`` is kept.

    Candidates to rank (comma-separated, or a zoo pattern) give ``tlzoo-runs/ranked-<date>-<time>``: the
    source is chosen later.
    """
    import re
    from pathlib import Path

    from tlzoo.ranking.candidates import names_candidates

    ranked = "," in str(source) or names_candidates(str(source))
    name = "ranked" if ranked else Path(str(source).rstrip("/")).name or "model"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"
    folder = Path("tlzoo-runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = folder.with_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}")
    return str(folder)


def _trial(trial: dict[str, Any]) -> str:
    """One line of ``auto``'s trial log."""
    if trial.get("skipped"):
        return f"{trial['strategy']} not run: {trial['why']}"
    if trial.get("diverged"):
        return f"{trial['strategy']} diverged at learning rate {trial['learning_rate']:.2g}: {trial['why']}"
    scores = trial.get("validation") or {k[11:]: v for k, v in trial.items() if k.startswith("validation_")}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in scores.items() if k in SUMMARY_METRICS and isinstance(v, float))
    cost = f", {trial['seconds']:.1f} s" if "seconds" in trial else ""
    line = (f"{trial['strategy']} ({'kept' if trial.get('kept') else 'dropped'}{cost}; validation {shown or 'n/a'}): "
            f"{trial['why']}")
    check = trial.get("cross_validation")
    if check and "kept" in check:
        line += (f" [cross-validation, {check['folds']} folds of {check['examples']} examples, {check['seconds']:.1f} s: "
                 f"{check['metric']} {check['fine_tuned']:.4g} fine-tuned, {check['linear_probe']:.4g} probe]")
    elif check:
        line += f" [cross-validation not run: {check['why']}]"
    return line


SUMMARY_METRICS = ("accuracy", "f1", "precision", "recall", "mse", "mae", "r2", "loss")


def metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """One row per split (validation before test), one column per summary metric any split has."""
    columns = [k for k in SUMMARY_METRICS if any(isinstance(m.get(k), int | float) for m in metrics.values())]
    order = {"train": 0, "validation": 1, "test": 2}
    rows = [(split, *(_fmt(metrics[split].get(k)) for k in columns))
            for split in sorted(metrics, key=lambda name: order.get(name, 3))]
    return table(rows, ["split", *columns])


def format_hardest(hardest: Any, *, split: str = "test") -> str:
    """The hardest examples (``metrics[split]["hardest"]``) as a table, worst first; ``""`` if none."""
    if not hardest:
        return ""
    def shown(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value)) or "(none)"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    probability = any("probability" in row for row in hardest)
    headers = ["input", "label", "predicted", *(["probability"] if probability else []), "loss"]
    rows = [[row.get("input", f"row {row['index']}"), shown(row["label"]), shown(row["predicted"]),
             *([f"{row['probability']:.2f}"] if probability else []), f"{row['loss']:.3f}"] for row in hardest]
    return f"Hardest {split} examples (highest loss first):\n" + table(rows, headers)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def register_adapt(sub: Any) -> None:
    p = sub.add_parser("adapt", help="adapt a source model to your labelled data",
                       description="Adapt a pretrained source model (zoo name, Hub id or folder) to labelled data "
                                   "(folder, CSV/JSON/Parquet file, saved dataset or Hub dataset id).",
                       epilog=ADAPT_EPILOG, formatter_class=Formatter)
    p.add_argument("source", type=source_or_candidates,
                   help="zoo name, Hub id or local model folder; or candidates, comma-separated or a zoo pattern "
                        "('*minilm*'): ranked first (as by tlzoo rank) and the best adapted")
    p.add_argument("data", help="folder (one sub-folder per class), data file, saved dataset or Hub dataset id")
    p.add_argument("--config", metavar="FILE",
                   help="options from a YAML/JSON file, a saved model's tlzoo.json or a results.json (flags win)")
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the results as JSON (no progress bars)")
    p.set_defaults(func=cmd_adapt)
