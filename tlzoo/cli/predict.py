"""CLI commands that use a saved model: ``predict`` and ``push``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlzoo.cli.adapt import positive_int
from tlzoo.cli.commands import Formatter, UsageError, echo, echo_json, table
from tlzoo.progress import library_progress_bars


def _inputs(paths: list[str], model: Any) -> list[Any]:
    out: list[Any] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            out.extend(str(p) for p in files)
        elif path.is_file() or model.modality != "text":
            out.append(str(path))
        else:
            out.append(item)  # text given on the command line
    if not out:
        raise UsageError("no inputs: give files, a folder, or (for text models) strings")
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    import tlzoo

    with library_progress_bars(hub=not (args.json or args.quiet), transformers=False, datasets=False):
        model = tlzoo.load(args.model, revision=args.revision, token=args.token, endpoint=args.endpoint)
        inputs = _inputs(args.inputs, model)
        predictions = model.predict(inputs, top_k=args.top_k, batch_size=args.batch_size)
    if args.json:
        echo_json([{"input": i, "prediction": p} for i, p in zip(inputs, predictions)])
        return 0
    rows = []
    for item, pred in zip(inputs, predictions):
        preds = pred if isinstance(pred, list) else [pred]
        text = ", ".join(f"{p['label']} ({p['score']:.3f})" if "label" in p else f"{p.get('value')}" for p in preds)
        rows.append((item if len(item) < 60 else "…" + item[-59:], text or "(no label above threshold)"))
    echo(table(rows, ["input", "prediction"]))
    return 0


def register_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict with an adapted model",
                       description="Predict labels for files, a folder of files, or texts with an adapted model "
                                   "(a saved folder or a Hub repo id).",
                       epilog="examples:\n  tlzoo predict out/model photo1.jpg photo2.png\n"
                              "  tlzoo predict out/model test_images/ --top-k 3 --json\n"
                              "  tlzoo predict me/review-classifier \"great value\" \"broke in a day\"",
                       formatter_class=Formatter)
    p.add_argument("model", help="saved model folder or Hub repo id")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, or texts")
    p.add_argument("--top-k", type=positive_int, default=1, help="the K most likely labels per input")
    p.add_argument("--batch-size", type=positive_int, default=32, help="inputs per forward pass")
    p.add_argument("--revision", help="Hub revision")
    p.add_argument("--endpoint", help="Hub endpoint (private deployments)")
    p.add_argument("--token", help="Hub token for a private repo (default: HF_TOKEN or the saved login)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_predict)


def cmd_push(args: argparse.Namespace) -> int:
    import tlzoo

    model = tlzoo.load(args.folder)
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
    p.add_argument("folder", help="saved model folder")
    p.add_argument("repo_id", help="Hub repo id, org/name")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--revision", help="branch to push to")
    p.add_argument("--endpoint", help="Hub endpoint (private deployments)")
    p.set_defaults(func=cmd_push)
