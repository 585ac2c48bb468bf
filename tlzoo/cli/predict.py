"""CLI commands that use a saved model: ``predict``, ``evaluate`` and ``push``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlzoo.cli.adapt import positive_int
from tlzoo.cli.commands import Formatter, UsageError, echo, echo_json, table
from tlzoo.progress import library_progress_bars

DATA_FILES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")


def _exists(item: str) -> Path | None:
    """*item* as an existing path, or ``None`` (also for strings too long to be a path)."""
    try:
        path = Path(item).expanduser()
        return path if path.exists() else None
    except (OSError, ValueError):
        return None


def _read_inputs(items: list[str], modality: Any, input_column: str | None) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(shown as, example, row)`` for each input: files and folders read by the modality's plugin.

    A file with one of the modality's suffixes is one example (its plugin's
    ``read_file``), a folder is every such file in it, a data file
    (CSV/TSV/JSON/Parquet) is one example per row of its input column, and any
    other argument is the example itself (text) once the plugin accepts it.
    """
    out: list[tuple[str, Any, dict[str, Any]]] = []
    extensions = set(modality.file_extensions)
    for item in items:
        path = _exists(item)
        if path is not None and path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                           and (not extensions or p.suffix.lower() in extensions))
            if not files:
                raise UsageError(f"{item} holds no {modality.name} files ({', '.join(sorted(extensions))})")
            out.extend((str(f), modality.read_file(str(f)), {}) for f in files)
        elif path is not None and path.suffix.lower() in DATA_FILES and path.suffix.lower() not in extensions:
            out.extend(_data_file_rows(path, modality, input_column))
        elif path is not None:
            out.append((str(path), modality.read_file(str(path)), {}))
        elif Path(item).suffix.lower() in extensions | set(DATA_FILES):
            raise UsageError(f"no such file: {item}")
        else:
            _check(item, modality)
            out.append((item, item, {}))
    if not out:
        raise UsageError("no inputs: give files, a folder, a data file with --input-column, or (for text) strings")
    return out


def _check(item: str, modality: Any) -> None:
    from tlzoo.errors import UnreadableExampleError

    if modality.check_example is None:
        return
    try:
        modality.check_example(item)
    except UnreadableExampleError as exc:
        raise UsageError(f"{item!r} is neither an existing file nor a {modality.name} example: {exc}") from exc


def _data_file_rows(path: Path, modality: Any, input_column: str | None) -> list[tuple[str, Any, dict[str, Any]]]:
    from tlzoo.data.reading import read_data
    from tlzoo.data.target import column_values, find_input_column

    ds = read_data(str(path))["train"]
    column = find_input_column(ds, input_column, label_column="", modality=modality)
    values = column_values(ds, column)
    rows = ds.remove_columns([column]).to_list()
    return [(f"{path.name}:{i + 1}", value, {column: value, **row}) for i, (value, row) in enumerate(zip(values, rows))]


