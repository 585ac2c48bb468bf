"""The ``tlzoo`` command line.

Exit codes: 0 success, 2 usage error (bad arguments), 1 any other error. Errors
print only their message; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from tlzoo.cli import commands

logger = logging.getLogger("tlzoo")

EPILOG = """\
examples:
  tlzoo models '*vit*' --modality image      # source models in the zoo
  tlzoo adapt all-minilm-l6-v2 reviews.csv --label-column sentiment -o out
  tlzoo predict out/model photo.jpg          # labels and scores
  tlzoo push out/model me/my-model           # publish on the Hub
  tlzoo demo                                 # transfer learning, offline, in minutes
"""


class Parser(argparse.ArgumentParser):
    """``argparse`` without prefix abbreviations, whose errors name the command and suggest close flags."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --epoch must not silently mean --epochs
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._argv: list[str] = []

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        self._argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _command(self) -> argparse.ArgumentParser | None:
        """The sub-command's parser named in the arguments being parsed, if any."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return next((action.choices[a] for a in self._argv if a in action.choices), None)
        return None

    def error(self, message: str) -> NoReturn:
        import difflib

        command = self._command()
        if message.startswith("unrecognized arguments:") and command is not None:
            flags = [o for a in command._actions for o in a.option_strings]
            hints = []
            for token in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(token.split("=")[0], flags, n=1, cutoff=0.6)
                if token.startswith("-") and close:
                    hints.append(f"{token} (did you mean {close[0]}?)")
            if hints:
                message += "; " + ", ".join(hints)
            command.print_usage(sys.stderr)
            self.exit(2, f"{command.prog}: error: {message}\n(see `{command.prog} --help`)\n")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``tlzoo`` command."""
    parser = Parser(
        prog="tlzoo",
        description="Adapt pretrained Hugging Face Hub models (image, audio, text) to your own task.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in commands.REGISTERS:
        register(sub)
    return parser


def _version() -> str:
    from tlzoo import __version__

    return __version__


#: Libraries whose loggers have their own handler (transformers' does not pass records on by itself).
SELF_HANDLED = ("huggingface_hub", "datasets", "evaluate")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s")
    if not args.debug:
        # transformers and datasets reset their loggers' levels on import; these are read then
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DATASETS_VERBOSITY", "error")
        for noisy in ("transformers", "datasets", "accelerate", "httpx", "filelock", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    # huggingface_hub, datasets and evaluate print their messages (the Hub retries, a file that does not
    # parse) with their own handlers; passing them on to the root handler as well would print each twice
    for library in SELF_HANDLED:
        logging.getLogger(library).propagate = False
    from tlzoo.errors import INTERFACE, TlzooError

    interface = INTERFACE.set("cli")  # advice in messages names flags, not keyword arguments
    try:
        return int(args.func(args) or 0)
    except commands.UsageError as exc:
        parser.error(str(exc))  # exits 2
    except TlzooError as exc:
        if args.debug:
            logger.exception("tlzoo failed")
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except Exception as exc:  # unexpected: still one line unless --debug
        if args.debug:
            raise
        sys.stderr.write(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)\n")
        return 1
    finally:
        INTERFACE.reset(interface)
    return 0


def run() -> NoReturn:
    """The ``tlzoo`` console script and ``python -m tlzoo``: :func:`main`, then a quick exit.

    Once a command has returned, everything it wrote is closed. Python's own teardown of
    torch, transformers and datasets (freeing every module, about 1.5 s after a ``tlzoo adapt``)
    does nothing for the user, so the process ends without it: the exit handlers run (logging's
    flush, the libraries' clean-ups), the standard streams are flushed, and ``os._exit`` ends the
    process with :func:`main`'s code. Set ``TLZOO_FULL_EXIT=1`` for Python's normal exit; it is
    also taken while a thread that is not a daemon is still running (Python would wait for it).
    """
    import atexit
    import contextlib
    import threading

    code: int | str | None
    try:
        code = main()
    except SystemExit as exc:  # argparse's usage errors, --help and --version
        code = exc.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if os.environ.get("TLZOO_FULL_EXIT", "") not in ("", "0") or others:
        sys.exit(code)
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
        sys.stderr.write(code + "\n")
        code = 1
    atexit._run_exitfuncs()  # what the interpreter runs first on exit; only the module teardown is skipped
    for stream in (sys.stdout, sys.stderr):
        # a closed pipe (tlzoo ... | head) or stream: nothing left to deliver
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":
    run()
