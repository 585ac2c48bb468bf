"""CLI command ``tlzoo adapt``: its options, the argument types they use, and the metrics table it prints."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from tlzoo.cli.commands import Formatter, UsageError, echo, echo_json, table
from tlzoo.progress import library_progress_bars

ADAPT_EPILOG = """\
examples:
  tlzoo adapt all-minilm-l6-v2 reviews.csv --label-column sentiment -o out
  tlzoo adapt google/vit-base-patch16-224-in21k photos/ --strategy lp_ft --epochs 3 -o out
  tlzoo adapt ./my-wav2vec2 clips/ --strategy linear_probe --json
  tlzoo adapt all-minilm-l6-v2 reviews.csv --strategy lora --lora-rank 16 --lora-target-modules query,value -o out
  tlzoo adapt dinov2-small photos/ -o out --push-to-hub me/photo-classifier
"""


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (else a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number from 0 (none) up to, not including, 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 up to 1, got {value}")
    return value


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--class-weights must be 'balanced' or comma-separated numbers, got {text!r}") from None


def _target_modules(text: str) -> str | list[str]:
    """``--lora-target-modules``: ``all-linear``, or comma-separated module names (each matches name endings)."""
    if text.strip() == "all-linear":
        return "all-linear"
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--lora-target-modules must be 'all-linear' or comma-separated module names, got {text!r}")
    return names


def _check_names(args: argparse.Namespace) -> None:
    """Unknown strategy or task names are usage errors (exit code 2), found before anything loads."""
    from tlzoo.data import check_task
    from tlzoo.errors import ConfigurationError
    from tlzoo.training.strategies import check_strategy

    try:
        check_strategy(args.strategy)
        check_task(args.task)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc


def cmd_adapt(args: argparse.Namespace) -> int:
    import tlzoo

    _check_names(args)
    head: Any = args.head
    if args.head_options:
        try:
            head = {"name": args.head, **json.loads(args.head_options)}
        except json.JSONDecodeError as exc:
            raise UsageError(f"--head-options must be a JSON object: {exc}") from exc
    class_weights: Any = args.class_weights
    if class_weights and class_weights != "balanced":
        class_weights = _float_list(class_weights)
    quiet = args.json or args.quiet
    started = time.perf_counter()
    # tlzoo's own bars (features, training) and the Hub's download bars; not the weight loading and data mapping ones
    with library_progress_bars(hub=not quiet, transformers=False, datasets=False):
        result = tlzoo.adapt(
            args.source, args.data, task=args.task, input_column=args.input_column, label_column=args.label_column,
            strategy=args.strategy, head=head, epochs=args.epochs, batch_size=args.batch_size,
            learning_rate=args.learning_rate, metrics=args.metrics.split(",") if args.metrics else None,
            output_dir=args.output_dir, overwrite_output_dir=args.overwrite_output_dir, seed=args.seed,
            mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.gradient_accumulation_steps,
            early_stopping=args.early_stopping, resume_from=True if args.resume else None,
            test_size=args.test_size, validation_size=args.validation_size, class_weights=class_weights,
            report_to=args.report_to, push_to_hub=args.push_to_hub, hub_private=args.private,
            hub_endpoint=args.endpoint, pooling=args.pooling, revision=args.revision, token=args.token,
            progress=not quiet, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
            lora_target_modules=_target_modules(args.lora_target_modules),
        )
    elapsed = time.perf_counter() - started
    if args.json:
        echo_json({"metrics": _scalars(result.metrics), "strategy": result.recipe["strategy"],
                   "strategy_reason": result.recipe["strategy_reason"], "seconds": round(elapsed, 2),
                   "output_dir": str(result.output_dir) if result.output_dir else None,
                   "model_dir": str(result.output_dir / "model") if result.output_dir else None,
                   "plots": sorted(result.model.attachments), "commit_url": result.commit_url})
        return 0
    echo(metrics_table(result.metrics))
    echo()
    echo(f"strategy: {result.recipe['strategy']} ({result.recipe['strategy_reason']})")
    echo(f"time: {elapsed:.1f} s")
    if result.output_dir:
        model_dir = result.output_dir / "model"
        echo(f"model: {model_dir}")
        for name in sorted(result.model.attachments):
            echo(f"plot: {model_dir / name}")
    if result.commit_url:
        echo(f"pushed: {result.commit_url}")
    return 0


SUMMARY_METRICS = ("accuracy", "f1", "precision", "recall", "mse", "mae", "r2", "loss")


def metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """One row per split (validation before test), one column per summary metric any split has."""
    columns = [k for k in SUMMARY_METRICS if any(isinstance(m.get(k), int | float) for m in metrics.values())]
    order = {"train": 0, "validation": 1, "test": 2}
    rows = [(split, *(_fmt(metrics[split].get(k)) for k in columns))
            for split in sorted(metrics, key=lambda name: order.get(name, 3))]
    return table(rows, ["split", *columns])


def _scalars(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {split: {k: v for k, v in m.items() if isinstance(v, int | float)} for split, m in metrics.items()}


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def register_adapt(sub: Any) -> None:
    p = sub.add_parser("adapt", help="adapt a source model to your labelled data",
                       description="Adapt a pretrained source model (zoo name, Hub id or folder) to labelled data "
                                   "(folder, CSV/JSON/Parquet file, saved dataset or Hub dataset id).",
                       epilog=ADAPT_EPILOG, formatter_class=Formatter)
    p.add_argument("source", help="zoo name, Hub id or local model folder")
    p.add_argument("data", help="folder (one sub-folder per class), data file, saved dataset or Hub dataset id")
    p.add_argument("--input-column", help="column of inputs (default: found by modality)")
    p.add_argument("--label-column", help="column of labels (default: a ClassLabel or 'label'-like column)")
    p.add_argument("--task", default="auto", help="auto, single_label_classification, multi_label_classification, regression")
    p.add_argument("--strategy", default="auto", help="auto, linear_probe, partial, full, lp_ft, lora")
    p.add_argument("--head", default="linear", help="head name: linear, mlp, or a plugin's")
    p.add_argument("--head-options", help='head options as JSON, e.g. \'{"hidden_size": 128}\'')
    p.add_argument("--epochs", type=positive_int, help="training epochs (default by strategy)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="examples per step, over all devices")
    p.add_argument("--learning-rate", type=float, help="peak learning rate (default by strategy)")
    p.add_argument("--metrics", help="comma-separated metric names")
    p.add_argument("-o", "--output-dir", help="where to write the model, checkpoints and plots")
    p.add_argument("--overwrite-output-dir", action="store_true", help="replace a model already in --output-dir")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, initialisation and shuffling")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16", "fp8"])
    p.add_argument("--gradient-accumulation-steps", type=positive_int, default=1, help="batches per optimizer step")
    p.add_argument("--early-stopping", type=positive_int, metavar="PATIENCE", help="stop after PATIENCE epochs without improvement")
    p.add_argument("--test-size", type=fraction, default=0.2, help="held-out fraction when the data has no test split (0: none)")
    p.add_argument("--validation-size", type=fraction, default=0.1, help="validation fraction when the data has none (0: none)")
    p.add_argument("--class-weights", help="'balanced' or comma-separated weights")
    p.add_argument("--pooling", default="auto", help="feature pooling: auto, mean, cls, pooler")
    p.add_argument("--lora-rank", type=positive_int, default=8, help="rank of the LoRA adapters (--strategy lora)")
    p.add_argument("--lora-alpha", type=positive_int, help="LoRA scale numerator (default: 2 x rank)")
    p.add_argument("--lora-dropout", type=fraction, default=0.0, help="dropout on the LoRA adapters' inputs")
    p.add_argument("--lora-target-modules", default="all-linear", metavar="NAMES",
                   help="backbone modules that get adapters: all-linear, or comma-separated names (query,value)")
    p.add_argument("--revision", help="Hub revision of the source model")
    p.add_argument("--report-to", help="accelerate tracker: tensorboard, wandb, ...")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="push the adapted model to this Hub repo")
    p.add_argument("--private", action="store_true", default=None, help="create the Hub repo private")
    p.add_argument("--endpoint", help="Hub endpoint (private deployments)")
    p.add_argument("--token", help="Hub token for private source models and pushing (default: HF_TOKEN or the login)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (no progress bars)")
    p.set_defaults(func=cmd_adapt)
