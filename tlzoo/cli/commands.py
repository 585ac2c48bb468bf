"""CLI commands about the zoo and plugins: ``models``, ``plugins``, ``install``, ``uninstall``.

Each ``register_*`` adds one sub-command to the parser; ``REGISTERS`` lists
them in the order ``tlzoo --help`` shows. Heavy imports happen inside the
command functions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

Formatter = argparse.RawDescriptionHelpFormatter


class UsageError(Exception):
    """Bad command-line usage: reported by argparse with exit code 2."""


def echo(text: str = "") -> None:
    """Write one line of command output to stdout."""
    sys.stdout.write(text + "\n")


def echo_json(data: Any) -> None:
    """Write *data* as indented JSON to stdout (numpy arrays and tensors as lists, paths as strings)."""
    from tlzoo.jsonable import dumps

    echo(dumps(data))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _params(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


# --- models ------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from tlzoo.local_zoo import offline_availability
    from tlzoo.registry import list_models

    models = list_models(args.pattern, modality=args.modality, registry=args.registry)
    offline = {m.name: offline_availability(m) for m in models}
    if args.offline:
        models = [m for m in models if offline[m.name]]
    if args.json:
        echo_json([{**m.to_dict(), "offline": offline[m.name]} for m in models])
        return 0
    if not models:
        echo(f"No source models match {args.pattern or '*'!r}" + (f" with modality {args.modality!r}" if args.modality else "")
             + (" that load offline." if args.offline else "."))
        return 0
    rows = [(m.name, m.modality, m.hub_id, _params(m.params), m.feature_size, m.license, offline[m.name] or "")
            for m in models]
    echo(table(rows, ["name", "modality", "hub id", "params", "features", "license", "offline"]))
    return 0


def register_models(sub: Any) -> None:
    p = sub.add_parser(
        "models",
        help="list source models in the zoo",
        description="List the zoo's source models (registry.yaml, plugins, your own zoo of `tlzoo register`, your "
                    "TLZOO_REGISTRY file). The offline column says which load without the network: 'local' (a "
                    "folder on this machine) or 'cached' (in the Hugging Face cache).",
        epilog="examples:\n  tlzoo models\n  tlzoo models '*vit*' --modality image\n  tlzoo models --offline\n"
               "  tlzoo models --json",
        formatter_class=Formatter,
    )
    p.add_argument("pattern", nargs="?", help="shell-style wildcard on name or Hub id, e.g. '*bert*'")
    p.add_argument("--modality", help="only this modality (image, audio, text, ...)")
    p.add_argument("--offline", action="store_true", help="only the models that load without the network")
    p.add_argument("--registry", help="a registry YAML file merged on top (default: $TLZOO_REGISTRY)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)


def cmd_register(args: argparse.Namespace) -> int:
    from tlzoo.local_zoo import local_registry_path, register_model, unregister_model

    if args.remove:
        unregister_model(args.name)
        echo(f"Removed {args.name!r} from your zoo ({local_registry_path()}).")
        return 0
    if not args.source:
        raise UsageError("give the SOURCE to register (a model folder or a Hub id), or --remove")
    entry = register_model(args.name, args.source, modality=args.modality, description=args.description,
                           license=args.license, tags=args.tags.split(",") if args.tags else (),
                           overwrite=args.overwrite)
    echo(f"Registered {entry.name!r} ({entry.modality}, {entry.hub_id}) in your zoo ({local_registry_path()}).")
    echo(f"Use it by name: tlzoo adapt {entry.name} DATA")
    return 0


def register_register(sub: Any) -> None:
    p = sub.add_parser(
        "register",
        help="add a model folder or Hub id to your own zoo, by name",
        description="Add a source model (a local folder written by save_pretrained, or a Hub id) to your own zoo, "
                    "so that tlzoo adapt, rank and models know it by NAME. Your zoo is registry.yaml in $TLZOO_HOME "
                    "(default ~/.config/tlzoo); its entries take precedence over the built-in ones.",
        epilog="examples:\n  tlzoo register my-vit ./models/my-vit\n"
               "  tlzoo register shapes-resnet tlzoo-demo/image/source-model --description 'pretrained on shapes'\n"
               "  tlzoo register my-vit --remove",
        formatter_class=Formatter,
    )
    p.add_argument("name", help="the name to use it by")
    p.add_argument("source", nargs="?", help="a local model folder or a Hub id")
    p.add_argument("--modality", help="the modality, when no installed plugin claims the model's config by itself")
    p.add_argument("--description", help="one line on what the model is")
    p.add_argument("--license", default="other", help="the model's license (default: other)")
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--overwrite", action="store_true", help="replace an entry of yours with the same name")
    p.add_argument("--remove", action="store_true", help="remove NAME from your zoo instead")
    p.set_defaults(func=cmd_register)


# --- plugins -----------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    from tlzoo.plugins import list_plugins

    infos = list_plugins()
    if args.json:
        echo_json([i.to_dict() for i in infos])
        return 0
    rows = [
        (i.name, i.version or "", ", ".join(i.modalities), ", ".join(i.heads), ", ".join(i.hooks), i.error or "ok")
        for i in infos
    ]
    echo(table(rows, ["plugin", "version", "modalities", "heads", "hooks", "status"]))
    described = [(m, text) for i in infos for m, text in i.descriptions.items()]
    if described:
        echo()
        echo(table(described, ["modality", "reads"]))
    return 0


def register_plugins(sub: Any) -> None:
    p = sub.add_parser(
        "plugins",
        help="list installed plugins",
        description="List loaded plugins: version, hooks, modalities, heads, and load errors.",
        epilog="examples:\n  tlzoo plugins\n  tlzoo plugins --json\n  TLZOO_LOAD_PLUGINS=image tlzoo plugins",
        formatter_class=Formatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)


# --- install / uninstall -------------------------------------------------------------
def run_pip(pip_args: list[str]) -> int:
    """Run pip of this Python environment; returns its exit code."""
    return subprocess.call([sys.executable, "-m", "pip", *pip_args])


def cmd_install(args: argparse.Namespace) -> int:
    pip_args = ["install", *(["--upgrade"] if args.upgrade else []), *(["--no-deps"] if args.no_deps else []), *args.names]
    if args.index_url:
        pip_args += ["--index-url", args.index_url]
    code = run_pip(pip_args)
    if code != 0:
        from tlzoo.errors import PluginError

        raise PluginError(f"pip could not install {' '.join(args.names)} (exit code {code}); see pip's output above.")
    _show_plugins_after_change()
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    code = run_pip(["uninstall", *(["-y"] if args.yes else []), *args.names])
    if code != 0:
        from tlzoo.errors import PluginError

        raise PluginError(f"pip could not uninstall {' '.join(args.names)} (exit code {code}).")
    _show_plugins_after_change()
    return 0


def _show_plugins_after_change() -> None:
    import importlib

    importlib.invalidate_caches()
    from tlzoo import plugins

    plugins.reset()
    names = ", ".join(f"{i.name} {i.version or ''}".strip() for i in plugins.list_plugins())
    echo(f"Plugins now: {names}")


def register_install(sub: Any) -> None:
    p = sub.add_parser(
        "install",
        help="install plugins with pip into this environment",
        description="Install tlzoo plugins (PyPI names, paths or URLs) with pip, in tlzoo's own environment.",
        epilog="examples:\n  tlzoo install tlzoo-image\n  tlzoo install ./my-plugin\n  tlzoo install --upgrade tlzoo-audio",
        formatter_class=Formatter,
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="package names, paths or URLs")
    p.add_argument("-U", "--upgrade", action="store_true", help="upgrade if already installed")
    p.add_argument("--no-deps", action="store_true", help="do not install dependencies")
    p.add_argument("--index-url", help="package index to use")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser(
        "uninstall",
        help="uninstall plugins with pip",
        description="Uninstall tlzoo plugins from tlzoo's own environment.",
        epilog="examples:\n  tlzoo uninstall tlzoo-audio -y",
        formatter_class=Formatter,
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="package names")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_uninstall)


def _model_commands() -> list[Callable[[Any], None]]:
    from tlzoo.cli.adapt import register_adapt
    from tlzoo.cli.predict import register_evaluate, register_predict, register_push
    from tlzoo.cli.rank import register_rank
    from tlzoo.demo.command import register_demo

    return [register_adapt, register_rank, register_predict, register_evaluate, register_push, register_demo]


def _register_cache(sub: Any) -> None:
    from tlzoo.cli.cache import register_cache

    register_cache(sub)


REGISTERS: list[Callable[[Any], None]] = [*_model_commands(), register_models, register_register, register_plugins,
                                          register_install,
                                          _register_cache]
