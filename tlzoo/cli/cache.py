"""``tlzoo cache``: see, check and reclaim the feature cache (``list``, ``size``, ``verify``, ``clear``).

In the manner of ``huggingface-cli scan-cache`` / ``delete-cache``: ``list``
shows one row per feature set (one source model, preprocessing and pooling),
``verify`` reads every shard against its digest, ``clear`` deletes feature
sets (all, or those named) after asking. Nothing here loads torch.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tlzoo.cli.commands import Formatter, UsageError, echo, echo_json, table


def human_size(n: float) -> str:
    """``1536 -> '1.5K'``: sizes the way ``du -h`` and ``scan-cache`` show them."""
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"  # pragma: no cover - the loop returns


def ago(timestamp: float, now: float | None = None) -> str:
    """``'3 days ago'``: how long ago *timestamp* was."""
    seconds = max(0.0, (now or time.time()) - timestamp)
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def _root(args: argparse.Namespace) -> Path:
    from tlzoo.features.cache import cache_root

    return Path(args.cache_dir).expanduser() if args.cache_dir else cache_root()


def _entry_json(entry: Any) -> dict[str, Any]:
    return {"key": entry.key, "path": str(entry.path), "source": entry.info.get("source"),
            "revision": entry.info.get("revision"), "modality": entry.info.get("modality"),
            "feature_size": entry.info.get("feature_size"), "shards": len(entry.shards), "rows": entry.rows,
            "size_on_disk": entry.size_on_disk, "last_modified": entry.last_modified,
            "problems": [{"file": str(f), "problem": why} for f, why in entry.problems]}


def cmd_cache_list(args: argparse.Namespace) -> int:
    """``tlzoo cache list``: one row per feature set, then the total."""
    from tlzoo.features.cache import features_root, scan_cache

    started = time.perf_counter()
    entries = scan_cache(_root(args))
    if args.json:
        echo_json([_entry_json(e) for e in entries])
        return 0
    rows = [(e.key[:12], e.info.get("source") or "?", e.info.get("modality") or "", e.rows, len(e.shards),
             human_size(e.size_on_disk), ago(e.last_modified), f"{len(e.problems)} problem(s)" if e.problems else "ok")
            for e in entries]
    if rows:
        echo(table(rows, ["key", "source", "modality", "rows", "shards", "size", "last modified", "status"]))
    total = sum(e.size_on_disk for e in entries)
    echo(f"\nDone in {time.perf_counter() - started:.1f}s. Scanned {len(entries)} feature set(s) for a total of "
         f"{human_size(total)} in {features_root(_root(args))}.")
    if any(e.problems for e in entries):
        echo("Some feature sets have problems: run `tlzoo cache verify` for details.")
    return 0


def cmd_cache_size(args: argparse.Namespace) -> int:
    """``tlzoo cache size``: the cache's total size on disk."""
    root = _root(args)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0
    if args.json:
        echo_json({"path": str(root), "size_on_disk": total})
    else:
        echo(f"{human_size(total)}\t{root}")
    return 0


def cmd_cache_verify(args: argparse.Namespace) -> int:
    """``tlzoo cache verify``: check every shard against its digest; exit 1 on problems left."""
    from tlzoo.features.cache import drop_shard, scan_cache

    entries = scan_cache(_root(args), verify=True)
    problems = [(e, f, why) for e in entries for f, why in e.problems]
    fixed = 0
    if args.fix:
        for entry, file, _ in problems:
            name = file.name.split(".")[0]
            if (entry.path / f"{name}.digest.json").is_file():
                drop_shard(entry.path, name)
            else:
                file.unlink(missing_ok=True)
            fixed += 1
    if args.json:
        echo_json({"checked_shards": sum(len(e.shards) for e in entries), "fixed": args.fix,
                   "problems": [{"key": e.key, "file": str(f), "problem": why} for e, f, why in problems]})
    else:
        for _entry, file, why in problems:
            echo(f"{'removed' if args.fix else 'problem'}: {file}: {why}")
        checked = sum(len(e.shards) for e in entries)
        echo(f"Checked {checked} shard(s) in {len(entries)} feature set(s): "
             + (f"{len(problems)} problem(s)" if problems else "all match their digests") + ".")
        if problems and not args.fix:
            echo("Damaged shards are dropped and computed again by the next run that needs them; "
                 "`tlzoo cache verify --fix` removes them now.")
    return 1 if problems and not fixed else 0


