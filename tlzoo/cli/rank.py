"""CLI command ``tlzoo rank``: which candidate source model suits the data, without fine-tuning any."""

from __future__ import annotations

import argparse
from typing import Any

from tlzoo.cli.commands import Formatter, UsageError, echo, echo_json, table
from tlzoo.progress import library_progress_bars

RANK_EPILOG = """\
examples:
  tlzoo rank reviews.csv all-minilm-l6-v2 bge-small-en-v1.5 --label-column sentiment
  tlzoo rank photos/ --zoo '*' --modality image -o ranking
  tlzoo rank photos/ ./my-vit google/vit-base-patch16-224-in21k --json
  tlzoo adapt "$(tlzoo rank photos/ --zoo 'dinov2*' --best)" photos/ -o out
"""

#: The options ``tlzoo rank`` shares with ``tlzoo adapt``: their flags, types, defaults and checks come from
#: :class:`tlzoo.options.AdaptOptions`, with the help text below where the meaning here is narrower.
SHARED = {
    "input_column": None,
    "label_column": None,
    "task": None,
    "test_size": "held out as test when the data has none, as in tlzoo adapt; never scored",
    "validation_size": "held out as validation, as in tlzoo adapt; never scored",
    "seed": "seed of the split (as in tlzoo adapt) and of the cross-validation folds",
    "batch_size": "examples per forward pass while extracting features",
    "pooling": None,
    "mixed_precision": None,
    "dataloader_num_workers": None,
    "registry": None,
    "revision": "Hub revision of the candidates",
    "token": None,
}


def _check(args: argparse.Namespace) -> None:
    """No candidate, or a bad option value, is a usage error (exit code 2), found before anything loads."""
    from tlzoo.errors import ConfigurationError
    from tlzoo.ranking.rank import CHECKED, check_arguments

    if not args.sources and not args.zoo:
        raise UsageError("name the candidate source models: SOURCE ... (zoo names, Hub ids, folders) and/or "
                         "--zoo PATTERN (e.g. --zoo '*minilm*'); `tlzoo models` lists the zoo")
    try:
        check_arguments(k=args.k, folds=args.folds, **{name: getattr(args, name) for name in CHECKED})
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc


def cmd_rank(args: argparse.Namespace) -> int:
    """Rank the candidates; print the table and the recommendation (or ``--json`` rows, or ``--best``)."""
    import tlzoo
    from tlzoo.errors import TlzooError

    _check(args)
    quiet = args.json or args.best or args.quiet
    with library_progress_bars(hub=not quiet, transformers=False, datasets=False):
        ranking = tlzoo.rank([*args.sources, *args.zoo], args.data, modality=args.modality, progress=not quiet,
                             output_dir=args.output_dir, k=args.k, folds=args.folds,
                             **{name: getattr(args, name) for name in SHARED})
    if not _is_main_process():
        return 0 if ranking.scored else 1
    if args.json:
        echo_json(ranking.rows)
    elif args.best:
        if ranking.scored:
            echo(ranking.best)
    else:
        _print_table(ranking)
    if not ranking.scored:
        raise TlzooError("No candidate source model could be ranked: "
                         + "; ".join(f"{row['source']}: {row['error']}" for row in ranking.rows))
    return 0


def _print_table(ranking: Any) -> None:
    headers, rows = ranking.table_rows()
    echo(table(rows, headers))
    for row in ranking.rows:
        if row["error"]:
            echo(f"not ranked: {row['source']}: {row['error']}")
    echo()
    examples = ranking.data.get("scored_examples")
    echo(f"scored on the {examples} examples of the train split; score: {ranking.to_dict()['score']}")
    if ranking.output_dir:
        echo(f"written: {ranking.output_dir}")
    if ranking.scored:
        echo(f"recommended: {ranking.best}")


def _is_main_process() -> bool:
    """Under ``torchrun`` / ``accelerate launch``, only the main process prints."""
    from accelerate import PartialState

    return bool(PartialState().is_main_process)


def _add_shared(parser: argparse.ArgumentParser) -> None:
    """The flags of :data:`SHARED`, generated from the ``AdaptOptions`` fields as ``tlzoo adapt``'s are."""
    from tlzoo.options import AdaptOptions, cli_fields, flag_names

    fields = {f.name: f for f in cli_fields()}
    defaults = AdaptOptions()
    for name, help_text in SHARED.items():
        f = fields[name]
        default = getattr(defaults, name)
        kind = f.metadata.get("parse") or {int: int, float: float}.get(type(default), str)
        shown = "" if default is None else f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": name, "default": default, "type": _flag_type(name, kind),
                                  "help": (help_text or f.metadata["help"]) + shown}
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        parser.add_argument(*flag_names(f), **kwargs)


def _flag_type(name: str, parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name} value: {text!r}") from None

    convert.__name__ = name
    return convert


def _at_least(least: int) -> Any:
    """An argparse type: a whole number of at least *least* (else a usage error, exit code 2)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return convert


def register_rank(sub: Any) -> None:
    """Add ``tlzoo rank`` to the sub-command parsers."""
    p = sub.add_parser(
        "rank", help="rank candidate source models on your data (which one to adapt?)",
        description="Score candidate source models on the training split of your labelled data from their frozen "
                    "features (k-NN, LogME, linear probe), without fine-tuning any, and recommend the best. The "
                    "features go to the feature cache, so `tlzoo adapt` of the winner extracts nothing again.",
        epilog=RANK_EPILOG, formatter_class=Formatter,
    )
    p.add_argument("data", help="folder (one sub-folder per class), data file, saved dataset or Hub dataset id")
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="zoo name, Hub id or local model folder")
    p.add_argument("--zoo", action="append", default=[], metavar="PATTERN",
                   help="also rank the zoo entries matching this wildcard (repeatable), e.g. '*minilm*'")
    p.add_argument("--modality", help="the data's modality (image, audio, text, ...); also filters --zoo")
    p.add_argument("-o", "--output-dir", help="write ranking.json and the bar chart ranking.png here")
    p.add_argument("--k", type=_at_least(1), default=20, help="neighbours of the k-NN estimator (default: 20)")
    p.add_argument("--folds", type=_at_least(2), default=5, help="cross-validation folds, at least 2 (default: 5)")
    _add_shared(p)
    p.add_argument("--json", action="store_true", help="print the ranking's rows as JSON (no progress bars)")
    p.add_argument("--best", action="store_true", help="print only the recommended source (for scripts)")
    p.set_defaults(func=cmd_rank)