def _top(pred: Any) -> tuple[Any, Any]:
    first = (pred or [{}])[0] if isinstance(pred, list) else pred
    if "label" in first:
        return first["label"], first["score"]
    return first.get("value"), None


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    """Write *records* as CSV (``.csv``/``.tsv``) or JSON lines (anything else), atomically."""
    import csv
    import io
    import json

    from tlzoo.durable import write_atomic

    buffer = io.StringIO(newline="")
    if path.suffix.lower() in (".csv", ".tsv"):
        fields = list(dict.fromkeys(k for r in records for k in r))
        writer = csv.DictWriter(buffer, fields, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        writer.writeheader()
        writer.writerows({k: v if isinstance(v, str | int | float) or v is None else json.dumps(v, default=str)
                          for k, v in r.items()} for r in records)
    else:
        buffer.writelines(json.dumps(r, default=str) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def _model_folder(model: str) -> str:
    """*model*, or its ``model`` sub-folder when *model* is an output folder of ``tlzoo adapt``."""
    folder = _exists(model)
    if folder is not None and not (folder / "tlzoo.json").is_file() and (folder / "model" / "tlzoo.json").is_file():
        return str(folder / "model")
    return model


def _load(args: argparse.Namespace) -> Any:
    """The model ``args.model`` names (a folder, an output folder of ``tlzoo adapt``, or a Hub repo id)."""
    import logging

    logging.getLogger("tlzoo.cli").info("Loading the model %s ...", args.model)
    import tlzoo

    return tlzoo.load(_model_folder(args.model), revision=args.revision, token=args.token, endpoint=args.endpoint)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the commands that load a saved model and run it: batch size and where the model comes from."""
    p.add_argument("--batch-size", type=positive_int, default=32, help="inputs per forward pass")
    p.add_argument("--revision", help="Hub revision")
    p.add_argument("--endpoint", help="Hub endpoint (private deployments)")
    p.add_argument("--token", help="Hub token for a private repo (default: HF_TOKEN or the saved login)")


def cmd_predict(args: argparse.Namespace) -> int:
    from tlzoo.plugins import get_modality

    existing = _exists(args.output) if args.output else None
    if existing is not None and existing.is_dir():
        raise UsageError(f"--output {args.output} is a folder; give a file name such as predictions.csv")
    with library_progress_bars(hub=not (args.json or args.quiet), transformers=False, datasets=False):
        model = _load(args)
        inputs = _read_inputs(args.inputs, get_modality(model.modality), args.input_column)
        predictions = model.predict([example for _, example, _ in inputs], top_k=args.top_k,
                                    batch_size=args.batch_size)
    if args.output:
        records = []
        for (shown, _, row), pred in zip(inputs, predictions):
            label, score = _top(pred)
            records.append({**(row or {"input": shown}), "prediction": label, "score": score})
        _write(Path(args.output), records)
        echo(f"Wrote {len(records)} predictions to {args.output}")
        return 0
    if args.json:
        echo_json([{"input": shown, "prediction": p} for (shown, _, _), p in zip(inputs, predictions)])
        return 0
    rows = []
    for (shown, _, _), pred in zip(inputs, predictions):
        preds = pred if isinstance(pred, list) else [pred]
        text = ", ".join(f"{p['label']} ({p['score']:.3f})" if "label" in p else f"{p.get('value')}" for p in preds)
        shown = shown.replace("\n", " ")
        rows.append((shown if len(shown) < 60 else shown[:59] + "…", text or "(no label above threshold)"))
    echo(table(rows, ["input", "prediction"]))
    return 0


def register_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict with an adapted model",
                       description="Predict labels for files, folders of files, data files or texts with an "
                                   "adapted model (a saved folder, the output folder of tlzoo adapt, or a Hub repo "
                                   "id). Each modality's plugin reads its own files.",
                       epilog="examples:\n  tlzoo predict out/model photo1.jpg photo2.png\n"
                              "  tlzoo predict out/model test_images/ --top-k 3 --json\n"
                              "  tlzoo predict me/review-classifier \"great value\" \"broke in a day\"\n"
                              "  tlzoo predict out/model notes.txt             # a .txt file is one text\n"
                              "  tlzoo predict out/model reviews.csv --input-column text --output preds.csv",
                       formatter_class=Formatter)
    p.add_argument("model", help="saved model folder or Hub repo id")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files or folders of the model's modality, data files (CSV/TSV/JSON/Parquet: one example "
                        "per row), or texts")
    p.add_argument("--input-column", help="the column of a data file that holds the inputs (default: detected)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write predictions to FILE (.csv/.tsv, else JSON lines): a data file's rows plus "
                        "prediction and score")
    p.add_argument("--top-k", type=positive_int, default=1, help="the K most likely labels per input")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_predict)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import tlzoo
    from tlzoo.cli.adapt import format_hardest, metrics_table

    with library_progress_bars(hub=not (args.json or args.quiet), transformers=False, datasets=False):
        model = _load(args)
        results = tlzoo.evaluate_model(model, args.data, input_column=args.input_column,
                                       label_column=args.label_column, splits=args.split, batch_size=args.batch_size)
    if args.json:
        echo_json(results)
        return 0
    echo(metrics_table(results))
    for split, metrics in results.items():
        per_class = metrics.get("per_class") or {}
        if per_class:
            echo()
            rows = [(name, *(f"{scores.get(k, float('nan')):.3f}" for k in ("precision", "recall", "f1")),
                     str(scores.get("support", ""))) for name, scores in per_class.items()]
            echo(f"{split}, per class:")
            echo(table(rows, ["class", "precision", "recall", "f1", "support"]))
        hardest = format_hardest(metrics.get("hardest"), split=split)
        if hardest:
            echo()
            echo(hardest)
    return 0


def register_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="score a saved model on new labelled data",
                       description="Score an adapted model (a saved folder, the output folder of tlzoo adapt, or a "
                                   "Hub repo id) on labelled data in any form tlzoo adapt takes; every split is "
                                   "scored unless --split names some.",
                       epilog="examples:\n  tlzoo evaluate out/model new_photos/\n"
                              "  tlzoo evaluate out/model reviews.csv --label-column sentiment --json\n"
                              "  tlzoo evaluate me/review-classifier data/ --split test",
                       formatter_class=Formatter)
    p.add_argument("model", help="saved model folder or Hub repo id")
    p.add_argument("data", help="labelled data: a folder, CSV/TSV/JSON/Parquet files, a saved dataset or a Hub id")
    p.add_argument("--input-column", help="the column of inputs (default: found by modality)")
    p.add_argument("--label-column", help="the column of labels (default: a ClassLabel or label-like column)")
    p.add_argument("--split", action="append", metavar="NAME", help="score only this split (repeatable)")
    _add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print every metric as JSON (per-class scores too)")
    p.set_defaults(func=cmd_evaluate)


def cmd_push(args: argparse.Namespace) -> int:
    import tlzoo
    from tlzoo.errors import ModelLoadError
    from tlzoo.hub import check_push_target

    folder = _model_folder(args.folder)
    if not Path(folder).is_dir():
        raise ModelLoadError(f"{args.folder} is not a folder: tlzoo push sends a saved model's folder (such as "
                             "out/model, or the output folder of tlzoo adapt).")
    check_push_target(args.repo_id, token=args.token, endpoint=args.endpoint)  # token and namespace, before loading
    model = tlzoo.load(folder)
    url = model.push_to_hub(args.repo_id, private=args.private, token=args.token, commit_message=args.message,
                            revision=args.revision, endpoint=args.endpoint)
    echo(f"Pushed {args.folder} to {args.repo_id}: {url}")
    return 0


def register_push(sub: Any) -> None:
    p = sub.add_parser("push", help="push a saved model to the Hub",
                       description="Push a saved adapted model to a Hub repo in one commit (created if needed).",
                       epilog="examples:\n  tlzoo push out/model me/my-model\n"
                              "  tlzoo push out/model my-org/my-model --private --endpoint https://hub.example.com",
                       formatter_class=Formatter)
    p.add_argument("folder", help="saved model folder (or the output folder of tlzoo adapt)")
    p.add_argument("repo_id", help="Hub repo id, org/name")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--revision", help="branch to push to")
    p.add_argument("--endpoint", help="Hub endpoint (private deployments)")
    p.set_defaults(func=cmd_push)