def _select(entries: list[Any], selectors: list[str]) -> list[Any]:
    """The feature sets a selector names: a key prefix, or a shell-style pattern on the source."""
    from tlzoo.errors import ConfigurationError, did_you_mean

    chosen = []
    for selector in selectors:
        matched = [e for e in entries if e.key.startswith(selector)
                   or fnmatch.fnmatch(str(e.info.get("source") or ""), selector)
                   or fnmatch.fnmatch(Path(str(e.info.get("source") or "")).name, selector)]
        if not matched:
            names = [e.key[:12] for e in entries] + [str(e.info.get("source")) for e in entries if e.info.get("source")]
            raise ConfigurationError(f"No cached features match {selector!r}.{did_you_mean(selector, names)} "
                                     "See `tlzoo cache list`.")
        chosen += [e for e in matched if e not in chosen]
    return chosen


def cmd_cache_clear(args: argparse.Namespace) -> int:
    """``tlzoo cache clear``: delete the named feature sets (or all), after asking."""
    from tlzoo.features.cache import scan_cache

    entries = scan_cache(_root(args))
    chosen = _select(entries, args.selectors) if args.selectors else entries
    if not chosen:
        echo("The feature cache is empty.")
        return 0
    total = sum(e.size_on_disk for e in chosen)
    for entry in chosen:
        echo(f"  {entry.key[:12]}  {entry.info.get('source') or '?'}  {human_size(entry.size_on_disk)}")
    echo(f"{len(chosen)} feature set(s), {human_size(total)}.")
    if args.dry_run:
        echo("Dry run: nothing deleted.")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete without confirmation: pass --yes (or run in a terminal)")
        if input("Delete them? [y/N] ").strip().lower() not in ("y", "yes"):
            echo("Nothing deleted.")
            return 0
    for entry in chosen:
        shutil.rmtree(entry.path, ignore_errors=True)
    echo(f"Deleted {len(chosen)} feature set(s), freed {human_size(total)}.")
    return 0


def register_cache(sub: Any) -> None:
    """Add ``tlzoo cache`` and its sub-commands to the parser."""
    p = sub.add_parser(
        "cache",
        help="list, verify and clear the feature cache",
        description="See, check and reclaim tlzoo's feature cache ($TLZOO_CACHE/features, default "
                    "~/.cache/tlzoo/features): one feature set per source model, preprocessing and pooling.",
        epilog="examples:\n  tlzoo cache list\n  tlzoo cache size\n  tlzoo cache verify --fix\n"
               "  tlzoo cache clear '*vit*' --yes\n  tlzoo cache clear --dry-run",
        formatter_class=Formatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", help="the cache root (default: $TLZOO_CACHE or ~/.cache/tlzoo)")
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    q = actions.add_parser("list", parents=[common], help="one row per feature set: source, rows, size, status")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_cache_list)
    q = actions.add_parser("size", parents=[common], help="the cache's total size on disk")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_cache_size)
    q = actions.add_parser("verify", parents=[common], help="check every shard against its digest")
    q.add_argument("--fix", action="store_true", help="remove damaged shards and leftovers now")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_cache_verify)
    q = actions.add_parser("clear", parents=[common], help="delete feature sets (all, or those named)")
    q.add_argument("selectors", nargs="*", metavar="KEY_OR_SOURCE",
                   help="a key prefix (as `list` shows) or a shell-style pattern on the source model")
    q.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    q.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    q.set_defaults(func=cmd_cache_clear)
